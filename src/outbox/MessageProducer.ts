import { ConfigurationError, NoActiveTransactionError, PayloadTooLargeError } from '../errors';
import { checkContract, contractOf, serializeContract } from '../message/MessageContracts';
import { newMessageId } from '../message/messageId';
import type { ContractMetadata } from '../metadata';
import { OutboxMessage, TmmHeaders } from '../message/OutboxMessage';
import { toTransportMessage } from '../message/toTransportMessage';
import type { DispatchItem, Dispatcher } from '../relay/Dispatcher';
import { Propagation } from '../transaction/Propagation';
import { TransactionScope } from '../transaction/TransactionScope';
import { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import { HeaderValue, Headers, Transport } from '../transport/Transport';
import { noopMessageTracer, type MessageTracer } from '../tracing/MessageTracer';
import { stampOutgoing } from '../tracing/correlation';
import { TraceHeaders } from '../tracing/MessageTracer';
import { JourneyStep, noopJourneyRecorder, type JourneyRecorder } from '../journey/JourneyEvent';
import { businessKeyOf } from '../journey/businessKey';
import { OutboxStore } from './OutboxStore';
import { OutboxSenderStore, SenderKind, SenderStore, chosenSender } from './SenderStore';
import { SETTLED } from './writers/settled';

export interface ProducerOptions {
  /** Exchange for contracts that name none. */
  defaultExchange: string;
  /** Serialized payloads larger than this are refused with PayloadTooLargeError. */
  maxPayloadBytes: number;
  /** When true, send() outside a transaction throws NoActiveTransactionError instead of opening its own. */
  requireTransaction: boolean;
  /** How long a freshly committed row is reserved for this process's fast path before other relays may take it. */
  leaseMs: number;
  /** Identity of this process in leases. */
  owner: string;
}

export const defaultProducerOptions: Omit<ProducerOptions, 'owner'> = {
  defaultExchange: 'tmm.events',
  maxPayloadBytes: 256 * 1024,
  requireTransaction: false,
  leaseMs: 30_000,
};

export type SendMode = 'transactional' | 'fast';

export interface SendOptions {
  /** Defaults to the contract's topic. */
  routingKey?: string;
  /** Defaults to the contract's exchange, then `defaultExchange`. */
  exchange?: string;
  headers?: Record<string, HeaderValue>;
  /** Publish no earlier than this many ms after commit. */
  delay?: number;
  /** Publish no earlier than this time. Not with `delay`. */
  deliverAt?: Date;
  /** Messages with the same key are published one at a time, in the order they were sent. */
  orderingKey?: string;
  /** `transactional` (default): outbox row, published iff the transaction commits. `fast`: published at once, no row, may be lost. */
  mode?: SendMode;
}

/** The default options object: known valid, so send() without options skips checking them. */
const NO_OPTIONS: SendOptions = Object.freeze({});
/** No business keys (the journey is off): shared, never written to. */
const NO_KEYS: (string | null)[] = [];
const SEND_OPTION_KEYS = new Set(['routingKey', 'exchange', 'headers', 'delay', 'deliverAt', 'orderingKey', 'mode']);
const COLLECTOR = Symbol('tmm:producer:collector');

interface Collector {
  messages: OutboxMessage[];
  /** Journey on: each message's business key (same order as `messages`). */
  keys: (string | null)[];
}

/** What the producer records of the journey: `sent` and `stored` per committed message, with this process as source. */
export interface ProducerJourney {
  recorder: JourneyRecorder;
  /** Payload paths of the business key (split at the dots). */
  businessKeys: readonly (readonly string[])[];
}

/**
 * Sends message contracts. In a transaction, messages are collected in the transaction's scope and
 * appended to tmm_outbox with one multi-row INSERT just before COMMIT; after COMMIT their ids go to the
 * Dispatcher. Rolled back ⇒ nothing stored, nothing published.
 */
export class MessageProducer {
  private readonly options: ProducerOptions;
  private readonly outboxSender: SenderStore;

  constructor(
    private readonly transactions: TypeOrmTransactionManager,
    private readonly store: OutboxStore,
    private readonly dispatcher: Dispatcher,
    private readonly transport: Transport,
    options: Partial<ProducerOptions> & { owner: string },
    /** Other sender stores (the transaction log) and which one a transaction uses unless it chose one. */
    private readonly senders: { log?: SenderStore; default?: SenderKind } = {},
    private readonly tracer: MessageTracer = noopMessageTracer,
    private readonly journey: ProducerJourney = { recorder: noopJourneyRecorder, businessKeys: [] },
  ) {
    this.options = { ...defaultProducerOptions, ...options };
    this.outboxSender = new OutboxSenderStore(store, dispatcher, () => ({ owner: this.options.owner, until: Date.now() + this.options.leaseMs }));
  }

  /**
   * Validates and sends one message; resolves with its id. Throws MessageValidationError (nothing stored),
   * PayloadTooLargeError, ContractNotRegisteredError, ConfigurationError for bad options, or
   * NoActiveTransactionError when transactions are required and none is open.
   */
  send(message: object, options: SendOptions = NO_OPTIONS): Promise<string> {
    // Not an async function: a message that validates synchronously, sent in a transaction, costs one
    // resolved promise (this one) and no await hops.
    try {
      if (options !== NO_OPTIONS) checkSendOptions(options);
      const { type, meta } = contractOf(message);
      const pending = checkContract(message, type);
      if (pending) return pending.then(() => this.deliverOne(message, this.build(message, meta, options), options));
      return Promise.resolve(this.deliverOne(message, this.build(message, meta, options), options));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** deliver() for one message: in a transaction without the journey (the common case) no arrays are built for it. */
  private deliverOne(message: object, row: OutboxMessage, options: SendOptions): string | Promise<string> {
    const scope = options.mode === 'fast' || this.journey.recorder.enabled ? undefined : this.transactions.current();
    if (!scope) {
      const ids = this.deliver([message], [row], options);
      return Array.isArray(ids) ? ids[0] : ids.then((i) => i[0]);
    }
    this.collectInto(scope).messages.push(row);
    return row.id;
  }

  /** Sends several messages with the same options; one INSERT for all of them at commit. */
  sendAll(messages: object[], options: SendOptions = NO_OPTIONS): Promise<string[]> {
    try {
      const built = this.prepare(messages, options);
      return Promise.resolve(Array.isArray(built) ? this.deliver(messages, built, options) : built.then((b) => this.deliver(messages, b, options)));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Checks the options, validates and builds every row: synchronously unless a constraint is asynchronous. */
  private prepare(messages: object[], options: SendOptions): OutboxMessage[] | Promise<OutboxMessage[]> {
    if (options !== NO_OPTIONS) checkSendOptions(options);
    const built: OutboxMessage[] = [];
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i];
      const { type, meta } = contractOf(message);
      const pending = checkContract(message, type);
      if (pending) return pending.then(() => this.prepareAsync(messages, options, built, i));
      built.push(this.build(message, meta, options));
    }
    return built;
  }

  /** The rest of prepare() once message `i`'s asynchronous validation passed (in order: the first failure is the one thrown). */
  private async prepareAsync(messages: object[], options: SendOptions, built: OutboxMessage[], i: number): Promise<OutboxMessage[]> {
    built.push(this.build(messages[i], contractOf(messages[i]).meta, options));
    for (let j = i + 1; j < messages.length; j++) {
      const { type, meta } = contractOf(messages[j]);
      await checkContract(messages[j], type);
      built.push(this.build(messages[j], meta, options));
    }
    return built;
  }

  /** Publishes fast messages, or collects the rows in the current transaction (or a small one of their own). */
  private deliver(messages: object[], built: OutboxMessage[], options: SendOptions): string[] | Promise<string[]> {
    const ids = built.map((m) => m.id);
    const journey = this.journey.recorder.enabled;
    const keys: (string | null)[] = journey ? messages.map((m) => (this.journey.businessKeys.length > 0 ? businessKeyOf(m, this.journey.businessKeys) : null)) : NO_KEYS;
    if (options.mode === 'fast') {
      return Promise.all(
        built.map((m, i) =>
          this.transport.publish(toTransportMessage(m)).then(() => {
            if (journey) this.recordFast(m, keys[i]);
          }),
        ),
      ).then(() => ids);
    }
    const scope = this.transactions.current();
    if (scope) {
      this.collect(scope, built, keys);
      return ids;
    }
    if (this.options.requireTransaction) throw new NoActiveTransactionError(built[0]?.topic ?? '?');
    // Reliable send outside a transaction: a small transaction of its own, same path as any other.
    return this.transactions
      .run(() => this.collect(this.transactions.current()!, built, keys), { propagation: Propagation.RequiresNew, name: 'tmm.send' })
      .then(() => ids);
  }

  private collect(scope: TransactionScope, messages: OutboxMessage[], keys: (string | null)[]): void {
    const collector = this.collectInto(scope);
    for (let i = 0; i < messages.length; i++) collector.messages.push(messages[i]);
    if (keys.length > 0) collector.keys.push(...keys);
  }

  /** The transaction's collector; the first send in a transaction opens its sender batch and hooks it to the commit. */
  private collectInto(scope: TransactionScope): Collector {
    let collector = scope.resources.get(COLLECTOR) as Collector | undefined;
    if (!collector) {
      const c: Collector = { messages: [], keys: [] };
      collector = c;
      scope.resources.set(COLLECTOR, c);
      const kind = chosenSender(scope) ?? this.senders.default ?? 'outbox';
      const batch = this.senderOf(kind).open();
      scope.beforeCommit(() => {
        if (c.messages.length === 0) return undefined;
        const stored = batch.beforeCommit(scope.manager, c.messages);
        // Written already (better-sqlite3; an INSERT riding with a pipelined COMMIT): no promise to await.
        return stored === SETTLED ? undefined : stored;
      });
      scope.afterCommit(() => {
        if (c.messages.length === 0) return undefined;
        // Before the hand-over to the fast path, so `stored` is recorded before any `published`.
        if (this.journey.recorder.enabled) this.recordCommitted(scope, kind, c);
        return batch.afterCommit(c.messages);
      });
      scope.afterRollback(() => (c.messages.length === 0 ? undefined : batch.afterRollback(c.messages)));
    }
    return collector;
  }

  /**
   * One `stored` event per message of a committed transaction (now, after COMMIT), carrying the send: its
   * `durationMs` is send → commit (the timeline shows it as a `sent` step at the send's time), its detail the
   * topic and the transaction. One row for both keeps the table compact (bench:journey).
   */
  private recordCommitted(scope: TransactionScope, kind: SenderKind, c: Collector): void {
    const recorder = this.journey.recorder;
    const source = this.options.owner;
    const now = Date.now();
    const tx = `transaction ${scope.name ? `${scope.name} (${scope.id})` : scope.id}`;
    const where = kind === 'log' ? 'the local transaction log' : 'tmm_outbox';
    for (let i = 0; i < c.messages.length; i++) {
      const m = c.messages[i];
      const correlationId = m.headers[TraceHeaders.correlationId];
      recorder.record({
        messageId: m.id,
        step: JourneyStep.Stored,
        at: now,
        source,
        durationMs: now - m.createdAt,
        outcome: where,
        detail: `${m.topic} in ${tx}`,
        correlationId: typeof correlationId === 'string' ? correlationId : null,
        businessKey: c.keys[i] ?? null,
      });
    }
  }

  /** A fast message (no row): `sent`, then `published` once the broker confirmed it. */
  private recordFast(m: OutboxMessage, key: string | null): void {
    const correlationId = m.headers[TraceHeaders.correlationId];
    const source = this.options.owner;
    this.journey.recorder.record({
      messageId: m.id,
      step: JourneyStep.Sent,
      at: m.createdAt,
      source,
      detail: `${m.topic}, mode fast (not stored)`,
      correlationId: typeof correlationId === 'string' ? correlationId : null,
      businessKey: key,
    });
    this.journey.recorder.record({ messageId: m.id, step: JourneyStep.Published, at: Date.now(), source, attempt: 1, detail: `confirmed by the broker: ${m.exchange || '(default exchange)'} / ${m.routingKey}` });
  }

  private senderOf(kind: SenderKind): SenderStore {
    if (kind === 'outbox') return this.outboxSender;
    if (!this.senders.log) throw new ConfigurationError('sender', 'this transaction sends through "log" but the tmm instance has no txlog configured');
    return this.senders.log;
  }

  /** The row of one validated message (synchronous: the send path pays one promise per message, validation's). */
  private build(message: object, meta: ContractMetadata, options: SendOptions): OutboxMessage {
    const payload = serializeContract(message);
    // A UTF-16 code unit is at most 3 UTF-8 bytes: most payloads need no byte count.
    if (payload.length * 3 > this.options.maxPayloadBytes) {
      const size = Buffer.byteLength(payload, 'utf8');
      if (size > this.options.maxPayloadBytes) throw new PayloadTooLargeError(meta.topic, size, this.options.maxPayloadBytes);
    }
    const now = Date.now();
    const availableAt = options.deliverAt ? options.deliverAt.getTime() : now + (options.delay ?? 0);
    // A copy loop, not a spread with a computed key (several times slower; this runs per message).
    const headers: Headers = {};
    if (options.headers) for (const k of Object.keys(options.headers)) headers[k] = options.headers[k];
    headers[TmmHeaders.contractVersion] = meta.version;
    const id = newMessageId();
    const exchange = options.exchange ?? meta.exchange ?? this.options.defaultExchange;
    const routingKey = options.routingKey ?? meta.topic;
    stampOutgoing(this.tracer, this.transactions.contextStore, headers, { id, topic: meta.topic, exchange, routingKey });
    const row: OutboxMessage = {
      id,
      topic: meta.topic,
      exchange,
      routingKey,
      payload,
      headers,
      availableAt,
      orderingKey: options.orderingKey ?? null,
      createdAt: now,
    };
    // A routing transport (SET router) fixes the message's route now, while the rules are the ones it was sent under.
    if (this.transport.stampHeaders) Object.assign(headers, this.transport.stampHeaders(toTransportMessage(row)));
    return row;
  }
}

function checkSendOptions(o: SendOptions): void {
  if (o === null || typeof o !== 'object') throw new ConfigurationError('send', 'options must be an object');
  for (const key of Object.keys(o)) if (!SEND_OPTION_KEYS.has(key)) throw new ConfigurationError(`send.${key}`, 'unknown option');
  if (o.delay !== undefined && (typeof o.delay !== 'number' || !Number.isFinite(o.delay) || o.delay < 0)) {
    throw new ConfigurationError('send.delay', `must be a non-negative number of milliseconds, got ${String(o.delay)}`);
  }
  if (o.deliverAt !== undefined && (!(o.deliverAt instanceof Date) || Number.isNaN(o.deliverAt.getTime()))) {
    throw new ConfigurationError('send.deliverAt', 'must be a valid Date');
  }
  if (o.delay !== undefined && o.deliverAt !== undefined) throw new ConfigurationError('send.delay', 'give delay or deliverAt, not both');
  if (o.mode !== undefined && o.mode !== 'transactional' && o.mode !== 'fast') {
    throw new ConfigurationError('send.mode', `must be "transactional" or "fast", got ${JSON.stringify(o.mode)}`);
  }
  if (o.mode === 'fast' && (o.delay !== undefined || o.deliverAt !== undefined || o.orderingKey !== undefined)) {
    throw new ConfigurationError('send.mode', 'fast messages are not stored, so they cannot be delayed or ordered');
  }
  for (const k of ['routingKey', 'exchange', 'orderingKey'] as const) {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'string' || v.length === 0 || v.length > 255)) {
      throw new ConfigurationError(`send.${k}`, 'must be a non-empty string of at most 255 characters');
    }
  }
  for (const [k, v] of Object.entries(o.headers ?? {})) {
    if (v !== null && !['string', 'number', 'boolean'].includes(typeof v)) {
      throw new ConfigurationError(`send.headers.${k}`, `header values must be string, number, boolean or null, got ${typeof v}`);
    }
  }
}
