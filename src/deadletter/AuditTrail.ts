import type { EntityManager } from 'typeorm';
import type { Page, PageRequest } from './DeadLetter';

/** What an audit entry is about. */
export type AuditTargetType = 'dead-letter' | 'outbox' | 'txlog';

/** One operator action on one target. `before`/`after` are the parts of the target's state it changed. */
export interface AuditEntry {
  id: string;
  at: number;
  /** Who: the authenticated principal (`token:ops`, `user:alice`, `cli:root`). */
  principal: string;
  /** What: `dead-letter.resend`, `dead-letter.edit-resend`, `dead-letter.discard`, `outbox.retry`, `outbox.discard`, `txlog.force-send`, `txlog.discard`. */
  action: string;
  targetType: AuditTargetType;
  targetId: string;
  before: unknown;
  after: unknown;
  comment: string | null;
}

export interface AuditFilter {
  targetType?: AuditTargetType;
  targetId?: string;
  principal?: string;
  action?: string;
}

/**
 * The audit trail (`tmm_audit`).
 *
 * Contract:
 * - record() writes with the caller's EntityManager: entries commit or roll back with the action they
 *   describe, so a committed action always has its entry and a failed one has none. Many entries are
 *   written with few statements (bulk actions record one entry per target).
 * - list() returns committed entries, newest first; entries are never changed, and deleted only by
 *   purge(): in the caller's transaction, entries older than `before` (epoch ms), at most `limit` of them
 *   (oldest first), for the retention the operator configured. Returns how many.
 */
export interface AuditTrail {
  record(manager: EntityManager, entries: Omit<AuditEntry, 'id'>[]): Promise<void>;
  list(filter: AuditFilter, page: PageRequest): Promise<Page<AuditEntry>>;
  purge(manager: EntityManager, before: number, limit: number): Promise<number>;
  /** How many entries purge(before) would delete (for a dry run). */
  countPurgeable(before: number): Promise<number>;
}
