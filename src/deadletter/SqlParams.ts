import type { EntityManager } from 'typeorm';
import type { Dialect } from '../transaction/dialect';
import { SqlParameters, sqlDialectFor } from '../sql/SqlDialect';

/**
 * The SqlDialect's parameter collector (src/sql/SqlDialect.ts), made from a dialect name: `p(value)` returns
 * the placeholder and remembers the value, so text order always matches parameter order.
 */
export class SqlParams extends SqlParameters {
  constructor(readonly dialectName: Dialect) {
    super(sqlDialectFor(dialectName));
  }
}

/** BIGINT and COUNT values arrive as strings from pg and mysql2. */
export function num(v: unknown): number {
  return Number(v);
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

export function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

/**
 * Locks the rows of `table` with these ids that are in one of `statuses`, in id order (so two operators
 * acting on overlapping sets lock in the same order and never deadlock), for the rest of `manager`'s
 * transaction; SQLite's single writer needs no row lock. Ids must already be valid (callers filter them).
 */
export async function lockRowsByIdAndStatus(
  manager: EntityManager,
  dialect: Dialect,
  table: 'tmm_dead_letter' | 'tmm_outbox',
  ids: readonly string[],
  statuses: readonly string[],
): Promise<Record<string, unknown>[]> {
  if (ids.length === 0) return [];
  const q = new SqlParams(dialect);
  const forUpdate = dialect === 'sqlite' ? '' : ' FOR UPDATE';
  return manager.query(`SELECT * FROM ${table} WHERE id IN (${q.list(ids)}) AND status IN (${q.list(statuses)}) ORDER BY id${forUpdate}`, q.values);
}
