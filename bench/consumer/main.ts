/**
 * Consumer benchmark, real RabbitMQ and PostgreSQL. Same run, alternating rounds, medians of throughput:
 *  - idempotent: a @Consumer({ idempotent: true, messagesPerTransaction: 16 }) whose handler inserts one
 *    row (deliveries in hand grouped in one transaction: one multi-row inbox claim + the rows + commit +
 *    acks), against raw amqplib consume + the same INSERT (autocommit) + ack; and the same consumer with a
 *    transaction per message (BEGIN + claim + row + COMMIT), reported as idempotent_per_message_ratio;
 *  - plain: a @Consumer with the default options whose handler does nothing (its transaction still opens
 *    and commits), against raw amqplib consume + ack; and the same consumer with `transactional: false`
 *    (decode + validate + ack), reported as plain_nontx_ratio.
 * Every side consumes a prefilled queue with the same prefetch; prefilling is not timed. The headline pair
 * (idempotent vs raw write) drains BENCH_MESSAGES (20,000) each; the secondary sides drain fewer (the
 * per-message idempotent side a quarter, the plain comparison half) to stay within the time budget on a
 * shared 2-core machine — each is a steady-state rate, so the ratios are unaffected.
 * Last line: one JSON object.
 */
import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import * as amqp from 'amqplib';
import { IsInt, IsString } from 'class-validator';
import { DataSource } from 'typeorm';
import { AmqpTransport, ConsumeContext, ConsumerRunner, Tmm, resolveConsumerRunnerOptions, silentLogger } from '../../src/internal';
import { Consumer, MessageContract } from 'tmm/decorators';
import { median, round } from '../support/stats';

const AMQP_URL = process.env.TMM_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const N = Number(process.env.BENCH_MESSAGES ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PREFETCH = Number(process.env.BENCH_PREFETCH ?? 50);
const PREFIX = `tmm-bench-consumer-${randomBytes(3).toString('hex')}`;
const PER_TX = Number(process.env.BENCH_PER_TX ?? 16);
const Q = { idem: `${PREFIX}.idem`, idem1: `${PREFIX}.idem1`, plain: `${PREFIX}.plain`, nontx: `${PREFIX}.nontx`, raw: `${PREFIX}.raw` };
const INSERT = 'INSERT INTO bench_effect (id, amount) VALUES ($1, $2)';

@MessageContract({ topic: 'bench.item' })
class BenchItem {
  @IsString() id!: string;
  @IsInt() amount!: number;
}

class IdempotentHandler {
  @Consumer({ queue: Q.idem, exchange: 'tmm.bench', routingKey: Q.idem, prefetch: PREFETCH, idempotent: true, messagesPerTransaction: PER_TX })
  async handle(item: BenchItem, ctx: ConsumeContext): Promise<void> {
    await ctx.manager.query(INSERT, [item.id, item.amount]);
  }
}

class PerMessageIdempotentHandler {
  @Consumer({ queue: Q.idem1, exchange: 'tmm.bench', routingKey: Q.idem1, prefetch: PREFETCH, idempotent: true })
  async handle(item: BenchItem, ctx: ConsumeContext): Promise<void> {
    await ctx.manager.query(INSERT, [item.id, item.amount]);
  }
}

class PlainHandler {
  @Consumer({ queue: Q.plain, exchange: 'tmm.bench', routingKey: Q.plain, prefetch: PREFETCH })
  async handle(_item: BenchItem): Promise<void> {}
}

class NonTransactionalHandler {
  @Consumer({ queue: Q.nontx, exchange: 'tmm.bench', routingKey: Q.nontx, prefetch: PREFETCH, transactional: false })
  async handle(_item: BenchItem): Promise<void> {}
}

/** Fills `queue` with N messages (confirmed), as a tmm producer would have sent them. */
async function prefill(ch: amqp.ConfirmChannel, queue: string, n: number): Promise<void> {
  let i = 0;
  const window = 500;
  await new Promise<void>((resolve, reject) => {
    let inFlight = 0;
    let confirmed = 0;
    const pump = () => {
      while (inFlight < window && i < n) {
        const id = randomUUID();
        inFlight++;
        i++;
        ch.publish(
          'tmm.bench',
          queue,
          Buffer.from(JSON.stringify({ id, amount: 1 })),
          { persistent: true, mandatory: true, messageId: id, contentType: 'application/json', timestamp: Math.floor(Date.now() / 1000), headers: { 'tmm-contract-version': 1 } },
          (err: unknown) => {
            if (err) return reject(err instanceof Error ? err : new Error(String(err)));
            inFlight--;
            if (++confirmed === n) resolve();
            else pump();
          },
        );
      }
    };
    pump();
  });
  for (let waited = 0; (await ch.checkQueue(queue)).messageCount < n; waited += 20) {
    if (waited > 5000) throw new Error(`queue ${queue} did not fill`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 1));
}

/** Messages per second for a tmm consumer draining its prefilled queue. */
async function tmmSide(runner: ConsumerRunner, n: number): Promise<number> {
  const base = runner.stats.handled;
  const start = process.hrtime.bigint();
  await runner.start();
  await until(() => runner.stats.handled - base >= n);
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await runner.stop();
  return n / secs;
}

/** Messages per second for raw amqplib: consume with the same prefetch, optionally INSERT, ack. */
async function rawSide(conn: amqp.ChannelModel, ds: DataSource | undefined, n: number): Promise<number> {
  const ch = await conn.createChannel();
  await ch.prefetch(PREFETCH, false);
  let acked = 0;
  const start = process.hrtime.bigint();
  const { consumerTag } = await ch.consume(
    Q.raw,
    (msg) => {
      if (!msg) return;
      const finish = () => {
        ch.ack(msg);
        acked++;
      };
      if (!ds) return finish();
      const body = JSON.parse(msg.content.toString('utf8')) as { id: string; amount: number };
      ds.query(INSERT, [body.id, body.amount]).then(finish, (e: unknown) => {
        console.error(e);
        process.exit(1);
      });
    },
    { noAck: false },
  );
  await until(() => acked >= n);
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await ch.cancel(consumerTag);
  await ch.close();
  return n / secs;
}

async function main(): Promise<void> {
  const pg = { host: process.env.TMM_PG_HOST ?? '127.0.0.1', port: Number(process.env.TMM_PG_PORT ?? 5432), username: process.env.TMM_PG_USER ?? 'postgres', database: process.env.TMM_PG_DATABASE ?? 'test' };
  const schema = `tmm_bench_c_${randomBytes(4).toString('hex')}`;
  const admin = new DataSource({ type: 'postgres', ...pg });
  await admin.initialize();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const ds = new DataSource({ type: 'postgres', ...pg, schema, poolSize: 10, extra: { options: `-c search_path=${schema}` } });
  const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: PREFIX });
  const conn = await amqp.connect(AMQP_URL);
  const pub = await conn.createConfirmChannel();
  const tmm = new Tmm({ dataSource: ds, name: 'bench-consumer', transport, logger: 'silent', relay: { enabled: false }, consumers: { enabled: false } });
  try {
    await tmm.start();
    await ds.query('CREATE TABLE bench_effect (id VARCHAR(64) PRIMARY KEY, amount INT NOT NULL)');
    const runner = (instance: object) => {
      const r = new ConsumerRunner(
        { transport, transactions: tmm.transactions, contextStore: tmm.contextStore, inbox: tmm.inbox, logger: silentLogger, tmmName: 'default', defaultExchange: 'tmm.events' },
        resolveConsumerRunnerOptions(),
      );
      r.register(instance);
      return r;
    };
    const runners = { idem: runner(new IdempotentHandler()), idem1: runner(new PerMessageIdempotentHandler()), plain: runner(new PlainHandler()), nontx: runner(new NonTransactionalHandler()) };
    await transport.declare({ exchanges: [{ name: 'tmm.bench' }], queues: [{ name: Q.raw, bindings: [{ exchange: 'tmm.bench', routingKey: Q.raw }] }] });
    for (const r of Object.values(runners)) await r.declare();

    const reset = async () => {
      await ds.query('TRUNCATE bench_effect');
      await ds.query('TRUNCATE tmm_inbox');
    };
    /** A write side must have written exactly one row per message, or its rate means nothing. */
    const checked = async (side: string, n: number, rate: number): Promise<number> => {
      const [{ rows }]: { rows: string }[] = await ds.query('SELECT count(*)::text AS rows FROM bench_effect');
      if (Number(rows) !== n) throw new Error(`${side}: expected ${n} rows, found ${rows}`);
      return rate;
    };
    type Side = 'idem' | 'idem1' | 'rawWrite' | 'plain' | 'nontx' | 'rawAck';
    const sides: Record<Side, (n: number) => Promise<number>> = {
      idem: async (n) => (await prefill(pub, Q.idem, n), await reset(), checked('idem', n, await tmmSide(runners.idem, n))),
      idem1: async (n) => (await prefill(pub, Q.idem1, n), await reset(), checked('idem1', n, await tmmSide(runners.idem1, n))),
      rawWrite: async (n) => (await prefill(pub, Q.raw, n), await reset(), checked('rawWrite', n, await rawSide(conn, ds, n))),
      plain: async (n) => (await prefill(pub, Q.plain, n), tmmSide(runners.plain, n)),
      nontx: async (n) => (await prefill(pub, Q.nontx, n), tmmSide(runners.nontx, n)),
      rawAck: async (n) => (await prefill(pub, Q.raw, n), rawSide(conn, undefined, n)),
    };
    const samples: Record<Side, number[]> = { idem: [], idem1: [], rawWrite: [], plain: [], nontx: [], rawAck: [] };
    // Round -1 warms up (JIT, pools, statement caches) with fewer messages and is not counted.
    for (let r = -1; r < ROUNDS; r++) {
      // Each comparison's sides run back to back, in alternating order, so drift hits both alike.
      const order: Side[] = r % 2 === 0 ? ['idem', 'rawWrite', 'idem1', 'plain', 'rawAck', 'nontx'] : ['rawWrite', 'idem', 'idem1', 'nontx', 'rawAck', 'plain'];
      for (const side of order) {
        const n = side === 'idem' || side === 'rawWrite' ? N : side === 'idem1' ? Math.ceil(N / 4) : Math.ceil(N / 2);
        const rate = await sides[side](r < 0 ? Math.min(n, 3000) : n);
        if (r >= 0) samples[side].push(rate);
        console.log(`round ${r < 0 ? 'warm-up' : r + 1} ${side}: ${rate.toFixed(0)} msg/s`);
      }
    }
    const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)])) as Record<Side, number>;
    console.log(
      `medians of ${ROUNDS} rounds (${N} messages for the first pair), prefetch ${PREFETCH}: idempotent ${m.idem.toFixed(0)} (${PER_TX} per transaction) / ${m.idem1.toFixed(0)} (one per transaction) vs raw consume+insert+ack ${m.rawWrite.toFixed(0)} msg/s; ` +
        `plain ${m.plain.toFixed(0)} / non-transactional ${m.nontx.toFixed(0)} vs raw consume+ack ${m.rawAck.toFixed(0)} msg/s; every write side wrote one row per message`,
    );
    console.log(
      JSON.stringify({
        bench: 'consumer',
        idempotent_ratio: round(m.idem / m.rawWrite),
        idempotent_per_message_ratio: round(m.idem1 / m.rawWrite),
        plain_ratio: round(m.plain / m.rawAck),
        plain_nontx_ratio: round(m.nontx / m.rawAck),
        idempotent_target: 0.7,
        idempotent_msg_s: Math.round(m.idem),
        idempotent_per_message_msg_s: Math.round(m.idem1),
        messages_per_transaction: PER_TX,
        raw_write_msg_s: Math.round(m.rawWrite),
        plain_msg_s: Math.round(m.plain),
        plain_nontx_msg_s: Math.round(m.nontx),
        raw_ack_msg_s: Math.round(m.rawAck),
        messages: N,
        prefetch: PREFETCH,
        rounds: ROUNDS,
      }),
    );
  } finally {
    await tmm.stop({ closeTransport: false });
    await transport.remove({ queues: Object.values(Q).flatMap((q) => [{ name: q }, { name: `${q}.dlq` }]), exchanges: [{ name: 'tmm.bench' }] }).catch(() => undefined);
    for (const q of [Q.idem, Q.idem1, Q.plain, Q.nontx]) {
      for (const ms of [1000, 2000, 4000, 8000]) await transport.remove({ queues: [{ name: `${q}.retry.${ms}ms` }] }).catch(() => undefined);
    }
    await transport.close();
    await conn.close().catch(() => undefined);
    if (ds.isInitialized) await ds.destroy();
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.destroy();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
