import type { Dialect } from '../transaction/dialect';

/**
 * The outbox's own tables (tmm_outbox, the relay's tmm_lock, the consumers' tmm_inbox), per dialect; src/runtime/migrate.ts
 * applies them with every other component's.
 *
 * The tables tmm owns, per dialect. Times are epoch milliseconds in BIGINT columns: portable, exact,
 * and compared with the relay's clock without time-zone conversions.
 *
 * Indexes serve the relay's queries: `tmm_outbox_due` for claiming due rows (partial on PENDING where the
 * dialect has partial indexes, so delivered rows kept for retention cost nothing there),
 * `tmm_outbox_ordering` (ordering_key, id) for finding the head of each ordered key. Every index is paid
 * for on each insert (bench/producer), so there is no other. On SQLite the table is WITHOUT ROWID: the
 * time-ordered id is the clustering key, one b-tree fewer to write per message. On PostgreSQL the table
 * has fillfactor 70, leaving room in each page so the relay's lease UPDATE can stay a HOT update.
 */
export const OUTBOX_V1: Record<Dialect, string[]> = {
  sqlite: [
    `CREATE TABLE IF NOT EXISTS tmm_outbox (
      id TEXT PRIMARY KEY NOT NULL,
      topic TEXT NOT NULL,
      exchange TEXT NOT NULL,
      routing_key TEXT NOT NULL,
      payload TEXT NOT NULL,
      headers TEXT NOT NULL,
      status TEXT NOT NULL DEFAULT 'PENDING',
      attempts INTEGER NOT NULL DEFAULT 0,
      available_at INTEGER NOT NULL,
      lease_owner TEXT NULL,
      lease_until INTEGER NULL,
      ordering_key TEXT NULL,
      created_at INTEGER NOT NULL,
      delivered_at INTEGER NULL,
      last_error TEXT NULL
    ) WITHOUT ROWID`,
    `CREATE INDEX IF NOT EXISTS tmm_outbox_due ON tmm_outbox (available_at) WHERE status = 'PENDING'`,
    `CREATE INDEX IF NOT EXISTS tmm_outbox_ordering ON tmm_outbox (ordering_key, id) WHERE ordering_key IS NOT NULL`,
  ],
  postgres: [
    `CREATE TABLE IF NOT EXISTS tmm_outbox (
      id UUID PRIMARY KEY,
      topic VARCHAR(255) NOT NULL,
      exchange VARCHAR(255) NOT NULL,
      routing_key VARCHAR(255) NOT NULL,
      payload TEXT NOT NULL,
      headers TEXT NOT NULL,
      status VARCHAR(16) NOT NULL DEFAULT 'PENDING',
      attempts INTEGER NOT NULL DEFAULT 0,
      available_at BIGINT NOT NULL,
      lease_owner VARCHAR(64) NULL,
      lease_until BIGINT NULL,
      ordering_key VARCHAR(255) NULL,
      created_at BIGINT NOT NULL,
      delivered_at BIGINT NULL,
      last_error TEXT NULL
    ) WITH (fillfactor = 70)`,
    `CREATE INDEX IF NOT EXISTS tmm_outbox_due ON tmm_outbox (available_at, id) WHERE status = 'PENDING'`,
    `CREATE INDEX IF NOT EXISTS tmm_outbox_ordering ON tmm_outbox (ordering_key, id) WHERE ordering_key IS NOT NULL`,
  ],
  // MySQL 8 has no CREATE INDEX IF NOT EXISTS, so indexes are declared inside CREATE TABLE IF NOT EXISTS.
  mysql: [
    `CREATE TABLE IF NOT EXISTS tmm_outbox (
      id CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
      topic VARCHAR(255) NOT NULL,
      exchange VARCHAR(255) NOT NULL,
      routing_key VARCHAR(255) NOT NULL,
      payload LONGTEXT NOT NULL,
      headers TEXT NOT NULL,
      status VARCHAR(16) NOT NULL DEFAULT 'PENDING',
      attempts INT NOT NULL DEFAULT 0,
      available_at BIGINT NOT NULL,
      lease_owner VARCHAR(64) NULL,
      lease_until BIGINT NULL,
      ordering_key VARCHAR(255) NULL,
      created_at BIGINT NOT NULL,
      delivered_at BIGINT NULL,
      last_error TEXT NULL,
      INDEX tmm_outbox_due (status, available_at),
      INDEX tmm_outbox_ordering (ordering_key, id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ],
};

export const LOCK_V1: Record<Dialect, string[]> = {
  sqlite: [`CREATE TABLE IF NOT EXISTS tmm_lock (name TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, until INTEGER NOT NULL)`],
  postgres: [`CREATE TABLE IF NOT EXISTS tmm_lock (name VARCHAR(64) PRIMARY KEY, owner VARCHAR(64) NOT NULL, until BIGINT NOT NULL)`],
  mysql: [`CREATE TABLE IF NOT EXISTS tmm_lock (name VARCHAR(64) NOT NULL PRIMARY KEY, owner VARCHAR(64) NOT NULL, until BIGINT NOT NULL) ENGINE=InnoDB`],
};

/**
 * The consumer inbox: one row per (consumer, message id) an idempotent consumer has processed, inserted
 * in the handler's own transaction before the handler runs (the claim). The primary key is the unique
 * constraint the claim relies on; `tmm_inbox_processed` serves the retention purge. `consumer` is the
 * consumer's queue name (stable across class renames).
 */
export const INBOX_V1: Record<Dialect, string[]> = {
  sqlite: [
    `CREATE TABLE IF NOT EXISTS tmm_inbox (
      consumer TEXT NOT NULL,
      message_id TEXT NOT NULL,
      processed_at INTEGER NOT NULL,
      PRIMARY KEY (consumer, message_id)
    ) WITHOUT ROWID`,
    `CREATE INDEX IF NOT EXISTS tmm_inbox_processed ON tmm_inbox (processed_at)`,
  ],
  postgres: [
    `CREATE TABLE IF NOT EXISTS tmm_inbox (
      consumer VARCHAR(255) NOT NULL,
      message_id VARCHAR(255) NOT NULL,
      processed_at BIGINT NOT NULL,
      PRIMARY KEY (consumer, message_id)
    )`,
    `CREATE INDEX IF NOT EXISTS tmm_inbox_processed ON tmm_inbox (processed_at)`,
  ],
  mysql: [
    `CREATE TABLE IF NOT EXISTS tmm_inbox (
      consumer VARCHAR(255) NOT NULL,
      message_id VARCHAR(255) NOT NULL,
      processed_at BIGINT NOT NULL,
      PRIMARY KEY (consumer, message_id),
      INDEX tmm_inbox_processed (processed_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ],
};
