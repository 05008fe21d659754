import type { ContractClass } from '../message/MessageContracts';
import type { IdempotencyKey } from '../metadata';
import type { BindingSpec, QueueSpec, Topology } from '../transport/Transport';
import type { ConsumeInterceptor } from './ConsumeContext';

/** One @Consumer method as the runner uses it: options resolved against the defaults, checked. */
export interface ConsumerDefinition {
  /** `Class.method`. */
  readonly name: string;
  readonly instance: object;
  readonly type: Function;
  readonly method: string;
  /** The @MessageContract class of the handler's first parameter. */
  readonly contract: ContractClass;
  readonly queue: string;
  readonly binding: BindingSpec;
  readonly prefetch: number;
  readonly concurrency: number;
  readonly maxAttempts: number;
  /** Wait after the n-th failed attempt is `delays[n-1]`; `maxAttempts - 1` entries. */
  readonly delays: readonly number[];
  readonly deadLetterQueue: string;
  readonly ttl: number | undefined;
  readonly ordered: boolean;
  readonly idempotent: boolean;
  /** Where the dedup key of a message without a message id comes from (@Idempotent({ key })). */
  readonly idempotencyKey: IdempotencyKey | undefined;
  /** Header naming a foreign message's topic (consumers.topicHeader or the consumer's own). */
  readonly topicHeader: string | undefined;
  /** The contract's topic: a foreign message's topic when nothing else names one. */
  readonly contractTopic: string;
  readonly transactional: boolean;
  /** 1: a transaction per delivery; more: up to this many deliveries share one (TransactionBatcher). */
  readonly messagesPerTransaction: number;
  readonly queueType: 'classic' | 'quorum';
  /** Class-level interceptors first, then method-level ones, each in the order given. */
  readonly interceptors: readonly ConsumeInterceptor[];
}

/** `<queue>.retry.<ms>ms`: one queue per distinct delay, so every message in it expires in FIFO order. */
export function retryQueueName(queue: string, delayMs: number): string {
  return `${queue}.retry.${delayMs}ms`;
}

/**
 * The work queue: bound to the consumer's route; what it dead-letters itself (a message whose TTL passed,
 * or one nacked without requeue) goes to the dead-letter queue through the default exchange.
 */
export function workQueueSpec(d: ConsumerDefinition): QueueSpec {
  return {
    name: d.queue,
    type: d.queueType,
    bindings: [d.binding],
    deadLetterExchange: '',
    deadLetterRoutingKey: d.deadLetterQueue,
    ...(d.ttl !== undefined ? { messageTtl: d.ttl } : {}),
    ...(d.ordered ? { singleActiveConsumer: true } : {}),
  };
}

/** Retry queues (none for ordered consumers, which wait in place) expire back into the work queue. */
export function retryQueueSpecs(d: ConsumerDefinition): QueueSpec[] {
  if (d.ordered) return [];
  return [...new Set(d.delays)].map((ms) => ({
    name: retryQueueName(d.queue, ms),
    type: d.queueType,
    messageTtl: ms,
    deadLetterExchange: '',
    deadLetterRoutingKey: d.queue,
  }));
}

export function deadLetterQueueSpec(d: ConsumerDefinition): QueueSpec {
  return { name: d.deadLetterQueue, type: d.queueType };
}

/** Everything a consumer needs on the broker: its exchange, work queue with binding, retry queues, dead-letter queue. */
export function consumerTopology(d: ConsumerDefinition): Required<Topology> {
  return {
    exchanges: d.binding.exchange ? [{ name: d.binding.exchange }] : [],
    queues: [deadLetterQueueSpec(d), ...retryQueueSpecs(d), workQueueSpec(d)],
  };
}

/** The longest a message can spend between its first failure and its last attempt (sum of the delays). */
export function retryHorizonMs(d: ConsumerDefinition): number {
  return d.delays.reduce((a, b) => a + b, 0);
}
