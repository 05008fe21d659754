/**
 * Reliable delivery under injected failures, end to end: the real RabbitMQ (127.0.0.1:5672, `rabbitmqctl`
 * must work), real databases (PostgreSQL for the multi-process cases; SQLite, PostgreSQL and MariaDB for the
 * others) and, for crashes, real processes (test/fixtures/, spawned through test/support/register.js). Each
 * test counts, from a queue consumer, what was lost and what was duplicated, asserts nothing was lost and
 * prints one `[relay-amqp]` line with its numbers.
 *
 * Every test has its own database (schema), exchange and queues, removed afterwards; every child process is
 * killed in afterEach.
 */
import { randomUUID } from 'node:crypto';
import { uuidv7 } from 'uuidv7';
import { AmqpTransport, AmqpTransportOptionsInput, OutboxMessage, OutboxStatus, Tmm, TmmOptions, Topology, Transport, TransportMessage, migrate, silentLogger } from '../../src/internal';
import { TransactionalMessage } from 'tmm/decorators';
import { AMQP_URL, Arrival, BlackHoleBroker, CapturingLogger, QueueTally, closeConnection, connectionPid, removeTopology, sleep, waitUntil } from '../support/broker';
import { LedgerPosted } from '../support/contracts';
import { DbKind, TestDatabase, createTestDatabase, dbLanes } from '../support/databases';
import { LedgerEntry } from '../support/entities';
import { FixtureProcess, killFixtures } from '../support/fixtureProcess';

let prefix = '';
let cleanup: Required<Topology> = { exchanges: [], queues: [] };
const tmms: Tmm[] = [];
const transports: AmqpTransport[] = [];
const databases: TestDatabase[] = [];
const blackHoles: BlackHoleBroker[] = [];

beforeEach(() => {
  prefix = `tmm-ra-${randomUUID().slice(0, 8)}`;
  cleanup = { exchanges: [], queues: [] };
});

afterEach(async () => {
  // Every step runs even if an earlier one failed; the first failure is reported.
  const failures: unknown[] = [];
  const step = async (fn: () => Promise<unknown>) => fn().catch((e: unknown) => failures.push(e));
  await step(killFixtures);
  for (const tmm of tmms.splice(0)) await step(() => tmm.stop());
  await step(() => Promise.all(transports.splice(0).map((t) => t.close())));
  await step(() => Promise.all(blackHoles.splice(0).map((b) => b.close())));
  await step(() => removeTopology(cleanup, `${prefix}-cleanup`));
  for (const db of databases.splice(0)) await step(() => db.dispose());
  if (failures.length > 0) throw failures[0];
});

afterAll(killFixtures);

// ---- helpers ----

function report(label: string, numbers: Record<string, unknown>): void {
  process.stdout.write(`[relay-amqp] ${label}: ${Object.entries(numbers).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ')}\n`);
}

function amqp(name: string, options: AmqpTransportOptionsInput = {}): AmqpTransport {
  const t = new AmqpTransport({
    url: AMQP_URL,
    logger: silentLogger,
    connectionName: `${prefix}-${name}`,
    confirmTimeoutMs: 5_000,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500, factor: 2, jitter: 0.2 },
    ...options,
  });
  transports.push(t);
  return t;
}

/** A fresh database (a PostgreSQL schema by default) with the ledger table and tmm's tables. */
async function database(kind: DbKind = 'postgres'): Promise<TestDatabase & { schema: string }> {
  const db = await createTestDatabase(kind, [LedgerEntry], { poolSize: 20 });
  databases.push(db);
  await migrate(db.dataSource);
  const schema = kind === 'postgres' ? ((await db.dataSource.query('SELECT current_schema() AS schema')) as { schema: string }[])[0].schema : '';
  return Object.assign(db, { schema });
}

/**
 * This test's exchange and a queue bound to it with `bindingKey`, consumed by a tally on its own connection
 * (so cutting a relay's connection leaves the count alone).
 */
async function topology(bindingKey = '#'): Promise<{ exchange: string; queue: string; tally: QueueTally }> {
  const exchange = `${prefix}.x`;
  const queue = `${prefix}.q`;
  cleanup.exchanges.push({ name: exchange });
  cleanup.queues.push({ name: queue });
  const consumer = amqp('consumer');
  await consumer.declare({ exchanges: [{ name: exchange }] });
  const tally = await QueueTally.start(consumer, { name: queue, bindings: [{ exchange, routingKey: bindingKey }] }, 1_000);
  return { exchange, queue, tally };
}

function tmmOn(db: TestDatabase, transport: TmmOptions['transport'], options: Partial<TmmOptions> = {}): Tmm {
  const tmm = new Tmm({ dataSource: db.dataSource, transport, logger: 'silent', migrate: false, ...options });
  tmms.push(tmm);
  return tmm;
}

function row(exchange: string, over: Partial<OutboxMessage> = {}): OutboxMessage {
  const now = Date.now();
  return { id: uuidv7(), topic: 'relay.amqp', exchange, routingKey: 'relay.amqp', payload: '{}', headers: {}, availableAt: now, orderingKey: null, createdAt: now, ...over };
}

/** Commits rows as a backlog nobody holds (or leased to `lease.owner` until `lease.until`), as a crashed producer leaves them. */
async function insertBacklog(tmm: Tmm, rows: OutboxMessage[], lease?: { owner: string; until: number }): Promise<void> {
  await tmm.transactions.run(() => tmm.outbox.append(tmm.transactions.manager, rows, lease));
}

/** How often each ledger entry arrived, keyed by the entryId in the LedgerPosted payload. */
function entryCounts(arrivals: Arrival[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const a of arrivals) {
    const entryId = (JSON.parse(a.body) as { entryId: string }).entryId;
    counts.set(entryId, (counts.get(entryId) ?? 0) + 1);
  }
  return counts;
}

async function outboxCount(db: TestDatabase): Promise<number> {
  const [{ n }] = (await db.dataSource.query('SELECT COUNT(*) AS n FROM tmm_outbox')) as { n: string }[];
  return Number(n);
}

/** The entries whose ledger rows committed: each transaction of crash-producer.ts wrote one ledger row and sent `<id>.a` and `<id>.b`. */
async function committedEntries(db: TestDatabase): Promise<Set<string>> {
  const ledger = (await db.dataSource.query('SELECT id FROM test_ledger')) as { id: string }[];
  return new Set(ledger.flatMap((r) => [`${r.id}.a`, `${r.id}.b`]));
}

interface OutboxRow {
  id: string;
  payload: string;
  status: string;
  attempts: number;
  lease_owner: string | null;
  lease_until: string | null;
}

// ---- 1. crash between commit and publish ----

describe('crash between commit and publish (producer process SIGKILLed, PostgreSQL)', () => {
  /** Starts crash-producer.ts on this test's schema and exchange. */
  function crashProducer(db: { schema: string }, exchange: string, env: Record<string, string>): FixtureProcess {
    return FixtureProcess.spawn('crash-producer.ts', {
      TMM_FIXTURE_SCHEMA: db.schema,
      TMM_FIXTURE_EXCHANGE: exchange,
      TMM_FIXTURE_CONNECTION_NAME: `${prefix}-crash-producer`,
      TMM_FIXTURE_CONCURRENCY: '8',
      TMM_FIXTURE_TRANSACTIONS: '1000000',
      ...env,
    });
  }

  /** A new process's relay takes over the dead producer's rows once their leases expire; resolves when every committed entry arrived. */
  async function restartRelay(db: TestDatabase, tally: QueueTally, committed: Set<string>): Promise<{ deliveredMs: number; leaseWaitMs: number }> {
    const [{ until }] = (await db.dataSource.query('SELECT MAX(lease_until) AS until FROM tmm_outbox')) as { until: string | null }[];
    const started = Date.now();
    const tmm = tmmOn(db, amqp('restarted-relay'), { relay: { pollIntervalMs: 100 } });
    await tmm.start();
    const allArrived = () => {
      const counts = entryCounts(tally.arrivals);
      return [...committed].every((e) => counts.has(e));
    };
    await waitUntil(async () => allArrived() && (await outboxCount(db)) === 0, 'every committed message to be delivered', 30_000);
    const deliveredMs = Date.now() - started;
    await sleep(300); // let any duplicate still on its way arrive
    return { deliveredMs, leaseWaitMs: Math.max(0, Number(until ?? 0) - started) };
  }

  it('publishes every committed message after the producer is killed while none of its publishes could complete', async () => {
    const db = await database();
    const { exchange, tally } = await topology();
    const hole = await BlackHoleBroker.start();
    blackHoles.push(hole);
    const child = crashProducer(db, exchange, { TMM_FIXTURE_MODE: 'publish-hangs', TMM_FIXTURE_AMQP_URL: hole.url });
    const { instanceId } = await child.waitFor((e) => e.event === 'ready', 'ready', 30_000);
    await child.waitFor(() => child.events.filter((e) => e.event === 'committed').length >= 150, '150 committed transactions');
    const exit = await child.kill('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');

    // Everything committed is in the outbox, PENDING, untouched, still leased to the dead process; nothing reached the queue.
    const committed = await committedEntries(db);
    const reported = child.events.filter((e) => e.event === 'committed').flatMap((e) => e.entryIds as string[]);
    expect(reported.length).toBeGreaterThanOrEqual(300);
    expect(reported.filter((e) => !committed.has(e))).toEqual([]);
    const rows = (await db.dataSource.query('SELECT id, payload, status, attempts, lease_owner, lease_until FROM tmm_outbox')) as OutboxRow[];
    expect(new Set(rows.map((r) => (JSON.parse(r.payload) as { entryId: string }).entryId))).toEqual(committed);
    expect(rows.length).toBe(committed.size);
    expect(rows.every((r) => r.status === OutboxStatus.Pending && Number(r.attempts) === 0 && r.lease_owner === instanceId)).toBe(true);
    expect(hole.accepted).toBeGreaterThan(0);
    expect(tally.arrivals).toEqual([]);

    const { deliveredMs, leaseWaitMs } = await restartRelay(db, tally, committed);
    const counts = entryCounts(tally.arrivals);
    const lost = [...committed].filter((e) => !counts.has(e));
    const phantoms = [...counts.keys()].filter((e) => !committed.has(e));
    const duplicated = tally.arrivals.length - counts.size;
    report('postgres: crash, publishes hanging (black-hole broker), parent SIGKILL', {
      committedMessages: committed.size,
      reportedBeforeKill: reported.length,
      pendingAtKill: rows.length,
      inQueueAtKill: 0,
      lost: lost.length,
      duplicated,
      leaseWaitMs,
      restartToDeliveredMs: deliveredMs,
    });
    expect(lost).toEqual([]);
    expect(phantoms).toEqual([]);
    // No publish ever left the dead process, so the new relay is the only publisher: nothing to duplicate.
    expect(duplicated).toBe(0);
  });

  it('publishes every committed message after the producer kills itself right after a COMMIT, while its fast path is mid-stream', async () => {
    const db = await database();
    const { exchange, tally } = await topology();
    const child = crashProducer(db, exchange, { TMM_FIXTURE_MODE: 'die-after-commit', TMM_FIXTURE_AMQP_URL: AMQP_URL, TMM_FIXTURE_DIE_AT: '200' });
    const { instanceId } = await child.waitFor((e) => e.event === 'ready', 'ready', 30_000);
    const dying = await child.waitFor((e) => e.event === 'dying', 'the afterCommit hook that kills the process');
    expect((await child.exited).signal).toBe('SIGKILL');
    await sleep(300); // whatever the dead process got onto the wire arrives now

    const committed = await committedEntries(db);
    const dyingEntries = dying.entryIds as string[];
    expect(dyingEntries.every((e) => committed.has(e))).toBe(true);
    const rows = (await db.dataSource.query('SELECT id, payload, status, attempts, lease_owner, lease_until FROM tmm_outbox')) as OutboxRow[];
    const left = new Map(rows.map((r) => [(JSON.parse(r.payload) as { entryId: string }).entryId, r]));
    expect(rows.every((r) => r.status === OutboxStatus.Pending && r.lease_owner === instanceId)).toBe(true);
    // The transaction that died in its afterCommit hook: committed, PENDING, never published.
    const before = entryCounts(tally.arrivals);
    expect(dyingEntries.every((e) => left.has(e) && !before.has(e))).toBe(true);
    // Rows left = committed minus what the fast path published and marked before the crash.
    expect([...left.keys()].every((e) => committed.has(e))).toBe(true);
    expect([...committed].every((e) => left.has(e) || before.has(e))).toBe(true);
    // Published (in the queue) but not yet marked when the process died: the relay publishes these again.
    const publishedNotMarked = [...left.keys()].filter((e) => before.has(e)).length;
    const arrivalsBefore = tally.arrivals.length;

    const { deliveredMs, leaseWaitMs } = await restartRelay(db, tally, committed);
    const counts = entryCounts(tally.arrivals);
    const lost = [...committed].filter((e) => !counts.has(e));
    const phantoms = [...counts.keys()].filter((e) => !committed.has(e));
    const duplicated = tally.arrivals.length - counts.size;
    report('postgres: crash, SIGKILL from an afterCommit hook (real broker)', {
      committedMessages: committed.size,
      inQueueBeforeCrash: arrivalsBefore,
      pendingAtCrash: rows.length,
      publishedButNotMarked: publishedNotMarked,
      lost: lost.length,
      duplicated,
      leaseWaitMs,
      restartToDeliveredMs: deliveredMs,
    });
    expect(lost).toEqual([]);
    expect(phantoms).toEqual([]);
    // Every duplicate is a row the dead process published but had not marked yet (at-least-once), and only those.
    expect(duplicated).toBe(publishedNotMarked);
  });
});

// ---- 2. broker connection closed mid-stream ----

/**
 * Delegates to a real AmqpTransport and records when each publish starts. While `pauseMs` > 0 each publish
 * waits that long before going out: only there to slow the relay's stream down while `rabbitmqctl` (≈0.5 s
 * to start) gets to close the connection, so the close lands mid-stream whatever the relay's throughput.
 */
class ObservedTransport implements Transport {
  readonly features: Transport['features'];
  /** Epoch ms at which each message's publish calls started. */
  readonly publishedAt = new Map<string, number[]>();
  pauseMs = 0;
  confirmed = 0;
  onConfirmed: (n: number) => void = () => undefined;

  constructor(private readonly inner: AmqpTransport) {
    this.features = inner.features;
  }

  declare(topology: Topology): Promise<void> {
    return this.inner.declare(topology);
  }

  async publish(message: TransportMessage): Promise<void> {
    this.publishedAt.set(message.id, [...(this.publishedAt.get(message.id) ?? []), Date.now()]);
    if (this.pauseMs > 0) await sleep(this.pauseMs);
    await this.inner.publish(message);
    this.onConfirmed(++this.confirmed);
  }

  subscribe(...args: Parameters<Transport['subscribe']>): ReturnType<Transport['subscribe']> {
    return this.inner.subscribe(...args);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

describe.each(dbLanes())('broker closes the relay connection mid-stream ($name)', ({ kind }) => {
  it('delivers a backlog of 5,000 rows with none lost when rabbitmqctl closes the connection during the publish stream', async () => {
    const total = 5_000;
    const db = await database(kind);
    const { exchange, tally } = await topology();
    const amqpLog = new CapturingLogger();
    const relayTransport = amqp('relay', { logger: amqpLog });
    await relayTransport.connect();
    const pid = await connectionPid(relayTransport.connectionName);
    const observed = new ObservedTransport(relayTransport);
    const tmmLog = new CapturingLogger();
    const tmm = tmmOn(db, observed, {
      logger: tmmLog,
      relay: { pollIntervalMs: 50 },
      dispatcher: { deleteDelivered: false, maxAttempts: 20, backoff: { initialDelayMs: 100, maxDelayMs: 1_000, factor: 2, jitter: 0.5 } },
    });
    const rows = Array.from({ length: total }, (_v, i) => row(exchange, { routingKey: `backlog.${i}`, payload: JSON.stringify({ i }) }));
    await insertBacklog(tmm, rows);

    let closing: Promise<void> | undefined;
    let confirmedAtDisconnect: number | undefined;
    amqpLog.onLine = (line) => {
      if (line.message === 'amqp disconnected' && confirmedAtDisconnect === undefined) {
        confirmedAtDisconnect = observed.confirmed;
        observed.pauseMs = 0;
      }
    };
    observed.onConfirmed = (n) => {
      // At full speed, so publishes are awaiting confirms when the close lands; slowed down only if the
      // stream would otherwise end before rabbitmqctl gets there.
      if (n === 200) closing = closeConnection(pid);
      // (The relay's window is 256 publishes: a pause of P ms per publish caps it at 256 000 / P msg/s, so the
      // last 1,500 rows take at least 0.6 + 1 + 4 s once these pauses are on.)
      if (confirmedAtDisconnect !== undefined) return;
      if (n === total - 1_500) observed.pauseMs = 100;
      if (n === total - 1_000) observed.pauseMs = 500;
      if (n === total - 500) observed.pauseMs = 2_000;
    };
    const started = Date.now();
    await tmm.start();
    await waitUntil(async () => (await tmm.outbox.countByStatus()).DELIVERED === total, 'every row to be DELIVERED', 40_000);
    const deliveredMs = Date.now() - started;
    await closing;
    await waitUntil(() => tally.distinct >= total, 'every message to reach the queue');
    await sleep(300);

    const ids = new Set(rows.map((r) => r.id));
    const lost = tally.missing(ids);
    const phantoms = [...tally.counts.keys()].filter((id) => !ids.has(id));
    const failures = tmmLog.lines.filter((l) => l.message.startsWith('publish failed'));
    const codes: Record<string, number> = {};
    for (const f of failures) {
      const code = String(f.fields?.error).split(':')[0];
      codes[code] = (codes[code] ?? 0) + 1;
    }
    report(`${kind}: rabbitmqctl close_connection during a 5,000-row relay stream`, {
      rows: total,
      confirmedAtDisconnect,
      failedPublishes: failures.length,
      failureCodes: codes,
      lost: lost.length,
      duplicated: tally.duplicates,
      deliveredMs,
    });
    // The close landed mid-stream.
    expect(confirmedAtDisconnect).toBeGreaterThan(0);
    expect(confirmedAtDisconnect!).toBeLessThan(total);
    expect(String(amqpLog.lines.find((l) => l.message === 'amqp disconnected')?.fields?.error)).toContain('CONNECTION_FORCED');
    expect(amqpLog.lines.filter((l) => l.message === 'amqp connected').length).toBeGreaterThanOrEqual(2);
    expect(await tmm.outbox.countByStatus()).toEqual({ PENDING: 0, DELIVERED: total, DEAD: 0, EXCEPTION: 0 });
    expect(lost).toEqual([]);
    expect(phantoms).toEqual([]);
    // A duplicate needs a publish that reached the queue but whose confirm was lost: at most the failed ones.
    expect(tally.duplicates).toBeLessThanOrEqual(failures.length);
  });
});

// ---- 3. unroutable ----

describe.each(dbLanes())('unroutable messages ($name)', ({ kind }) => {
  it('retries rows nobody is bound for with backoff, then makes them DEAD with TMM_PUBLISH_UNROUTABLE, while the others get through', async () => {
    const { initialDelayMs, factor, maxAttempts } = { initialDelayMs: 150, factor: 2, maxAttempts: 3 };
    const db = await database(kind);
    const { exchange, tally } = await topology('good.#');
    const missingExchange = `${prefix}.missing`;
    const log = new CapturingLogger();
    const tmm = tmmOn(db, amqp('relay'), {
      logger: log,
      producer: { defaultExchange: exchange },
      relay: { pollIntervalMs: 50 },
      dispatcher: { deleteDelivered: false, maxAttempts, backoff: { initialDelayMs, factor, maxDelayMs: 10_000, jitter: 0 } },
    });
    await tmm.start();

    // Through the fast path (sent in a transaction) and through the relay (a backlog left by a crash).
    const sent = await tmm.transactions.run(async () => ({
      good: await tmm.producer.sendAll(Array.from({ length: 20 }, (_v, i) => LedgerPosted.of(`good-${i}`, i + 1)), { routingKey: 'good.sent' }),
      returned: await tmm.producer.sendAll([LedgerPosted.of('nobody-1', 1), LedgerPosted.of('nobody-2', 2)], { routingKey: 'nobody.listens' }),
      noExchange: await tmm.producer.sendAll([LedgerPosted.of('no-exchange', 1)], { exchange: missingExchange }),
    }));
    const goodRows = Array.from({ length: 20 }, () => row(exchange, { routingKey: 'good.backlog' }));
    const deadRows = [row(exchange, { routingKey: 'nobody.listens' }), row(missingExchange, { routingKey: 'good.backlog' })];
    await insertBacklog(tmm, [...goodRows, ...deadRows]);
    const good = [...sent.good, ...goodRows.map((r) => r.id)];
    const doomed = [...sent.returned, ...sent.noExchange, ...deadRows.map((r) => r.id)];

    const started = Date.now();
    await waitUntil(async () => (await tmm.outbox.countByStatus()).DEAD === doomed.length, 'the unroutable rows to be DEAD');
    const deadAfterMs = Date.now() - started;
    await waitUntil(() => tally.distinct >= good.length, 'the good messages to arrive');

    const gaps: number[] = [];
    for (const id of doomed) {
      const record = await tmm.outbox.get(id);
      expect(record).toMatchObject({ status: 'DEAD', attempts: maxAttempts });
      expect(record!.lastError).toMatch(/^TMM_PUBLISH_UNROUTABLE: /);
      // One failed publish per attempt, each after the previous one's backoff (no hot loop).
      const attempts = log.lines.filter((l) => l.message.startsWith('publish failed') && l.fields?.id === id);
      expect(attempts.map((l) => l.fields?.attempt)).toEqual([1, 2, 3]);
      expect(attempts.at(-1)!.message).toBe('publish failed; message is DEAD');
      for (let a = 1; a < attempts.length; a++) {
        const gap = attempts[a].at - attempts[a - 1].at;
        gaps.push(gap);
        expect(gap).toBeGreaterThanOrEqual(initialDelayMs * factor ** (a - 1));
      }
    }
    const lost = tally.missing(good);
    report(`${kind}: unroutable rows`, {
      dead: doomed.length,
      attemptsEach: maxAttempts,
      retryGapsMs: gaps,
      deadAfterMs,
      goodDelivered: tally.distinct,
      lostGood: lost.length,
      duplicated: tally.duplicates,
    });
    expect(lost).toEqual([]);
    expect(doomed.filter((id) => tally.counts.has(id))).toEqual([]);
    expect((await tmm.outbox.countByStatus()).DELIVERED).toBe(good.length);
  });
});

// ---- 4. two relay processes ----

describe('two relay processes on one PostgreSQL outbox', () => {
  it('deliver 10,000 messages between them, none lost', async () => {
    const total = 10_000;
    const db = await database();
    const { exchange, tally } = await topology();
    const spawnWorker = (n: number) =>
      FixtureProcess.spawn('relay-worker.ts', { TMM_FIXTURE_SCHEMA: db.schema, TMM_FIXTURE_AMQP_URL: AMQP_URL, TMM_FIXTURE_CONNECTION_NAME: `${prefix}-relay-${n}` });
    const workers = [spawnWorker(1), spawnWorker(2)];
    // This process only writes rows (as a producer whose fast path is elsewhere would leave them).
    const writer = tmmOn(db, 'memory', { relay: { enabled: false } });
    const rows = Array.from({ length: total }, (_v, i) => row(exchange, { routingKey: `multi.${i % 7}` }));
    // Half is a backlog before the relays start, half is committed while they run.
    for (let i = 0; i < total / 2; i += 1_000) await insertBacklog(writer, rows.slice(i, i + 1_000));
    await Promise.all(workers.map((w) => w.waitFor((e) => e.event === 'ready', 'ready', 30_000)));
    const started = Date.now();
    for (let i = total / 2; i < total; i += 250) {
      await insertBacklog(writer, rows.slice(i, i + 250));
      await sleep(20);
    }
    await waitUntil(async () => tally.distinct >= total && (await outboxCount(db)) === 0, 'all 10,000 messages to arrive', 50_000);
    const deliveredMs = Date.now() - started;
    const stats = await Promise.all(
      workers.map(async (w) => {
        w.child.kill('SIGTERM');
        const stopped = await w.waitFor((e) => e.event === 'stopped', 'a graceful stop');
        expect((await w.exited).code).toBe(0);
        return stopped;
      }),
    );
    await sleep(200);

    const ids = new Set(rows.map((r) => r.id));
    const lost = tally.missing(ids);
    report('postgres: two relay processes, 10,000 rows', {
      lost: lost.length,
      duplicated: tally.duplicates,
      claimedPerRelay: stats.map((s) => s.claimed),
      publishedPerRelay: stats.map((s) => s.published),
      failedPerRelay: stats.map((s) => s.failed),
      deliveredMs,
    });
    expect(lost).toEqual([]);
    expect([...tally.counts.keys()].filter((id) => !ids.has(id))).toEqual([]);
    // SKIP LOCKED claims: the relays split the work and never claim the same row (no lease expired here).
    expect(stats.every((s) => (s.claimed as number) > 0)).toBe(true);
    expect(stats.reduce((n, s) => n + (s.claimed as number), 0)).toBe(total);
    expect(tally.duplicates).toBe(0);
  });
});

// ---- 5. delayed ----

describe.each(dbLanes())('delayed messages through RabbitMQ ($name)', ({ kind }) => {
  it('never arrive before they are due, on the in-process timer, through the sweeper, or left by a crash', async () => {
    const db = await database(kind);
    const { exchange, tally } = await topology();
    const delayHorizonMs = 500;
    const observed = new ObservedTransport(amqp('relay'));
    const tmm = tmmOn(db, observed, {
      producer: { defaultExchange: exchange },
      relay: { pollIntervalMs: 50 },
      dispatcher: { deleteDelivered: false, delayHorizonMs },
    });
    await tmm.start();

    const delays = [0, 40, 120, 250, 400, 480, 650, 900, 1_200];
    const sends = delays.flatMap((delay) =>
      Array.from({ length: 8 }, (_v, i) => tmm.transactions.run(() => tmm.producer.send(LedgerPosted.of(`d${delay}-${i}`, 1), { delay }))),
    );
    sends.push(tmm.producer.send(LedgerPosted.of('at-1', 1), { deliverAt: new Date(Date.now() + 700) }));
    sends.push(tmm.producer.send(LedgerPosted.of('at-2', 1), { deliverAt: new Date(Date.now() + 300) }));
    const sentIds = await Promise.all(sends);
    const crashLeft = [150, 350, 800, 1_100].map((d) => row(exchange, { availableAt: Date.now() + d }));
    await insertBacklog(tmm, crashLeft, { owner: 'crashed-process', until: Date.now() - 1 });
    const ids = [...sentIds, ...crashLeft.map((r) => r.id)];

    // Regression: rows beyond the horizon used to stay leased to their writer until due + producer.leaseMs (30 s late).
    await waitUntil(() => tally.distinct >= ids.length, 'every delayed message to arrive', 10_000);
    await tmm.dispatcher.flush();
    const { early, late } = await lateness(db, tally, [observed]);
    report(`${kind}: delayed messages`, {
      messages: ids.length,
      early: early.length,
      minLatenessMs: Math.min(...late),
      maxLatenessMs: Math.max(...late),
      lost: tally.missing(ids).length,
      duplicated: tally.duplicates,
    });
    expect(tally.missing(ids)).toEqual([]);
    expect(early).toEqual([]);
    // Due times spread over 1.2 s: the sweeper (50 ms polls) and the timers deliver close to them. The bound guards
    // against the regression above (a lease held to due + leaseMs: 30 s late) and a wait for the next horizon, not
    // a latency: a loaded 2-core CI machine was seen 1.16 s late (timing is for benchmarks; bench:e2e measures it).
    expect(Math.max(...late)).toBeLessThan(5_000);
  });

  it('are published on time by another instance when the one that sent them stops before they are due', async () => {
    const db = await database(kind);
    const { exchange, tally } = await topology();
    const firstTransport = new ObservedTransport(amqp('first'));
    const first = tmmOn(db, firstTransport, { producer: { defaultExchange: exchange }, relay: { pollIntervalMs: 50 }, dispatcher: { deleteDelivered: false } });
    await first.start();
    const ids = await Promise.all([300, 500, 700, 900].flatMap((delay) => [0, 1].map((i) => first.producer.send(LedgerPosted.of(`d${delay}-${i}`, 1), { delay }))));
    // A graceful shutdown (a deploy) drops the in-process timers of rows that are not due yet.
    await first.stop();
    expect(tally.arrivals).toEqual([]);
    const secondTransport = new ObservedTransport(amqp('second'));
    const second = tmmOn(db, secondTransport, { relay: { pollIntervalMs: 50 }, dispatcher: { deleteDelivered: false } });
    await second.start();

    // Regression: the stopped instance kept its lease on them until due + producer.leaseMs (30 s late).
    await waitUntil(() => tally.distinct >= ids.length, 'every delayed message to arrive', 10_000);
    const { early, late } = await lateness(db, tally, [firstTransport, secondTransport]);
    report(`${kind}: delayed messages, sender stopped before they were due`, {
      messages: ids.length,
      early: early.length,
      minLatenessMs: Math.min(...late),
      maxLatenessMs: Math.max(...late),
      duplicated: tally.duplicates,
    });
    expect(tally.missing(ids)).toEqual([]);
    expect(early).toEqual([]);
    expect(Math.max(...late)).toBeLessThan(5_000); // against the 30 s regression, not a latency (see above)
  });
});

/** Arrival minus due time per message, and the messages published or received before they were due. */
async function lateness(db: TestDatabase, tally: QueueTally, transports: ObservedTransport[]): Promise<{ early: string[]; late: number[] }> {
  const rows = (await db.dataSource.query('SELECT id, available_at FROM tmm_outbox')) as { id: string; available_at: string }[];
  const due = new Map(rows.map((r) => [r.id, Number(r.available_at)]));
  const early: string[] = [];
  const late: number[] = [];
  for (const a of tally.arrivals) {
    const dueAt = due.get(a.id)!;
    if (a.at < dueAt) early.push(`${a.id} arrived ${dueAt - a.at} ms early`);
    late.push(a.at - dueAt);
  }
  for (const t of transports) {
    for (const [id, times] of t.publishedAt) if (times[0] < due.get(id)!) early.push(`${id} published ${due.get(id)! - times[0]} ms early`);
  }
  return { early, late };
}

// ---- 6. ordered ----

class OrderedService {
  constructor(private readonly tmm: Tmm) {}

  /** Sends `count` messages for `key` numbered from `first`, in one transaction, with an unordered one beside them. */
  @TransactionalMessage()
  async post(key: string, first: number, count: number): Promise<void> {
    for (let n = first; n < first + count; n++) await this.tmm.producer.send(LedgerPosted.of(`${key}:${n}`, n + 1), { orderingKey: key, routingKey: `ordered.${key}` });
    await this.tmm.producer.send(LedgerPosted.of(`noise:${key}:${first}`, 1), { routingKey: 'noise' });
  }
}

describe.each(dbLanes())('ordered messages through RabbitMQ ($name)', ({ kind }) => {
  it('arrive in send order per key while many transactions send concurrently, over the fast path and the relay', async () => {
    const keys = Array.from({ length: 12 }, (_v, k) => `key${k}`);
    // Half the keys start with older rows left by a crash, which must all arrive before anything sent below.
    const backlogKeys = keys.slice(0, 6);
    const backlogPerKey = 10;
    const transactionsPerKey = 20;
    const db = await database(kind);
    const { exchange, tally } = await topology();
    const tmm = tmmOn(db, amqp('relay'), { producer: { defaultExchange: exchange }, relay: { pollIntervalMs: 50 } });
    const backlog = backlogKeys.flatMap((key) =>
      Array.from({ length: backlogPerKey }, (_v, n) => row(exchange, { orderingKey: key, routingKey: `ordered.${key}`, payload: JSON.stringify({ entryId: `${key}:${n}` }) })),
    );
    await insertBacklog(tmm, backlog, { owner: 'crashed-process', until: Date.now() - 1 });
    await tmm.start();

    // The send order of a key: its transactions one after the other, each sending 1 to 3 messages. All keys
    // at once, so a transaction of every key is open at any time.
    const service = new OrderedService(tmm);
    const nextSeq = new Map(keys.map((k) => [k, backlogKeys.includes(k) ? backlogPerKey : 0]));
    const started = Date.now();
    await Promise.all(
      keys.map(async (key) => {
        for (let t = 0; t < transactionsPerKey; t++) {
          const first = nextSeq.get(key)!;
          const count = 1 + (t % 3);
          nextSeq.set(key, first + count);
          await service.post(key, first, count);
          await sleep(t % 4);
        }
      }),
    );
    const expectedPerKey = new Map(keys.map((k) => [k, nextSeq.get(k)!]));
    const totalOrdered = [...expectedPerKey.values()].reduce((a, b) => a + b, 0);
    const totalNoise = keys.length * transactionsPerKey;
    const orderedArrivals = () => tally.arrivals.filter((a) => !(JSON.parse(a.body) as { entryId: string }).entryId.startsWith('noise:'));
    await waitUntil(() => tally.distinct >= totalOrdered + totalNoise, 'every message to arrive', 30_000);
    const deliveredMs = Date.now() - started;
    await sleep(200);

    const seen = new Map<string, number[]>(keys.map((k) => [k, []]));
    const firstSeen = new Set<string>();
    for (const a of orderedArrivals()) {
      if (firstSeen.has(a.id)) continue; // a duplicate: counted below, not an ordering violation of the first arrivals
      firstSeen.add(a.id);
      const [key, n] = (JSON.parse(a.body) as { entryId: string }).entryId.split(':');
      seen.get(key)!.push(Number(n));
    }
    const outOfOrder = keys.filter((k) => seen.get(k)!.some((n, i) => n !== i));
    // The relay claims the backlog and what the fast path handed back; every other ordered row went out on the fast path.
    const orderedByFastPath = totalOrdered - tmm.relay.stats.claimed;
    report(`${kind}: ordered messages`, {
      keys: keys.length,
      orderedMessages: totalOrdered,
      outOfOrderKeys: outOfOrder.length,
      orderedByFastPath,
      deferredByFastPath: tmm.dispatcher.stats.deferred,
      claimedByRelay: tmm.relay.stats.claimed,
      lost: totalOrdered + totalNoise - tally.distinct,
      duplicated: tally.duplicates,
      deliveredMs,
    });
    expect(tally.distinct).toBe(totalOrdered + totalNoise);
    for (const key of keys) expect(seen.get(key)).toEqual(Array.from({ length: expectedPerKey.get(key)! }, (_v, i) => i));
    // Both paths carried ordered rows: the relay the backlog and what the fast path deferred.
    expect(tmm.relay.stats.claimed).toBeGreaterThan(backlog.length);
    expect(tmm.dispatcher.stats.deferred).toBeGreaterThan(0);
    expect(orderedByFastPath).toBeGreaterThan(0);
  });
});
