import type { Dialect } from '../transaction/dialect';

/**
 * The check-back barrier's table (src/txlog/CheckBack.ts), per dialect; src/runtime/migrate.ts applies it
 * as component `txlog-barrier`. One row per log-mode transaction that uses the barrier: `(uid, 'commit')`
 * inserted by the business transaction, or `(uid, 'rollback')` by a check-back that came first. The
 * primary key is what makes the verdict final; rows are deleted once the transaction's fate is final
 * and older than txlog.barrierRetentionMs.
 */
export const TXLOG_BARRIER_V1: Record<Dialect, string[]> = {
  sqlite: [`CREATE TABLE IF NOT EXISTS tmm_txlog_barrier (uid TEXT PRIMARY KEY NOT NULL, reason TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID`],
  postgres: [`CREATE TABLE IF NOT EXISTS tmm_txlog_barrier (uid VARCHAR(64) PRIMARY KEY, reason VARCHAR(16) NOT NULL, created_at BIGINT NOT NULL)`],
  mysql: [`CREATE TABLE IF NOT EXISTS tmm_txlog_barrier (uid VARCHAR(64) NOT NULL PRIMARY KEY, reason VARCHAR(16) NOT NULL, created_at BIGINT NOT NULL) ENGINE=InnoDB`],
};
