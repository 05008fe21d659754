/**
 * The Transport port's contract (src/transport/Transport.ts), run unchanged against every adapter:
 * the in-memory transport, AmqpTransport on the local RabbitMQ (127.0.0.1:5672, guest/guest) and
 * NatsTransport on the local NATS JetStream (127.0.0.1:4222).
 * Each test works on its own randomly named exchanges and queues; the AMQP ones are deleted afterwards.
 * Where adapters legitimately differ, the test reads `transport.features` instead of the adapter name.
 */
import { randomUUID } from 'node:crypto';
import { PublishError, TopologyError, TransportClosedError } from '../../src/errors';
import { silentLogger } from '../../src/logging/Logger';
import { AmqpTransport } from '../../src/transport/amqp';
import { MemoryTransport } from '../../src/transport/memory/MemoryTransport';
import { NatsTransport } from '../../src/transport/nats';
import type { Delivery, DeliveryHandler, Headers, QueueSpec, Topology, Transport, TransportMessage } from '../../src/transport/Transport';

const AMQP_URL = process.env.TMM_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const NATS_URL = process.env.TMM_NATS_URL ?? 'nats://127.0.0.1:4222';

interface Adapter {
  name: string;
  /** A fresh transport; several created in one test share the same broker (where there is one). */
  create(): Transport;
  /** Deletes what a test declared on a broker that outlives the test. */
  cleanup(topology: Required<Topology>): Promise<void>;
  teardown(): Promise<void>;
}

const memoryAdapter = (): Adapter => ({
  name: 'MemoryTransport',
  create: () => new MemoryTransport(),
  cleanup: async () => undefined,
  teardown: async () => undefined,
});

const amqpAdapter = (): Adapter => {
  let admin: AmqpTransport | undefined;
  const create = () =>
    new AmqpTransport({ url: AMQP_URL, logger: silentLogger, confirmTimeoutMs: 5_000, connectionName: 'tmm-contract-test' });
  return {
    name: 'AmqpTransport',
    create,
    cleanup: async (topology) => {
      admin ??= create();
      await admin.remove(topology);
    },
    teardown: async () => {
      await admin?.close();
    },
  };
};

const natsAdapter = (): Adapter => {
  let admin: NatsTransport | undefined;
  const create = () => new NatsTransport({ servers: NATS_URL, logger: silentLogger, publishTimeoutMs: 5_000, leaseMs: 1_000, connectionName: 'tmm-contract-test' });
  return {
    name: 'NatsTransport',
    create,
    cleanup: async (topology) => {
      admin ??= create();
      await admin.remove(topology);
    },
    teardown: async () => {
      await admin?.close();
    },
  };
};

describe.each([memoryAdapter(), amqpAdapter(), natsAdapter()])('Transport contract: $name', (adapter) => {
  let transports: Transport[] = [];
  let created: Required<Topology> = { exchanges: [], queues: [] };
  let prefix = '';

  beforeEach(() => {
    prefix = `tmm-ct-${randomUUID().slice(0, 8)}`;
    transports = [];
    created = { exchanges: [], queues: [] };
  });

  afterEach(async () => {
    await Promise.all(transports.map((t) => t.close()));
    await adapter.cleanup(created);
  });

  afterAll(() => adapter.teardown());

  const open = (): Transport => {
    const t = adapter.create();
    transports.push(t);
    return t;
  };
  const exchangeName = (label: string): string => {
    const name = `${prefix}.${label}`;
    created.exchanges.push({ name });
    return name;
  };
  const queueName = (label: string): string => {
    const name = `${prefix}.${label}`;
    created.queues.push({ name });
    return name;
  };

  it('delivers a published message with its id, body, headers, content type, route and timestamp', async () => {
    const t = open();
    const ex = exchangeName('orders');
    const queue: QueueSpec = { name: queueName('billing'), bindings: [{ exchange: ex, routingKey: 'order.created' }] };
    await t.declare({ exchanges: [{ name: ex }] });
    const inbox = collect();
    await t.subscribe({ queue, prefetch: 10 }, inbox.handler);

    const headers: Headers = { 'x-tenant': 'acme', attempt: 3, big: 2 ** 40, ratio: 0.25, urgent: true, trace: null };
    const sent = message(ex, 'order.created', { headers, body: Buffer.from('{"orderId":42,"note":"ünïcödé"}') });
    await t.publish(sent);

    const [d] = await inbox.waitFor(1);
    expect(d.message.id).toBe(sent.id);
    expect(d.message.body.equals(sent.body)).toBe(true);
    expect(d.message.headers).toEqual(headers);
    expect(d.message.contentType).toBe('application/json');
    expect(d.message.exchange).toBe(ex);
    expect(d.message.routingKey).toBe('order.created');
    expect(d.queue).toBe(queue.name);
    expect(d.redelivered).toBe(false);
    // AMQP carries the timestamp in whole seconds.
    expect(Math.floor(d.message.timestamp / 1000)).toBe(Math.floor(sent.timestamp / 1000));
    await d.ack();
  });

  it('routes by topic bindings: * matches exactly one word, # matches zero or more', async () => {
    const t = open();
    const ex = exchangeName('events');
    await t.declare({ exchanges: [{ name: ex }] });
    const one = collect();
    const many = collect();
    const suffix = collect();
    await t.subscribe({ queue: { name: queueName('one'), bindings: [{ exchange: ex, routingKey: 'orders.*' }] }, prefetch: 10 }, one.handler);
    await t.subscribe({ queue: { name: queueName('many'), bindings: [{ exchange: ex, routingKey: 'orders.#' }] }, prefetch: 10 }, many.handler);
    await t.subscribe({ queue: { name: queueName('suffix'), bindings: [{ exchange: ex, routingKey: '*.created' }] }, prefetch: 10 }, suffix.handler);

    for (const key of ['orders.created', 'orders.eu.created', 'orders', 'users.created']) await t.publish(message(ex, key));

    const keys = async (c: Collector, n: number) => (await c.waitFor(n)).map((d) => d.message.routingKey).sort();
    expect(await keys(one, 1)).toEqual(['orders.created']);
    expect(await keys(many, 3)).toEqual(['orders', 'orders.created', 'orders.eu.created']);
    expect(await keys(suffix, 2)).toEqual(['orders.created', 'users.created']);
    await quiet();
    expect([one.received.length, many.received.length, suffix.received.length]).toEqual([1, 3, 2]);
  });

  it('rejects an unroutable publish with TMM_PUBLISH_UNROUTABLE and keeps publishing afterwards', async () => {
    const t = open();
    const ex = exchangeName('lonely');
    await t.declare({ exchanges: [{ name: ex }] });

    await expect(t.publish(message(ex, 'nobody.listens'))).rejects.toMatchObject({ name: 'PublishError', code: 'TMM_PUBLISH_UNROUTABLE' });
    // The default exchange routes by queue name; no such queue means no route.
    await expect(t.publish(message('', `${prefix}.no-such-queue`))).rejects.toMatchObject({ code: 'TMM_PUBLISH_UNROUTABLE' });
    // An exchange that does not exist cannot route either, and the error says which one.
    const missing = `${prefix}.missing-exchange`;
    const err = await t.publish(message(missing, 'k')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublishError);
    expect(err).toMatchObject({ code: 'TMM_PUBLISH_UNROUTABLE' });
    expect((err as Error).message).toContain(missing);

    const inbox = collect();
    await t.subscribe({ queue: { name: queueName('late'), bindings: [{ exchange: ex, routingKey: '#' }] }, prefetch: 1 }, inbox.handler);
    const sent = message(ex, 'nobody.listens');
    await t.publish(sent);
    expect((await inbox.waitFor(1))[0].message.id).toBe(sent.id);
  });

  it('delivers messages published one after another in publish order', async () => {
    const t = open();
    const ex = exchangeName('seq');
    await t.declare({ exchanges: [{ name: ex }] });
    const inbox = collect({ autoAck: true });
    await t.subscribe({ queue: { name: queueName('seq'), bindings: [{ exchange: ex, routingKey: 'seq' }] }, prefetch: 5 }, inbox.handler);

    const sent: string[] = [];
    for (let i = 0; i < 50; i++) {
      const m = message(ex, 'seq', { headers: { seq: i } });
      await t.publish(m);
      sent.push(m.id);
    }
    const got = await inbox.waitFor(50);
    expect(got.map((d) => d.message.id)).toEqual(sent);
  });

  it('hands out at most `prefetch` unsettled deliveries and the next one only after a settle', async () => {
    const t = open();
    const q = queueName('bounded');
    const inbox = collect();
    await t.subscribe({ queue: { name: q }, prefetch: 3 }, inbox.handler);
    for (let i = 0; i < 6; i++) await t.publish(message('', q, { headers: { seq: i } }));

    await inbox.waitFor(3);
    await quiet();
    expect(inbox.received).toHaveLength(3);

    await inbox.received[0].ack();
    await inbox.waitFor(4);
    await quiet();
    expect(inbox.received).toHaveLength(4);

    for (const d of inbox.received.slice(1)) await d.ack();
    const all = await inbox.waitFor(6);
    expect(all.map((d) => d.message.headers.seq)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('redelivers a message nacked with requeue, flagged redelivered', async () => {
    const t = open();
    const q = queueName('retry');
    const inbox = collect();
    await t.subscribe({ queue: { name: q }, prefetch: 1 }, inbox.handler);
    const sent = message('', q);
    await t.publish(sent);

    const [first] = await inbox.waitFor(1);
    expect(first.redelivered).toBe(false);
    await first.nack({ requeue: true });
    const [, second] = await inbox.waitFor(2);
    expect(second.message.id).toBe(sent.id);
    expect(second.redelivered).toBe(true);
    await second.ack();
  });

  it('nacks with requeue the delivery of a handler that throws', async () => {
    const t = open();
    const q = queueName('throws');
    const seen: Array<{ id: string; redelivered: boolean }> = [];
    const done = deferred();
    await t.subscribe({ queue: { name: q }, prefetch: 1 }, async (d) => {
      seen.push({ id: d.message.id, redelivered: d.redelivered });
      if (seen.length === 1) throw new Error('handler bug');
      await d.ack();
      done.resolve();
    });
    const sent = message('', q);
    await t.publish(sent);
    await within(done.promise, 'the thrown-on delivery to come back');
    expect(seen).toEqual([
      { id: sent.id, redelivered: false },
      { id: sent.id, redelivered: true },
    ]);
  });

  it('dead-letters a message nacked without requeue to the queue’s dead-letter exchange', async () => {
    const t = open();
    const dlx = exchangeName('dlx');
    await t.declare({ exchanges: [{ name: dlx }] });
    const work = queueName('work');
    const dead = collect();
    // Bound to the dead-letter routing key only: the message must be re-routed with that key.
    const dlq: QueueSpec = { name: queueName('dlq'), bindings: [{ exchange: dlx, routingKey: 'work.rejected' }] };
    await t.subscribe({ queue: dlq, prefetch: 1 }, dead.handler);
    const inbox = collect();
    await t.subscribe({ queue: { name: work, deadLetterExchange: dlx, deadLetterRoutingKey: 'work.rejected' }, prefetch: 1 }, inbox.handler);
    const sent = message('', work, { headers: { tenant: 'acme' } });
    await t.publish(sent);

    const [d] = await inbox.waitFor(1);
    await d.nack({ requeue: false });
    const [dl] = await dead.waitFor(1);
    expect(dl.message.id).toBe(sent.id);
    expect(dl.message.body.equals(sent.body)).toBe(true);
    expect(dl.message.headers).toMatchObject({ tenant: 'acme', 'x-first-death-queue': work, 'x-first-death-reason': 'rejected' });
    await dl.ack();
    await quiet();
    expect(inbox.received).toHaveLength(1);
  });

  it('dead-letters messages that stay unconsumed longer than the queue’s message TTL', async () => {
    const t = open();
    const dlx = exchangeName('ttl-dlx');
    const parked = queueName('parked');
    await t.declare({
      exchanges: [{ name: dlx }],
      queues: [{ name: parked, messageTtl: 150, deadLetterExchange: dlx }],
    });
    const expired = collect();
    await t.subscribe({ queue: { name: queueName('expired'), bindings: [{ exchange: dlx, routingKey: '#' }] }, prefetch: 5 }, expired.handler);
    const sent = message('', parked);
    const publishedAt = Date.now();
    await t.publish(sent);

    const [d] = await expired.waitFor(1, 5_000);
    expect(Date.now() - publishedAt).toBeGreaterThanOrEqual(140);
    expect(d.message.id).toBe(sent.id);
    expect(d.message.routingKey).toBe(parked);
    expect(d.message.headers).toMatchObject({ 'x-first-death-queue': parked, 'x-first-death-reason': 'expired' });
    await d.ack();
  });

  it('declares idempotently and rejects a conflicting redeclare with a TopologyError naming the queue or exchange', async () => {
    const t = open();
    const ex = exchangeName('idem');
    const q = queueName('idem');
    const dlx = exchangeName('idem-dlx');
    const topology: Topology = {
      exchanges: [{ name: ex }, { name: dlx }],
      queues: [{ name: q, messageTtl: 60_000, deadLetterExchange: dlx, bindings: [{ exchange: ex, routingKey: 'a.#' }] }],
    };
    await t.declare(topology);
    await t.declare(topology);

    const conflict = await t.declare({ queues: [{ name: q, messageTtl: 30_000, deadLetterExchange: dlx }] }).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(TopologyError);
    expect(conflict).toMatchObject({ code: 'TMM_TOPOLOGY' });
    expect((conflict as Error).message).toContain(`"${q}"`);

    const exConflict = await t.declare({ exchanges: [{ name: ex, type: 'fanout' }] }).catch((e: unknown) => e);
    expect(exConflict).toBeInstanceOf(TopologyError);
    expect((exConflict as Error).message).toContain(`"${ex}"`);

    // The conflict is the caller's; the transport keeps working.
    const inbox = collect();
    await t.subscribe({ queue: topology.queues![0], prefetch: 1 }, inbox.handler);
    const sent = message(ex, 'a.b');
    await t.publish(sent);
    expect((await inbox.waitFor(1))[0].message.id).toBe(sent.id);
  });

  it('feeds a single-active-consumer quorum queue to one subscriber at a time', async () => {
    const t = open();
    const q: QueueSpec = { name: queueName('sac'), type: 'quorum', singleActiveConsumer: true };
    const first = collect({ autoAck: true });
    const second = collect({ autoAck: true });
    const firstSub = await t.subscribe({ queue: q, prefetch: 10 }, first.handler);
    await t.subscribe({ queue: q, prefetch: 10 }, second.handler);
    for (let i = 0; i < 10; i++) await t.publish(message('', q.name, { headers: { seq: i } }));
    await first.waitFor(10);
    await quiet();
    expect(second.received).toHaveLength(0);
    expect(first.received.map((d) => d.message.headers.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    await firstSub.cancel();
    const next = message('', q.name);
    await t.publish(next);
    expect((await second.waitFor(1))[0].message.id).toBe(next.id);

    const asClassic = await t.declare({ queues: [{ name: q.name, singleActiveConsumer: true }] }).catch((e: unknown) => e);
    expect(asClassic).toBeInstanceOf(TopologyError);
    expect((asClassic as Error).message).toContain(`"${q.name}"`);
  });

  it('stops deliveries on subscription.cancel() and leaves later messages on the queue', async () => {
    const t = open();
    const q = queueName('cancel');
    const first = collect({ autoAck: true });
    const sub = await t.subscribe({ queue: { name: q }, prefetch: 5 }, first.handler);
    await t.publish(message('', q));
    await first.waitFor(1);
    await sub.cancel();

    const later = message('', q);
    await t.publish(later);
    await quiet();
    expect(first.received).toHaveLength(1);

    const second = collect({ autoAck: true });
    await t.subscribe({ queue: { name: q }, prefetch: 5 }, second.handler);
    expect((await second.waitFor(1))[0].message.id).toBe(later.id);
  });

  it('settles deliveries after cancel(): a nacked one comes back at once, the acked ones never (a consumer’s graceful stop)', async () => {
    // What ConsumerRunner.stop() does: cancel, give back what was not handled, ack what was, then a new
    // subscription takes over. On NATS 2.9 a give-back while the cancelled subscription's pull requests
    // still wait on the server made the server drop the nacked message until ackWait and deliver the
    // last acked one again (nats-server#5305, #5338); the subscription's cancel() must prevent that.
    const t = open();
    const q = queueName('stop');
    const held = collect();
    const sub = await t.subscribe({ queue: { name: q }, prefetch: 8 }, held.handler);
    const sent = Array.from({ length: 4 }, (_, i) => message('', q, { headers: { seq: i } }));
    for (const m of sent) await t.publish(m);
    await held.waitFor(4);
    await quiet(); // the subscription asks for more while four are in hand
    await sub.cancel();
    await held.received[0].nack({ requeue: true });
    for (const d of held.received.slice(1)) await d.ack();

    const next = collect({ autoAck: true });
    await t.subscribe({ queue: { name: q }, prefetch: 8 }, next.handler);
    const [back] = await next.waitFor(1, 3_000);
    expect([back.message.id, back.redelivered]).toEqual([sent[0].id, true]);
    await quiet(500);
    expect(next.received.map((d) => d.message.headers.seq)).toEqual([0]);
    expect(held.received).toHaveLength(4);
  });

  it('keeps messages and unsettled deliveries beyond the transport’s life only when durable', async () => {
    const q = queueName('durable');
    const t1 = open();
    const held = collect();
    await t1.subscribe({ queue: { name: q }, prefetch: 1 }, held.handler);
    const unsettled = message('', q);
    const waiting = message('', q);
    await t1.publish(unsettled);
    await t1.publish(waiting);
    await held.waitFor(1);
    await t1.close();

    const t2 = open();
    const inbox = collect({ autoAck: true });
    await t2.subscribe({ queue: { name: q }, prefetch: 5 }, inbox.handler);
    if (t2.features.durable) {
      const got = await inbox.waitFor(2);
      expect(got.map((d) => [d.message.id, d.redelivered])).toEqual([
        [unsettled.id, true],
        [waiting.id, false],
      ]);
    } else {
      await quiet();
      expect(inbox.received).toHaveLength(0);
    }
  });

  it('rejects every call after close() with TransportClosedError; close() is idempotent', async () => {
    const t = open();
    const q = queueName('closed');
    const inbox = collect();
    await t.subscribe({ queue: { name: q }, prefetch: 1 }, inbox.handler);
    await t.close();
    await t.close();

    await expect(t.publish(message('', q))).rejects.toBeInstanceOf(TransportClosedError);
    await expect(t.declare({ queues: [{ name: q }] })).rejects.toBeInstanceOf(TransportClosedError);
    await expect(t.subscribe({ queue: { name: q }, prefetch: 1 }, inbox.handler)).rejects.toBeInstanceOf(TransportClosedError);
    await expect(t.close()).resolves.toBeUndefined();
    expect(inbox.received).toHaveLength(0);
  });
});

// ---- helpers ----

function message(exchange: string, routingKey: string, over: Partial<TransportMessage> = {}): TransportMessage {
  return {
    id: randomUUID(),
    exchange,
    routingKey,
    body: Buffer.from(JSON.stringify({ at: Date.now() })),
    headers: {},
    contentType: 'application/json',
    timestamp: Date.now(),
    ...over,
  };
}

interface Collector {
  readonly received: Delivery[];
  handler: DeliveryHandler;
  /** Resolves with all deliveries once at least n arrived; fails the test after timeoutMs. */
  waitFor(n: number, timeoutMs?: number): Promise<Delivery[]>;
}

function collect(options: { autoAck?: boolean } = {}): Collector {
  const received: Delivery[] = [];
  let wake: () => void = () => undefined;
  return {
    received,
    handler: async (d) => {
      received.push(d);
      wake();
      if (options.autoAck) await d.ack();
    },
    async waitFor(n, timeoutMs = 5_000) {
      const until = Date.now() + timeoutMs;
      while (received.length < n) {
        if (Date.now() > until) throw new Error(`expected ${n} deliveries within ${timeoutMs}ms, got ${received.length}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 20);
        });
      }
      return received;
    },
  };
}

/** Long enough for a broker round trip: a delivery that should not come would have come by then. */
function quiet(ms = 250): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

async function within<T>(p: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
