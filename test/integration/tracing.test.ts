/**
 * Traces through the outbox, on the local RabbitMQ and PostgreSQL, with the OpenTelemetry SDK's in-memory
 * exporter: one trace from the producer's span (this process) through the relay and the consumer (a worker
 * process), the spans of a retried and dead-lettered message, and no trace headers when tracing is off.
 * What went on the wire is read with a raw amqplib client bound to the test's exchange; what was stored
 * with SQL on tmm_outbox.
 */
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import * as amqp from 'amqplib';
import { randomUUID } from 'node:crypto';
import { Consumer } from 'tmm/decorators';
import { type ConsumeContext, type Delivery, Tmm, deadLetterQueueSpec } from '../../src/internal';
import { LedgerPosted } from '../support/contracts';
import { ConsumerTestEnv, QueueReader, uniquePrefix, waitUntil } from '../support/consumers';
import { FixtureProcess, killFixtures } from '../support/fixtureProcess';
import { type SpanJson, type TestTracing, installTracing } from '../support/tracing';

const AMQP_URL = process.env.TMM_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

/** A raw client's exclusive queue bound to `exchange` with `#`: every message that reached the broker. */
class WireTap {
  readonly messages: amqp.ConsumeMessage[] = [];
  private constructor(private readonly connection: amqp.ChannelModel) {}

  static async on(exchange: string): Promise<WireTap> {
    const connection = await amqp.connect(AMQP_URL);
    const tap = new WireTap(connection);
    const ch = await connection.createChannel();
    await ch.assertExchange(exchange, 'topic', { durable: true });
    const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
    await ch.bindQueue(queue, exchange, '#');
    await ch.consume(queue, (m) => m && tap.messages.push(m), { noAck: true });
    return tap;
  }

  byRoutingKey(key: string): amqp.ConsumeMessage[] {
    return this.messages.filter((m) => m.fields.routingKey === key);
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}

async function deleteExchange(exchange: string, queues: string[]): Promise<void> {
  const connection = await amqp.connect(AMQP_URL);
  try {
    const ch = await connection.createChannel();
    for (const q of queues) await ch.deleteQueue(q);
    await ch.deleteExchange(exchange);
  } finally {
    await connection.close();
  }
}

const parse = (traceparent: unknown) => {
  const m = TRACEPARENT.exec(String(traceparent));
  if (!m) throw new Error(`not a W3C traceparent: ${String(traceparent)}`);
  return { traceId: m[1], spanId: m[2] };
};
const one = (spans: SpanJson[], what: string, match: (s: SpanJson) => boolean): SpanJson => {
  const found = spans.filter(match);
  if (found.length !== 1) throw new Error(`expected one ${what} span, found ${found.length}: ${JSON.stringify(spans.map((s) => s.name))}`);
  return found[0];
};

async function storedHeaders(tmm: Tmm, id: string): Promise<Record<string, unknown>> {
  const rows = (await tmm.dataSource.query('SELECT headers FROM tmm_outbox WHERE id = $1', [id])) as { headers: string }[];
  if (rows.length !== 1) throw new Error(`outbox row ${id} not found`);
  return JSON.parse(rows[0].headers) as Record<string, unknown>;
}

/** A producer-only Tmm: its fast path is stopped, so its rows wait (1 s lease) for a relay elsewhere. */
async function producerOnly(env: ConsumerTestEnv, tracing: boolean | 'auto'): Promise<Tmm> {
  const tmm = await env.start([], { tracing, transport: 'memory', producer: { leaseMs: 1000 } });
  await tmm.dispatcher.stop();
  return tmm;
}

describe('tracing through the outbox (RabbitMQ, PostgreSQL)', () => {
  let env: ConsumerTestEnv;
  let tracing: TestTracing;
  let prefix: string;

  beforeAll(async () => {
    env = await ConsumerTestEnv.create('postgres', 'amqp');
    tracing = installTracing();
  });
  afterAll(async () => {
    await tracing?.shutdown();
    await env?.dispose();
  });
  beforeEach(() => {
    prefix = uniquePrefix('trace');
    tracing.exporter.reset();
  });
  afterEach(async () => {
    await killFixtures();
    await env.cleanup();
  });

  it('one trace: the send span in the transaction, the relay publish and the consumer in another process, and the follow-up it sends', async () => {
    const schema = (env.db.dataSource.options as { schema?: string }).schema!;
    const producer = await producerOnly(env, 'auto');
    const worker = FixtureProcess.spawn('traced-worker.ts', {
      TMM_FIXTURE_SCHEMA: schema,
      TMM_FIXTURE_AMQP_URL: AMQP_URL,
      TMM_FIXTURE_CONNECTION_NAME: `${prefix}-worker`,
      TMM_FIXTURE_EXCHANGE: prefix,
    });
    let tap: WireTap | undefined;
    try {
      await worker.waitFor((e) => e.event === 'ready', 'ready', 30_000);
      tap = await WireTap.on(prefix);

      // The business transaction, inside the app's own span (an HTTP request, say).
      let id = '';
      await trace.getTracer('app').startActiveSpan('POST /entries', async (span) => {
        id = await producer.transactions.run(() => producer.producer.send(LedgerPosted.of('e-1', 5), { exchange: prefix, routingKey: 'work' }));
        span.end();
      });
      const stored = await storedHeaders(producer, id);

      const here = tracing.spans();
      const http = one(here, 'app', (s) => s.name === 'POST /entries');
      const send = one(here, 'send', (s) => s.name === `send ${prefix}`);
      expect(send).toMatchObject({ kind: SpanKind.PRODUCER, traceId: http.traceId, parentSpanId: http.spanId });
      expect(send.attributes).toMatchObject({
        'messaging.system': 'tmm-memory', // this producer's transport; the worker's relay publishes to RabbitMQ
        'messaging.destination.name': prefix,
        'messaging.rabbitmq.destination.routing_key': 'work',
        'messaging.message.id': id,
        'messaging.message.conversation_id': id,
        'messaging.operation.type': 'create',
      });
      // The context is stored with the row, for the relay to pick up later.
      expect(parse(stored.traceparent)).toEqual({ traceId: http.traceId, spanId: send.spanId });
      expect(stored['tmm-correlation-id']).toBe(id);

      const handled = await worker.waitFor((e) => e.event === 'handled', 'the consumer to handle the message', 30_000);
      expect(handled).toMatchObject({ messageId: id, correlationId: id });
      await waitUntil(() => tap!.byRoutingKey('followup').length === 1, 'the follow-up on the wire');
      worker.child.kill('SIGTERM');
      const theirs = (await worker.waitFor((e) => e.event === 'spans', 'the worker to report its spans')).spans as SpanJson[];

      const publish = one(theirs, 'publish of the first message', (s) => s.name === `publish ${prefix}` && s.attributes['messaging.message.id'] === id);
      expect(publish).toMatchObject({ kind: SpanKind.PRODUCER, traceId: http.traceId, parentSpanId: send.spanId, links: [{ traceId: http.traceId, spanId: send.spanId }] });
      expect(publish.attributes).toMatchObject({ 'messaging.system': 'rabbitmq', 'messaging.rabbitmq.destination.routing_key': 'work', 'messaging.message.conversation_id': id });

      // On the wire: the W3C context of the publish span.
      const [wire] = tap.byRoutingKey('work');
      expect(wire.properties.messageId).toBe(id);
      expect(parse(wire.properties.headers!.traceparent)).toEqual({ traceId: http.traceId, spanId: publish.spanId });
      expect(wire.properties.headers!['tmm-correlation-id']).toBe(id);

      const process_ = one(theirs, 'process', (s) => s.name === `process ${prefix}.work`);
      expect(process_).toMatchObject({ kind: SpanKind.CONSUMER, traceId: http.traceId, parentSpanId: publish.spanId, status: SpanStatusCode.UNSET });
      expect(process_.attributes).toMatchObject({
        'messaging.system': 'rabbitmq',
        'messaging.destination.name': prefix,
        'messaging.rabbitmq.destination.routing_key': 'work',
        'messaging.message.id': id,
        'messaging.message.conversation_id': id,
        'messaging.consumer.group.name': `${prefix}.work`,
        'tmm.consume.attempt': 1,
      });
      expect(process_.events.map((e) => e.name)).toEqual(['tmm.inbox.claimed', 'tmm.handler.completed']);

      // The handler's follow-up: sent inside the process span, same trace, same correlation id.
      const followSend = one(theirs, 'send of the follow-up', (s) => s.name === `send ${prefix}` && s.attributes['messaging.rabbitmq.destination.routing_key'] === 'followup');
      expect(followSend).toMatchObject({ traceId: http.traceId, parentSpanId: process_.spanId });
      expect(followSend.attributes['messaging.message.conversation_id']).toBe(id);
      const [followWire] = tap.byRoutingKey('followup');
      expect(followWire.properties.headers!['tmm-correlation-id']).toBe(id);
      expect(parse(followWire.properties.headers!.traceparent).traceId).toBe(http.traceId);
      expect((await worker.exited).code).toBe(0);
    } finally {
      await tap?.close();
      await deleteExchange(prefix, [`${prefix}.work`, `${prefix}.work.dlq`]).catch(() => undefined);
    }
  });

  it('a retried, then dead-lettered message: one process span per attempt, with the error, the retry and the dead letter as events', async () => {
    class Failing {
      @Consumer({ queue: `${prefix}.fail`, exchange: prefix, routingKey: 'work', retry: { maxAttempts: 2, delays: [100] } })
      async handle(_entry: LedgerPosted, _ctx: ConsumeContext): Promise<void> {
        throw new Error('ledger is closed');
      }
    }
    const t = env.transport();
    const tmm = await env.start([new Failing()], { tracing: true, relay: { enabled: true, pollIntervalMs: 100 } }, t);
    let id = '';
    await trace.getTracer('app').startActiveSpan('job', async (span) => {
      id = await tmm.transactions.run(() => tmm.producer.send(LedgerPosted.of('e-2', 7), { exchange: prefix, routingKey: 'work' }));
      span.end();
    });
    const reader = await QueueReader.start(t, deadLetterQueueSpec(tmm.consumers.definitions[0]));
    let dead: Delivery[];
    try {
      dead = await reader.waitFor(1, 'the dead-letter queue');
    } finally {
      await reader.stop();
    }
    await waitUntil(() => tracing.spans().filter((s) => s.name.startsWith('process ')).length === 2, 'two process spans');
    const spans = tracing.spans();
    const job = one(spans, 'job', (s) => s.name === 'job');
    const publish = one(spans, 'publish', (s) => s.name === `publish ${prefix}`);
    expect(publish).toMatchObject({ traceId: job.traceId });
    const attempts = spans.filter((s) => s.name === `process ${prefix}.fail`).sort((a, b) => Number(a.attributes['tmm.consume.attempt']) - Number(b.attributes['tmm.consume.attempt']));
    expect(attempts.map((s) => s.attributes['tmm.consume.attempt'])).toEqual([1, 2]);
    for (const s of attempts) {
      // Both continue the trace: the retry copy carries the headers of the delivery it copies.
      expect(s).toMatchObject({ traceId: job.traceId, parentSpanId: publish.spanId, status: SpanStatusCode.ERROR });
      expect(s.attributes).toMatchObject({ 'error.type': 'Error', 'messaging.message.id': id });
    }
    expect(attempts[0].events.map((e) => e.name)).toEqual(['exception', 'tmm.retry']);
    expect(attempts[0].events[1].attributes).toMatchObject({ 'tmm.delay_ms': 100, 'tmm.queue': `${prefix}.fail.retry.100ms` });
    expect(attempts[1].events.map((e) => e.name)).toEqual(['exception', 'tmm.dead_letter']);
    expect(attempts[1].events[1].attributes).toMatchObject({ 'tmm.dead_letter.reason': 'max-attempts', 'tmm.queue': `${prefix}.fail.dlq` });
    expect(attempts[1].events[0].attributes['exception.message']).toBe('ledger is closed');
    // The dead letter keeps the trace context and the correlation id, for whoever looks at it later.
    expect(dead[0].message.id).toBe(id);
    expect(parse(dead[0].message.headers.traceparent)).toEqual({ traceId: job.traceId, spanId: publish.spanId });
    expect(dead[0].message.headers['tmm-correlation-id']).toBe(id);
  });

  it('tracing off (an SDK registered, tracing: false): no spans, no trace headers stored or on the wire; the correlation id still travels', async () => {
    const received: ConsumeContext[] = [];
    class Quiet {
      @Consumer({ queue: `${prefix}.quiet`, exchange: prefix, routingKey: 'work' })
      async handle(_entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        received.push(ctx);
      }
    }
    const producer = await producerOnly(env, false);
    const tap = await WireTap.on(prefix);
    try {
      const relayAndConsumer = await env.start([new Quiet()], { tracing: false, relay: { enabled: true, pollIntervalMs: 100 } });
      const correlationId = randomUUID();
      let id = '';
      await trace.getTracer('app').startActiveSpan('POST /quiet', async (span) => {
        id = await producer.transactions.run(() =>
          producer.producer.send(LedgerPosted.of('e-3', 1), { exchange: prefix, routingKey: 'work', headers: { 'tmm-correlation-id': correlationId } }),
        );
        span.end();
      });
      const stored = await storedHeaders(producer, id);
      expect(Object.keys(stored).filter((k) => k === 'traceparent' || k === 'tracestate')).toEqual([]);
      expect(stored['tmm-correlation-id']).toBe(correlationId);
      // The handler ran (received) before its transaction committed; the runner counts it as handled after the ack.
      await waitUntil(() => received.length === 1 && tap.messages.length === 1 && relayAndConsumer.consumers.stats.handled >= 1, 'the message consumed and on the wire');
      const headers = tap.messages[0].properties.headers!;
      expect(headers.traceparent).toBeUndefined();
      expect(headers.tracestate).toBeUndefined();
      expect(headers['tmm-correlation-id']).toBe(correlationId);
      expect(received[0].headers['tmm-correlation-id']).toBe(correlationId);
      expect(relayAndConsumer.consumers.stats.handled).toBe(1);
      expect(tracing.spans().map((s) => s.name)).toEqual(['POST /quiet']);
    } finally {
      await tap.close();
    }
  });
});
