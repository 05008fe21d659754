import { QueryFailedError, QueryRunner } from 'typeorm';
import { PreparedWriter } from './PreparedWriter';

interface Mysql2Connection {
  execute(sql: string, values: unknown[], callback: (err: Error | null) => void): unknown;
  query(sql: string, values: unknown[], callback: (err: Error | null) => void): unknown;
}

export function isMysql2(conn: unknown): conn is Mysql2Connection {
  // mysql2 connections have execute() (server-side prepared statements); the older `mysql` package has not.
  const c = conn as { execute?: unknown; query?: unknown } | null;
  return !!c && typeof c.execute === 'function' && typeof c.query === 'function';
}

/**
 * mysql2: `execute()`, which prepares the text once per connection (mysql2 keeps an LRU of prepared
 * statements per connection) and then sends only the parameters; `prepare: false` uses `query()` (the
 * text with the values escaped into it, nothing kept). The `mysql` package falls back.
 */
export class Mysql2PreparedWriter implements PreparedWriter {
  readonly name = 'mysql2';

  constructor(private readonly fallback: PreparedWriter) {}

  async run(queryRunner: QueryRunner, sql: string, params: unknown[], prepare = true): Promise<void> {
    const conn: unknown = await queryRunner.connect();
    if (!isMysql2(conn)) return this.fallback.run(queryRunner, sql, params, prepare);
    queryRunner.connection.logger.logQuery(sql, params, queryRunner);
    try {
      const done = (resolve: () => void, reject: (e: Error) => void) => (err: Error | null) => (err ? reject(err) : resolve());
      await new Promise<void>((resolve, reject) => (prepare ? conn.execute(sql, params, done(resolve, reject)) : conn.query(sql, params, done(resolve, reject))));
    } catch (e) {
      queryRunner.connection.logger.logQueryError(e as Error, sql, params, queryRunner);
      throw new QueryFailedError(sql, params, e as Error);
    }
  }
}
