/**
 * End-to-end latency benchmark: from the moment a @TransactionalMessage method's commit returns to the
 * moment a raw amqplib consumer receives the message, at a steady RATE msg/s (open loop: sends start on
 * schedule, whether or not earlier ones finished), on PostgreSQL with an AmqpTransport and default options.
 * Each transaction inserts one business row and sends one message. Baseline, same run, alternating rounds:
 * raw amqplib publishing on a confirm channel at the same rate, from the publish call to the same consumer.
 * Every message must arrive exactly once and every outbox row must be marked. Percentiles are over all
 * messages of all rounds of a side. Last line: one JSON object.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import * as amqp from 'amqplib';
import { IsInt } from 'class-validator';
import { Column, Entity, PrimaryColumn } from 'typeorm';
import { AmqpTransport, Tmm, silentLogger } from '../../src/internal';
import { MessageContract, TransactionalMessage } from 'tmm/decorators';
import { AMQP_URL } from '../support/amqp';
import { createBenchSchema } from '../support/postgres';
import { median, percentile, round } from '../support/stats';

const RATE = Number(process.env.BENCH_RATE ?? 500);
/** Seconds per side in total, split into ROUNDS rounds. */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TOPIC = 'bench.e2e';
const RAW_KEY = 'raw.e2e';

@Entity({ name: 'bench_e2e_order' })
class BenchOrder {
  @PrimaryColumn({ type: 'varchar', length: 40 }) id!: string;
  @Column({ type: 'int' }) amount!: number;
}

@MessageContract({ topic: TOPIC })
class OrderPlaced {
  @IsInt() seq!: number;
  @IsInt() amount!: number;
}

class Orders {
  constructor(private readonly tmm: Tmm) {}
  @TransactionalMessage({ dataSource: 'bench-e2e' })
  async place(seq: number): Promise<void> {
    await this.tmm.transactions.getRepository(BenchOrder).insert({ id: `o-${seq}`, amount: 1 });
    await this.tmm.producer.send(Object.assign(new OrderPlaced(), { seq, amount: 1 }));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Calls fire(0..n-1) on a fixed schedule of `rate` per second; resolves once the last one was fired. */
async function steady(n: number, rate: number, fire: (i: number) => void): Promise<number> {
  const start = performance.now();
  let fired = 0;
  while (fired < n) {
    const due = Math.min(n, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
    while (fired < due) fire(fired++);
    if (fired < n) await sleep(1);
  }
  return (n / (performance.now() - start)) * 1000;
}

/** Per-message timestamps of one side; seq numbers are global so a late message is never misattributed. */
class Side {
  readonly sentAt: number[] = [];
  readonly receivedAt: number[] = [];
  duplicates = 0;
  errors = 0;
  received = 0;
  receive(seq: number, at: number): void {
    if (this.receivedAt[seq] !== undefined) this.duplicates++;
    else {
      this.receivedAt[seq] = at;
      this.received++;
    }
  }
  latencies(from: number, to: number): number[] {
    const out: number[] = [];
    for (let s = from; s < to; s++) out.push(this.receivedAt[s] - this.sentAt[s]);
    return out;
  }
}

async function main(): Promise<void> {
  const load = [loadavg()[0]];
  const perRound = Math.round((RATE * SECONDS) / ROUNDS);
  const warmup = RATE; // one second per side
  const schema = await createBenchSchema('tmm_bench_e2e', { entities: [BenchOrder] });
  const suffix = randomBytes(4).toString('hex');
  const exchange = `tmm-bench-e2e-${suffix}`;
  const queue = `tmm-bench-e2e-${suffix}`;
  const conn = await amqp.connect(AMQP_URL);
  const admin = await conn.createChannel();
  await admin.assertExchange(exchange, 'topic', { durable: true });
  await admin.assertQueue(queue, { durable: true });
  await admin.bindQueue(queue, exchange, TOPIC);
  await admin.bindQueue(queue, exchange, RAW_KEY);
  // The probe consumer: its own connection, no acks, so it receives as soon as the broker routes.
  const consumerConn = await amqp.connect(AMQP_URL);
  const consumer = await consumerConn.createChannel();
  const tmmSide = new Side();
  const rawSide = new Side();
  await consumer.consume(
    queue,
    (msg) => {
      if (!msg) return;
      const at = performance.now();
      const { seq } = JSON.parse(msg.content.toString('utf8')) as { seq: number };
      (msg.fields.routingKey === RAW_KEY ? rawSide : tmmSide).receive(seq, at);
    },
    { noAck: true },
  );
  const rawConn = await amqp.connect(AMQP_URL);
  const confirm = await rawConn.createConfirmChannel();

  const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-bench-e2e' });
  const tmm = new Tmm({ dataSource: schema.dataSource, name: 'bench-e2e', transport, logger: 'warn', producer: { defaultExchange: exchange } });
  const orders = new Orders(tmm);
  const roundStats: { side: 'tmm' | 'raw'; p50: number; p99: number; rate: number; loopP99: number }[] = [];
  // How late this process's event loop ran timers: a latency tail that the loop shares is the process's, not the broker's.
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  let nextTmm = 0;
  let nextRaw = 0;

  const runTmm = async (n: number): Promise<[number, number]> => {
    const from = nextTmm;
    nextTmm += n;
    const rate = await steady(n, RATE, (i) => {
      const seq = from + i;
      orders.place(seq).then(
        () => (tmmSide.sentAt[seq] = performance.now()),
        (e: unknown) => {
          tmmSide.errors++;
          console.error(e);
        },
      );
    });
    return [from, rate];
  };
  const runRaw = async (n: number): Promise<[number, number]> => {
    const from = nextRaw;
    nextRaw += n;
    const rate = await steady(n, RATE, (i) => {
      const seq = from + i;
      const id = `raw-${seq}`;
      rawSide.sentAt[seq] = performance.now();
      confirm.publish(
        exchange,
        RAW_KEY,
        Buffer.from(JSON.stringify({ seq, amount: 1 })),
        { persistent: true, mandatory: true, messageId: id, contentType: 'application/json', timestamp: Math.floor(Date.now() / 1000), headers: {} },
        (err: unknown) => {
          if (err) rawSide.errors++;
        },
      );
    });
    return [from, rate];
  };
  /** Waits until every message of the side up to `to` arrived (bounded). */
  const arrived = async (side: Side, to: number) => {
    const end = Date.now() + 20_000;
    while (side.received + side.errors < to && Date.now() < end) await sleep(10);
    if (side.received !== to) throw new Error(`expected ${to} messages to arrive, got ${side.received} (${side.errors} errors)`);
  };

  try {
    await tmm.start();
    await transport.connect();
    // Warm-up (JIT, pools, the exchange check): one second per side, not counted.
    await runTmm(warmup);
    await arrived(tmmSide, nextTmm);
    await runRaw(warmup);
    await arrived(rawSide, nextRaw);

    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? (['tmm', 'raw'] as const) : (['raw', 'tmm'] as const);
      for (const which of order) {
        const side = which === 'tmm' ? tmmSide : rawSide;
        loopDelay.reset();
        loopDelay.enable();
        const [from, rate] = which === 'tmm' ? await runTmm(perRound) : await runRaw(perRound);
        await arrived(side, from + perRound);
        if (which === 'tmm') {
          // Commit timestamps are set when place() resolves; wait for the last ones.
          while (tmmSide.sentAt.length < from + perRound || tmmSide.latencies(from, from + perRound).some(Number.isNaN)) await sleep(5);
        }
        loopDelay.disable();
        const l = side.latencies(from, from + perRound);
        roundStats.push({ side: which, p50: percentile(l, 50), p99: percentile(l, 99), rate, loopP99: loopDelay.percentile(99) / 1e6 });
      }
      const last = roundStats.slice(-2);
      console.log(
        `round ${r + 1}: ${last.map((s) => `${s.side} p50 ${s.p50.toFixed(2)} ms p99 ${s.p99.toFixed(2)} ms at ${s.rate.toFixed(0)} msg/s (event loop delay p99 ${s.loopP99.toFixed(1)} ms)`).join(', ')}`,
      );
    }
    await tmm.dispatcher.flush();
    const counts = await tmm.outbox.countByStatus();
    await sleep(200);
    if (tmmSide.duplicates || rawSide.duplicates || tmmSide.errors || rawSide.errors) {
      throw new Error(`duplicates tmm ${tmmSide.duplicates} raw ${rawSide.duplicates}; errors tmm ${tmmSide.errors} raw ${rawSide.errors}`);
    }
    if (counts.PENDING !== 0 || counts.DEAD !== 0) throw new Error(`outbox rows left: ${JSON.stringify(counts)}`);
  } finally {
    await tmm.stop();
    await admin.deleteQueue(queue).catch(() => undefined);
    await admin.deleteExchange(exchange).catch(() => undefined);
    await consumerConn.close();
    await rawConn.close();
    await conn.close();
    await schema.dispose();
  }

  load.push(loadavg()[0]);
  const all = (side: Side, n: number) => side.latencies(warmup, n);
  const t = all(tmmSide, nextTmm);
  const raw = all(rawSide, nextRaw);
  const pick = (side: 'tmm' | 'raw', k: 'p50' | 'p99' | 'loopP99') => roundStats.filter((s) => s.side === side).map((s) => round(s[k], 2));
  const result = {
    bench: 'e2e',
    p50_ms: round(percentile(t, 50), 2),
    p99_ms: round(percentile(t, 99), 2),
    raw_p50_ms: round(percentile(raw, 50), 2),
    raw_p99_ms: round(percentile(raw, 99), 2),
    p999_ms: round(percentile(t, 99.9), 2),
    max_ms: round(Math.max(...t), 2),
    target_p50_ms: 3,
    target_p99_ms: 15,
    round_p50_ms: pick('tmm', 'p50'),
    round_p99_ms: pick('tmm', 'p99'),
    raw_round_p50_ms: pick('raw', 'p50'),
    raw_round_p99_ms: pick('raw', 'p99'),
    event_loop_delay_p99_ms: pick('tmm', 'loopP99'),
    raw_event_loop_delay_p99_ms: pick('raw', 'loopP99'),
    rate: RATE,
    achieved_rate: Math.round(median(roundStats.filter((s) => s.side === 'tmm').map((s) => s.rate))),
    seconds: SECONDS,
    messages: t.length,
    rounds: ROUNDS,
    loadavg_1m: load.map((x) => round(x, 2)),
  };
  console.log(
    `commit → receive over ${t.length} messages at ${RATE} msg/s: p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms, max ${result.max_ms} ms; raw publish → receive: p50 ${result.raw_p50_ms} ms, p99 ${result.raw_p99_ms} ms`,
  );
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
