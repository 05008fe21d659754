/**
 * A SET whose broker is down, through the whole path: producer → outbox (PostgreSQL) → relay →
 * SetRoutingTransport → two brokers: the shared RabbitMQ as set A and a PRIVATE RabbitMQ node
 * (test/support/privateRabbit.ts) as set B, which the test kills and starts again. Ground truth is read
 * outside tmm: the outbox with SQL, each set's queue with a raw amqplib client.
 */
import { randomBytes } from 'node:crypto';
import * as amqplib from 'amqplib';
import { AmqpTransport, SetHeaders, SetRoutingTransport, Tmm, silentLogger, type Topology } from '../../src/internal';
import { AMQP_URL, waitUntil } from '../support/consumers';
import { LedgerPosted } from '../support/contracts';
import { type TestDatabase, createTestDatabase } from '../support/databases';
import { PrivateRabbit } from '../support/privateRabbit';

jest.setTimeout(240_000);

/** Reads every message of a queue with a raw client, recording when each id arrived. */
class RawQueueReader {
  readonly arrivals = new Map<string, number[]>();
  private constructor(private readonly conn: amqplib.ChannelModel) {}

  static async open(url: string, queue: string): Promise<RawQueueReader> {
    const conn = await amqplib.connect(url);
    const reader = new RawQueueReader(conn);
    const ch = await conn.createChannel();
    await ch.consume(queue, (m) => {
      if (!m) return;
      const id = String(m.properties.messageId);
      reader.arrivals.set(id, [...(reader.arrivals.get(id) ?? []), Date.now()]);
      ch.ack(m);
    });
    return reader;
  }

  get deliveries(): number {
    let n = 0;
    for (const a of this.arrivals.values()) n += a.length;
    return n;
  }

  async close(): Promise<void> {
    await this.conn.close().catch(() => undefined);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('a SET whose broker is down (full path: producer, outbox, relay, two RabbitMQ brokers)', () => {
  let rabbitB: PrivateRabbit;
  let db: TestDatabase;
  beforeAll(async () => {
    rabbitB = await PrivateRabbit.create();
    db = await createTestDatabase('postgres');
  });
  afterAll(async () => {
    await db?.dispose();
    await rabbitB?.dispose();
  });

  it('keeps set A flowing without added delay, holds set B PENDING (retried, never DEAD), and delivers B after it returns: none lost, none in the wrong set', async () => {
    const tag = randomBytes(4).toString('hex');
    const exchange = `tmm-set-outage-${tag}`;
    const queue = `tmm-set-outage-${tag}`;
    const topology: Topology = { exchanges: [{ name: exchange }], queues: [{ name: queue, bindings: [{ exchange, routingKey: '#' }] }] };
    // Generous broker timeouts on B: if A's messages waited behind B's, they would be late by seconds.
    const routing = new SetRoutingTransport({
      sets: {
        A: new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: `set-outage-a-${tag}` }),
        B: new AmqpTransport({ url: rabbitB.url, logger: silentLogger, connectionName: `set-outage-b-${tag}`, reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 } }),
      },
      // amount < 1000 → A (the center), 1000 ≤ amount < 2000 → B.
      rules: { key: { field: 'amount' }, center: 'A', ranges: [{ from: 1000, to: 2000, set: 'B' }] },
    });
    await routing.declare(topology);
    const tmm = new Tmm(
      // A small publish window: B's rows must not fill it while B is down (they would for B's 10 s timeouts).
      { dataSource: db.dataSource, logger: 'silent', relay: { pollIntervalMs: 50 }, dispatcher: { concurrency: 8, backoff: { initialDelayMs: 200, maxDelayMs: 2_000 } } },
      { transport: routing },
    );
    await tmm.start();
    const readerA = await RawQueueReader.open(AMQP_URL, queue);
    const expected: Record<'A' | 'B', string[]> = { A: [], B: [] };
    const committedAt = new Map<string, number>();
    let seq = 0;
    const send = async (set: 'A' | 'B') => {
      const amount = (set === 'A' ? 1 : 1000) + (seq++ % 999);
      const id = await tmm.transactions.run(() => tmm.producer.send(LedgerPosted.of(`e-${seq}`, amount), { exchange }));
      committedAt.set(id, Date.now());
      expect(routing.setOf({ id, exchange, routingKey: '', body: Buffer.from(JSON.stringify({ amount })), headers: {}, contentType: 'application/json', timestamp: 0 })).toBe(set);
      expected[set].push(id);
      return id;
    };
    const latencies = (ids: string[]) => ids.map((id) => readerA.arrivals.get(id)![0] - committedAt.get(id)!);
    const bRows = async () =>
      (await db.dataSource.query(`SELECT status, attempts, available_at, last_error FROM tmm_outbox WHERE headers LIKE $1`, [`%"${SetHeaders.set}":"B"%`])) as {
        status: string;
        attempts: number;
        available_at: string;
        last_error: string | null;
      }[];
    let readerB: RawQueueReader | undefined;
    try {
      // 1. Both sets up: the baseline latency of A's messages, one sent every 50 ms, B's in between.
      const baselineA: string[] = [];
      for (let i = 0; i < 20; i++) {
        baselineA.push(await send('A'));
        await send('B');
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitUntil(() => baselineA.every((id) => readerA.arrivals.has(id)), 'the baseline A messages to arrive', 30_000);
      await waitUntil(async () => (await bRows()).length === 0, 'the baseline B messages to be published', 30_000);

      // 2. B's broker dies. A keeps flowing; B's rows stay in the outbox.
      await rabbitB.stop();
      const outageA: string[] = [];
      const outageB: string[] = [];
      for (let i = 0; i < 20; i++) {
        outageA.push(await send('A'));
        outageB.push(await send('B'));
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitUntil(() => outageA.every((id) => readerA.arrivals.has(id)), 'set A messages to arrive while set B is down', 30_000);
      const base = latencies(baselineA);
      const during = latencies(outageA);
      // No added delay beyond noise: B's connect and confirm timeouts are 10 s; waiting behind them would show.
      expect(median(during)).toBeLessThan(median(base) + 500);
      expect(Math.max(...during)).toBeLessThan(5_000);

      // B's rows: PENDING, retried with backoff (rescheduled, failures recorded, no attempt spent), never DEAD.
      // A keeps sending (and confirming) meanwhile: B's outage backs off all the same — its own, not reset by A's
      // confirms (backoff 200 ms → 2 s: a few reschedules per row in these 5 s; reset by every A confirm it
      // would stay at ~200 ms, one every poll).
      const watchUntil = Date.now() + 5_000;
      let firstAvailable: number | undefined;
      let lastAvailable = 0;
      const scheduled = new Map<string, Set<number>>();
      const duringWatchA: string[] = [];
      while (Date.now() < watchUntil) {
        duringWatchA.push(await send('A'));
        const rows = (await db.dataSource.query(`SELECT id, status, available_at FROM tmm_outbox WHERE headers LIKE $1`, [`%"${SetHeaders.set}":"B"%`])) as { id: string; status: string; available_at: string }[];
        expect(rows).toHaveLength(outageB.length);
        expect(rows.filter((r) => r.status !== 'PENDING')).toEqual([]);
        for (const r of rows) (scheduled.get(r.id) ?? scheduled.set(r.id, new Set()).get(r.id)!).add(Number(r.available_at));
        const latest = Math.max(...rows.map((r) => Number(r.available_at)));
        firstAvailable ??= latest;
        lastAvailable = latest;
        await new Promise((r) => setTimeout(r, 100));
      }
      await waitUntil(() => duringWatchA.every((id) => readerA.arrivals.has(id)), 'the A messages sent while watching B', 30_000);
      const reschedules = [...scheduled.values()].map((times) => times.size - 1);
      process.stdout.write(`[sets-outage] B rows rescheduled per row in 5 s while A confirmed: median ${median(reschedules)}, max ${Math.max(...reschedules)}\n`);
      // Jittered (×0.5–1) delays of up to 2 s: 3–6 per row; reset by A's confirms it was 27.
      expect(median(reschedules)).toBeLessThanOrEqual(10);
      const rows = await bRows();
      expect(rows.every((r) => r.status === 'PENDING' && Number(r.attempts) === 0)).toBe(true);
      expect(rows.filter((r) => r.last_error !== null).length).toBeGreaterThan(0);
      expect(lastAvailable).toBeGreaterThan(firstAvailable!); // rescheduled again and again, not given up on
      expect(routing.stats.get('B')!.failed).toBeGreaterThan(0);
      const [{ n: deadOrStuck }] = await db.dataSource.query(`SELECT COUNT(*)::int AS n FROM tmm_outbox WHERE status <> 'PENDING'`);
      expect(deadOrStuck).toBe(0);

      // 3. B returns: everything of B is delivered, to B only.
      await rabbitB.start();
      readerB = await RawQueueReader.open(rabbitB.url, queue);
      await waitUntil(() => expected.B.every((id) => readerB!.arrivals.has(id)), 'every set B message to arrive after B returned', 90_000);
      await waitUntil(async () => (await bRows()).length === 0, 'the outbox to be empty', 30_000);
      await new Promise((r) => setTimeout(r, 500)); // anything else would arrive now
      const lost = [...expected.A.filter((id) => !readerA.arrivals.has(id)), ...expected.B.filter((id) => !readerB!.arrivals.has(id))];
      expect(lost).toEqual([]);
      expect([...readerA.arrivals.keys()].filter((id) => !expected.A.includes(id))).toEqual([]);
      expect([...readerB.arrivals.keys()].filter((id) => !expected.B.includes(id))).toEqual([]);
      expect(readerA.deliveries).toBe(expected.A.length);
      expect(readerB.deliveries).toBe(expected.B.length);
      const [{ n: left }] = await db.dataSource.query(`SELECT COUNT(*)::int AS n FROM tmm_outbox`);
      expect(left).toBe(0);
    } finally {
      await readerA.close();
      await readerB?.close();
      await tmm.stop();
      const cleanup = new AmqpTransport({ url: AMQP_URL, logger: silentLogger });
      await cleanup.remove(topology).catch(() => undefined);
      await cleanup.close();
    }
  });
});
