import type { EntityManager } from 'typeorm';
import { OutboxMessage, OutboxStatus } from '../message/OutboxMessage';

/** A row of tmm_outbox as read back, with its delivery state. */
export interface OutboxRecord extends OutboxMessage {
  status: OutboxStatus;
  attempts: number;
  leaseOwner: string | null;
  leaseUntil: number | null;
  deliveredAt: number | null;
  lastError: string | null;
}

/** A lease taken on rows: only `owner` may mark them until `until` (epoch ms) has passed. */
export interface Lease {
  owner: string;
  until: number;
}

/**
 * Storage of outgoing messages.
 *
 * Contract:
 * - append() writes all messages with the given EntityManager, so they commit or roll back with the
 *   caller's transaction; it issues one multi-row INSERT per chunk of rows (never one per message), and
 *   takes `lease` on them when given (so other relays leave freshly committed rows to this process).
 *   When the transaction pipelines its COMMIT (PostgreSQL, ADR 0078) append() may resolve once the INSERT
 *   is on the wire, before its result: a failed INSERT then fails the commit (the transaction rolls back).
 * - markDelivered() sets DELIVERED (or deletes, with `deleteRows`) only rows that are PENDING and either
 *   leased by `owner` or not leased by anyone live (fencing: a process never marks another's row); it
 *   returns how many rows it changed. One statement per call.
 * - recordFailure() counts an attempt (unless `countAttempt` is false: a transient failure such as a broker
 *   outage, which says nothing about the message), stores the error, releases the lease and makes the row
 *   due again at `retryAt`, or DEAD when `dead` is true; same fencing as markDelivered.
 * - Reads (get, countByStatus) see committed data only.
 */
export interface OutboxStore {
  append(manager: EntityManager, messages: OutboxMessage[], lease?: Lease): Promise<void>;
  markDelivered(ids: string[], owner: string, options?: { deleteRows?: boolean; now?: number }): Promise<number>;
  recordFailure(id: string, owner: string, failure: { error: string; retryAt: number; dead: boolean; countAttempt?: boolean; now?: number }): Promise<boolean>;
  get(id: string): Promise<OutboxRecord | undefined>;
  countByStatus(): Promise<Record<OutboxStatus, number>>;
  /**
   * Leases up to `limit` due rows to `owner` and returns them, oldest due first: PENDING, available_at ≤ now,
   * no live lease, and for an ordering key only its first PENDING row (so one per key is ever in flight).
   * Concurrent claimers never get the same row (FOR UPDATE SKIP LOCKED on PostgreSQL/MariaDB; the single
   * writer on SQLite).
   */
  claimDue(owner: string, options: { leaseMs: number; limit: number; now?: number }): Promise<OutboxRecord[]>;
  /** True when no PENDING row with the same ordering key is older than `id`. */
  isHeadOfKey(id: string, orderingKey: string): Promise<boolean>;
  /** Gives up `owner`'s lease on these PENDING rows so any relay may take them now. */
  releaseLeases(ids: string[], owner: string): Promise<number>;
  /** Deletes up to `limit` DELIVERED rows delivered before `before`; returns how many. */
  purgeDelivered(before: number, limit: number): Promise<number>;
  /**
   * How many rows are PENDING and when the oldest of them became due (epoch ms; null when none), for
   * health checks; and when the oldest PENDING row that already failed to publish was created (a failed
   * publish moves a row's due time on, so its due time alone hides how long it has been waiting).
   * Optional: a store without it reports no backlog.
   */
  backlogStats?(): Promise<{ pending: number; oldestDueAt: number | null; oldestFailingCreatedAt?: number | null }>;
  /** How many rows are DEAD (for the outboxDead alert), through an index on status. Optional: without it, countByStatus() is used. */
  countDead?(): Promise<number>;
}
