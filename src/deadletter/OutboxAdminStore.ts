import type { EntityManager } from 'typeorm';
import type { OutboxStatus } from '../message/OutboxMessage';
import type { OutboxRecord } from '../outbox/OutboxStore';
import type { Page, PageRequest } from './DeadLetter';

/** An outbox row in a list: no payload or headers. */
export type OutboxRowSummary = Omit<OutboxRecord, 'payload' | 'headers'> & {
  /** The SET the row was stamped with at send time (its `tmm-set` header), or null outside SET routing. */
  set: string | null;
};

export interface OutboxRowFilter {
  status: OutboxStatus[];
  topic?: string;
  /** Rows of this SET only (their `tmm-set` header; not indexed). */
  set?: string;
  /** Bounds on created_at (inclusive). */
  from?: number;
  to?: number;
}

/** The outbox's backlog as the overview, the metrics and `tmm status` show it. */
export interface OutboxStats {
  byStatus: Record<OutboxStatus, number>;
  /** PENDING rows that are due now (not delayed): the relay's backlog. */
  due: number;
  /** available_at of the oldest due PENDING row, or null. */
  oldestDueAt: number | null;
  /**
   * Since when the oldest undelivered row has waited (its age is the relay's lag): a due row's available_at,
   * or, for a row whose publish already failed (its available_at moved on to the retry), its created_at —
   * so a broker outage shows as a growing age, not as rows that look freshly due. Null when there is none.
   * Rows still delayed by their sender (never failed) are not waiting.
   */
  oldestWaitingSince: number | null;
  /**
   * Per topic with due rows or rows waiting for a retry after a failed publish, most due rows first, at most
   * 200 topics: due rows, the oldest due row's available_at (null when all wait for a retry), and
   * `waitingSince` as oldestWaitingSince for the topic.
   */
  dueByTopic: { topic: string; due: number; oldestDueAt: number | null; waitingSince: number }[];
  /**
   * Per SET asked for (stats(now, sets)), its backlog: PENDING rows stamped with the set that are due or
   * waiting for a retry after a failed publish (a set whose broker is down keeps its rows here, rescheduled),
   * not those still delayed by their sender; `oldestCreatedAt` is the oldest such row's creation time, or
   * null. Every asked set is listed, with 0 when it has none.
   */
  bySet?: { set: string; pending: number; oldestCreatedAt: number | null }[];
}

/**
 * What an operator does with the outbox rows the relay gave up on (DEAD) or could not settle
 * (EXCEPTION). Kept apart from OutboxStore, which serves the hot publish path.
 *
 * Contract:
 * - lock() reads, in the caller's transaction, the rows among `ids` whose status is in `statuses`,
 *   locking them (FOR UPDATE; the single writer on SQLite): concurrent operators cannot both act on one row.
 * - revive() makes DEAD/EXCEPTION rows PENDING again, due at `now`, with attempts reset and no lease (any
 *   relay publishes them on its next sweep); remove() deletes DEAD/EXCEPTION rows. Both use the caller's
 *   EntityManager, touch no row in another status, and return how many rows they changed.
 * - list() and stats() read committed data; lists are newest first.
 */
export interface OutboxAdminStore {
  list(filter: OutboxRowFilter, page: PageRequest): Promise<Page<OutboxRowSummary>>;
  /** The backlog; `sets`: also per SET (`bySet`), for these set names. */
  stats(now?: number, sets?: readonly string[]): Promise<OutboxStats>;
  lock(manager: EntityManager, ids: string[], statuses: OutboxStatus[]): Promise<OutboxRecord[]>;
  revive(manager: EntityManager, ids: string[], now: number): Promise<number>;
  remove(manager: EntityManager, ids: string[]): Promise<number>;
}
