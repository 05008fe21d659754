/**
 * The steps tmm records about a message, each from a fact a tmm component saw at that moment (stable strings:
 * they are stored in `tmm_journey.step` and shown by the console).
 */
export const JourneyStep = {
  /**
   * `producer.send()` in a transaction that later committed (time: the send; source: the process; detail: the
   * topic and transaction). Stored as part of the `stored` row (its durationMs is send → commit), shown as a
   * step of its own by the timeline (expandSteps); recorded on its own only for `mode: 'fast'` sends.
   */
  Sent: 'sent',
  /**
   * The transaction that carried the message committed (time: after COMMIT returned; outcome: where it is
   * stored; durationMs: since the send). Also a resent copy's append (no durationMs, linked to the original).
   */
  Stored: 'stored',
  /** The broker confirmed a publish (time: the confirm; source: the publishing process; attempt: the relay's). */
  Published: 'published',
  /** A publish failed (attempt, error; outcome `dead` when the row gave up). */
  PublishFailed: 'publish-failed',
  /** A message tmm did not produce reached a consumer: where its journey starts. */
  Received: 'received',
  /** A consumer handled a delivery (time: when the handling started; attempt, outcome, duration). */
  Delivered: 'delivered',
  /** A failed attempt was sent to a retry queue (detail: delay, error). */
  Retried: 'retried',
  /** A failed message was sent to its dead-letter queue (outcome: the reason; detail: the error). */
  DeadLettered: 'dead-lettered',
  /** The admin's collector stored the dead letter (detail: its id). */
  Collected: 'collected',
  /** An operator resent the dead letter (linked: the new copy's message id; detail: who, where to). */
  Resent: 'resent',
  /** An operator discarded the dead letter. */
  Discarded: 'discarded',
} as const;
export type JourneyStep = (typeof JourneyStep)[keyof typeof JourneyStep];

/** One recorded fact about one message. Times are epoch milliseconds from the clock of the process named in `source`. */
export interface JourneyEvent {
  messageId: string;
  step: JourneyStep;
  at: number;
  /** Who saw it: the tmm instance id (host-pid-random), `consumer@instance` for deliveries, `admin:<principal>` for actions. */
  source: string;
  attempt?: number | null;
  /** How the step ended: a delivery's `consumed` / `duplicate` / `failed` / `requeued` / `abandoned`, a dead letter's reason … */
  outcome?: string | null;
  durationMs?: number | null;
  detail?: string | null;
  /** Another message this step links to: the resent copy (on `resent`), the original (on the copy's `stored`). */
  linkedId?: string | null;
  correlationId?: string | null;
  /** A business key read from the payload at send (or receive) time, per `journey.businessKeys`. */
  businessKey?: string | null;
}

/** A stored event, as read back. */
export interface RecordedJourneyEvent extends Required<Omit<JourneyEvent, 'step'>> {
  id: number;
  step: string;
}

/**
 * The port tmm's components hand journey facts to.
 *
 * Contract:
 * - `enabled` is false for the no-op recorder: components check it before building an event, so recording off
 *   costs one property read per hook.
 * - `record()` is synchronous, never throws and never waits for I/O: it runs on the producer's commit path, the
 *   relay's confirm path and the consumer's settle path. An event it cannot keep (its buffer is full) is dropped
 *   and counted, never blocks the caller.
 */
export interface JourneyRecorder {
  readonly enabled: boolean;
  record(event: JourneyEvent): void;
}

export const noopJourneyRecorder: JourneyRecorder = { enabled: false, record() {} };
