/**
 * Issue 10, cases 3, 4 and 6, against a PRIVATE RabbitMQ node (test/support/privateRabbit.ts) that the
 * tests SIGSTOP (frozen: sockets open, nothing answers) or kill, never the shared broker; PostgreSQL for
 * the outbox. Ground truth is read outside tmm: the outbox with SQL, the queue with a raw amqplib client.
 */
import { randomUUID } from 'node:crypto';
import * as amqplib from 'amqplib';
import { uuidv7 } from 'uuidv7';
import { AmqpTransport, OutboxMessage, Tmm, TmmError, migrate, silentLogger } from '../../src/internal';
import { sleep, waitUntil } from '../support/broker';
import { TestDatabase, createTestDatabase } from '../support/databases';
import { FixtureProcess, killFixtures } from '../support/fixtureProcess';
import { PrivateRabbit } from '../support/privateRabbit';
import { LedgerPosted } from '../support/contracts';

jest.setTimeout(120_000);

let rabbit: PrivateRabbit;
const transports: AmqpTransport[] = [];
const tmms: Tmm[] = [];
const databases: TestDatabase[] = [];

beforeAll(async () => {
  rabbit = await PrivateRabbit.create();
});

afterEach(async () => {
  await killFixtures();
  try {
    rabbit.thaw();
  } catch {
    // not running
  }
  await rabbit.start();
  for (const t of tmms.splice(0)) await t.stop().catch(() => undefined);
  await Promise.all(transports.splice(0).map((t) => t.close().catch(() => undefined)));
  for (const db of databases.splice(0)) await db.dispose();
});

afterAll(async () => {
  await rabbit?.dispose();
});

function transport(name: string, options: ConstructorParameters<typeof AmqpTransport>[0] = {}): AmqpTransport {
  const t = new AmqpTransport({
    url: rabbit.url,
    logger: silentLogger,
    connectionName: `stall-${name}-${randomUUID().slice(0, 6)}`,
    confirmTimeoutMs: 2_000,
    closeTimeoutMs: 500,
    reconnect: { initialDelayMs: 100, maxDelayMs: 500, factor: 2, jitter: 0.2 },
    ...options,
  });
  transports.push(t);
  return t;
}

/** Resolves with how long `p` took to settle and the error code it rejected with ('ok' when it resolved). */
async function settleTime(p: Promise<unknown>): Promise<{ ms: number; code: string }> {
  const started = Date.now();
  try {
    await p;
    return { ms: Date.now() - started, code: 'ok' };
  } catch (e) {
    return { ms: Date.now() - started, code: e instanceof TmmError ? e.code : String(e) };
  }
}

function message(exchange: string) {
  return { id: uuidv7(), exchange, routingKey: 'stall', body: Buffer.from('{}'), headers: {}, contentType: 'application/json', timestamp: Date.now() };
}

describe('publishes settle within confirmTimeoutMs while the broker is frozen (SIGSTOP)', () => {
  for (const heartbeat of [30, 0]) {
    it(`heartbeat ${heartbeat}: to a known exchange and to one not checked yet`, async () => {
      const confirmTimeoutMs = 2_000;
      const known = `stall.known.${randomUUID().slice(0, 6)}`;
      const unchecked = `stall.unchecked.${randomUUID().slice(0, 6)}`;
      const admin = transport('admin');
      await admin.declare({
        exchanges: [{ name: known }, { name: unchecked }],
        queues: [{ name: `${known}.q`, bindings: [{ exchange: known, routingKey: '#' }, { exchange: unchecked, routingKey: '#' }] }],
      });
      const t = transport('publisher', { heartbeat, confirmTimeoutMs });
      await t.declare({ exchanges: [{ name: known }] });
      await t.publish(message(known)); // the confirm channel is open, the exchange known
      await admin.close();

      rabbit.freeze();
      const results = await Promise.all([
        settleTime(t.publish(message(known))),
        settleTime(t.publish(message(unchecked))),
        settleTime(t.publish(message(unchecked))),
      ]);
      rabbit.thaw();
      process.stdout.write(`[broker-stall] heartbeat=${heartbeat} ${JSON.stringify(results)}\n`);
      for (const r of results) {
        expect(r.code).toBe('TMM_PUBLISH_TIMEOUT');
        expect(r.ms).toBeLessThan(confirmTimeoutMs + 1_000);
      }
      // After the thaw the transport publishes again, to both.
      await t.publish(message(known));
      await t.publish(message(unchecked));
    });
  }
});

async function database(): Promise<TestDatabase> {
  const db = await createTestDatabase('postgres', [], { poolSize: 10 });
  databases.push(db);
  await migrate(db.dataSource);
  return db;
}

function row(exchange: string, i: number): OutboxMessage {
  const now = Date.now();
  return { id: uuidv7(), topic: 'stall', exchange, routingKey: 'stall', payload: JSON.stringify({ i }), headers: {}, availableAt: now, orderingKey: null, createdAt: now };
}

async function statusCounts(db: TestDatabase): Promise<Record<string, number>> {
  const rows = (await db.dataSource.query('SELECT status, COUNT(*) AS n FROM tmm_outbox GROUP BY status')) as { status: string; n: string }[];
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** Drains `queue` with a raw amqplib client; returns how often each message id arrived. */
async function drainQueue(queue: string, expected: number, timeoutMs = 20_000): Promise<Map<string, number>> {
  const conn = await amqplib.connect(rabbit.url);
  const ch = await conn.createChannel();
  const counts = new Map<string, number>();
  await ch.consume(queue, (m) => {
    if (!m) return;
    counts.set(String(m.properties.messageId), (counts.get(String(m.properties.messageId)) ?? 0) + 1);
    ch.ack(m);
  });
  const until = Date.now() + timeoutMs;
  while (counts.size < expected && Date.now() < until) await sleep(50);
  await sleep(300); // a duplicate on its way would arrive now
  await conn.close();
  return counts;
}

describe('shutdown and outages (PostgreSQL outbox, private broker)', () => {
  it('tmm.stop() returns within relay.shutdownTimeoutMs (+ the transport close budget) while publishes are stuck on a frozen broker', async () => {
    const db = await database();
    const exchange = `stall.stop.${randomUUID().slice(0, 6)}`;
    const queue = `${exchange}.q`;
    const admin = transport('admin');
    await admin.declare({ exchanges: [{ name: exchange }], queues: [{ name: queue, bindings: [{ exchange, routingKey: '#' }] }] });
    await admin.close();
    const t = transport('relay', { confirmTimeoutMs: 10_000, heartbeat: 0, closeTimeoutMs: 300 });
    const shutdownTimeoutMs = 1_500;
    const tmm = new Tmm({ dataSource: db.dataSource, transport: t, logger: 'silent', migrate: false, relay: { pollIntervalMs: 100, shutdownTimeoutMs, leaseMs: 60_000 } });
    tmms.push(tmm);
    await tmm.start();
    await t.connect();
    rabbit.freeze();
    const rows = Array.from({ length: 50 }, (_, i) => row(exchange, i));
    await tmm.transactions.run(() => tmm.outbox.append(tmm.transactions.manager, rows));
    tmm.relay.nudge();
    await waitUntil(async () => Number(((await db.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_outbox WHERE lease_owner IS NOT NULL`)) as { n: string }[])[0].n) === 50, 'the relay to claim the rows');
    await sleep(300);
    const { ms } = await settleTime(tmm.stop());
    tmms.splice(tmms.indexOf(tmm), 1);
    process.stdout.write(`[broker-stall] stop during stall took ${ms}ms (shutdownTimeoutMs=${shutdownTimeoutMs})\n`);
    // relay + fast path ≤ shutdownTimeoutMs; the transport's close has three closeTimeoutMs steps (consumers, channel, connection).
    expect(ms).toBeLessThan(shutdownTimeoutMs + 3 * 300 + 1_000);
    rabbit.thaw();
    // Nothing is lost or DEAD: every row is still PENDING for the sweeper (none could be confirmed).
    expect(await statusCounts(db)).toEqual({ PENDING: 50 });

    // A new process's relay delivers them all once the rows' lease or release lets it.
    const t2 = transport('relay2');
    const tmm2 = new Tmm({ dataSource: db.dataSource, transport: t2, logger: 'silent', migrate: false, relay: { pollIntervalMs: 100 } });
    tmms.push(tmm2);
    await db.dataSource.query('UPDATE tmm_outbox SET lease_until = 0'); // skip the 60 s lease of the stopped process
    await tmm2.start();
    await waitUntil(async () => Object.keys(await statusCounts(db)).length === 0, 'every row delivered', 30_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(await db.dataSource.query('SELECT status, attempts, last_error, available_at, lease_until, lease_owner FROM tmm_outbox LIMIT 3'))} now=${Date.now()}`);
    });
    const counts = await drainQueue(queue, 50);
    expect(rows.filter((r) => !counts.has(r.id))).toEqual([]);
  });

  it('a broker down for longer than maxAttempts × max backoff leaves no row DEAD and delivers everything when it returns', async () => {
    const db = await database();
    const exchange = `stall.outage.${randomUUID().slice(0, 6)}`;
    const queue = `${exchange}.q`;
    const t = transport('relay', { confirmTimeoutMs: 500, heartbeat: 2 });
    await t.declare({ exchanges: [{ name: exchange }], queues: [{ name: queue, bindings: [{ exchange, routingKey: '#' }] }] });
    const maxAttempts = 3;
    const maxDelayMs = 300;
    const tmm = new Tmm({
      dataSource: db.dataSource,
      transport: t,
      logger: 'silent',
      migrate: false,
      relay: { pollIntervalMs: 50 },
      dispatcher: { maxAttempts, backoff: { initialDelayMs: 50, maxDelayMs, factor: 2, jitter: 0 } },
    });
    tmms.push(tmm);
    await tmm.start();

    await rabbit.stop();
    const rows = Array.from({ length: 200 }, (_, i) => row(exchange, i));
    await tmm.transactions.run(() => tmm.outbox.append(tmm.transactions.manager, rows));
    tmm.relay.nudge();
    const outageMs = 8_000; // ≫ maxAttempts × maxDelayMs (0.9 s) + confirm timeouts
    const until = Date.now() + outageMs;
    let maxDead = 0;
    while (Date.now() < until) {
      maxDead = Math.max(maxDead, (await statusCounts(db)).DEAD ?? 0);
      await sleep(250);
    }
    const [{ failures }] = (await db.dataSource.query(`SELECT COUNT(*) AS failures FROM tmm_outbox WHERE last_error IS NOT NULL`)) as { failures: string }[];
    const transient = tmm.dispatcher.stats.transientFailures;
    await rabbit.start();
    await waitUntil(async () => Object.keys(await statusCounts(db)).length === 0, 'every row delivered after the outage', 60_000);
    const counts = await drainQueue(queue, rows.length);
    process.stdout.write(
      `[broker-stall] outage ${outageMs}ms: rowsWithError=${failures} transientFailures=${transient} maxDeadDuringOutage=${maxDead} delivered=${counts.size}\n`,
    );
    expect(Number(failures)).toBe(rows.length); // the outage was real: every row failed at least once
    expect(transient).toBeGreaterThanOrEqual(rows.length * maxAttempts); // more failures than the budget…
    expect(maxDead).toBe(0); // …and still no row DEAD
    expect(rows.filter((r) => !counts.has(r.id))).toEqual([]);
    expect(counts.size).toBe(rows.length);
  });
});

describe('the fast path during an outage', () => {
  it('keeps its queue within dispatcher.maxQueuedRows and leaves the rest to the sweeper', async () => {
    const db = await database();
    const exchange = `stall.queue.${randomUUID().slice(0, 6)}`;
    const queue = `${exchange}.q`;
    const t = transport('producer', { confirmTimeoutMs: 1_000, heartbeat: 2 });
    await t.declare({ exchanges: [{ name: exchange }], queues: [{ name: queue, bindings: [{ exchange, routingKey: '#' }] }] });
    const maxQueuedRows = 50;
    const tmm = new Tmm({
      dataSource: db.dataSource,
      transport: t,
      logger: 'silent',
      migrate: false,
      producer: { defaultExchange: exchange },
      relay: { pollIntervalMs: 200, batchSize: 50, maxPendingRows: 100 },
      dispatcher: { concurrency: 4, maxQueuedRows, backoff: { initialDelayMs: 100, maxDelayMs: 500, factor: 2, jitter: 0 } },
    });
    tmms.push(tmm);
    await tmm.start();
    await rabbit.stop();
    let maxQueued = 0;
    const sent: string[] = [];
    for (let i = 0; i < 600; i++) {
      const id = await tmm.transactions.run(() => tmm.producer.send(LedgerPosted.of(`e${i}`, i + 1)));
      sent.push(id);
      maxQueued = Math.max(maxQueued, tmm.dispatcher.pending);
      if (i % 50 === 0) await sleep(20);
    }
    const overflowed = tmm.dispatcher.stats.overflowed;
    await rabbit.start();
    await waitUntil(async () => Object.keys(await statusCounts(db)).length === 0, 'every message delivered after the outage', 60_000);
    const counts = await drainQueue(queue, sent.length);
    process.stdout.write(`[broker-stall] fast-path queue: sent=${sent.length} maxPending=${maxQueued} overflowed=${overflowed} delivered=${counts.size}\n`);
    // pending counts the fast-path queue (bounded), what the relay claimed (relay.maxPendingRows), what is in
    // flight (concurrency) and the message of the send that just committed: dispatchSoon() hands it to the
    // queue on the next turn, where the bound is checked, and pending counts it until then.
    expect(maxQueued).toBeLessThanOrEqual(maxQueuedRows + 100 + 4 + 1);
    expect(overflowed).toBeGreaterThan(0);
    expect(sent.filter((id) => !counts.has(id))).toEqual([]);
  });
});

describe('a relay paused past its lease (its process SIGSTOPped)', () => {
  it('publishes no row whose lease passed once it runs again', async () => {
    const db = await database();
    const [{ schema }] = (await db.dataSource.query('SELECT current_schema() AS schema')) as { schema: string }[];
    const exchange = `stall.lease.${randomUUID().slice(0, 6)}`;
    const queue = `${exchange}.q`;
    const admin = transport('admin');
    await admin.declare({ exchanges: [{ name: exchange }], queues: [{ name: queue, bindings: [{ exchange, routingKey: '#' }] }] });
    await admin.close();
    // Ground truth: a raw amqplib consumer, arrival times per message id.
    const conn = await amqplib.connect(rabbit.url);
    const ch = await conn.createChannel();
    await ch.prefetch(500);
    const arrivals: { id: string; at: number }[] = [];
    await ch.consume(queue, (m) => {
      if (!m) return;
      arrivals.push({ id: String(m.properties.messageId), at: Date.now() });
      ch.ack(m);
    });
    try {
      const writer = new Tmm({ dataSource: db.dataSource, transport: 'memory', logger: 'silent', migrate: false, relay: { enabled: false } });
      tmms.push(writer);
      await writer.start();
      const rows = Array.from({ length: 20_000 }, (_, i) => row(exchange, i));
      for (let i = 0; i < rows.length; i += 2_000) await writer.transactions.run(() => writer.outbox.append(writer.transactions.manager, rows.slice(i, i + 2_000)));

      const concurrency = 8;
      const worker = FixtureProcess.spawn('relay-worker.ts', {
        TMM_FIXTURE_SCHEMA: schema,
        TMM_FIXTURE_AMQP_URL: rabbit.url,
        TMM_FIXTURE_CONNECTION_NAME: `stall-lease-worker-${randomUUID().slice(0, 6)}`,
        TMM_FIXTURE_LEASE_MS: '2000',
        TMM_FIXTURE_CONCURRENCY: String(concurrency),
      });
      await worker.waitFor((e) => e.event === 'ready', 'ready', 30_000);
      await waitUntil(() => arrivals.length >= 300, 'the worker to publish part of its rows');
      worker.child.kill('SIGSTOP');
      const [{ held }] = (await db.dataSource.query(`SELECT COUNT(*) AS held FROM tmm_outbox WHERE lease_owner LIKE 'relay-worker-%'`)) as { held: string }[];
      // Another relay takes over once the leases pass and delivers everything.
      const t2 = transport('takeover');
      const takeover = new Tmm({ name: 'takeover', dataSource: db.dataSource, transport: t2, logger: 'silent', migrate: false, relay: { pollIntervalMs: 100 } });
      tmms.push(takeover);
      await takeover.start();
      await waitUntil(async () => Object.keys(await statusCounts(db)).length === 0, 'the takeover relay to deliver every row', 90_000);
      await takeover.stop();
      await sleep(500);
      const thawedAt = Date.now();
      worker.child.kill('SIGCONT');
      await sleep(3_000);
      worker.child.kill('SIGTERM');
      const stopped = await worker.waitFor((e) => e.event === 'stopped', 'the worker to stop', 20_000);
      const afterThaw = arrivals.filter((a) => a.at >= thawedAt).length;
      const distinct = new Set(arrivals.map((a) => a.id));
      process.stdout.write(
        `[broker-stall] lease: heldAtStop=${held} arrivalsAfterThaw=${afterThaw} workerLeaseExpired=${String(stopped.leaseExpired)} workerPublished=${String(stopped.published)} distinct=${distinct.size} duplicates=${arrivals.length - distinct.size}\n`,
      );
      expect(Number(held)).toBeGreaterThan(100); // it really was paused holding rows
      expect(rows.filter((r) => !distinct.has(r.id))).toEqual([]);
      // Only publishes already handed to its socket before the pause may still go out: at most one per slot.
      expect(afterThaw).toBeLessThanOrEqual(concurrency);
      expect(Number(stopped.leaseExpired)).toBeGreaterThan(0);
    } finally {
      await conn.close().catch(() => undefined);
    }
  });
});
