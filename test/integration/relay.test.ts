import { uuidv7 } from 'uuidv7';
import { Delivery, MemoryTransport, OutboxMessage, RelayLockedError, Tmm } from '../../src/internal';
import { TestDatabase, createTestDatabase, dbLanes } from '../support/databases';

const row = (over: Partial<OutboxMessage> = {}): OutboxMessage => ({
  id: uuidv7(),
  topic: 'relay.test',
  exchange: 'tmm.events',
  routingKey: 'relay.test',
  payload: JSON.stringify({ n: Math.random() }),
  headers: {},
  availableAt: Date.now(),
  orderingKey: null,
  createdAt: Date.now(),
  ...over,
});

async function until(cond: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each(dbLanes())('relay on $name (in-memory transport)', ({ kind }) => {
  let db: TestDatabase;
  let tmm: Tmm;
  let transport: MemoryTransport;
  let received: Delivery[];

  beforeEach(async () => {
    db = await createTestDatabase(kind);
    transport = new MemoryTransport();
    tmm = new Tmm({
      dataSource: db.dataSource,
      transport,
      logger: 'silent',
      relay: { pollIntervalMs: 50 },
      dispatcher: { maxAttempts: 3, backoff: { initialDelayMs: 30, maxDelayMs: 100, jitter: 0 }, deleteDelivered: false },
    });
    received = [];
    await transport.subscribe({ queue: { name: 'q', bindings: [{ exchange: 'tmm.events', routingKey: 'relay.#' }] }, prefetch: 500 }, async (d) => {
      received.push(d);
      await d.ack();
    });
  });
  afterEach(async () => {
    await tmm.stop();
    await db.dispose();
  });

  /** Rows as a crashed process leaves them: committed, leased to a dead owner whose lease has expired. */
  async function leaveCrashedRows(rows: OutboxMessage[]): Promise<void> {
    await tmm.transactions.run(() => tmm.outbox.append(tmm.transactions.manager, rows, { owner: 'crashed-process', until: Date.now() - 1 }));
  }

  it('publishes rows left by a crash between commit and publish, once each', async () => {
    await tmm.start(); // migrates; the relay starts sweeping
    const rows = Array.from({ length: 120 }, () => row());
    await leaveCrashedRows(rows);
    await until(() => received.length >= 120);
    await tmm.dispatcher.flush();
    expect(received.map((d) => d.message.id).sort()).toEqual(rows.map((r) => r.id).sort());
    expect((await tmm.outbox.countByStatus()).DELIVERED).toBe(120);
  });

  it('retries a failing row with backoff, then makes it DEAD with its error, without blocking the others', async () => {
    await tmm.start();
    const poison = row({ routingKey: 'nobody.listens' });
    const good = Array.from({ length: 10 }, () => row());
    await leaveCrashedRows([poison, ...good]);
    await until(async () => (await tmm.outbox.get(poison.id))?.status === 'DEAD');
    const dead = await tmm.outbox.get(poison.id);
    expect(dead).toMatchObject({ status: 'DEAD', attempts: 3 });
    expect(dead!.lastError).toMatch(/TMM_PUBLISH_UNROUTABLE/);
    await until(() => received.length >= 10);
    expect(received.map((d) => d.message.id).sort()).toEqual(good.map((r) => r.id).sort());
    // Attempts were spaced by the backoff (30 ms, then 60 ms), not retried in a hot loop.
    expect(tmm.dispatcher.stats.failed).toBe(3);
  });

  it('publishes the rows of an ordering key strictly in order', async () => {
    await tmm.start();
    const rows = Array.from({ length: 15 }, (_v, i) => row({ orderingKey: 'acct-7', payload: JSON.stringify({ i }) }));
    await leaveCrashedRows(rows);
    await until(() => received.length >= 15, 20_000);
    expect(received.map((d) => JSON.parse(d.message.body.toString()).i)).toEqual(rows.map((_r, i) => i));
  });

  it('does not publish a delayed row before it is due', async () => {
    await tmm.start();
    const dueAt = Date.now() + 400;
    await leaveCrashedRows([row({ availableAt: dueAt })]);
    await new Promise((r) => setTimeout(r, 250));
    expect(received).toHaveLength(0);
    await until(() => received.length === 1);
    expect(Date.now()).toBeGreaterThanOrEqual(dueAt);
  });

  it('stop() during a drain loses nothing: what it did not publish, a new relay publishes', async () => {
    await tmm.start();
    // Stop from inside the first delivery, so the stop lands in the middle of the drain.
    let stopping: Promise<void> | undefined;
    const sub = await transport.subscribe({ queue: { name: 'stopper', bindings: [{ exchange: 'tmm.events', routingKey: 'relay.#' }] }, prefetch: 1 }, async (d) => {
      stopping ??= tmm.stop({ closeTransport: false });
      await d.ack();
    });
    const rows = Array.from({ length: 2000 }, () => row());
    await leaveCrashedRows(rows);
    await until(() => stopping !== undefined);
    await stopping;
    await sub.cancel();
    const afterStop = received.length;
    const leasedToUs = (await db.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_outbox WHERE status = 'PENDING' AND lease_owner = '${tmm.instanceId}'`)) as { n: string | number }[];
    expect(Number(leasedToUs[0].n)).toBe(0);
    const next = new Tmm({ dataSource: db.dataSource, name: 'next', transport, logger: 'silent', relay: { pollIntervalMs: 50 }, dispatcher: { deleteDelivered: false } });
    try {
      await next.start();
      await until(() => received.length >= 2000);
      await next.dispatcher.flush();
    } finally {
      await next.stop({ closeTransport: false });
    }
    const ids = received.map((d) => d.message.id);
    expect(new Set(ids).size).toBe(2000);
    expect(ids.length).toBe(2000); // nothing published twice either: every confirmed id was marked before stop returned
    expect(afterStop).toBeLessThan(2000); // the stop really interrupted the drain
    expect((await tmm.outbox.countByStatus()).DELIVERED).toBe(2000);
  });

  if (kind === 'sqlite') {
    it('allows a single relay per SQLite database file', async () => {
      await tmm.start();
      const second = new Tmm({ dataSource: db.dataSource, name: 'second', transport, logger: 'silent' });
      await expect(second.start()).rejects.toThrow(RelayLockedError);
      await expect(second.start()).rejects.toThrow(/only one relay may run per SQLite database file/);
      // Without its relay the second instance starts (it can still produce; the first relay sweeps).
      const producerOnly = new Tmm({ dataSource: db.dataSource, name: 'third', transport, logger: 'silent', relay: { enabled: false } });
      await producerOnly.start();
      await producerOnly.stop({ closeTransport: false });
    });
  }
});

describe('relay claims on PostgreSQL', () => {
  let db: TestDatabase;
  let tmm: Tmm;

  beforeAll(async () => {
    // One pooled connection: the claims and the statistics flush below run on the same backend.
    db = await createTestDatabase('postgres', [], { poolSize: 1 });
    tmm = new Tmm({ dataSource: db.dataSource, transport: new MemoryTransport(), logger: 'silent', relay: { enabled: false } });
    await tmm.start();
  });
  afterAll(async () => {
    await tmm.stop();
    await db.dispose();
  });

  /** Sequential scans of tmm_outbox so far, as the statistics system counts them. */
  async function seqScans(): Promise<number> {
    await db.dataSource.query('SELECT pg_stat_force_next_flush()'); // this backend's pending counts, when it goes idle
    const [{ n }] = (await db.dataSource.query(
      `SELECT seq_scan::int AS n FROM pg_stat_user_tables WHERE relname = 'tmm_outbox' AND schemaname = current_schema()`,
    )) as { n: number }[];
    return n;
  }

  it('a claim reads a 20,000-row backlog through its indexes, never with a scan of the whole table', async () => {
    // (IN (subquery) made PostgreSQL hash-join the claimed ids against a sequential scan of the outbox, so
    // each claim cost O(backlog) and a drain O(backlog²).)
    const start = Date.now() - 20_000;
    for (let chunk = 0; chunk < 4; chunk++) {
      const rows = Array.from({ length: 5_000 }, (_v, i) => row({ availableAt: start + chunk * 5_000 + i }));
      await tmm.transactions.run(() => tmm.outbox.append(tmm.transactions.manager, rows));
    }
    await db.dataSource.query('ANALYZE tmm_outbox');
    const before = await seqScans();
    let claimed = 0;
    for (let i = 0; i < 4; i++) {
      const rows = await tmm.outbox.claimDue('claimer', { leaseMs: 30_000, limit: 500 });
      await tmm.outbox.markDelivered(rows.map((r) => r.id), 'claimer', { deleteRows: true });
      claimed += rows.length;
    }
    expect(claimed).toBe(2_000);
    expect(await seqScans()).toBe(before);
  });
});
