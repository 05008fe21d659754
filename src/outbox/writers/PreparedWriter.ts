import type { QueryRunner } from 'typeorm';
import type { PendingWrite } from '../../transaction/CommitPipeline';

/**
 * Port: runs one write statement (an INSERT, no result rows needed) on the driver connection of a
 * transaction's QueryRunner, inside that transaction, with the statement prepared once per connection
 * and statement text where the driver allows it — instead of TypeORM's query path, which re-parses the
 * statement on every call (and, on PostgreSQL, sends it unnamed so the server parses and plans it again).
 *
 * Contract (checked by the 'driver writer' tests of test/contract/OutboxStore.contract.test.ts on every lane):
 * - `run(queryRunner, sql, params, prepare)` executes `sql` with positional `params` on the connection
 *   `queryRunner.connect()` returns (TypeORM's public API; nothing of TypeORM is patched; on TypeORM's
 *   SQLite drivers the same connection may be read from the driver's public `databaseConnection`, ADR
 *   0077), so the write is part of the query runner's open transaction;
 * - it resolves once the database has executed the statement (a synchronous driver may return an already
 *   settled promise), and rejects with TypeORM's `QueryFailedError` (carrying the SQL, the parameters and
 *   the driver's error) when the database refuses it — the same error type the TypeORM path rejects with;
 *   it never throws;
 * - the statement is logged through the DataSource's logger like any TypeORM query; TypeORM subscribers'
 *   BeforeQuery/AfterQuery events are not broadcast for it;
 * - `prepare: false` asks not to keep a statement for this text (a rare shape: keeping one per shape would
 *   grow without bound on every connection); the statement still goes straight to the driver;
 * - the same text may be run any number of times, on any number of connections, concurrently on
 *   different connections.
 */
export interface PreparedWriter {
  /** Adapter name, for diagnostics and tests. */
  readonly name: string;
  run(queryRunner: QueryRunner, sql: string, params: unknown[], prepare?: boolean): Promise<void>;
  /**
   * Optional (drivers whose COMMIT tmm can pipeline, ADR 0078): the same statement, sent at once without
   * waiting for its result — a PendingWrite whose `sent` says whether it went on the wire ahead of what
   * follows — or undefined when it cannot be sent that way now (the caller uses `run()`). Never throws.
   */
  send?(queryRunner: QueryRunner, sql: string, params: unknown[], prepare?: boolean): PendingWrite | undefined;
}
