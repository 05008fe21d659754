import { Tmm, silentLogger } from '../../src/internal';
import { TransactionalMessage } from 'tmm/decorators';
import { DataSource } from 'typeorm';
import { TxLogSender } from '../../src/txlog';

const transport = { features: { durable: true, confirms: true }, declare: async () => undefined, publish: async () => undefined, subscribe: async () => ({ cancel: async () => undefined }), close: async () => undefined };
const deps = { transport, logger: silentLogger, serviceName: 's' };

describe('txlog options', () => {
  it.each([
    [{ directories: [] }, 'txlog.directories'],
    [{ directories: ['/x', '/x'] }, 'txlog.directories'],
    [{ directories: ['a', 'b', 'c'] }, 'txlog.directories'],
    [{ directories: ['a'], segmentBytes: 0 }, 'txlog.segmentBytes'],
    [{ directories: ['a'], maxChecks: 1.5 }, 'txlog.maxChecks'],
    [{ directories: ['a'], inDoubtAfterMs: -1 }, 'txlog.inDoubtAfterMs'],
    [{ directories: ['a'], checkUrl: 'not a url' }, 'txlog.checkUrl'],
    [{ directories: ['a'], barrier: true }, 'txlog.barrier'],
  ])('refuses %j naming %s', (options, path) => {
    expect(() => new TxLogSender(options as never, deps)).toThrow(expect.objectContaining({ code: 'TMM_CONFIG_INVALID', message: expect.stringContaining(path) }));
  });

  it("refuses sender 'log' without txlog", () => {
    const dataSource = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
    expect(() => new Tmm({ dataSource, sender: 'log' })).toThrow(expect.objectContaining({ code: 'TMM_CONFIG_INVALID', message: expect.stringContaining('sender') }));
  });

  it('refuses a bad sender on @TransactionalMessage', () => {
    expect(() => TransactionalMessage({ sender: 'disk' as never })).toThrow(expect.objectContaining({ message: expect.stringContaining('TransactionalMessage.sender') }));
  });
});
