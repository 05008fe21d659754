/**
 * Header names of tmm's wire format that are not tied to one side (producer, consumer, dead letters).
 * docs/wire-format.md lists every header and property; these strings are stable.
 *
 * Attempt counters follow one scheme, `tmm-<stage>-attempt`, each the 1-based number of the attempt the
 * copy is (or was, on a dead letter) for: `tmm-publish-attempt` (the relay's publish attempt) and
 * `tmm-consume-attempt` (the consumer's handling attempt). The names used before 0.2 are still read
 * (LegacyHeaders) for one version and no longer written.
 */
export const WireHeaders = {
  /** The relay's publish attempt of this outbox row (1 = first try). Was `tmm-attempt`. */
  publishAttempt: 'tmm-publish-attempt',
  /** Creation time in epoch milliseconds (the AMQP `timestamp` property has whole seconds only). */
  timestampMs: 'tmm-timestamp-ms',
  /** Correlation id set by the application; the AMQP `correlation_id` property carries it (default: the message id). */
  correlationId: 'tmm-correlation-id',
  /** Set on a message sent from a consumer's handler: the id of the message being handled. */
  causationId: 'tmm-causation-id',
} as const;

/** Names written before 0.2; read (never written) until 0.3. */
export const LegacyHeaders = {
  /** Now WireHeaders.publishAttempt. */
  publishAttempt: 'tmm-attempt',
  /** Dead letters' attempts made; now the `tmm-consume-attempt` of the dead letter (same number). */
  consumeAttempts: 'tmm-attempts',
} as const;
