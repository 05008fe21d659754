import { ConfigurationError } from '../src/errors/TmmError';
import { type ConsumerMetadata, defineConsumerMetadata, hasOwnConsumerMetadata } from '../src/metadata/keys';

/**
 * Options of @Consumer; what is left out comes from the `consumers` section of the tmm options. They are
 * recorded as given (ConsumerMetadata, documented field by field in src/metadata/keys.ts).
 */
export type ConsumerOptions = ConsumerMetadata;

const KEYS = new Set([
  'queue', 'topic', 'exchange', 'routingKey', 'prefetch', 'concurrency', 'retry', 'deadLetter', 'ttl', 'ordered', 'idempotent', 'transactional', 'messagesPerTransaction', 'queueType', 'dataSource', 'topicHeader',
]);
const RETRY_KEYS = new Set(['maxAttempts', 'delays', 'backoff']);
const BACKOFF_KEYS = new Set(['initialDelayMs', 'factor', 'maxDelayMs']);
/** AMQP binding keys: words of letters, digits, `_` and `-`, or the wildcards `*` and `#`, separated by dots. */
const BINDING_KEY = /^([A-Za-z0-9_-]+|\*|#)(\.([A-Za-z0-9_-]+|\*|#))*$/;
/** Room left in the 255-character AMQP limit for the `.retry.<ms>ms` and `.dlq` suffixes. */
const MAX_QUEUE = 200;
const MAX_TTL = 2 ** 31 - 1;

/**
 * Marks a method of an injectable class as the handler of one queue. The method takes the message — its
 * parameter type must be a @MessageContract class, read from the emitted decorator metadata — and
 * optionally a ConsumeContext. Options are checked here (ConfigurationError naming the option); the
 * message type and conflicts between consumers are checked when tmm starts.
 *
 * ```ts
 * @injectable()
 * class Ticketing {
 *   @Consumer({ queue: 'ticketing.order-paid', idempotent: true })
 *   async onOrderPaid(event: OrderPaid, ctx: ConsumeContext) { await ctx.manager.insert(Ticket, { orderId: event.orderId }); }
 * }
 * ```
 */
export function Consumer(options: ConsumerOptions): MethodDecorator {
  const meta = checkOptions(options);
  return (target, key, descriptor: PropertyDescriptor) => {
    if (typeof descriptor?.value !== 'function') throw new ConfigurationError('Consumer', `can only decorate methods, not ${String(key)}`);
    if (typeof target === 'function') throw new ConfigurationError('Consumer', `${target.name}.${String(key)} is static; decorate an instance method`);
    const name = `${(target as { constructor: { name: string } }).constructor.name}.${String(key)}`;
    if (hasOwnConsumerMetadata(target, key)) {
      throw new ConfigurationError('Consumer', `${name} has @Consumer twice; one method consumes one queue`);
    }
    defineConsumerMetadata(target, key, meta);
  };
}

function checkOptions(o: ConsumerOptions): ConsumerMetadata {
  if (o === null || typeof o !== 'object') throw new ConfigurationError('Consumer', 'options must be an object with at least { queue }');
  for (const key of Object.keys(o)) if (!KEYS.has(key)) throw new ConfigurationError(`Consumer.${key}`, 'unknown option');

  if (typeof o.queue !== 'string' || o.queue.length === 0 || o.queue.length > MAX_QUEUE) {
    throw new ConfigurationError('Consumer.queue', `is required: a non-empty string of at most ${MAX_QUEUE} characters, got ${JSON.stringify(o.queue)}`);
  }
  if (o.queue.startsWith('amq.')) throw new ConfigurationError('Consumer.queue', `"${o.queue}": names starting with "amq." are reserved by RabbitMQ`);

  if (o.topic !== undefined && (typeof o.topic !== 'string' || !BINDING_KEY.test(o.topic) || o.topic.length > 255)) {
    throw new ConfigurationError('Consumer.topic', `must be dot-separated words or * / # wildcards, got ${JSON.stringify(o.topic)}`);
  }
  if (o.topic !== undefined && o.routingKey !== undefined) throw new ConfigurationError('Consumer.routingKey', 'give topic or routingKey, not both');
  if (o.exchange !== undefined && (typeof o.exchange !== 'string' || o.exchange.length === 0 || o.exchange.length > 255 || o.exchange.startsWith('amq.'))) {
    throw new ConfigurationError('Consumer.exchange', `must be a non-empty exchange name (not the default exchange, not amq.*), got ${JSON.stringify(o.exchange)}`);
  }
  if (o.routingKey !== undefined && (typeof o.routingKey !== 'string' || o.routingKey.length > 255)) {
    throw new ConfigurationError('Consumer.routingKey', `must be a string of at most 255 characters, got ${JSON.stringify(o.routingKey)}`);
  }
  if (o.exchange !== undefined && o.routingKey === undefined && o.topic === undefined) {
    throw new ConfigurationError('Consumer.routingKey', `is required with exchange "${o.exchange}" (use "#" for every message)`);
  }

  if (o.topicHeader !== undefined && (typeof o.topicHeader !== 'string' || o.topicHeader.length === 0 || o.topicHeader.length > 255)) {
    throw new ConfigurationError('Consumer.topicHeader', `must be a header name (1–255 characters), got ${JSON.stringify(o.topicHeader)}`);
  }
  int(o.prefetch, 'prefetch', 1, 65_535);
  int(o.concurrency, 'concurrency', 1, 65_535);
  if (o.concurrency !== undefined && o.prefetch !== undefined && o.concurrency > o.prefetch) {
    throw new ConfigurationError('Consumer.concurrency', `${o.concurrency} is above prefetch ${o.prefetch}: no more than prefetch messages are in hand`);
  }

  if (o.retry !== undefined && o.retry !== false) {
    const r = o.retry;
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new ConfigurationError('Consumer.retry', 'must be false or { maxAttempts, delays | backoff }');
    for (const key of Object.keys(r)) if (!RETRY_KEYS.has(key)) throw new ConfigurationError(`Consumer.retry.${key}`, 'unknown option');
    int(r.maxAttempts, 'retry.maxAttempts', 1, 100);
    if (r.delays !== undefined) {
      if (!Array.isArray(r.delays) || r.delays.length === 0) throw new ConfigurationError('Consumer.retry.delays', 'must be a non-empty array of milliseconds');
      r.delays.forEach((d, i) => int(d, `retry.delays.${i}`, 1, MAX_TTL));
      if (r.backoff !== undefined) throw new ConfigurationError('Consumer.retry.backoff', 'give delays or backoff, not both');
    }
    if (r.backoff !== undefined) {
      const b = r.backoff;
      if (b === null || typeof b !== 'object') throw new ConfigurationError('Consumer.retry.backoff', 'must be { initialDelayMs, factor, maxDelayMs }');
      for (const key of Object.keys(b)) if (!BACKOFF_KEYS.has(key)) throw new ConfigurationError(`Consumer.retry.backoff.${key}`, 'unknown option');
      int(b.initialDelayMs, 'retry.backoff.initialDelayMs', 1, MAX_TTL);
      int(b.maxDelayMs, 'retry.backoff.maxDelayMs', b.initialDelayMs ?? 1, MAX_TTL);
      if (b.factor !== undefined && (typeof b.factor !== 'number' || !Number.isFinite(b.factor) || b.factor < 1)) {
        throw new ConfigurationError('Consumer.retry.backoff.factor', `must be a number ≥ 1, got ${JSON.stringify(b.factor)}`);
      }
    }
  }

  if (o.deadLetter !== undefined) {
    if (typeof o.deadLetter !== 'string' || o.deadLetter.length === 0 || o.deadLetter.length > 255 || o.deadLetter.startsWith('amq.')) {
      throw new ConfigurationError('Consumer.deadLetter', `must be a queue name, got ${JSON.stringify(o.deadLetter)}`);
    }
    if (o.deadLetter === o.queue) throw new ConfigurationError('Consumer.deadLetter', `must differ from the queue "${o.queue}"`);
  }
  int(o.ttl, 'ttl', 1, MAX_TTL);
  int(o.messagesPerTransaction, 'messagesPerTransaction', 1, 1000);
  if (o.messagesPerTransaction !== undefined && o.messagesPerTransaction > Math.min(o.concurrency ?? Infinity, o.prefetch ?? Infinity)) {
    throw new ConfigurationError('Consumer.messagesPerTransaction', `${o.messagesPerTransaction} is above concurrency/prefetch: a transaction groups deliveries being handled`);
  }
  if (o.messagesPerTransaction !== undefined && o.messagesPerTransaction > 1 && o.transactional === false) {
    throw new ConfigurationError('Consumer.messagesPerTransaction', 'needs a transactional consumer');
  }
  for (const flag of ['ordered', 'idempotent', 'transactional'] as const) {
    if (o[flag] !== undefined && typeof o[flag] !== 'boolean') throw new ConfigurationError(`Consumer.${flag}`, `must be true or false, got ${JSON.stringify(o[flag])}`);
  }
  if (o.ordered && ((o.prefetch ?? 1) > 1 || (o.concurrency ?? 1) > 1 || (o.messagesPerTransaction ?? 1) > 1)) {
    throw new ConfigurationError('Consumer.ordered', 'an ordered consumer takes one message at a time: leave prefetch, concurrency and messagesPerTransaction out (or 1)');
  }
  if (o.idempotent && o.transactional === false) {
    throw new ConfigurationError('Consumer.transactional', 'an idempotent consumer needs its transaction: the inbox claim commits with the handler’s writes');
  }
  if (o.queueType !== undefined && o.queueType !== 'classic' && o.queueType !== 'quorum') {
    throw new ConfigurationError('Consumer.queueType', `must be "classic" or "quorum", got ${JSON.stringify(o.queueType)}`);
  }
  if (o.dataSource !== undefined && (typeof o.dataSource !== 'string' || o.dataSource.length === 0)) {
    throw new ConfigurationError('Consumer.dataSource', 'must be the non-empty name of a tmm instance');
  }
  const copy: ConsumerMetadata = { ...o };
  if (o.retry && typeof o.retry === 'object') {
    copy.retry = { ...o.retry, ...(o.retry.delays ? { delays: [...o.retry.delays] } : {}), ...(o.retry.backoff ? { backoff: { ...o.retry.backoff } } : {}) };
  }
  return Object.freeze(copy);
}

function int(v: unknown, path: string, min: number, max: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigurationError(`Consumer.${path}`, `must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
}
