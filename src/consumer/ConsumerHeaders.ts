/**
 * The headers tmm's consumer side reads and writes. Stable strings: operators filter on them and the
 * dead-letter store reads them.
 */
export const ConsumerHeaders = {
  /**
   * Handling attempt this copy is for (absent on a first delivery = 1). Set on retry copies; on a dead
   * letter, the attempt that failed last (= attempts made; `tmm-attempts` before 0.2, still read).
   */
  attempt: 'tmm-consume-attempt',
  /** Route the message was first published with; kept on retry and dead-letter copies. */
  originalExchange: 'tmm-original-exchange',
  originalRoutingKey: 'tmm-original-routing-key',
  /** ISO-8601 times of the first and the latest failed attempt. */
  firstFailureAt: 'tmm-first-failure-at',
  lastFailureAt: 'tmm-last-failure-at',
  /** The latest failure: message, code (TmmError code or error name), stack (truncated; dead letters only). */
  errorMessage: 'tmm-error-message',
  errorCode: 'tmm-error-code',
  errorStack: 'tmm-error-stack',
  /** Dead letters: the consumer (`Class.method`) and its queue, and why (DeadLetterReason). */
  consumer: 'tmm-consumer',
  consumerQueue: 'tmm-consumer-queue',
  deadLetterReason: 'tmm-dead-letter-reason',
  /** Names of original headers left off a retry or dead-letter copy so that it fits the header budget. */
  droppedHeaders: 'tmm-dropped-headers',
} as const;

/** Why a message was dead-lettered by a consumer; stable strings. */
export const DeadLetterReason = {
  /** The handler failed on every one of `maxAttempts` attempts. */
  MaxAttempts: 'max-attempts',
  /** The handler threw NonRetryableError. */
  NonRetryable: 'non-retryable',
  /** The payload failed its contract's validation. */
  InvalidMessage: 'invalid-message',
  /** The body is not JSON (or not a JSON object). */
  Unparseable: 'unparseable',
  /** An idempotent consumer received a message without a message id, which it cannot deduplicate. */
  MissingMessageId: 'missing-message-id',
} as const;
export type DeadLetterReason = (typeof DeadLetterReason)[keyof typeof DeadLetterReason];

/** Headers the broker adds when it dead-letters a message; dropped from the copies tmm republishes. */
export const BROKER_DEATH_HEADERS = ['x-death', 'x-first-death-queue', 'x-first-death-reason', 'x-first-death-exchange', 'x-last-death-queue', 'x-last-death-reason', 'x-last-death-exchange'];
