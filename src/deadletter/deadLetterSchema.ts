import type { Dialect } from '../transaction/dialect';

/**
 * `tmm_dead_letter`: one row per message collected from a dead-letter queue. The unique key
 * (message_id, dead_letter_queue) makes collecting idempotent: a message redelivered after a crash
 * between our commit and the broker ack is not stored twice. Lists are served newest first from the
 * (status | consumer | fingerprint | topic, status, last_failure_at) indexes, so a filtered page among
 * 100,000 rows reads only the page. Times are epoch ms in BIGINT, as in tmm_outbox.
 */
export const DEAD_LETTER_V1: Record<Dialect, string[]> = {
  sqlite: [
    `CREATE TABLE IF NOT EXISTS tmm_dead_letter (
      id TEXT PRIMARY KEY NOT NULL,
      message_id TEXT NOT NULL,
      dead_letter_queue TEXT NOT NULL,
      queue TEXT NULL,
      consumer TEXT NULL,
      topic TEXT NOT NULL,
      original_exchange TEXT NOT NULL,
      original_routing_key TEXT NOT NULL,
      payload TEXT NOT NULL,
      headers TEXT NOT NULL,
      content_type TEXT NOT NULL,
      reason TEXT NOT NULL,
      error_code TEXT NULL,
      error_message TEXT NOT NULL,
      error_stack TEXT NULL,
      fingerprint TEXT NOT NULL,
      attempts INTEGER NOT NULL,
      first_failure_at INTEGER NOT NULL,
      last_failure_at INTEGER NOT NULL,
      message_created_at INTEGER NULL,
      received_at INTEGER NOT NULL,
      status TEXT NOT NULL DEFAULT 'NEW',
      status_at INTEGER NULL,
      status_by TEXT NULL,
      resent_message_id TEXT NULL
    )`,
    `CREATE UNIQUE INDEX IF NOT EXISTS tmm_dead_letter_message ON tmm_dead_letter (message_id, dead_letter_queue)`,
    `CREATE INDEX IF NOT EXISTS tmm_dead_letter_status ON tmm_dead_letter (status, last_failure_at)`,
    `CREATE INDEX IF NOT EXISTS tmm_dead_letter_consumer ON tmm_dead_letter (consumer, status, last_failure_at)`,
    `CREATE INDEX IF NOT EXISTS tmm_dead_letter_fingerprint ON tmm_dead_letter (fingerprint, status, last_failure_at)`,
    `CREATE INDEX IF NOT EXISTS tmm_dead_letter_topic ON tmm_dead_letter (topic, status, last_failure_at)`,
    `CREATE INDEX IF NOT EXISTS tmm_dead_letter_time ON tmm_dead_letter (last_failure_at)`,
    // The admin lists DEAD/EXCEPTION outbox rows newest first; partial, so PENDING inserts never touch it.
    `CREATE INDEX IF NOT EXISTS tmm_outbox_stuck ON tmm_outbox (created_at) WHERE status IN ('DEAD', 'EXCEPTION')`,
  ],
  postgres: [
    `CREATE TABLE IF NOT EXISTS tmm_dead_letter (
      id UUID PRIMARY KEY,
      message_id VARCHAR(255) NOT NULL,
      dead_letter_queue VARCHAR(255) NOT NULL,
      queue VARCHAR(255) NULL,
      consumer VARCHAR(255) NULL,
      topic VARCHAR(255) NOT NULL,
      original_exchange VARCHAR(255) NOT NULL,
      original_routing_key VARCHAR(255) NOT NULL,
      payload TEXT NOT NULL,
      headers TEXT NOT NULL,
      content_type VARCHAR(255) NOT NULL,
      reason VARCHAR(64) NOT NULL,
      error_code VARCHAR(255) NULL,
      error_message TEXT NOT NULL,
      error_stack TEXT NULL,
      fingerprint VARCHAR(64) NOT NULL,
      attempts INTEGER NOT NULL,
      first_failure_at BIGINT NOT NULL,
      last_failure_at BIGINT NOT NULL,
      message_created_at BIGINT NULL,
      received_at BIGINT NOT NULL,
      status VARCHAR(16) NOT NULL DEFAULT 'NEW',
      status_at BIGINT NULL,
      status_by VARCHAR(255) NULL,
      resent_message_id VARCHAR(64) NULL
    )`,
    `CREATE UNIQUE INDEX IF NOT EXISTS tmm_dead_letter_message ON tmm_dead_letter (message_id, dead_letter_queue)`,
    `CREATE INDEX IF NOT EXISTS tmm_dead_letter_status ON tmm_dead_letter (status, last_failure_at)`,
    `CREATE INDEX IF NOT EXISTS tmm_dead_letter_consumer ON tmm_dead_letter (consumer, status, last_failure_at)`,
    `CREATE INDEX IF NOT EXISTS tmm_dead_letter_fingerprint ON tmm_dead_letter (fingerprint, status, last_failure_at)`,
    `CREATE INDEX IF NOT EXISTS tmm_dead_letter_topic ON tmm_dead_letter (topic, status, last_failure_at)`,
    `CREATE INDEX IF NOT EXISTS tmm_dead_letter_time ON tmm_dead_letter (last_failure_at)`,
    `CREATE INDEX IF NOT EXISTS tmm_outbox_stuck ON tmm_outbox (created_at) WHERE status IN ('DEAD', 'EXCEPTION')`,
  ],
  // MySQL 8 has no CREATE INDEX IF NOT EXISTS: indexes live in CREATE TABLE. tmm_outbox's (status, available_at)
  // index already serves the admin's DEAD/EXCEPTION lists there.
  mysql: [
    `CREATE TABLE IF NOT EXISTS tmm_dead_letter (
      id CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
      message_id VARCHAR(255) NOT NULL,
      dead_letter_queue VARCHAR(255) NOT NULL,
      queue VARCHAR(255) NULL,
      consumer VARCHAR(255) NULL,
      topic VARCHAR(255) NOT NULL,
      original_exchange VARCHAR(255) NOT NULL,
      original_routing_key VARCHAR(255) NOT NULL,
      payload LONGTEXT NOT NULL,
      headers MEDIUMTEXT NOT NULL,
      content_type VARCHAR(255) NOT NULL,
      reason VARCHAR(64) NOT NULL,
      error_code VARCHAR(255) NULL,
      error_message TEXT NOT NULL,
      error_stack MEDIUMTEXT NULL,
      fingerprint VARCHAR(64) NOT NULL,
      attempts INT NOT NULL,
      first_failure_at BIGINT NOT NULL,
      last_failure_at BIGINT NOT NULL,
      message_created_at BIGINT NULL,
      received_at BIGINT NOT NULL,
      status VARCHAR(16) NOT NULL DEFAULT 'NEW',
      status_at BIGINT NULL,
      status_by VARCHAR(255) NULL,
      resent_message_id VARCHAR(64) NULL,
      UNIQUE INDEX tmm_dead_letter_message (message_id, dead_letter_queue),
      INDEX tmm_dead_letter_status (status, last_failure_at),
      INDEX tmm_dead_letter_consumer (consumer, status, last_failure_at),
      INDEX tmm_dead_letter_fingerprint (fingerprint, status, last_failure_at),
      INDEX tmm_dead_letter_topic (topic, status, last_failure_at),
      INDEX tmm_dead_letter_time (last_failure_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ],
};

/**
 * `tmm_audit`: every operator action, written in the same transaction as the action itself (an action
 * that rolls back leaves no entry; one that commits always has one). `before_state`/`after_state` are JSON.
 */
export const AUDIT_V1: Record<Dialect, string[]> = {
  sqlite: [
    `CREATE TABLE IF NOT EXISTS tmm_audit (
      id TEXT PRIMARY KEY NOT NULL,
      at INTEGER NOT NULL,
      principal TEXT NOT NULL,
      action TEXT NOT NULL,
      target_type TEXT NOT NULL,
      target_id TEXT NOT NULL,
      before_state TEXT NULL,
      after_state TEXT NULL,
      comment TEXT NULL
    )`,
    `CREATE INDEX IF NOT EXISTS tmm_audit_target ON tmm_audit (target_type, target_id, at)`,
    `CREATE INDEX IF NOT EXISTS tmm_audit_at ON tmm_audit (at)`,
  ],
  postgres: [
    `CREATE TABLE IF NOT EXISTS tmm_audit (
      id UUID PRIMARY KEY,
      at BIGINT NOT NULL,
      principal VARCHAR(255) NOT NULL,
      action VARCHAR(64) NOT NULL,
      target_type VARCHAR(32) NOT NULL,
      target_id VARCHAR(255) NOT NULL,
      before_state TEXT NULL,
      after_state TEXT NULL,
      comment TEXT NULL
    )`,
    `CREATE INDEX IF NOT EXISTS tmm_audit_target ON tmm_audit (target_type, target_id, at)`,
    `CREATE INDEX IF NOT EXISTS tmm_audit_at ON tmm_audit (at)`,
  ],
  mysql: [
    `CREATE TABLE IF NOT EXISTS tmm_audit (
      id CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
      at BIGINT NOT NULL,
      principal VARCHAR(255) NOT NULL,
      action VARCHAR(64) NOT NULL,
      target_type VARCHAR(32) NOT NULL,
      target_id VARCHAR(255) NOT NULL,
      before_state LONGTEXT NULL,
      after_state LONGTEXT NULL,
      comment TEXT NULL,
      INDEX tmm_audit_target (target_type, target_id, at),
      INDEX tmm_audit_at (at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ],
};

/**
 * Version 2: `payload_encoding` ('utf8' | 'base64'). A body that is not valid UTF-8 or contains NUL bytes
 * (which PostgreSQL text refuses) is stored as base64 of its exact bytes, flagged here, and resent byte-exact.
 */
export const DEAD_LETTER_V2: Record<Dialect, string[]> = {
  sqlite: [`ALTER TABLE tmm_dead_letter ADD COLUMN payload_encoding TEXT NOT NULL DEFAULT 'utf8'`],
  postgres: [`ALTER TABLE tmm_dead_letter ADD COLUMN IF NOT EXISTS payload_encoding VARCHAR(16) NOT NULL DEFAULT 'utf8'`],
  mysql: [`ALTER TABLE tmm_dead_letter ADD COLUMN IF NOT EXISTS payload_encoding VARCHAR(16) NOT NULL DEFAULT 'utf8'`],
};
