import type { DataSource, QueryRunner } from 'typeorm';
import { type PendingWrite, writesAheadOfCommit } from '../../transaction/CommitPipeline';
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
 * `explain`, when given, turns the statement's error into the one the caller should see, on either path.
 */
export function writeInTransaction(writer: PreparedWriter, queryRunner: QueryRunner, sql: string, params: unknown[], prepare?: boolean, explain?: (error: unknown) => unknown): Promise<void> {
  const ahead = writer.send ? writesAheadOfCommit(queryRunner) : undefined;
  const pending = ahead && writer.send!(queryRunner, sql, params, prepare);
  if (!pending) {
    const run = writer.run(queryRunner, sql, params, prepare);
    return explain ? run.catch((e: unknown) => Promise.reject(explain(e))) : run;
  }
  ahead!.push(explain ? explained(pending, explain) : pending);
  return SETTLED;
}

/** The same pending write, its error passed through `explain`. */
function explained(w: PendingWrite, explain: (error: unknown) => unknown): PendingWrite {
  let mapped: { from: unknown; to: unknown } | undefined;
  const map = (e: unknown): unknown => {
    if (mapped === undefined || mapped.from !== e) mapped = { from: e, to: explain(e) };
    return mapped.to;
  };
  return {
    get sent() {
      return w.sent;
    },
    get settled() {
      return w.settled;
    },
    get error() {
      return w.error === undefined ? undefined : map(w.error);
    },
    get serverRefused() {
      return w.serverRefused;
    },
    wait: () => w.wait().catch((e: unknown) => Promise.reject(map(e))),
  };
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
