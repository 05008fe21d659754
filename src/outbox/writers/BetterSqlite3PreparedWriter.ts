import { QueryFailedError, QueryRunner } from 'typeorm';
import { PreparedWriter } from './PreparedWriter';

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
 */
export class BetterSqlite3PreparedWriter implements PreparedWriter {
  readonly name = 'better-sqlite3';
  private readonly cache = new WeakMap<object, Map<string, Statement>>();

  constructor(private readonly fallback: PreparedWriter) {}

  async run(queryRunner: QueryRunner, sql: string, params: unknown[], prepare = true): Promise<void> {
    const db: unknown = await queryRunner.connect();
    if (!isBetterSqlite3(db)) return this.fallback.run(queryRunner, sql, params, prepare);
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
