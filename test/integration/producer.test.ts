import { IsString } from 'class-validator';
import { randomUUID } from 'node:crypto';
import {
  ConfigurationError,
  ContractNotRegisteredError,
  MessageValidationError,
  NoActiveTransactionError,
  NotConfiguredError,
  PayloadTooLargeError,
  Propagation,
  Tmm,
  TmmRegistry,
} from '../../src/internal';
import { MessageContract, Transactional, TransactionalMessage } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';
import { dbLanes } from '../support/databases';
import { LedgerEntry } from '../support/entities';
import { Harness, startHarness } from '../support/harness';

@MessageContract({ topic: 'note.big' })
class BigNote {
  @IsString()
  text!: string;
}

/** A service as users write it: decorated methods, the producer from tmm, writes through the transaction manager. */
class LedgerService {
  constructor(private readonly tmm: Tmm) {}

  private get repo() {
    return this.tmm.transactions.getRepository(LedgerEntry);
  }

  @TransactionalMessage()
  async post(id: string, amount: number, fail = false): Promise<void> {
    await this.repo.insert({ id, account: 'acc', amount });
    await this.tmm.producer.send(LedgerPosted.of(id, amount));
    if (fail) throw new Error(`post ${id} failed after sending`);
  }

  @TransactionalMessage()
  async postWithNested(id: string): Promise<void> {
    await this.post(`${id}-outer`, 1);
    await this.nestedPost(`${id}-inner`).catch(() => undefined);
  }

  @TransactionalMessage({ propagation: Propagation.Nested })
  async nestedPost(id: string): Promise<void> {
    await this.repo.insert({ id, account: 'acc', amount: 2 });
    await this.tmm.producer.send(LedgerPosted.of(id, 2));
    throw new Error('nested fails');
  }

  @TransactionalMessage()
  async postThenFailAfterIndependent(id: string): Promise<void> {
    await this.post(`${id}-outer`, 1);
    await this.independentPost(`${id}-new`);
    throw new Error('outer fails');
  }

  @TransactionalMessage({ propagation: Propagation.RequiresNew })
  async independentPost(id: string): Promise<void> {
    await this.repo.insert({ id, account: 'acc', amount: 3 });
    await this.tmm.producer.send(LedgerPosted.of(id, 3));
  }

  @Transactional({ propagation: Propagation.Mandatory })
  async mustBeInTransaction(): Promise<string> {
    return 'ok';
  }
}

const topicIds = (h: Harness) => h.received.map((d) => JSON.parse(d.message.body.toString()).entryId as string).sort();
const outboxIds = async (h: Harness) =>
  ((await h.db.dataSource.query('SELECT payload FROM tmm_outbox')) as { payload: string }[]).map((r) => JSON.parse(r.payload).entryId as string).sort();

describe.each(dbLanes())('producer on $name', ({ kind }) => {
  let h: Harness;
  let svc: LedgerService;

  beforeAll(async () => {
    h = await startHarness(kind, {}, 20);
    svc = new LedgerService(h.tmm);
  });
  afterAll(async () => h?.dispose());
  beforeEach(async () => {
    await h.settle();
    await h.db.dataSource.query('DELETE FROM tmm_outbox');
    await h.db.dataSource.query('DELETE FROM test_ledger');
    h.received.length = 0;
  });

  it('commit ⇒ the row is in tmm_outbox and the message is delivered, marked DELIVERED', async () => {
    await svc.post('p1', 10);
    await h.settle();
    expect(await outboxIds(h)).toEqual(['p1']);
    expect(topicIds(h)).toEqual(['p1']);
    const d = h.received[0];
    expect(d.message.routingKey).toBe('ledger.posted');
    expect(d.message.headers['tmm-contract-version']).toBe(2);
    expect(JSON.parse(d.message.body.toString())).toEqual({ entryId: 'p1', amount: 10, currency: 'EUR' });
    const row = await h.tmm.outbox.get(d.message.id);
    expect(row).toMatchObject({ status: 'DELIVERED', topic: 'ledger.posted', attempts: 0, leaseOwner: null });
  });

  it('throw ⇒ rollback: no business row, no outbox row, nothing delivered', async () => {
    await expect(svc.post('p2', 10, true)).rejects.toThrow('post p2 failed after sending');
    await h.settle();
    expect(await outboxIds(h)).toEqual([]);
    expect(await h.db.dataSource.getRepository(LedgerEntry).count()).toBe(0);
    expect(h.received).toHaveLength(0);
  });

  it('a rolled-back NESTED savepoint drops its messages and keeps the outer ones', async () => {
    await svc.postWithNested('n');
    await h.settle();
    expect(await outboxIds(h)).toEqual(['n-outer']);
    expect(topicIds(h)).toEqual(['n-outer']);
  });

  if (kind === 'sqlite') {
    it('REQUIRES_NEW inside a transaction is refused on SQLite with a clear error, and nothing is sent', async () => {
      await expect(svc.postThenFailAfterIndependent('r')).rejects.toThrow(/SQLite has a single writer/);
      await h.settle();
      expect(await outboxIds(h)).toEqual([]);
      expect(h.received).toHaveLength(0);
    });
  } else {
    it('messages of a REQUIRES_NEW inner transaction are published even though the outer one rolls back', async () => {
      await expect(svc.postThenFailAfterIndependent('r')).rejects.toThrow('outer fails');
      await h.settle();
      expect(await outboxIds(h)).toEqual(['r-new']);
      expect(topicIds(h)).toEqual(['r-new']);
    });
  }

  it('100 concurrent @TransactionalMessage calls each publish exactly their own messages', async () => {
    const n = 100;
    const results = await Promise.allSettled(Array.from({ length: n }, (_v, i) => svc.post(`c${i}`, i + 1, i % 10 === 0)));
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(10);
    await h.settle();
    const expected = Array.from({ length: n }, (_v, i) => i).filter((i) => i % 10 !== 0).map((i) => `c${i}`).sort();
    expect(await outboxIds(h)).toEqual(expected);
    expect(topicIds(h)).toEqual(expected);
    // Each message carries its own transaction's amount: no message leaked into another call's transaction.
    for (const d of h.received) {
      const body = JSON.parse(d.message.body.toString());
      expect(body.amount).toBe(Number(body.entryId.slice(1)) + 1);
    }
    expect(await h.db.dataSource.getRepository(LedgerEntry).count()).toBe(90);
  });

  it('appends all messages of a transaction with one multi-row INSERT', async () => {
    // Counted where every statement is logged, whether it goes through TypeORM's query path or the driver
    // adapter the outbox writes with (src/outbox/writers).
    const statements: string[] = [];
    const spy = jest.spyOn(h.tmm.transactions.dataSource.logger, 'logQuery').mockImplementation((sql: string) => void statements.push(sql));
    try {
      await h.tmm.transactions.run(async () => {
        for (let i = 0; i < 25; i++) await h.tmm.producer.send(LedgerPosted.of(`m${i}`, 1));
      });
    } finally {
      spy.mockRestore();
    }
    await h.settle();
    expect(statements.filter((s) => s.startsWith('INSERT INTO tmm_outbox'))).toHaveLength(1);
    expect((await outboxIds(h)).length).toBe(25);
  });

  it('send() outside a transaction stores the row in a transaction of its own and delivers it', async () => {
    const id = await h.tmm.producer.send(LedgerPosted.of('solo', 5));
    await h.settle();
    expect((await h.tmm.outbox.get(id))?.status).toBe('DELIVERED');
    expect(topicIds(h)).toEqual(['solo']);
  });

  it('an invalid message throws MessageValidationError listing every failed constraint, before anything is stored', async () => {
    const bad = Object.assign(new LedgerPosted(), { entryId: '', amount: -3, currency: 'euro' });
    const err = await svc['tmm'].transactions
      .run(async () => {
        await h.tmm.producer.send(LedgerPosted.of('good', 1));
        await h.tmm.producer.send(bad);
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(MessageValidationError);
    expect(err.code).toBe('TMM_MESSAGE_INVALID');
    expect((err as MessageValidationError).violations.map((v) => `${v.property}:${v.constraint}`).sort()).toEqual(
      ['amount:isPositive', 'currency:matches', 'entryId:isLength'],
    );
    expect(err.message).toMatch(/LedgerPosted is invalid: .*currency/);
    await h.settle();
    expect(await outboxIds(h)).toEqual([]);
  });

  it('unknown properties on a message are refused (whitelist)', async () => {
    const extra = Object.assign(LedgerPosted.of('x', 1), { secret: 'leak' });
    await expect(h.tmm.producer.send(extra)).rejects.toMatchObject({ code: 'TMM_MESSAGE_INVALID', message: expect.stringContaining('secret') });
  });

  it('a payload over the size limit is refused with PayloadTooLargeError naming topic, size and limit', async () => {
    const note = Object.assign(new BigNote(), { text: 'x'.repeat(300 * 1024) });
    const err = await h.tmm.producer.send(note).catch((e) => e);
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect(err.message).toMatch(/note\.big.*307\d{3} bytes.*262144/);
  });

  it('a plain object or an undecorated class is refused with ContractNotRegisteredError', async () => {
    await expect(h.tmm.producer.send({ entryId: 'x' })).rejects.toThrow(ContractNotRegisteredError);
    class NotAContract {}
    await expect(h.tmm.producer.send(new NotAContract())).rejects.toThrow(/NotAContract is not a message contract/);
  });

  it('bad send options are refused with ConfigurationError naming the option', async () => {
    await expect(h.tmm.producer.send(LedgerPosted.of('x', 1), { dealy: 5 } as never)).rejects.toThrow(/"send\.dealy": unknown option/);
    await expect(h.tmm.producer.send(LedgerPosted.of('x', 1), { delay: -1 })).rejects.toThrow(ConfigurationError);
    await expect(h.tmm.producer.send(LedgerPosted.of('x', 1), { mode: 'fast', delay: 5 })).rejects.toThrow(/send\.mode/);
  });

  it('routing key, exchange and headers options reach the wire', async () => {
    await h.transport.declare({ queues: [{ name: 'custom', bindings: [{ exchange: 'custom.ex', routingKey: 'special.*' }] }] });
    const got: string[] = [];
    const sub = await h.transport.subscribe({ queue: { name: 'custom' }, prefetch: 10 }, async (d) => {
      got.push(`${d.message.routingKey}|${d.message.headers['x-tenant']}`);
      await d.ack();
    });
    await h.tmm.producer.send(LedgerPosted.of('o', 1), { exchange: 'custom.ex', routingKey: 'special.one', headers: { 'x-tenant': 't1' } });
    await h.settle();
    await sub.cancel();
    expect(got).toEqual(['special.one|t1']);
  });

  it('a delayed message is stored with available_at and not published before it is due', async () => {
    const start = Date.now();
    const id = await h.tmm.producer.send(LedgerPosted.of('later', 1), { delay: 300 });
    await h.settle();
    expect(h.received).toHaveLength(0);
    const row = await h.tmm.outbox.get(id);
    expect(row!.availableAt).toBeGreaterThanOrEqual(start + 300);
    await new Promise((r) => setTimeout(r, 450));
    await h.settle();
    expect(topicIds(h)).toEqual(['later']);
    expect(h.received[0].message.timestamp).toBeLessThanOrEqual(Date.now());
  });

  it('ordered messages with the same key are delivered in the order sent', async () => {
    await h.tmm.transactions.run(async () => {
      for (let i = 0; i < 20; i++) await h.tmm.producer.send(LedgerPosted.of(`k${String(i).padStart(2, '0')}`, 1), { orderingKey: 'account-1' });
    });
    await h.settle();
    expect(h.received.map((d) => JSON.parse(d.message.body.toString()).entryId)).toEqual(Array.from({ length: 20 }, (_v, i) => `k${String(i).padStart(2, '0')}`));
  });

  it('fast mode publishes at once, stores nothing, and is not undone by a rollback', async () => {
    await expect(
      h.tmm.transactions.run(async () => {
        await h.tmm.producer.send(LedgerPosted.of('fast', 1), { mode: 'fast' });
        throw new Error('rollback');
      }),
    ).rejects.toThrow('rollback');
    await h.settle();
    expect(topicIds(h)).toEqual(['fast']);
    expect(await outboxIds(h)).toEqual([]);
  });

  it('message ids are time-ordered UUIDv7', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await h.tmm.producer.send(LedgerPosted.of(`t${i}`, 1), { mode: 'fast' }));
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
  });

  it('MANDATORY outside a transaction fails with the method named', async () => {
    await expect(svc.mustBeInTransaction()).rejects.toThrow(/MANDATORY in LedgerService\.mustBeInTransaction/);
  });
});

describe('producer configuration', () => {
  it('requireTransaction: send() outside a transaction throws NoActiveTransactionError and stores nothing', async () => {
    const h = await startHarness('sqlite', { name: `strict-${randomUUID()}`, producer: { requireTransaction: true } });
    try {
      const err = await h.tmm.producer.send(LedgerPosted.of('x', 1)).catch((e) => e);
      expect(err).toBeInstanceOf(NoActiveTransactionError);
      expect(err.message).toMatch(/ledger\.posted.*requireTransaction/);
      expect(await h.tmm.outbox.countByStatus()).toEqual({ PENDING: 0, DELIVERED: 0, DEAD: 0, EXCEPTION: 0 });
    } finally {
      await h.dispose();
    }
  });

  it('a decorated method with no started tmm instance fails with NotConfiguredError naming it', async () => {
    class Orphan {
      @TransactionalMessage({ dataSource: 'nowhere' })
      async run(): Promise<void> {}
    }
    expect(TmmRegistry.find('nowhere')).toBeUndefined();
    const err = await new Orphan().run().catch((e) => e);
    expect(err).toBeInstanceOf(NotConfiguredError);
    expect(err.message).toMatch(/Orphan\.run needs tmm instance "nowhere"/);
  });
});
