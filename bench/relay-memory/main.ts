/**
 * Relay memory benchmark: the resident set size of a relay process (bench/relay-memory/relay.ts, a Tmm
 * with only its relay running) while it drains a backlog of ROWS PostgreSQL outbox rows to RabbitMQ with
 * confirms. The relay claims in batches and holds a bounded number of rows, so its RSS should stay flat
 * however large the backlog. Baseline, same process: its RSS when started and connected but idle.
 * RSS is sampled from /proc every 100 ms; the kernel's own peak (getrusage maxrss) is reported as well.
 * The drain stops after DRAIN_SECONDS if it has not finished: `rows` in the JSON is what was drained.
 * A consumer in this (parent) process takes the messages off the queue as they arrive, as a live system's
 * consumers would (a queue of a million persistent messages would make the broker, not the relay, the
 * subject). Verified: every marked row arrived exactly once (by the row number in its payload), the
 * outbox holds exactly the rest, nothing failed.
 * Last line: one JSON object.
 */
import 'reflect-metadata';
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import * as amqp from 'amqplib';
import { migrate } from '../../src/internal';
import { AMQP_URL } from '../support/amqp';
import { createBenchSchema } from '../support/postgres';
import { round } from '../support/stats';

const ROWS = Number(process.env.BENCH_RELAY_MEMORY_ROWS ?? 1_000_000);
const DRAIN_SECONDS = Number(process.env.BENCH_DRAIN_SECONDS ?? 150);
/** In-flight window of the relay: the transport's default maxInFlight, used by the Dispatcher too. */
const WINDOW = Number(process.env.BENCH_WINDOW ?? 256);
const INSERT_CHUNK = 100_000;
const MB = 1024 * 1024;

/** Resident set size of `pid` in bytes, from /proc (Linux). */
function rssOf(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

type Progress = { type: 'progress'; marked: number; published: number; failed: number; rss: number };
type Stopped = { type: 'stopped'; marked: number; published: number; failed: number; claimed: number; maxRssKb: number };
type ChildMessage = { type: 'ready'; rss: number } | Progress | Stopped;

function nextMessage<T extends ChildMessage['type']>(child: ChildProcess, type: T): Promise<Extract<ChildMessage, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: ChildMessage) => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m as Extract<ChildMessage, { type: T }>);
    };
    const onExit = (code: number | null) => reject(new Error(`relay process exited (${code}) before '${type}'`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

async function main(): Promise<void> {
  const load = [loadavg()[0]];
  const schema = await createBenchSchema('tmm_bench_relay_memory');
  const suffix = randomBytes(4).toString('hex');
  const exchange = `tmm-bench-relay-memory-${suffix}`;
  const queue = exchange;
  const conn = await amqp.connect(AMQP_URL);
  const admin = await conn.createChannel();
  const consumerConn = await amqp.connect(AMQP_URL);
  let child: ChildProcess | undefined;
  try {
    await admin.assertExchange(exchange, 'topic', { durable: true });
    await admin.assertQueue(queue, { durable: true });
    await admin.bindQueue(queue, exchange, '#');
    // Row g's payload names order `o-g`: one flag per row shows what arrived and what arrived twice.
    const seen = new Uint8Array(ROWS + 1);
    let received = 0;
    let duplicates = 0;
    const consumer = await consumerConn.createChannel();
    await consumer.consume(
      queue,
      (msg) => {
        if (!msg) return;
        const g = Number(/"orderId":"o-(\d+)"/.exec(msg.content.toString('utf8'))?.[1]);
        if (seen[g]) duplicates++;
        else {
          seen[g] = 1;
          received++;
        }
      },
      { noAck: true },
    );
    await migrate(schema.dataSource);

    // The backlog, built in SQL: UUIDv7-shaped ids and due times one ms apart in the past (rows written
    // over the last ROWS ms), unleased, so they are the sweeper's to take.
    const insertStart = Date.now();
    const t0 = insertStart - ROWS - 1000;
    for (let from = 1; from <= ROWS; from += INSERT_CHUNK) {
      const to = Math.min(ROWS, from + INSERT_CHUNK - 1);
      await schema.dataSource.query(
        `INSERT INTO tmm_outbox (id, topic, exchange, routing_key, payload, headers, status, attempts, available_at, created_at)
         SELECT (lpad(to_hex($1::bigint + g), 12, '0') || '7000' || '8000' || lpad(to_hex(g), 12, '0'))::uuid,
                'bench.order-placed', $2, 'bench.order-placed',
                '{"orderId":"o-' || g || '","amount":' || (1000 + g % 997) || ',"currency":"EUR","customer":"c-' || (g % 5000) || '"}',
                '{"x-tenant":"bench"}', 'PENDING', 0, $1::bigint + g, $1::bigint + g
         FROM generate_series($3::bigint, $4::bigint) AS g`,
        [t0, exchange, from, to],
      );
    }
    await schema.dataSource.query('ANALYZE tmm_outbox');
    const insertSeconds = (Date.now() - insertStart) / 1000;
    console.log(`backlog: ${ROWS} rows inserted in ${insertSeconds.toFixed(1)} s`);

    child = fork(join(__dirname, 'relay.js'), [], {
      env: { ...process.env, BENCH_SCHEMA: schema.name, BENCH_AMQP_URL: AMQP_URL, BENCH_WINDOW: String(WINDOW) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const pid = child.pid!;
    await nextMessage(child, 'ready');
    // Idle baseline: one second of samples after start and connect, before the relay runs.
    let baseline = 0;
    for (let i = 0; i < 10; i++) {
      baseline = Math.max(baseline, rssOf(pid) ?? 0);
      await new Promise((r) => setTimeout(r, 100));
    }

    let peak = 0;
    const samples: number[] = [];
    const sampler = setInterval(() => {
      const rss = rssOf(pid);
      if (rss === undefined) return;
      samples.push(rss);
      peak = Math.max(peak, rss);
    }, 100);
    let last: Progress = { type: 'progress', marked: 0, published: 0, failed: 0, rss: 0 };
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'progress') {
        last = m;
        peak = Math.max(peak, m.rss);
      }
    });
    const drainStart = Date.now();
    const deadline = drainStart + DRAIN_SECONDS * 1000;
    let lastLog = drainStart;
    child.send({ type: 'drain' });
    while (last.marked < ROWS && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      if (Date.now() - lastLog >= 15_000) {
        lastLog = Date.now();
        console.log(`  ${((lastLog - drainStart) / 1000).toFixed(0)} s: ${last.marked} rows marked, RSS ${(last.rss / MB).toFixed(0)} MB (peak ${(peak / MB).toFixed(0)} MB)`);
      }
    }
    const drainSeconds = (Date.now() - drainStart) / 1000;
    const stoppedPromise = nextMessage(child, 'stopped');
    child.send({ type: 'stop' });
    const stopped = await stoppedPromise;
    clearInterval(sampler);
    load.push(loadavg()[0]);

    // What the relay says it did must be what the broker and the outbox show.
    const [{ n: left }] = (await schema.dataSource.query('SELECT COUNT(*)::int AS n FROM tmm_outbox')) as { n: number }[];
    const [{ n: dead }] = (await schema.dataSource.query(`SELECT COUNT(*)::int AS n FROM tmm_outbox WHERE status <> 'PENDING'`)) as { n: number }[];
    const until = Date.now() + 10_000;
    while (received < stopped.marked && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    if (stopped.failed !== 0 || dead !== 0 || stopped.published !== stopped.marked || received !== stopped.marked || duplicates !== 0 || left !== ROWS - stopped.marked) {
      throw new Error(
        `inconsistent drain: marked ${stopped.marked}, published ${stopped.published}, failed ${stopped.failed}, received ${received} (+${duplicates} duplicates), rows left ${left} (${dead} not PENDING) of ${ROWS}`,
      );
    }
    const complete = stopped.marked === ROWS;
    const kernelPeak = stopped.maxRssKb * 1024;
    const sorted = [...samples].sort((a, b) => a - b);
    const result = {
      bench: 'relay-memory',
      peak_rss_mb: round(Math.max(peak, kernelPeak) / MB, 1),
      target_mb: 300,
      baseline_rss_mb: round(baseline / MB, 1),
      median_rss_mb: round(sorted[sorted.length >> 1] / MB, 1),
      sampled_peak_rss_mb: round(peak / MB, 1),
      kernel_peak_rss_mb: round(kernelPeak / MB, 1),
      rows: stopped.marked,
      backlog_rows: ROWS,
      complete,
      drain_seconds: round(drainSeconds, 1),
      msgs_per_s: Math.round(stopped.marked / drainSeconds),
      insert_seconds: round(insertSeconds, 1),
      window: WINDOW,
      loadavg_1m: load.map((x) => round(x, 2)),
    };
    console.log(
      `relay drained ${stopped.marked} of ${ROWS} rows in ${drainSeconds.toFixed(1)} s (${result.msgs_per_s} msg/s): peak RSS ${result.peak_rss_mb} MB (idle ${result.baseline_rss_mb} MB, median while draining ${result.median_rss_mb} MB)`,
    );
    console.log(JSON.stringify(result));
  } finally {
    if (child && child.exitCode === null) child.kill();
    await admin.deleteQueue(queue).catch(() => undefined);
    await admin.deleteExchange(exchange).catch(() => undefined);
    await consumerConn.close();
    await conn.close();
    await schema.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
