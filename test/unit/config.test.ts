import { DataSource } from 'typeorm';
import { Container } from 'inversify';
import { ConfigurationError, MessageProducer, TMM, Tmm, createTmmModule, validateTmmOptions } from '../../src/internal';
import { MessageContract, Transactional } from 'tmm/decorators';

const dataSource = new DataSource({ type: 'better-sqlite3', database: ':memory:' });

describe('tmm options', () => {
  it('accepts a minimal configuration', () => {
    expect(validateTmmOptions({ dataSource }).dataSource).toBe(dataSource);
  });

  it('rejects a missing DataSource with the key named', () => {
    expect(() => validateTmmOptions({})).toThrow(ConfigurationError);
    expect(() => validateTmmOptions({})).toThrow(/"dataSource": is required/);
    expect(() => validateTmmOptions(undefined)).toThrow(/options must be an object/);
    expect(() => validateTmmOptions({ dataSource: { not: 'a data source' } })).toThrow(/"dataSource": must be a TypeORM DataSource/);
  });

  it('rejects unknown keys with their full path', () => {
    const err = (() => {
      try {
        validateTmmOptions({ dataSource, producer: { maxPayloadByte: 10 } });
      } catch (e) {
        return e as ConfigurationError;
      }
    })();
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err!.code).toBe('TMM_CONFIG_INVALID');
    expect(err!.path).toBe('producer.maxPayloadByte');
    expect(() => validateTmmOptions({ dataSource, dispatcher: { backoff: { jitterr: 1 } } })).toThrow(/"dispatcher\.backoff\.jitterr": unknown key/);
    expect(() => validateTmmOptions({ dataSource, transprot: 'memory' })).toThrow(/"transprot"/);
  });

  it('rejects values of the wrong type or range with their path', () => {
    expect(() => validateTmmOptions({ dataSource, producer: { maxPayloadBytes: -1 } })).toThrow(/"producer\.maxPayloadBytes"/);
    expect(() => validateTmmOptions({ dataSource, context: 'zone.js' })).toThrow(/"context"/);
    expect(() => validateTmmOptions({ dataSource, dispatcher: { concurrency: 0 } })).toThrow(/"dispatcher\.concurrency"/);
    expect(() => validateTmmOptions({ dataSource, relay: { maxPendingRows: 0 } })).toThrow(/"relay\.maxPendingRows"/);
    expect(validateTmmOptions({ dataSource, relay: { maxPendingRows: 2000 } }).relay?.maxPendingRows).toBe(2000);
  });

  it('the inversify module validates when created and binds every component', async () => {
    expect(() => createTmmModule({ dataSource, bogus: true } as never)).toThrow(/"bogus": unknown key/);
    const container = new Container();
    await container.load(createTmmModule({ dataSource, name: 'di-test', logger: 'silent' }));
    const tmm = container.get<Tmm>(TMM.Tmm);
    expect(container.get(TMM.MessageProducer)).toBeInstanceOf(MessageProducer);
    expect(container.get(TMM.MessageProducer)).toBe(tmm.producer);
    expect(container.get(TMM.TransactionManager)).toBe(tmm.transactions);
    expect(container.get(TMM.ContextStore)).toBe(tmm.contextStore);
    expect(container.get(TMM.Transport)).toBe(tmm.transport);
    expect(container.get(TMM.DataSource)).toBe(dataSource);
  });
});

describe('decorators validate their arguments at decoration time', () => {
  it('@MessageContract needs a dotted topic and a positive integer version', () => {
    expect(() => MessageContract({ topic: 'order paid' })).toThrow(/"MessageContract\.topic"/);
    expect(() => MessageContract({ topic: '' })).toThrow(ConfigurationError);
    expect(() => MessageContract({ topic: 'order.paid', version: 0 })).toThrow(/"MessageContract\.version"/);
  });

  it('@Transactional rejects unknown options and propagation values', () => {
    expect(() => Transactional({ propagation: 'SOMETIMES' as never })).toThrow(/"Transactional\.propagation": must be one of REQUIRED/);
    expect(() => Transactional({ isolation: 'SNAPSHOT' as never })).toThrow(/"Transactional\.isolation"/);
    expect(() => Transactional({ timeout: 5 } as never)).toThrow(/"Transactional\.timeout": unknown option/);
  });

  it('@Transactional keeps the method name and the metadata other decorators put on it', () => {
    const KEY = 'test:marker';
    // Like NestJS's SetMetadata: metadata on the method function itself, which a naive wrapper would lose.
    const mark: MethodDecorator = (_t, _k, d) => Reflect.defineMetadata(KEY, 'kept', d.value as object);
    class Svc {
      @Transactional()
      @mark
      async work(): Promise<void> {}
    }
    expect(Svc.prototype.work.name).toBe('work');
    expect(Reflect.getMetadata(KEY, Svc.prototype.work)).toBe('kept');
  });
});
