import { BROKER_DEATH_HEADERS, ConsumerHeaders } from '../consumer/ConsumerHeaders';
import { TmmHeaders } from '../message/OutboxMessage';
import { LegacyHeaders, WireHeaders } from '../message/WireHeaders';
import type { Headers } from '../transport/Transport';

/** Headers a resent dead letter carries; stable strings. */
export const DeadLetterHeaders = {
  /** The message id of the dead letter this message is a resend of. */
  resendOf: 'tmm-resend-of',
  /** The tmm_dead_letter row it came from. */
  deadLetterId: 'tmm-dead-letter-id',
} as const;

/** Failure headers of the last consumption: a resend starts again at attempt 1 without them. */
const FAILURE_HEADERS = new Set<string>([
  ConsumerHeaders.attempt,
  ConsumerHeaders.firstFailureAt,
  ConsumerHeaders.lastFailureAt,
  ConsumerHeaders.errorMessage,
  ConsumerHeaders.errorCode,
  ConsumerHeaders.errorStack,
  ConsumerHeaders.consumer,
  ConsumerHeaders.consumerQueue,
  ConsumerHeaders.deadLetterReason,
  TmmHeaders.attempt,
  LegacyHeaders.publishAttempt,
  LegacyHeaders.consumeAttempts,
  WireHeaders.timestampMs,
  TmmHeaders.topic,
  ...BROKER_DEATH_HEADERS,
]);

/** The headers of a dead letter without those that describe its failure (for the resent copy). */
export function withoutFailureHeaders(headers: Headers): Headers {
  const out: Headers = {};
  for (const [k, v] of Object.entries(headers)) if (!FAILURE_HEADERS.has(k)) out[k] = v;
  return out;
}
