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
  /** available_at of the oldest due PENDING row (its age is the relay's lag), or null. */
  oldestDueAt: number | null;
  /** The same per topic (the topics with due rows only), most due rows first, at most 200 topics. */
  dueByTopic: { topic: string; due: number; oldestDueAt: number }[];
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
