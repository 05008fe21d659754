import type { EntityManager } from 'typeorm';
import type { TransactionScope } from '../transaction/TransactionScope';
import type { ProcessTrace } from '../tracing/MessageTracer';
import type { Delivery, Headers } from '../transport/Transport';
import type { InterceptionContext } from './ConsumeContext';
import type { ConsumerDefinition } from './ConsumerDefinition';
import { ConsumerHeaders } from './ConsumerHeaders';
import { TmmHeaders } from '../message/OutboxMessage';

/** How the handling of one delivery ended; counted in ConsumerRunner.stats. */
export type DeliveryOutcome = 'handled' | 'duplicate' | 'retried' | 'dead-lettered' | 'requeued' | 'abandoned';

/**
 * One delivery going through a consumer's pipeline: what the stages read and fill in. The handler and
 * interceptors see it through `context` (an InterceptionContext view).
 */
export class DeliveryState {
  readonly messageId: string;
  readonly originalExchange: string;
  readonly originalRoutingKey: string;
  /**
   * The message's topic: `tmm-topic`, else the consumer's topic header, else the AMQP `type`, else the
   * original routing key (unless it came through the default exchange, where it is a queue name), else
   * the contract's topic. Retry and dead-letter copies carry it as `tmm-topic`.
   */
  readonly topic: string;
  /** The handling attempt: from the tmm-consume-attempt header, +1 per in-place retry of ordered consumers. */
  attempt: number;
  /** Epoch ms of the first failure: carried by retry copies, else set on the first failure here. */
  firstFailureAt: number | undefined;
  message: object | undefined;
  /** The handler's transaction, once the transaction stage opened it. */
  scope: TransactionScope | undefined;
  outcome: DeliveryOutcome | undefined;
  /** The delivery's `process` span, when tracing is on (set by the trace stage). */
  trace: ProcessTrace | undefined;
  /** The last failure and what recovery did with it (set by the RecoveryPolicy; read for the journey). */
  failure: { error: string; at?: number; queue?: string; delayMs?: number; reason?: string } | undefined;
  /** Set by the recovery policy when a copy went to a retry queue: which, for how long, and why. */
  retry: { queue: string; delayMs: number; dueAt: number; error: string } | undefined;
  readonly context: InterceptionContext;

  constructor(
    readonly delivery: Delivery,
    readonly def: ConsumerDefinition,
    defaultManager: () => EntityManager,
  ) {
    const m = delivery.message;
    const h = m.headers;
    this.messageId = m.id;
    this.originalExchange = typeof h[ConsumerHeaders.originalExchange] === 'string' ? (h[ConsumerHeaders.originalExchange] as string) : m.exchange;
    this.originalRoutingKey = typeof h[ConsumerHeaders.originalRoutingKey] === 'string' ? (h[ConsumerHeaders.originalRoutingKey] as string) : m.routingKey;
    this.topic = messageTopic(m, def, this.originalExchange, this.originalRoutingKey);
    const attempt = Number(h[ConsumerHeaders.attempt] ?? 1);
    this.attempt = Number.isInteger(attempt) && attempt >= 1 ? attempt : 1;
    const first = typeof h[ConsumerHeaders.firstFailureAt] === 'string' ? Date.parse(h[ConsumerHeaders.firstFailureAt] as string) : NaN;
    this.firstFailureAt = Number.isNaN(first) ? undefined : first;
    this.message = undefined;
    this.scope = undefined;
    this.outcome = undefined;
    this.trace = undefined;
    this.failure = undefined;
    this.retry = undefined;
    // The handler gets this object; its getters read the state as it is when they are called.
    const state = this;
    this.context = {
      messageId: this.messageId,
      consumer: def.name,
      queue: def.queue,
      exchange: this.originalExchange,
      routingKey: this.originalRoutingKey,
      topic: this.topic,
      headers: h as Readonly<Headers>,
      get attempt() {
        return state.attempt;
      },
      maxAttempts: def.maxAttempts,
      redelivered: delivery.redelivered,
      timestamp: m.timestamp,
      get manager() {
        return state.scope?.manager ?? defaultManager();
      },
      get message() {
        return state.message as object;
      },
      type: def.type,
      method: def.method,
    };
  }
}

function messageTopic(m: Delivery['message'], def: ConsumerDefinition, exchange: string, routingKey: string): string {
  const h = m.headers;
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);
  return (
    str(h[TmmHeaders.topic]) ??
    (def.topicHeader !== undefined ? str(h[def.topicHeader]) : undefined) ??
    str(m.type) ??
    (exchange !== '' ? str(routingKey) : undefined) ??
    def.contractTopic
  );
}
