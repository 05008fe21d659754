/** Header values as both transports carry them. */
export type HeaderValue = string | number | boolean | null;
export type Headers = Record<string, HeaderValue>;

/** One message on the wire. `body` is the serialized payload (JSON text for contracts). */
export interface TransportMessage {
  /** The tmm message id (UUIDv7); carried as the AMQP `messageId`. */
  id: string;
  /** Exchange to publish to; `''` is the default exchange, which routes to the queue named by `routingKey`. */
  exchange: string;
  routingKey: string;
  body: Buffer;
  headers: Headers;
  /** MIME type of `body`, `application/json` for contracts. */
  contentType: string;
  /** Creation time, epoch milliseconds. */
  timestamp: number;
  /** AMQP `type`: the topic. On publish, default: the `tmm-topic` header. Set on receipt when the message has one. */
  type?: string;
  /** AMQP `app_id`: the publishing service. On publish, default: the transport's `appId`. */
  appId?: string;
  /** AMQP `correlation_id`. On publish, default: the `tmm-correlation-id` header, else the message id. */
  correlationId?: string;
}

/** A binding from an exchange to a queue. Routing keys follow AMQP topic rules (`*` one word, `#` zero or more). */
export interface BindingSpec {
  exchange: string;
  routingKey: string;
}

/** A queue as a consumer needs it. Declaring the same queue twice with other options is a TopologyError. */
export interface QueueSpec {
  name: string;
  /** `classic` (default) or `quorum`. */
  type?: 'classic' | 'quorum';
  bindings?: BindingSpec[];
  /** Where rejected (nack without requeue) and expired messages go. */
  deadLetterExchange?: string;
  deadLetterRoutingKey?: string;
  /** Per-queue message TTL in ms; expired messages are dead-lettered. */
  messageTtl?: number;
  /** Only one consumer of the queue is active at a time (ordered consumption). */
  singleActiveConsumer?: boolean;
}

/** Exchanges are topic exchanges unless said otherwise; all are durable. */
export interface ExchangeSpec {
  name: string;
  type?: 'topic' | 'direct' | 'fanout';
}

export interface Topology {
  exchanges?: ExchangeSpec[];
  queues?: QueueSpec[];
}

/**
 * A received message. Exactly one of ack() / nack() must be called, once; both resolve when the
 * transport has passed the decision on (a second call is ignored). Unsettled deliveries count against
 * the subscription's prefetch and are redelivered (with `redelivered: true`) if the subscription or the
 * connection goes away.
 */
export interface Delivery {
  readonly message: TransportMessage;
  readonly queue: string;
  readonly redelivered: boolean;
  ack(): Promise<void>;
  /** requeue=true puts it back on the queue; false dead-letters it (or drops it where the queue has no DLX). */
  nack(options: { requeue: boolean }): Promise<void>;
}

export interface SubscribeOptions {
  queue: QueueSpec;
  /** Maximum unsettled deliveries at once for this subscription; at least 1. */
  prefetch: number;
}

export interface Subscription {
  /** Stops new deliveries; deliveries already handed out can still be settled. */
  cancel(): Promise<void>;
  /**
   * Whether the broker is delivering to this subscription right now (for health checks): false after
   * cancel(), and while the channel or connection is down. Optional: undefined means the transport does not say.
   */
  readonly isActive?: boolean;
}

export type DeliveryHandler = (delivery: Delivery) => Promise<void> | void;

/** What an adapter can and cannot do; the contract suite skips nothing but checks according to these. */
export interface TransportFeatures {
  /** Messages survive a restart of the process (false for the in-memory transport). */
  durable: boolean;
  /** publish() resolves only after the broker confirmed the message. */
  confirms: boolean;
  /**
   * The broker drops a second publish of the same message id within this many ms (NATS JetStream's
   * duplicate window); absent or 0: no deduplication on publish (RabbitMQ, memory), consumers dedup.
   */
  deduplicationWindowMs?: number;
}

/**
 * The port between tmm and a message broker.
 *
 * Contract:
 * - publish() is safe to call concurrently. It resolves only when the message is safely routed
 *   (for AMQP: publisher confirm received) and rejects with a PublishError when it is not: unroutable
 *   (no queue bound; `mandatory`), nacked, not confirmed within the timeout, or the connection dropped
 *   while it was in flight. A rejected publish may still have been delivered (at-least-once); a
 *   resolved one will be delivered to every queue it routed to.
 * - Messages published one after another (each awaited) to the same queue are delivered in that order.
 * - subscribe() declares the queue and its bindings, then hands deliveries to the handler, at most
 *   `prefetch` unsettled at once. A handler that throws or rejects without settling has its delivery
 *   nacked with requeue (the handler owns settlement; throwing is a bug, not a policy).
 * - declare() is idempotent for identical specs and fails with a TopologyError naming the exchange or
 *   queue when a spec conflicts with what exists.
 * - close() stops all subscriptions, fails in-flight publishes with PublishError, and is idempotent;
 *   every call after it rejects with TransportClosedError.
 */
export interface Transport {
  readonly features: TransportFeatures;
  /**
   * Whether the transport holds a working connection to its broker right now (for health checks). Optional:
   * undefined means the transport does not know or does not say.
   */
  readonly isConnected?: boolean;
  /**
   * Headers a routing transport fixes when a message is stored, before it is ever published (the producer
   * merges them into the outbox row). Optional. The SET router writes the message's set here, so a rule
   * change between restarts never moves a message that is already waiting in the outbox.
   */
  stampHeaders?(message: TransportMessage): Headers | undefined;
  declare(topology: Topology): Promise<void>;
  publish(message: TransportMessage): Promise<void>;
  subscribe(options: SubscribeOptions, handler: DeliveryHandler): Promise<Subscription>;
  close(): Promise<void>;
}

/** AMQP topic matching: `*` matches one word, `#` zero or more; words are separated by dots. */
export function topicMatches(pattern: string, routingKey: string): boolean {
  const p = pattern.split('.');
  const k = routingKey.split('.');
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length;
    if (p[i] === '#') {
      for (let n = j; n <= k.length; n++) if (match(i + 1, n)) return true;
      return false;
    }
    if (j === k.length) return false;
    return (p[i] === '*' || p[i] === k[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}
