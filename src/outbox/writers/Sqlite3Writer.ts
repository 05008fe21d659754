import { QueryFailedError, QueryRunner } from 'typeorm';
import { PreparedWriter } from './PreparedWriter';

interface Sqlite3Database {
  run(sql: string, params: unknown[], callback: (err: Error | null) => void): unknown;
  serialize: unknown;
}

export function isSqlite3(conn: unknown): conn is Sqlite3Database {
  const c = conn as { run?: unknown; serialize?: unknown; prepare?: unknown; pragma?: unknown } | null;
  return !!c && typeof c.run === 'function' && typeof c.serialize === 'function' && c.pragma === undefined;
}

/**
 * `sqlite3` (node-sqlite3, TypeORM 0.3's `sqlite` driver): `Database.run` straight on the connection.
 * Not a cached `Statement`: node-sqlite3 cannot close a database while a statement is unfinalized, and
 * TypeORM's destroy() would then fail; what this saves is TypeORM's query path around it.
 */
export class Sqlite3Writer implements PreparedWriter {
  readonly name = 'sqlite3';

  constructor(private readonly fallback: PreparedWriter) {}

  async run(queryRunner: QueryRunner, sql: string, params: unknown[], prepare = true): Promise<void> {
    const db: unknown = await queryRunner.connect();
    if (!isSqlite3(db)) return this.fallback.run(queryRunner, sql, params, prepare);
    queryRunner.connection.logger.logQuery(sql, params, queryRunner);
    try {
      await new Promise<void>((resolve, reject) => db.run(sql, params, (err) => (err ? reject(err) : resolve())));
    } catch (e) {
      queryRunner.connection.logger.logQueryError(e as Error, sql, params, queryRunner);
      throw new QueryFailedError(sql, params, e as Error);
    }
  }
}
