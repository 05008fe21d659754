/**
 * What observability costs on the hot paths: producer, relay and consumer throughput with the recorded journey
 * on (`journey.enabled`, default writer options, a business-key path) and with tracing on (an OpenTelemetry SDK
 * registered, sampling off — AlwaysOffSampler, as a production app that samples nothing or little would run),
 * each against both off (`tracing: false`, no journey), same run, rotating which side goes first, medians of
 * ROUNDS rounds. PostgreSQL (fresh schema) and RabbitMQ (random names), default options.
 *
 * Per side and round: the producer commits N transactions of one message each (CONCURRENCY at a time; its
 * fast path stopped, so the rows stay), then a relay drains those N rows to RabbitMQ, then a consumer
 * (transactional, idempotent: the default) handles the N messages. Each side has a schema of its own, and each
 * phase runs for the three sides back to back (close in time, so under the same load of the shared machine)
 * before the next phase. Each phase is timed on its own and
 * checked: N rows written, the outbox empty, N handled. With the journey on, each phase's time includes writing
 * what it recorded (the writer's flush before the clock stops), and the rows are counted in tmm_journey.
 *
 * Last line: {"bench":"journey","producer_on_vs_off":…,"relay_on_vs_off":…,"consumer_on_vs_off":…} for the
 * journey, and tracing_*_on_vs_off for tracing (throughput on / throughput off: ≥ 0.95 is the target).
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AlwaysOffSampler, BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { IsInt } from 'class-validator';
import { AmqpTransport, type QueueSpec, Tmm, consumerTopology, silentLogger } from '../../src/internal';
import { Consumer, MessageContract } from 'tmm/decorators';
import { AMQP_URL } from '../support/amqp';
import { type BenchSchema, createBenchSchema } from '../support/postgres';
import { median, round } from '../support/stats';

const N = Number(process.env.BENCH_MESSAGES ?? 3000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const suffix = randomBytes(3).toString('hex');
const EXCHANGE = `bench.journey.${suffix}`;

@MessageContract({ topic: 'bench.journey' })
class Step {
  @IsInt() seq!: number;
}

/** off: tracing and journey off; journey: the journey only; tracing: tracing only. */
type Side = 'off' | 'journey' | 'tracing';
const SIDES: Side[] = ['off', 'journey', 'tracing'];
interface Phase {
  producer: number;
  relay: number;
  consumer: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function main(): Promise<void> {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ sampler: new AlwaysOffSampler(), spanProcessors: [new SimpleSpanProcessor(exporter)] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);

  // One schema per side, so that each phase can run for the three sides back to back (close in time, under
  // the same load) without one side's relay draining another's rows.
  const schemas = {} as Record<Side, BenchSchema>;
  for (const side of SIDES) schemas[side] = await createBenchSchema(`bench_journey_${side}`, { poolSize: 12 });
  const load = [loadavg()[0]];
  const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: `bench-journey-${suffix}` });
  const queues: QueueSpec[] = [];
  let instance = 0;
  const tmmFor = (side: Side, over: Record<string, unknown>) =>
    new Tmm({
      dataSource: schemas[side].dataSource,
      transport,
      logger: 'silent',
      name: `bench-journey-${instance++}`,
      tracing: side === 'tracing' ? 'auto' : false,
      journey: { enabled: side === 'journey', businessKeys: ['seq'] },
      ...over,
    });
  /** The journey side's phase ends when what it recorded is written. */
  const journeyWritten = async (tmm: Tmm) => {
    await tmm.journey?.flush();
  };
  const journeyRows = { off: 0, journey: 0, tracing: 0 };

  /** One side's round: the phases are run by the caller, each for every side in turn. */
  interface SideRound {
    side: Side;
    routingKey: string;
    queue: string;
    handled: number;
    producer?: Tmm;
    relay?: Tmm;
    consumer?: Tmm;
    ms: Partial<Phase>;
  }

  function sideRound(side: Side, round_: number): SideRound {
    return { side, routingKey: `${side}.${round_}`, queue: `${EXCHANGE}.${side}.${round_}`, handled: 0, ms: {} };
  }

  async function producerPhase(sr: SideRound): Promise<void> {
    // The fast path stopped, so the rows stay for the relay phase.
    const producer = (sr.producer = tmmFor(sr.side, { relay: { enabled: false }, consumers: { enabled: false }, producer: { leaseMs: 1000 } }));
    await producer.start();
    await producer.dispatcher.stop();
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < N; i = next++) {
          await producer.transactions.run(() => producer.producer.send(Object.assign(new Step(), { seq: i }), { exchange: EXCHANGE, routingKey: sr.routingKey }));
        }
      }),
    );
    await journeyWritten(producer);
    sr.ms.producer = performance.now() - t0;
    const written = await producer.outbox.countByStatus();
    if (written.PENDING !== N) throw new Error(`bench: ${written.PENDING} rows written, expected ${N}`);
    await producer.stop({ closeTransport: false });
    // The consumer is declared now (its queue must exist before the relay publishes), started later.
    class Handler {
      @Consumer({ queue: sr.queue, exchange: EXCHANGE, routingKey: sr.routingKey, concurrency: 16 })
      async handle(_s: Step): Promise<void> {
        sr.handled++;
      }
    }
    const consumer = (sr.consumer = tmmFor(sr.side, { relay: { enabled: false } }));
    consumer.consumers.register(new Handler());
    await consumer.start();
    for (const def of consumer.consumers.definitions) queues.push(...(consumerTopology(def).queues ?? []));
    await consumer.consumers.stop();
  }

  async function relayPhase(sr: SideRound): Promise<void> {
    const relay = (sr.relay = tmmFor(sr.side, { relay: { enabled: true, pollIntervalMs: 50 }, consumers: { enabled: false } }));
    const t1 = performance.now();
    await relay.start();
    await until(async () => ((await relay.outbox.countByStatus()).PENDING ?? 0) === 0, 'the relay to drain the outbox');
    await relay.dispatcher.flush();
    await journeyWritten(relay);
    sr.ms.relay = performance.now() - t1;
    await relay.stop({ closeTransport: false });
    await until(async () => (await transport.inspectQueue(sr.queue)).messageCount === N, 'all messages in the queue');
  }

  async function consumerPhase(sr: SideRound): Promise<Phase> {
    const consumer = sr.consumer!;
    const t2 = performance.now();
    await consumer.consumers.start();
    await until(() => sr.handled >= N, 'the consumer to handle every message');
    if (sr.side === 'journey') await until(() => consumer.journey!.stats.recorded >= N, 'the consumer to record every delivery');
    await journeyWritten(consumer);
    sr.ms.consumer = performance.now() - t2;
    if (sr.handled !== N) throw new Error(`bench: ${sr.handled} handled, expected ${N}`);
    await consumer.stop({ closeTransport: false });
    for (const t of [sr.producer!, sr.relay!, consumer]) {
      const j = t.stats().journey;
      if (j && j.dropped > 0) throw new Error(`bench: the journey dropped ${j.dropped} events`);
    }
    if (sr.side === 'journey') {
      const rows: { n: string }[] = await schemas.journey.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_journey WHERE step IN ('stored', 'published', 'delivered')`);
      const n = Number(rows[0].n) - journeyRows.journey;
      journeyRows.journey += n;
      if (n !== 3 * N) throw new Error(`bench: ${n} journey rows written, expected ${3 * N}`);
    }
    return { producer: N / (sr.ms.producer! / 1000), relay: N / (sr.ms.relay! / 1000), consumer: N / (sr.ms.consumer! / 1000) };
  }

  /** One round: each phase for the three sides in `order`, back to back. */
  async function oneRound(order: Side[], round_: number): Promise<Record<Side, Phase>> {
    const rounds = order.map((side) => sideRound(side, round_));
    for (const sr of rounds) await producerPhase(sr);
    await sleep(1100); // the producers' leases on their rows end
    for (const sr of rounds) await relayPhase(sr);
    const out = {} as Record<Side, Phase>;
    for (const sr of rounds) out[sr.side] = await consumerPhase(sr);
    return out;
  }

  const results: Record<Side, Phase[]> = { off: [], journey: [], tracing: [] };
  try {
    await transport.declare({ exchanges: [{ name: EXCHANGE, type: 'topic' }] });
    await oneRound(SIDES, -1); // warm-up, not counted
    for (let r = 0; r < ROUNDS; r++) {
      // Each side goes first, second and third equally often.
      const order = SIDES.map((_, i) => SIDES[(i + r) % SIDES.length]);
      const got = await oneRound(order, r);
      for (const side of SIDES) results[side].push(got[side]);
      const [j, t, o] = [got.journey, got.tracing, got.off];
      const f = (k: keyof Phase) => `${round(j[k], 0)}/${round(t[k], 0)}/${round(o[k], 0)}`;
      console.log(`round ${r + 1}: producer ${f('producer')} msg/s, relay ${f('relay')}, consumer ${f('consumer')} (journey/tracing/off)`);
    }
  } finally {
    await transport.remove({ queues, exchanges: [{ name: EXCHANGE, type: 'topic' }] }).catch(() => undefined);
    await transport.close();
    for (const side of SIDES) await schemas[side].dispose();
    await provider.shutdown();
  }
  load.push(loadavg()[0]);
  if (exporter.getFinishedSpans().length !== 0) throw new Error('bench: spans were recorded with sampling off');
  // Per round, the ratio of the two sides (same conditions), then the median of the ratios.
  const ratio = (on: Side, k: keyof Phase) => round(median(results[on].map((p, i) => p[k] / results.off[i][k])));
  const med = (side: Side, k: keyof Phase) => round(median(results[side].map((p) => p[k])), 0);
  const msgS = (k: keyof Phase) => ({ journey: med('journey', k), tracing: med('tracing', k), off: med('off', k) });
  console.log(
    JSON.stringify({
      bench: 'journey',
      producer_on_vs_off: ratio('journey', 'producer'),
      relay_on_vs_off: ratio('journey', 'relay'),
      consumer_on_vs_off: ratio('journey', 'consumer'),
      tracing_producer_on_vs_off: ratio('tracing', 'producer'),
      tracing_relay_on_vs_off: ratio('tracing', 'relay'),
      tracing_consumer_on_vs_off: ratio('tracing', 'consumer'),
      measures: '*_on_vs_off: journey.enabled (rows written within each phase) vs off; tracing_*: tracing on (SDK registered, AlwaysOffSampler) vs tracing: false',
      messages_per_round: N,
      rounds: ROUNDS,
      producer_msg_s: msgS('producer'),
      relay_msg_s: msgS('relay'),
      consumer_msg_s: msgS('consumer'),
      loadavg_1m: load.map((l) => round(l, 2)),
    }),
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
