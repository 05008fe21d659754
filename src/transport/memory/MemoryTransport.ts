import { PublishError, TopologyError, TransportClosedError } from '../../errors';
import { Fifo } from '../../collections/Fifo';
import { Logger, silentLogger } from '../../logging/Logger';
import {
  Delivery,
  DeliveryHandler,
  ExchangeSpec,
  QueueSpec,
  SubscribeOptions,
  Subscription,
  Topology,
  Transport,
  TransportFeatures,
  TransportMessage,
  topicMatches,
} from '../Transport';

interface QueuedMessage {
  message: TransportMessage;
  redelivered: boolean;
  enqueuedAt: number;
}

interface Consumer {
  prefetch: number;
  unsettled: number;
  handler: DeliveryHandler;
  active: boolean;
}

/** What ack()/nack() return: settling is synchronous here; one shared, already resolved promise. */
const DONE: Promise<void> = Promise.resolve();

class MemoryQueue {
  readonly ready = new Fifo<QueuedMessage>();
  readonly consumers: Consumer[] = [];
  next = 0;
  /** A pump is queued (one microtask serves every message enqueued or slot freed before it runs). */
  pumpQueued = false;
  constructor(readonly spec: QueueSpec) {}
}

/**
 * An in-process broker with AMQP semantics (topic exchanges, queues, bindings, prefetch, ack/nack,
 * dead-lettering, TTL), for users' own tests and the zero-setup demo. Not durable: everything is lost
 * with the process. Publishes are "confirmed" once routed to every matching queue.
 */
export class MemoryTransport implements Transport {
  readonly features: TransportFeatures = { durable: false, confirms: false };

  /** @param logger where a handler that throws is reported (its delivery is requeued). */
  constructor(private readonly logger: Logger = silentLogger) {}
  private readonly exchanges = new Map<string, ExchangeSpec>();
  private readonly queues = new Map<string, MemoryQueue>();
  /**
   * route()'s answers by exchange, then routing key; emptied whenever the topology changes (and past 10,000 keys).
   * Two lookups by the message's own strings (whose hashes V8 keeps), not one by a key concatenated per publish
   * (a new string to flatten and hash every time).
   */
  private readonly routes = new Map<string, Map<string, MemoryQueue[]>>();
  private routeCount = 0;
  private closed = false;

  /** In process: connected until closed. */
  get isConnected(): boolean {
    return !this.closed;
  }
  private ttlTimer: NodeJS.Timeout | undefined;

  async declare(topology: Topology): Promise<void> {
    this.assertOpen('declare');
    this.clearRoutes();
    for (const ex of topology.exchanges ?? []) {
      const existing = this.exchanges.get(ex.name);
      if (existing && (existing.type ?? 'topic') !== (ex.type ?? 'topic')) {
        throw new TopologyError(`exchange "${ex.name}" already exists with type ${existing.type ?? 'topic'}, not ${ex.type ?? 'topic'}`);
      }
      this.exchanges.set(ex.name, ex);
    }
    for (const q of topology.queues ?? []) this.declareQueue(q);
  }

  private declareQueue(spec: QueueSpec): MemoryQueue {
    this.clearRoutes(); // a new queue or binding may change where messages go
    const existing = this.queues.get(spec.name);
    if (existing) {
      const a = existing.spec;
      const diffs = (['type', 'deadLetterExchange', 'deadLetterRoutingKey', 'messageTtl', 'singleActiveConsumer'] as const).filter(
        (k) => normalize(k, a[k]) !== normalize(k, spec[k]),
      );
      if (diffs.length > 0) {
        throw new TopologyError(`queue "${spec.name}" already exists with different ${diffs.join(', ')}`);
      }
      for (const b of spec.bindings ?? []) {
        if (!a.bindings?.some((x) => x.exchange === b.exchange && x.routingKey === b.routingKey)) {
          a.bindings = [...(a.bindings ?? []), b];
        }
      }
      return existing;
    }
    const queue = new MemoryQueue({ ...spec, bindings: [...(spec.bindings ?? [])] });
    this.queues.set(spec.name, queue);
    for (const b of spec.bindings ?? []) if (b.exchange && !this.exchanges.has(b.exchange)) this.exchanges.set(b.exchange, { name: b.exchange });
    if (spec.messageTtl !== undefined) this.ensureTtlTimer();
    return queue;
  }

  /** Not an async function: a routed message costs no promise of its own (the shared settled one is returned). */
  publish(message: TransportMessage): Promise<void> {
    try {
      this.assertOpen(`publish ${message.id}`);
      const targets = this.route(message.exchange, message.routingKey);
      if (targets.length === 0) {
        throw new PublishError(
          'TMM_PUBLISH_UNROUTABLE',
          `message ${message.id} to exchange "${message.exchange}" with routing key "${message.routingKey}" was not routed to any queue`,
        );
      }
      for (const q of targets) this.enqueue(q, { message: cloneMessage(message), redelivered: false, enqueuedAt: Date.now() });
      return DONE;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private route(exchange: string, routingKey: string): MemoryQueue[] {
    let byKey = this.routes.get(exchange);
    if (byKey === undefined) this.routes.set(exchange, (byKey = new Map()));
    let targets = byKey.get(routingKey);
    if (targets === undefined) {
      if (this.routeCount >= 10_000) {
        this.clearRoutes();
        this.routes.set(exchange, (byKey = new Map()));
      }
      targets = this.computeRoute(exchange, routingKey);
      byKey.set(routingKey, targets);
      this.routeCount++;
    }
    return targets;
  }

  private clearRoutes(): void {
    this.routes.clear();
    this.routeCount = 0;
  }

  private computeRoute(exchange: string, routingKey: string): MemoryQueue[] {
    if (exchange === '') {
      const q = this.queues.get(routingKey);
      return q ? [q] : [];
    }
    const type = this.exchanges.get(exchange)?.type ?? 'topic';
    const out: MemoryQueue[] = [];
    for (const q of this.queues.values()) {
      const hit = q.spec.bindings?.some(
        (b) =>
          b.exchange === exchange &&
          (type === 'fanout' || (type === 'direct' ? b.routingKey === routingKey : topicMatches(b.routingKey, routingKey))),
      );
      if (hit) out.push(q);
    }
    return out;
  }

  private enqueue(queue: MemoryQueue, item: QueuedMessage): void {
    queue.ready.push(item);
    this.pump(queue);
  }

  private deadLetter(queue: MemoryQueue, item: QueuedMessage, reason: 'rejected' | 'expired'): void {
    const dlx = queue.spec.deadLetterExchange;
    if (dlx === undefined) return;
    const routingKey = queue.spec.deadLetterRoutingKey ?? item.message.routingKey;
    const headers = { ...item.message.headers, 'x-first-death-queue': queue.spec.name, 'x-first-death-reason': reason };
    for (const q of this.route(dlx, routingKey)) {
      // As in RabbitMQ, a dead letter travels with the dead-letter exchange and routing key.
      this.enqueue(q, { message: { ...item.message, exchange: dlx, routingKey, headers }, redelivered: false, enqueuedAt: Date.now() });
    }
  }

  /** Hands ready messages to consumers with free prefetch slots, round robin (single active: the first). */
  private pump(queue: MemoryQueue): void {
    if (queue.pumpQueued) return;
    queue.pumpQueued = true;
    queueMicrotask(() => {
      queue.pumpQueued = false;
      while (queue.ready.length > 0) {
        // Every consumer active (the usual case): pick among them without building a list per message.
        const all = queue.consumers;
        let allActive = true;
        for (let i = 0; i < all.length; i++) if (!all[i].active) allActive = false;
        const live = allActive ? all : all.filter((c) => c.active);
        const n = queue.spec.singleActiveConsumer ? Math.min(1, live.length) : live.length;
        let consumer: Consumer | undefined;
        for (let i = 0; i < n; i++) {
          const c = live[(queue.next + i) % n];
          if (c.unsettled < c.prefetch) {
            consumer = c;
            queue.next = (queue.next + i + 1) % n;
            break;
          }
        }
        if (!consumer) return;
        const item = queue.ready.shift()!;
        this.deliver(queue, consumer, item);
      }
    });
  }

  private deliver(queue: MemoryQueue, consumer: Consumer, item: QueuedMessage): void {
    consumer.unsettled++;
    let settled = false;
    const settle = (fn: () => void): Promise<void> => {
      if (settled) return DONE;
      settled = true;
      consumer.unsettled--;
      fn();
      // A freed slot matters only to a message that is waiting; one enqueued later pumps by itself.
      if (queue.ready.length > 0) this.pump(queue);
      return DONE;
    };
    const delivery: Delivery = {
      message: cloneMessage(item.message),
      queue: queue.spec.name,
      redelivered: item.redelivered,
      ack: () => settle(() => undefined),
      nack: ({ requeue }) =>
        settle(() => {
          if (requeue) {
            queue.ready.unshift({ ...item, redelivered: true });
          } else {
            this.deadLetter(queue, item, 'rejected');
          }
        }),
    };
    const failed = (e: unknown): Promise<void> => {
      this.logger.error('delivery handler threw; message requeued (handlers must settle their deliveries)', { queue: queue.spec.name, id: item.message.id, error: e });
      return delivery.nack({ requeue: true });
    };
    // On a later microtask, as a broker's delivery would come; a promise only when the handler returns one.
    queueMicrotask(() => {
      let r: unknown;
      try {
        r = consumer.handler(delivery);
      } catch (e) {
        void failed(e);
        return;
      }
      // ack()/nack()'s own settled promise (a handler that returns `d.ack()`) cannot reject: nothing to watch.
      if (r !== DONE && r !== null && typeof r === 'object' && typeof (r as { then?: unknown }).then === 'function') (r as Promise<unknown>).then(undefined, failed);
    });
  }

  async subscribe(options: SubscribeOptions, handler: DeliveryHandler): Promise<Subscription> {
    this.assertOpen(`subscribe ${options.queue.name}`);
    if (!Number.isInteger(options.prefetch) || options.prefetch < 1) {
      throw new TopologyError(`subscription to queue "${options.queue.name}": prefetch must be an integer ≥ 1, got ${options.prefetch}`);
    }
    const queue = this.declareQueue(options.queue);
    const consumer: Consumer = { prefetch: options.prefetch, unsettled: 0, handler, active: true };
    queue.consumers.push(consumer);
    this.pump(queue);
    return {
      cancel: async () => {
        consumer.active = false;
        const i = queue.consumers.indexOf(consumer);
        if (i >= 0) queue.consumers.splice(i, 1);
        this.pump(queue);
      },
    };
  }

  /** Number of messages waiting in a queue (not counting unsettled ones); for tests. */
  depth(queue: string): number {
    return this.queues.get(queue)?.ready.length ?? 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.ttlTimer) clearInterval(this.ttlTimer);
    for (const q of this.queues.values()) for (const c of q.consumers) c.active = false;
  }

  private ensureTtlTimer(): void {
    if (this.ttlTimer) return;
    this.ttlTimer = setInterval(() => {
      const now = Date.now();
      for (const q of this.queues.values()) {
        const ttl = q.spec.messageTtl;
        if (ttl === undefined) continue;
        // Like RabbitMQ, only messages at the head of the queue expire.
        while (q.ready.length > 0 && now - q.ready.peek()!.enqueuedAt >= ttl) this.deadLetter(q, q.ready.shift()!, 'expired');
      }
    }, 10);
    this.ttlTimer.unref();
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new TransportClosedError(what);
  }
}

/** Leaving an option out means its default, as when RabbitMQ compares queue arguments. */
function normalize(key: keyof QueueSpec, value: unknown): unknown {
  if (key === 'type') return value ?? 'classic';
  if (key === 'singleActiveConsumer') return value ?? false;
  return value ?? undefined;
}

function cloneMessage(m: TransportMessage): TransportMessage {
  // Field by field (a spread of the message is several times slower per publish); the optional ones when set.
  const headers: TransportMessage['headers'] = {};
  for (const k in m.headers) headers[k] = m.headers[k];
  const c: TransportMessage = { id: m.id, exchange: m.exchange, routingKey: m.routingKey, body: Buffer.from(m.body), headers, contentType: m.contentType, timestamp: m.timestamp };
  if (m.type !== undefined) c.type = m.type;
  if (m.appId !== undefined) c.appId = m.appId;
  if (m.correlationId !== undefined) c.correlationId = m.correlationId;
  return c;
}
