/**
 * Log-mode sender benchmark (issue 11). Same run, alternating rounds, medians, on PostgreSQL with 1 and 32
 * concurrent callers: a business transaction (one INSERT) that sends one message
 *  - through the local transaction log (`@TransactionalMessage({ sender: 'log' })`: barrier row + begin record
 *    synced to two directories before COMMIT, end after, publish with confirms on RabbitMQ, Sent record),
 *  - through the outbox table (`sender: 'outbox'`: outbox row, after-commit publish with confirms, mark),
 *  - through the log with an app checker instead of the barrier (`logChecker`: a topic with a registered
 *    TransactionChecker, so no barrier row — the shape for a service that may not add tables to its database),
 *  - without messaging (`@Transactional`, the insert only).
 * Each side's after-commit work is timed with it (the outbox: published and marked; the log: nothing in doubt
 * or unsent, every record synced), so that none of it runs in the next side's time.
 * Reports ratios, log fsyncs (write batches, one sync per directory each) per transaction, and the log mode's
 * begin→publish-confirmed latency p50/p99. Last line: one JSON object.
 */
import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IsInt, IsString } from 'class-validator';
import { Column, Entity, PrimaryColumn } from 'typeorm';
import { uuidv7 } from 'uuidv7';
import { AmqpTransport, Tmm, silentLogger } from '../../src/internal';
import { MessageContract, Transactional, TransactionalMessage } from 'tmm/decorators';
import { AMQP_URL } from '../support/amqp';
import { createBenchSchema } from '../support/postgres';
import { median, percentile, round, williamsOrder } from '../support/stats';

@Entity({ name: 'bench_log_order' })
class BenchOrder {
  @PrimaryColumn({ type: 'varchar', length: 40 }) id!: string;
  @Column({ type: 'int' }) amount!: number;
}

@MessageContract({ topic: 'bench.log-order-placed' })
class OrderPlaced {
  @IsString() id!: string;
  @IsInt() amount!: number;
}

/** The same message on a topic whose in-doubt transactions are checked by the app (no barrier row). */
@MessageContract({ topic: 'bench.log-order-checked' })
class OrderChecked {
  @IsString() id!: string;
  @IsInt() amount!: number;
}

class Service {
  constructor(private readonly tmm: Tmm) {}
  @Transactional({ dataSource: 'bench-log' })
  async plain(id: string): Promise<void> {
    await this.tmm.transactions.getRepository(BenchOrder).insert({ id, amount: 1 });
  }
  @TransactionalMessage({ dataSource: 'bench-log', sender: 'outbox' })
  async outbox(id: string): Promise<void> {
    await this.tmm.transactions.getRepository(BenchOrder).insert({ id, amount: 1 });
    await this.tmm.producer.send(Object.assign(new OrderPlaced(), { id, amount: 1 }));
  }
  @TransactionalMessage({ dataSource: 'bench-log', sender: 'log' })
  async log(id: string): Promise<void> {
    await this.tmm.transactions.getRepository(BenchOrder).insert({ id, amount: 1 });
    await this.tmm.producer.send(Object.assign(new OrderPlaced(), { id, amount: 1 }));
  }
  @TransactionalMessage({ dataSource: 'bench-log', sender: 'log' })
  async logChecker(id: string): Promise<void> {
    await this.tmm.transactions.getRepository(BenchOrder).insert({ id, amount: 1 });
    await this.tmm.producer.send(Object.assign(new OrderChecked(), { id, amount: 1 }));
  }
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/**
 * The machine's busy CPU time so far, µs (every core: user, nice, system, irq, softirq, steal from /proc/stat;
 * not idle or iowait): this process, PostgreSQL's backends and writers, RabbitMQ and the kernel's journal all
 * in one number, which is what 32 callers on 2 cores are bound by. Other work on the machine counts too.
 */
function busyCpuUs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return ((user + nice + system + irq + softirq + (steal ?? 0)) * 1e6) / 100; // USER_HZ = 100 on Linux
}
const OPS: Record<number, number> = { 1: Number(process.env.BENCH_OPS_1 ?? 300), 32: Number(process.env.BENCH_OPS_32 ?? 1600) };
type Mode = 'plain' | 'outbox' | 'log' | 'logChecker';
/** BENCH_ONLY_MODE=<mode>: only that side, at 32 callers (for a profile of one side; no ratios then). */
const ONLY_MODE = process.env.BENCH_ONLY_MODE as Mode | undefined;

async function main(): Promise<void> {
  const schema = await createBenchSchema('bench_log', { entities: [BenchOrder], poolSize: 40 });
  const dirs = mkdtempSync(join(process.env.BENCH_LOG_DIR ?? tmpdir(), 'tmm-bench-log-'));
  const exchange = `tmm.bench.log.${process.pid}`;
  const queue = `${exchange}.sink`;
  const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger });
  const tmm = new Tmm({
    dataSource: schema.dataSource,
    name: 'bench-log',
    transport,
    logger: 'error',
    producer: { defaultExchange: exchange },
    consumers: { enabled: false },
    txlog: { directories: [join(dirs, 'a'), join(dirs, 'b')], inDoubtAfterMs: 30_000, ...(process.env.BENCH_LOOP_MS ? { analysisIntervalMs: Number(process.env.BENCH_LOOP_MS) } : {}) },
  });
  await tmm.start();
  await transport.declare({ exchanges: [{ name: exchange }], queues: [{ name: queue, bindings: [{ exchange, routingKey: '#' }] }] });
  const svc = new Service(tmm);
  const log = tmm.txlog!;
  // Called only for a transaction in doubt after 30 s (none here): the order row says whether it committed.
  log.registerChecker({ topic: 'bench.log-order-checked' }, () => 'commit');
  /**
   * Waits until the side's after-commit work is done: for the outbox, published and marked (the dispatcher's
   * flush, event-driven); for the log, nothing in doubt or unsent and every record synced (drained(), which
   * checks every millisecond).
   */
  const settleSide = async (m: Mode): Promise<void> => {
    if (m === 'outbox') await tmm.dispatcher.flush();
    if (m === 'log' || m === 'logChecker') await log.drained(60_000);
  };
  const results: Record<string, number> = {};
  const us: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const nodeCpu: Record<string, number[]> = {};
  const fsyncs: Record<number, number[]> = { 1: [], 32: [] };
  const latencies: number[] = [];
  try {
    for (const callers of ONLY_MODE ? [32] : [1, 32]) {
      const ops = OPS[callers];
      const run = async (mode: Mode): Promise<number> => {
        let next = 0;
        const start = process.hrtime.bigint();
        await Promise.all(
          Array.from({ length: callers }, async () => {
            while (next < ops) {
              next++;
              await svc[mode](uuidv7());
            }
          }),
        );
        return Number(process.hrtime.bigint() - start) / 1000 / ops;
      };
      if (ONLY_MODE) {
        for (let r = 0; r <= ROUNDS; r++) process.stderr.write(`${ONLY_MODE} ${round(await run(ONLY_MODE), 1)} µs/tx\n`);
        await log.drained(60_000);
        break;
      }
      // Warm-up, then alternating rounds (the order changing each round).
      for (const m of ['plain', 'outbox', 'log', 'logChecker'] as Mode[]) await run(m);
      await log.drained(60_000);
      // A Williams design, not rotations of one order: rotated, every side always ran right after the same other
      // side (the log after the outbox), and so paid for what that one left behind (the outbox DELETEs' vacuum
      // and writeback on PostgreSQL). Here each side comes first once and follows every other side once.
      const modes: Mode[] = ['plain', 'outbox', 'log', 'logChecker'];
      const orders: Mode[][] = modes.map((_m, i) => williamsOrder(modes.length, i).map((k) => modes[k]));
      for (let r = 0; r < ROUNDS; r++) {
        for (const m of orders[r % orders.length]) {
          const batchesBefore = log.log.batches;
          const latBefore = log.latencies.length;
          const cpu0 = busyCpuUs();
          const node0 = process.cpuUsage();
          const start = process.hrtime.bigint();
          await run(m);
          // Each side's after-commit work is its own, timed: the outbox's last publishes and DELETEs, the log's
          // last end and Sent records. Left running, it would be charged to the next side.
          await settleSide(m);
          const t = Number(process.hrtime.bigint() - start) / 1000 / ops;
          const node = process.cpuUsage(node0);
          (cpu[`${m}_${callers}`] ??= []).push((busyCpuUs() - cpu0) / ops);
          (nodeCpu[`${m}_${callers}`] ??= []).push((node.user + node.system) / ops);
          if (m === 'log') {
            fsyncs[callers].push((log.log.batches - batchesBefore) / ops);
            latencies.push(...log.latencies.slice(latBefore));
          }
          (us[`${m}_${callers}`] ??= []).push(t);
        }
      }
      for (const m of ['plain', 'outbox', 'log', 'logChecker']) {
        results[`${m}_us_${callers}`] = round(median(us[`${m}_${callers}`]), 1);
        results[`${m}_cpu_us_${callers}`] = round(median(cpu[`${m}_${callers}`]), 1);
        results[`${m}_node_cpu_us_${callers}`] = round(median(nodeCpu[`${m}_${callers}`]), 1);
      }
      results[`log_vs_outbox_cpu_${callers}`] = round(median(cpu[`log_${callers}`]) / median(cpu[`outbox_${callers}`]));
      results[`log_vs_plain_${callers}`] = round(median(us[`log_${callers}`]) / median(us[`plain_${callers}`]));
      results[`log_vs_outbox_${callers}`] = round(median(us[`log_${callers}`]) / median(us[`outbox_${callers}`]));
      results[`log_checker_vs_outbox_${callers}`] = round(median(us[`logChecker_${callers}`]) / median(us[`outbox_${callers}`]));
      results[`log_checker_vs_plain_${callers}`] = round(median(us[`logChecker_${callers}`]) / median(us[`plain_${callers}`]));
      results[`outbox_vs_plain_${callers}`] = round(median(us[`outbox_${callers}`]) / median(us[`plain_${callers}`]));
      results[`fsyncs_per_tx_${callers}`] = round(median(fsyncs[callers]));
      process.stderr.write(`callers=${callers} ${JSON.stringify(Object.fromEntries(Object.entries(us).filter(([k]) => k.endsWith(`_${callers}`)).map(([k, v]) => [k, v.map((x) => round(x, 0))])))}\n`);
    }
  } finally {
    await tmm.stop({ closeTransport: false });
    await transport.close();
    const { connect } = await import('amqplib');
    const c = await connect(AMQP_URL);
    const ch = await c.createChannel();
    await ch.deleteQueue(queue).catch(() => undefined);
    await ch.deleteExchange(exchange).catch(() => undefined);
    await c.close();
    await schema.dispose();
    rmSync(dirs, { recursive: true, force: true });
  }
  const line = {
    bench: 'log-producer',
    log_vs_plain_1: results.log_vs_plain_1,
    log_vs_plain_32: results.log_vs_plain_32,
    log_vs_outbox_1: results.log_vs_outbox_1,
    log_vs_outbox_32: results.log_vs_outbox_32,
    fsyncs_per_tx_1: results.fsyncs_per_tx_1,
    fsyncs_per_tx_32: results.fsyncs_per_tx_32,
    begin_to_publish_p50_ms: round(percentile(latencies, 50), 2),
    begin_to_publish_p99_ms: round(percentile(latencies, 99), 2),
    ...results,
    rounds: ROUNDS,
    ops_1: OPS[1],
    ops_32: OPS[32],
    log_directories: 2,
    note: 'fsyncs_per_tx = log write batches per transaction (each batch: one O_DSYNC write per directory, the equivalent of write + fdatasync; a transaction writes begin, end and Sent records; end and Sent ride in the batch of another record when one comes within 3 ms / 50 ms); both directories on the same disk here',
  };
  process.stdout.write(JSON.stringify(line) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
