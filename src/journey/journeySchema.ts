import type { Dialect } from '../transaction/dialect';

/**
 * `tmm_journey`: one row per recorded step of a message (src/journey/JourneyEvent.ts), appended in batches by
 * the journey writer, read per message by the admin, deleted by the retention purge.
 *
 * Indexes: `tmm_journey_message` (message_id, at) for one message's timeline, `tmm_journey_at` for the purge
 * (BRIN on PostgreSQL: rows arrive in about time order),
 * and the search columns — correlation id, business key, linked id — indexed only where set (partial indexes
 * on PostgreSQL and SQLite: most steps carry none, so they cost nothing there).
 */
export const JOURNEY_V1: Record<Dialect, string[]> = {
  sqlite: [
    `CREATE TABLE IF NOT EXISTS tmm_journey (
      id INTEGER PRIMARY KEY,
      message_id TEXT NOT NULL,
      step TEXT NOT NULL,
      at INTEGER NOT NULL,
      source TEXT NOT NULL,
      attempt INTEGER NULL,
      outcome TEXT NULL,
      duration_ms INTEGER NULL,
      detail TEXT NULL,
      linked_id TEXT NULL,
      correlation_id TEXT NULL,
      business_key TEXT NULL
    )`,
    `CREATE INDEX IF NOT EXISTS tmm_journey_message ON tmm_journey (message_id, at)`,
    `CREATE INDEX IF NOT EXISTS tmm_journey_at ON tmm_journey (at)`,
    `CREATE INDEX IF NOT EXISTS tmm_journey_correlation ON tmm_journey (correlation_id) WHERE correlation_id IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS tmm_journey_key ON tmm_journey (business_key) WHERE business_key IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS tmm_journey_linked ON tmm_journey (linked_id) WHERE linked_id IS NOT NULL`,
  ],
  postgres: [
    `CREATE TABLE IF NOT EXISTS tmm_journey (
      id BIGSERIAL PRIMARY KEY,
      message_id VARCHAR(255) NOT NULL,
      step VARCHAR(32) NOT NULL,
      at BIGINT NOT NULL,
      source VARCHAR(255) NOT NULL,
      attempt INTEGER NULL,
      outcome VARCHAR(64) NULL,
      duration_ms INTEGER NULL,
      detail VARCHAR(1000) NULL,
      linked_id VARCHAR(255) NULL,
      correlation_id VARCHAR(128) NULL,
      business_key VARCHAR(255) NULL
    )`,
    `CREATE INDEX IF NOT EXISTS tmm_journey_message ON tmm_journey (message_id, at)`,
    // Rows arrive in about time order: a BRIN index serves the purge at a fraction of a b-tree's insert cost.
    `CREATE INDEX IF NOT EXISTS tmm_journey_at ON tmm_journey USING brin (at)`,
    `CREATE INDEX IF NOT EXISTS tmm_journey_correlation ON tmm_journey (correlation_id) WHERE correlation_id IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS tmm_journey_key ON tmm_journey (business_key) WHERE business_key IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS tmm_journey_linked ON tmm_journey (linked_id) WHERE linked_id IS NOT NULL`,
  ],
  mysql: [
    `CREATE TABLE IF NOT EXISTS tmm_journey (
      id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
      message_id VARCHAR(255) NOT NULL,
      step VARCHAR(32) NOT NULL,
      at BIGINT NOT NULL,
      source VARCHAR(255) NOT NULL,
      attempt INT NULL,
      outcome VARCHAR(64) NULL,
      duration_ms INT NULL,
      detail VARCHAR(1000) NULL,
      linked_id VARCHAR(255) NULL,
      correlation_id VARCHAR(128) NULL,
      business_key VARCHAR(255) NULL,
      INDEX tmm_journey_message (message_id, at),
      INDEX tmm_journey_at (at),
      INDEX tmm_journey_correlation (correlation_id),
      INDEX tmm_journey_key (business_key),
      INDEX tmm_journey_linked (linked_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ],
};
