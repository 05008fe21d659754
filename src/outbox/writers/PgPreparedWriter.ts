import { createHash } from 'node:crypto';
import { QueryFailedError, QueryRunner } from 'typeorm';
import { PreparedWriter } from './PreparedWriter';

/** What tmm uses of a `pg` client: the query-config form, which accepts a statement name. */
interface PgClient {
  query(config: { name?: string; text: string; values: unknown[] }): Promise<unknown>;
}

export function isPgClient(conn: unknown): conn is PgClient {
  const c = conn as { query?: unknown; connection?: { parsedStatements?: unknown } } | null;
  // A node-postgres Client (pool client) keeps its parsed named statements on its connection.
  return !!c && typeof c.query === 'function' && typeof c.connection?.parsedStatements === 'object';
}

/**
 * `pg` (node-postgres): a named statement per text, so each pooled connection parses and plans the INSERT
 * once and then only binds and executes it (pg keeps the names it parsed per connection). With
 * `prepare: false` the statement goes unnamed (parsed by the server this once), still bypassing TypeORM.
 */
export class PgPreparedWriter implements PreparedWriter {
  readonly name = 'pg';
  private readonly names = new Map<string, string>();

  constructor(private readonly fallback: PreparedWriter) {}

  async run(queryRunner: QueryRunner, sql: string, params: unknown[], prepare = true): Promise<void> {
    const conn: unknown = await queryRunner.connect();
    if (!isPgClient(conn)) return this.fallback.run(queryRunner, sql, params, prepare);
    let name = prepare ? this.names.get(sql) : undefined;
    if (prepare && name === undefined) {
      // Named by content: two texts never share a name, whoever else prepares statements on the connection.
      name = `tmm_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
      this.names.set(sql, name);
    }
    queryRunner.connection.logger.logQuery(sql, params, queryRunner);
    try {
      await conn.query({ name, text: sql, values: params });
    } catch (e) {
      queryRunner.connection.logger.logQueryError(e as Error, sql, params, queryRunner);
      throw new QueryFailedError(sql, params, e as Error);
    }
  }
}
