import type { DataSource, QueryRunner } from 'typeorm';
import { writesAheadOfCommit } from '../../transaction/CommitPipeline';
import { BetterSqlite3PreparedWriter } from './BetterSqlite3PreparedWriter';
import { Mysql2PreparedWriter } from './Mysql2PreparedWriter';
import { PgPreparedWriter } from './PgPreparedWriter';
import { PreparedWriter } from './PreparedWriter';
import { Sqlite3Writer } from './Sqlite3Writer';
import { TypeOrmQueryWriter } from './TypeOrmQueryWriter';

import { SETTLED } from './settled';

export { PreparedWriter } from './PreparedWriter';
export { SETTLED } from './settled';

/**
 * Runs `sql` on the transaction's connection through `writer`. When that transaction pipelines its COMMIT
 * (ADR 0078) and the writer can send the statement at once, it is sent and handed to the COMMIT, and the
 * shared SETTLED promise comes back (its result arrives with COMMIT's); otherwise the writer's run().
 */
export function writeInTransaction(writer: PreparedWriter, queryRunner: QueryRunner, sql: string, params: unknown[], prepare?: boolean): Promise<void> {
  const ahead = writer.send ? writesAheadOfCommit(queryRunner) : undefined;
  const pending = ahead && writer.send!(queryRunner, sql, params, prepare);
  if (!pending) return writer.run(queryRunner, sql, params, prepare);
  ahead!.push(pending);
  return SETTLED;
}
export { BetterSqlite3PreparedWriter, Mysql2PreparedWriter, PgPreparedWriter, Sqlite3Writer, TypeOrmQueryWriter };

/**
 * The writer for a DataSource's driver. Each adapter checks the connection it gets at run time and falls
 * back to TypeORM's query path when it is not the driver it expects (e.g. pg-native, the `mysql` package).
 */
export function preparedWriterFor(dataSource: DataSource): PreparedWriter {
  const fallback = new TypeOrmQueryWriter();
  const options = dataSource.options as { type: string; native?: boolean };
  switch (options.type) {
    case 'postgres':
      return options.native ? fallback : new PgPreparedWriter(fallback);
    case 'better-sqlite3':
      return new BetterSqlite3PreparedWriter(fallback);
    case 'sqlite':
      return new Sqlite3Writer(fallback);
    case 'mysql':
    case 'mariadb':
      return new Mysql2PreparedWriter(fallback);
    default:
      return fallback;
  }
}
