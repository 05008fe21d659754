/**
 * The relay benchmark, whatever the broker: same run, alternating rounds, medians.
 *  - the relay (sweeper + Dispatcher + the broker's transport, default options) draining a backlog of ROWS
 *    unleased PostgreSQL outbox rows, rows marked (deleted) after their confirm; timed from relay start until
 *    every row is marked; against
 *  - the broker's raw client publishing the same messages with the same in-flight window, timed until every
 *    confirm is in.
 * Each round checks that the queue holds exactly ROWS messages per side and that no outbox row is left.
 * bench/relay (RabbitMQ) and bench/relay-nats (JetStream) give the broker; the last line is one JSON object.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { uuidv7 } from 'uuidv7';
import { OutboxMessage, Tmm, Transport, TransportMessage, toTransportMessage } from '../../src/internal';
import { createBenchSchema } from './postgres';
import { CpuGroups, cpuDelta, cpuSnapshot } from './procCpu';
import { SectionProfiler } from './profile';
import { median, round } from './stats';

export const ROWS = Number(process.env.BENCH_RELAY_ROWS ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** Rounds after the third start only if they fit in this many seconds (a loaded machine drains slowly). */
const BUDGET_SECONDS = Number(process.env.BENCH_BUDGET_SECONDS ?? 140);
const MIN_ROUNDS = Math.min(3, ROUNDS);
/** Rows per INSERT transaction while building the backlog (not timed). */
const INSERT_TX_ROWS = 5000;
/** BENCH_PROFILE=<file prefix>: one extra, untimed round per side with V8's sampling profiler on (bench/support/profile.ts). */
const profiler = new SectionProfiler(process.env.BENCH_PROFILE);

/** One broker's side of the benchmark. `R` is what its raw client publishes (prepared before the timer). */
export interface RelayBenchBroker<R> {
  /** The raw client's name, for the summary line. */
  rawName: string;
  /** The transport the relay publishes through (connected once before the rounds). */
  transport: Transport & { connect(): Promise<void> };
  /** Turns the wire messages into what the raw client publishes (not timed). */
  prepareRaw(messages: TransportMessage[]): R[];
  /** Publishes them with the raw client, `window` in flight, resolving when every confirm is in (timed). */
  publishRaw(messages: R[]): Promise<void>;
  /** How many messages the queue holds now (waiting a little for `expected`). */
  depth(expected: number): Promise<number>;
  purge(): Promise<void>;
  /** Deletes the queue and exchange and closes the raw client. */
  cleanup(): Promise<void>;
}

/**
 * `n` rows as an outage leaves them: written over the last `n` ms (one per ms), all due. (Rows that share
 * one available_at make PostgreSQL sort the whole backlog for every claim; see bench/README.md.)
 */
function backlog(exchange: string, n: number): OutboxMessage[] {
  const start = Date.now() - n;
  return Array.from({ length: n }, (_v, i) => ({
    id: uuidv7(),
    topic: 'bench.order-placed',
    exchange,
    routingKey: 'bench.order-placed',
    payload: JSON.stringify({ orderId: `o-${i}-${randomBytes(4).toString('hex')}`, amount: 1000 + (i % 997), currency: 'EUR', customer: `c-${i % 5000}` }),
    headers: { 'x-tenant': 'bench' },
    availableAt: start + i,
    orderingKey: null,
    createdAt: start + i,
  }));
}

/** A fresh exchange/queue name for one run. */
export function benchNames(): { exchange: string; queue: string } {
  const suffix = randomBytes(4).toString('hex');
  return { exchange: `tmm-bench-relay-${suffix}`, queue: `tmm-bench-relay-${suffix}` };
}

export async function runRelayBench<R>(options: {
  bench: string;
  schemaName: string;
  exchange: string;
  window: number;
  broker: () => Promise<RelayBenchBroker<R>>;
}): Promise<void> {
  const { exchange, window: WINDOW } = options;
  const load = [loadavg()[0]];
  const schema = await createBenchSchema(options.schemaName);
  const broker = await options.broker();
  const tmm = new Tmm({
    dataSource: schema.dataSource,
    name: 'bench-relay',
    transport: broker.transport,
    logger: 'warn',
    // The relay is started per round, once the backlog is in place.
    relay: { enabled: false },
    dispatcher: { concurrency: WINDOW },
  });
  const relayRates: number[] = [];
  const rawRates: number[] = [];
  const insertRates: number[] = [];
  /** This process's CPU time per message (µs), user + system, per side. */
  const relayCpu: number[] = [];
  const rawCpu: number[] = [];
  /** CPU per message (µs) of this process, PostgreSQL, RabbitMQ and the rest of the machine, per side and round. */
  const machineCpu: Record<'relay' | 'raw', CpuGroups[]> = { relay: [], raw: [] };
  const recordMachine = (side: 'relay' | 'raw', before: CpuGroups | undefined) => {
    const d = cpuDelta(before, cpuSnapshot());
    if (d) machineCpu[side].push({ self: (d.self * 1000) / ROWS, postgres: (d.postgres * 1000) / ROWS, rabbitmq: (d.rabbitmq * 1000) / ROWS, other: (d.other * 1000) / ROWS });
  };
  const cpuSince = (start: NodeJS.CpuUsage) => {
    const d = process.cpuUsage(start);
    return (d.user + d.system) / ROWS;
  };
  try {
    await tmm.start();
    await broker.transport.connect();

    const fill = async (rows: OutboxMessage[]) => {
      const start = process.hrtime.bigint();
      for (let i = 0; i < rows.length; i += INSERT_TX_ROWS) {
        const chunk = rows.slice(i, i + INSERT_TX_ROWS);
        await tmm.transactions.run(() => tmm.outbox.append(tmm.transactions.manager, chunk)); // no lease: the sweeper's to take
      }
      insertRates.push(rows.length / (Number(process.hrtime.bigint() - start) / 1e9));
      await schema.dataSource.query('ANALYZE tmm_outbox');
    };

    const checkDelivered = async (side: string) => {
      const depth = await broker.depth(ROWS);
      if (depth !== ROWS) throw new Error(`${side}: expected ${ROWS} messages in the queue, found ${depth}`);
      await broker.purge();
    };

    const relaySide = async (profile = false): Promise<number> => {
      await fill(backlog(exchange, ROWS));
      const before = { ...tmm.dispatcher.stats };
      if (profile) await profiler.start();
      const machine = cpuSnapshot();
      const cpu = process.cpuUsage();
      const start = process.hrtime.bigint();
      await tmm.relay.start();
      while (tmm.dispatcher.stats.marked - before.marked < ROWS) {
        if (tmm.dispatcher.stats.failed > before.failed) throw new Error(`relay: ${tmm.dispatcher.stats.failed - before.failed} publishes failed`);
        await new Promise((r) => setTimeout(r, 2));
      }
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (profile) await profiler.stop('relay', ROWS);
      else {
        relayCpu.push(cpuSince(cpu));
        recordMachine('relay', machine);
      }
      await tmm.relay.stop();
      const [{ n }] = (await schema.dataSource.query('SELECT COUNT(*)::int AS n FROM tmm_outbox')) as { n: number }[];
      const published = tmm.dispatcher.stats.published - before.published;
      if (n !== 0 || published !== ROWS) throw new Error(`relay: ${n} rows left in tmm_outbox, ${published} published (expected 0 and ${ROWS})`);
      await checkDelivered('relay');
      return ROWS / seconds;
    };

    const rawSide = async (profile = false): Promise<number> => {
      const messages = broker.prepareRaw(backlog(exchange, ROWS).map((m) => toTransportMessage(m)));
      if (profile) await profiler.start();
      const machine = cpuSnapshot();
      const cpu = process.cpuUsage();
      const start = process.hrtime.bigint();
      await broker.publishRaw(messages);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (profile) await profiler.stop('raw', ROWS);
      else {
        rawCpu.push(cpuSince(cpu));
        recordMachine('raw', machine);
      }
      await checkDelivered('raw');
      return ROWS / seconds;
    };

    // Warm-up of both paths (JIT, connections, the exchange check, statement plans) on a small backlog.
    {
      const warm = backlog(exchange, 2000);
      await tmm.transactions.run(() => tmm.outbox.append(tmm.transactions.manager, warm));
      const marked = tmm.dispatcher.stats.marked;
      await tmm.relay.start();
      while (tmm.dispatcher.stats.marked - marked < warm.length) await new Promise((r) => setTimeout(r, 5));
      await tmm.relay.stop();
      await broker.publishRaw(broker.prepareRaw(warm.map((m) => toTransportMessage(m))));
      await broker.purge();
    }

    const began = Date.now();
    for (let r = 0; r < ROUNDS; r++) {
      const elapsed = (Date.now() - began) / 1000;
      if (r >= MIN_ROUNDS && elapsed + elapsed / r > BUDGET_SECONDS) break;
      // Alternate which side goes first so drift (table bloat, broker state) does not favour one.
      const order = r % 2 === 0 ? (['relay', 'raw'] as const) : (['raw', 'relay'] as const);
      for (const side of order) {
        if (side === 'relay') relayRates.push(await relaySide());
        else rawRates.push(await rawSide());
      }
      console.log(`round ${r + 1}: relay ${relayRates.at(-1)!.toFixed(0)} msg/s, raw ${rawRates.at(-1)!.toFixed(0)} msg/s, ratio ${(relayRates.at(-1)! / rawRates.at(-1)!).toFixed(3)}`);
    }
    if (profiler.enabled) {
      await relaySide(true);
      await rawSide(true);
    }
  } finally {
    await tmm.stop();
    await broker.cleanup();
    await schema.dispose();
  }
  load.push(loadavg()[0]);
  const relay = median(relayRates);
  const raw = median(rawRates);
  // Each round's two sides ran back to back: their ratio cancels the load other processes put on the
  // machine at the time, so the median of the round ratios is the headline; the ratio of medians is kept too.
  const ratios = relayRates.map((x, i) => x / rawRates[i]);
  const ratio = median(ratios);
  console.log(
    `relay ${relay.toFixed(0)} msg/s vs raw ${broker.rawName} ${raw.toFixed(0)} msg/s (window ${WINDOW}, ${ROWS} rows, medians of ${ratios.length} rounds): ratio ${ratio.toFixed(3)}`,
  );
  console.log(
    JSON.stringify({
      bench: options.bench,
      ratio: round(ratio),
      msgs_per_s: Math.round(relay),
      raw_msgs_per_s: Math.round(raw),
      target: 0.8,
      ratio_of_medians: round(relay / raw),
      round_ratios: ratios.map((x) => round(x)),
      rows: ROWS,
      rounds: ratios.length,
      window: WINDOW,
      cpu_us_per_msg: round(median(relayCpu), 1),
      raw_cpu_us_per_msg: round(median(rawCpu), 1),
      machine_cpu_us_per_msg: Object.fromEntries(
        (['relay', 'raw'] as const).map((side) => [
          side,
          Object.fromEntries((['self', 'postgres', 'rabbitmq', 'other'] as const).map((g) => [g, round(median(machineCpu[side].map((c) => c[g])), 1)])),
        ]),
      ),
      insert_rows_per_s: Math.round(median(insertRates)),
      loadavg_1m: load.map((x) => round(x, 2)),
    }),
  );
}
