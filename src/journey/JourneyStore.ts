import type { JourneyEvent, RecordedJourneyEvent } from './JourneyEvent';

/** What to look for: any of them (they are ANDed when several are given). */
export interface JourneySearch {
  messageId?: string;
  correlationId?: string;
  businessKey?: string;
}

/** One message found by a search: its id and the first step recorded for it. */
export interface JourneyHit {
  messageId: string;
  firstStep: string;
  firstAt: number;
  lastAt: number;
  steps: number;
  correlationId: string | null;
  businessKey: string | null;
}

/**
 * Where recorded journey events live (`tmm_journey`).
 *
 * Contract:
 * - `append()` stores the events as they are, all or none (one statement per chunk), outside any caller's
 *   transaction; it is only called by the background writer, never on a hot path.
 * - `events()` returns every event of the given message ids, in id order (the order they were written).
 * - `linked()` returns the message ids linked from the given ones (a resend's copy), `search()` the messages
 *   matching every given field, newest first, at most `limit`.
 * - `purge(before)` deletes events older than `before` (epoch ms), in bounded statements; resolves with the count.
 */
export interface JourneyStore {
  append(events: readonly JourneyEvent[]): Promise<void>;
  events(messageIds: readonly string[]): Promise<RecordedJourneyEvent[]>;
  linked(messageIds: readonly string[]): Promise<string[]>;
  search(query: JourneySearch, limit: number): Promise<JourneyHit[]>;
  purge(before: number): Promise<number>;
}
