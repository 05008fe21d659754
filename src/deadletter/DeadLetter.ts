import type { Headers } from '../transport/Transport';

/** Status of a dead letter; stable strings (rows, logs, API). */
export const DeadLetterStatus = {
  /** Collected, waiting for an operator. */
  New: 'NEW',
  /** Sent again (through the outbox); `resentMessageId` is the new message. */
  Resent: 'RESENT',
  /** An operator decided it needs no further handling. */
  Discarded: 'DISCARDED',
} as const;
export type DeadLetterStatus = (typeof DeadLetterStatus)[keyof typeof DeadLetterStatus];
export const DEAD_LETTER_STATUSES: readonly DeadLetterStatus[] = Object.values(DeadLetterStatus);

/** A dead letter as the collector builds it from a message in a dead-letter queue. Times are epoch ms. */
/** 'utf8': the payload is the body's text; 'base64': the body's exact bytes, base64-encoded. */
export type PayloadEncoding = 'utf8' | 'base64';

export interface NewDeadLetter {
  /**
   * The message id (AMQP messageId); for a message without one, a hash of its content (`sha256:…`); for
   * an id the database cannot store as text (a NUL in it), `base64:` + the id's UTF-8 bytes in base64.
   */
  messageId: string;
  /** The dead-letter queue it was collected from; with `messageId` the idempotency key. */
  deadLetterQueue: string;
  /** The consumer's work queue (where a resend goes), when known. */
  queue: string | null;
  /** `Class.method` of the consumer that gave up, when known. */
  consumer: string | null;
  topic: string;
  originalExchange: string;
  originalRoutingKey: string;
  /**
   * The body as received: UTF-8 text when it is valid UTF-8 without NUL bytes (`payloadEncoding` 'utf8'),
   * otherwise its exact bytes in base64 (`payloadEncoding` 'base64'), so a resend publishes the same bytes.
   */
  payload: string;
  /** How `payload` holds the body (absent = 'utf8'). */
  payloadEncoding?: PayloadEncoding;
  headers: Headers;
  contentType: string;
  /** Why: a DeadLetterReason of the consumer side, or the broker's (`expired`, `rejected`, `maxlen`). */
  reason: string;
  errorCode: string | null;
  errorMessage: string;
  errorStack: string | null;
  /** Groups failures that are "the same problem" (see errorFingerprint). */
  fingerprint: string;
  attempts: number;
  firstFailureAt: number;
  lastFailureAt: number;
  /** When the message was created (AMQP timestamp), when known. */
  messageCreatedAt: number | null;
  receivedAt: number;
}

/** A stored dead letter. */
export interface DeadLetter extends NewDeadLetter {
  id: string;
  status: DeadLetterStatus;
  /** When and by whom the status last changed. */
  statusAt: number | null;
  statusBy: string | null;
  /** The outbox message id of the last resend. */
  resentMessageId: string | null;
  /**
   * The SET the message belonged to (its `tmm-set` header, stamped by the SET router when it was sent), or
   * null outside SET routing. A resend keeps the header, so it goes back to this set.
   */
  set: string | null;
}

/** The columns a list shows: no payload, headers or stack (cheap to read 100 of among 100,000). */
export type DeadLetterSummary = Omit<DeadLetter, 'payload' | 'headers' | 'errorStack'>;

/** Which dead letters: every given field must match. Times bound `lastFailureAt` (inclusive). */
export interface DeadLetterFilter {
  status?: DeadLetterStatus[];
  topic?: string;
  consumer?: string;
  fingerprint?: string;
  messageId?: string;
  /**
   * The `tmm-correlation-id` header (letters, digits, `.`, `:`, `-`; at most 128): every dead letter of one
   * conversation. Matched in the stored headers (not indexed: for an operator's search, not for a hot path).
   */
  correlationId?: string;
  /** The SET the message belonged to (its `tmm-set` header; not indexed, like correlationId). */
  set?: string;
  from?: number;
  to?: number;
  /** Explicit ids (bulk actions on a selection). */
  ids?: string[];
}

export interface PageRequest {
  limit: number;
  offset: number;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

/** Dead letters that share an error fingerprint. */
export interface DeadLetterGroup {
  fingerprint: string;
  count: number;
  consumer: string | null;
  topic: string;
  errorCode: string | null;
  /** One of the group's error messages (they differ only in ids, numbers, quoted values). */
  sampleError: string;
  firstFailureAt: number;
  lastFailureAt: number;
}

/** Counts for the overview. */
export interface DeadLetterSummaryCounts {
  byStatus: Record<DeadLetterStatus, number>;
  /** NEW dead letters per consumer (null: unknown consumer), most first. */
  byConsumer: { consumer: string | null; count: number }[];
  /** Oldest NEW dead letter's last failure, or null. */
  oldestNewAt: number | null;
}
