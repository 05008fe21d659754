import type { DataSource, QueryRunner } from 'typeorm';
import { AUDIT_V1, DEAD_LETTER_V1, DEAD_LETTER_V2 } from '../deadletter/deadLetterSchema';
import { INBOX_V1, LOCK_V1, OUTBOX_V1 } from '../outbox/schema';
import { JOURNEY_V1 } from '../journey/journeySchema';
import { Dialect, dialectOf } from '../transaction/dialect';
import { TXLOG_BARRIER_V1 } from '../txlog/barrierSchema';

// One migrate() for every component's DDL: each component owns its tables' statements (src/outbox/schema.ts,
// src/deadletter/deadLetterSchema.ts); this file only orders and applies them.

const SCHEMA_TABLE: Record<Dialect, string> = {
  sqlite: `CREATE TABLE IF NOT EXISTS tmm_schema (component TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL)`,
  postgres: `CREATE TABLE IF NOT EXISTS tmm_schema (component VARCHAR(64) PRIMARY KEY, version INTEGER NOT NULL, applied_at BIGINT NOT NULL)`,
  mysql: `CREATE TABLE IF NOT EXISTS tmm_schema (component VARCHAR(64) NOT NULL PRIMARY KEY, version INT NOT NULL, applied_at BIGINT NOT NULL) ENGINE=InnoDB`,
};

/** Ordered migrations per component; each statement is idempotent on its own. */
export const MIGRATIONS: { component: string; version: number; statements: Record<Dialect, string[]> }[] = [
  { component: 'outbox', version: 1, statements: OUTBOX_V1 },
  { component: 'lock', version: 1, statements: LOCK_V1 },
  { component: 'inbox', version: 1, statements: INBOX_V1 },
  // The admin's tables (src/deadletter/deadLetterSchema.ts); 'deadletter' also indexes DEAD/EXCEPTION outbox rows.
  { component: 'deadletter', version: 1, statements: DEAD_LETTER_V1 },
  { component: 'audit', version: 1, statements: AUDIT_V1 },
  { component: 'deadletter', version: 2, statements: DEAD_LETTER_V2 },
  // The log-mode sender's check-back barrier (src/txlog/barrierSchema.ts).
  { component: 'txlog-barrier', version: 1, statements: TXLOG_BARRIER_V1 },
  // The recorded message journey (src/journey/journeySchema.ts).
  { component: 'journey', version: 1, statements: JOURNEY_V1 },
];

export interface MigrationResult {
  dialect: Dialect;
  applied: { component: string; version: number }[];
}

export interface MigrateOptions {
  /** SQLite busy timeout set on the connection (default 5000 ms). */
  sqliteBusyTimeoutMs?: number;
  /** PostgreSQL/MariaDB: how long to wait for another process's migration to finish (default 60 s). */
  lockTimeoutMs?: number;
}

type Run = (sql: string, params?: unknown[]) => Promise<unknown>;

/** Applies what tmm_schema says is missing, through `run` (one connection). */
async function applyPending(run: Run, dialect: Dialect): Promise<MigrationResult> {
  await run(SCHEMA_TABLE[dialect]);
  const rows = (await run(`SELECT component, version FROM tmm_schema`)) as { component: string; version: number | string }[];
  const current = new Map(rows.map((r) => [r.component, Number(r.version)]));
  const applied: MigrationResult['applied'] = [];
  for (const m of MIGRATIONS) {
    if ((current.get(m.component) ?? 0) >= m.version) continue;
    for (const sql of m.statements[dialect]) await run(sql);
    await run(upsertVersion(dialect), [m.component, m.version, Date.now()]);
    applied.push({ component: m.component, version: m.version });
  }
  return { dialect, applied };
}

/**
 * Creates or upgrades tmm's tables. Explicit (never TypeORM `synchronize`), idempotent, and safe to run
 * from several processes at once: on PostgreSQL the migration holds a session advisory lock, on
 * MariaDB/MySQL a named lock (GET_LOCK), on SQLite the database's own write lock; a second process waits,
 * then finds nothing left to apply. On SQLite it also switches the database to WAL (outside any
 * transaction) and sets a busy timeout.
 */
export async function migrate(dataSource: DataSource, options: MigrateOptions = {}): Promise<MigrationResult> {
  const dialect = dialectOf(dataSource);
  const qr = dataSource.createQueryRunner();
  try {
    await qr.connect();
    const run: Run = (sql, params) => qr.query(sql, params);
    if (dialect === 'sqlite') {
      await prepareSqliteOn(run, dataSource, options.sqliteBusyTimeoutMs ?? 5000, qr.isTransactionActive);
      if (qr.isTransactionActive) return await applyPending(run, dialect);
      // SQLite's DDL is transactional: BEGIN IMMEDIATE takes the database's write lock first, so a second
      // process waits (busy timeout) and then reads the versions this one wrote.
      try {
        await run('BEGIN IMMEDIATE');
      } catch (e) {
        // The connection is already in a transaction the query runner does not know of (TypeORM 0.3's
        // sqlite driver shares one connection): apply inside it.
        if (/within a transaction/i.test(String((e as Error).message))) return await applyPending(run, dialect);
        throw e;
      }
      try {
        const result = await applyPending(run, dialect);
        await run('COMMIT');
        return result;
      } catch (e) {
        await run('ROLLBACK').catch(() => undefined);
        throw e;
      }
    }
    const waitS = Math.max(1, Math.ceil((options.lockTimeoutMs ?? 60_000) / 1000));
    if (dialect === 'postgres') {
      await run(`SET lock_timeout = '${waitS}s'`);
      await run(`SELECT pg_advisory_lock(hashtext('tmm_schema'))`);
      try {
        return await applyPending(run, dialect);
      } finally {
        await run(`SELECT pg_advisory_unlock(hashtext('tmm_schema'))`);
        await run(`SET lock_timeout = DEFAULT`);
      }
    }
    const got = (await run(`SELECT GET_LOCK('tmm_schema', ?) AS got`, [waitS])) as { got: number | string | null }[];
    if (Number(got[0]?.got) !== 1) throw new Error(`tmm migrate: another process held the tmm_schema lock for more than ${waitS} s`);
    try {
      return await applyPending(run, dialect);
    } finally {
      await run(`SELECT RELEASE_LOCK('tmm_schema')`);
    }
  } finally {
    await qr.release();
  }
}

/**
 * Every statement a fresh database needs for tmm's tables, in order, with the tmm_schema version rows
 * written as literals: what `tmm migrate --print-sql` prints, for a DBA or a migration tool of the app's.
 */
export function migrationStatements(dialect: Dialect, now: number = Date.now()): string[] {
  const out = [SCHEMA_TABLE[dialect]];
  for (const m of MIGRATIONS) {
    out.push(...m.statements[dialect]);
    const sql = upsertVersion(dialect);
    let n = 0;
    const values = [`'${m.component}'`, String(m.version), String(now)];
    out.push(sql.replace(/\$\d|\?/g, () => values[n++]).replace(/\s+/g, ' '));
  }
  return out;
}

/**
 * tmm's tables as a TypeORM migration, for apps that run their schema through TypeORM's migration tool
 * (`migrations: [TmmSchemaMigration]`): up() applies whatever tmm migrations are pending on the
 * migration's own query runner (inside the transaction TypeORM opens; on SQLite the WAL switch is left to
 * Tmm.start(), as SQLite refuses it inside a transaction), so it is safe to keep in the list across tmm
 * upgrades; after upgrading tmm add a subclass with a newer `name` to pick up new versions. down() drops
 * tmm's tables.
 */
export class TmmSchemaMigration {
  name = 'TmmSchema1764547200000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const dialect = dialectOf(queryRunner.connection);
    await applyPending((sql, params) => queryRunner.query(sql, params), dialect);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of ['tmm_journey', 'tmm_txlog_barrier', 'tmm_audit', 'tmm_dead_letter', 'tmm_inbox', 'tmm_lock', 'tmm_outbox', 'tmm_schema']) await queryRunner.query(`DROP TABLE IF EXISTS ${table}`);
  }
}

function upsertVersion(dialect: Dialect): string {  switch (dialect) {
    case 'postgres':
      return `INSERT INTO tmm_schema (component, version, applied_at) VALUES ($1, $2, $3)
              ON CONFLICT (component) DO UPDATE SET version = GREATEST(tmm_schema.version, EXCLUDED.version), applied_at = EXCLUDED.applied_at`;
    case 'mysql':
      return `INSERT INTO tmm_schema (component, version, applied_at) VALUES (?, ?, ?)
              ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version)), applied_at = VALUES(applied_at)`;
    case 'sqlite':
      return `INSERT INTO tmm_schema (component, version, applied_at) VALUES (?, ?, ?)
              ON CONFLICT (component) DO UPDATE SET version = MAX(version, excluded.version), applied_at = excluded.applied_at`;
  }
}

/** WAL lets readers proceed while the single writer commits; the busy timeout absorbs short lock waits. */
export async function prepareSqlite(dataSource: DataSource, busyTimeoutMs: number): Promise<void> {
  await prepareSqliteOn((sql) => dataSource.query(sql), dataSource, busyTimeoutMs, false);
}

async function prepareSqliteOn(run: Run, dataSource: DataSource, busyTimeoutMs: number, inTransaction: boolean): Promise<void> {
  const db = String((dataSource.options as { database?: unknown }).database ?? '');
  // SQLite refuses to change the journal mode inside a transaction ("cannot change into wal mode from within a transaction").
  if (db !== ':memory:' && db !== '' && !inTransaction) await run(`PRAGMA journal_mode = WAL`);
  await run(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
}
