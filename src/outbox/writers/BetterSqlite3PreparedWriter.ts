import { QueryFailedError, QueryRunner } from 'typeorm';
import { PreparedWriter } from './PreparedWriter';
import { SETTLED } from './settled';

interface Statement {
  run(...params: unknown[]): unknown;
}
interface BetterSqlite3Database {
  prepare(sql: string): Statement;
  inTransaction: boolean;
}

export function isBetterSqlite3(conn: unknown): conn is BetterSqlite3Database {
  const c = conn as { prepare?: unknown; inTransaction?: unknown; pragma?: unknown } | null;
  return !!c && typeof c.prepare === 'function' && typeof c.pragma === 'function' && typeof c.inTransaction === 'boolean';
}


/**
 * better-sqlite3: one cached `Statement` per database connection and text (SQLite re-prepares a cached
 * statement by itself after a schema change). Runs synchronously on the single connection, which the
 * caller's transaction holds (TypeOrmTransactionManager's writer lock).
 *
 * The connection is the driver's `databaseConnection` (public on TypeORM's SQLite drivers, 0.3 and 1.x:
 * the one connection of the DataSource, what the query runner's `connect()` resolves to), read
 * synchronously, so the statement runs within the call and `run()` returns an already settled promise
 * (ADR 0077). When the driver has no such connection the adapter asks `connect()` as before.
 */
export class BetterSqlite3PreparedWriter implements PreparedWriter {
  readonly name = 'better-sqlite3';
  private readonly cache = new WeakMap<object, Map<string, Statement>>();

  constructor(private readonly fallback: PreparedWriter) {}

  run(queryRunner: QueryRunner, sql: string, params: unknown[], prepare = true): Promise<void> {
    const db: unknown = (queryRunner.connection.driver as { databaseConnection?: unknown }).databaseConnection;
    if (!isBetterSqlite3(db)) return this.runConnected(queryRunner, sql, params, prepare);
    try {
      this.execute(db, queryRunner, sql, params, prepare);
    } catch (e) {
      return Promise.reject(e);
    }
    return SETTLED; // a statement that ran costs no promise of its own
  }

  /** The driver holds no better-sqlite3 connection: whatever the query runner connects to (else the fallback). */
  private async runConnected(queryRunner: QueryRunner, sql: string, params: unknown[], prepare: boolean): Promise<void> {
    const db: unknown = await queryRunner.connect();
    if (!isBetterSqlite3(db)) return this.fallback.run(queryRunner, sql, params, prepare);
    this.execute(db, queryRunner, sql, params, prepare);
  }

  private execute(db: BetterSqlite3Database, queryRunner: QueryRunner, sql: string, params: unknown[], prepare: boolean): void {
    queryRunner.connection.logger.logQuery(sql, params, queryRunner);
    try {
      let statements = this.cache.get(db);
      if (!statements) this.cache.set(db, (statements = new Map()));
      let stmt = statements.get(sql);
      if (!stmt) {
        stmt = db.prepare(sql);
        if (prepare) statements.set(sql, stmt);
      }
      stmt.run(...params);
    } catch (e) {
      queryRunner.connection.logger.logQueryError(e as Error, sql, params, queryRunner);
      throw new QueryFailedError(sql, params, e as Error);
    }
  }
}
