import type { EntityManager } from 'typeorm';
import type {
  DeadLetter,
  DeadLetterFilter,
  DeadLetterGroup,
  DeadLetterStatus,
  DeadLetterSummary,
  DeadLetterSummaryCounts,
  NewDeadLetter,
  Page,
  PageRequest,
} from './DeadLetter';

/** A status change of dead letters: only rows currently in `from` change; `resentMessageIds` per dead letter id. */
export interface DeadLetterStatusChange {
  from: DeadLetterStatus[];
  to: DeadLetterStatus;
  at: number;
  by: string;
  resentMessageIds?: ReadonlyMap<string, string>;
}

/**
 * Storage of dead letters (`tmm_dead_letter`).
 *
 * Contract:
 * - add() writes with the caller's EntityManager, so the row commits or rolls back with the caller's
 *   transaction (the collector acks the broker only after that commit). It is idempotent on
 *   (messageId, deadLetterQueue): adding the same message from the same queue again stores nothing and
 *   returns the existing row's id with `inserted: false`. Concurrent adds of one message store one row.
 * - lock() reads, in the caller's transaction, the rows among `ids` whose status is one of `statuses`,
 *   locking them (FOR UPDATE on PostgreSQL/MariaDB; the single writer on SQLite) so that two operators
 *   acting on one dead letter at once cannot both act: the second sees the new status and gets nothing.
 * - setStatus() changes only rows whose status is in `change.from`; returns how many changed.
 * - purge() deletes, in the caller's transaction, RESENT and DISCARDED rows whose status changed before
 *   `before` (epoch ms), at most `limit` of them (oldest first); NEW rows are never purged. Returns how many.
 * - Reads (get, list, ids, groups, summarize) see committed data; lists are newest last failure first
 *   (ties by id, descending), so paging is stable while rows are added.
 */
export interface DeadLetterStore {
  add(manager: EntityManager, letter: NewDeadLetter): Promise<{ id: string; inserted: boolean }>;
  get(id: string): Promise<DeadLetter | undefined>;
  list(filter: DeadLetterFilter, page: PageRequest): Promise<Page<DeadLetterSummary>>;
  /** Ids matching the filter, newest first, at most `limit` (bulk actions work through them in chunks). */
  ids(filter: DeadLetterFilter, limit: number): Promise<string[]>;
  groups(filter: DeadLetterFilter, limit: number): Promise<DeadLetterGroup[]>;
  summarize(): Promise<DeadLetterSummaryCounts>;
  lock(manager: EntityManager, ids: string[], statuses: DeadLetterStatus[]): Promise<DeadLetter[]>;
  setStatus(manager: EntityManager, ids: string[], change: DeadLetterStatusChange): Promise<number>;
  purge(manager: EntityManager, before: number, limit: number): Promise<number>;
  /** How many rows purge(before) would delete (for a dry run). */
  countPurgeable(before: number): Promise<number>;
}
