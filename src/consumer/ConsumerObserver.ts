import type { DeliveryOutcome } from './DeliveryState';

/** One delivery a consumer of this process finished with (see ConsumerObserver.onSettled). */
export interface SettledDelivery {
  /** The consumer's name (`Class.method`). */
  consumer: string;
  /** Its work queue. */
  queue: string;
  topic: string;
  messageId: string;
  outcome: DeliveryOutcome;
  /** The handling attempt that ended here (1 for the first). */
  attempt: number;
  /** The message's `timestamp`: when it was created (for tmm's own messages: `send()`, inside its transaction). */
  createdAt: number;
  /** When the delivery was settled (epoch ms). */
  settledAt: number;
  /** For `retried`: the retry queue its copy was published to and when that queue's TTL gives it back. */
  retry?: { queue: string; delayMs: number; dueAt: number; error: string };
}

/**
 * Sees what the consumers of one ConsumerRunner do, for metrics (TmmAdmin's latency histograms, its
 * retry-queue record, the dead-letter rate) — attach it with `consumers.observe(observer)`.
 *
 * Contract:
 * - Every method is optional. `onSettled` is called synchronously once per delivery, after it was settled
 *   (acked, or nacked/requeued) and counted in the runner's stats; `onDelivery` when a delivery arrives.
 * - A method must be cheap and must not throw: what it throws is swallowed and never affects consuming.
 * - Nothing is built for observers while none is attached.
 */
export interface ConsumerObserver {
  onDelivery?(consumer: string, messageId: string, at: number): void;
  onSettled?(delivery: SettledDelivery): void;
}
