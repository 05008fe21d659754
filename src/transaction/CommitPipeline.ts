import type { DataSource, QueryRunner } from 'typeorm';
import { isPgClient } from '../outbox/writers/PgPreparedWriter';

/**
 * A write a beforeCommit hook has sent on the transaction's connection without waiting for its result, so
 * that the transaction's COMMIT can follow it in the same round trip (ADR 0078).
 *
 * Contract:
 * - `sent` is true once the statement is on the connection, ahead of anything sent on it later (so the
 *   server executes it before the COMMIT); false when it is only queued (the manager then waits for it
 *   before COMMIT, as without pipelining);
 * - `settled` / `error` say synchronously whether it finished and how (`error` undefined on success);
 * - `wait()` resolves when it executed, rejects with its error (TypeORM's `QueryFailedError`);
 * - `serverRefused` is true when `error` came from the database server (the statement ran and failed, so
 *   the transaction is aborted and the COMMIT behind it rolls it back); false for a client-side failure.
 */
export interface PendingWrite {
  readonly sent: boolean;
  readonly settled: boolean;
  readonly error: unknown;
  readonly serverRefused: boolean;
  wait(): Promise<void>;
}

/**
 * Port: sends a transaction's COMMIT without waiting for the writes handed to the transaction before it
 * (their results arrive first, in the same round trip).
 *
 * Contract (test/integration/commit-pipeline.test.ts, on every TypeORM lane):
 * - `accepts(queryRunner)` is true when this query runner's COMMIT can be pipelined: its connection is the
 *   driver this adapter knows and no TypeORM subscriber listens to the transaction's commit events (a
 *   pipelined COMMIT of a transaction whose write failed answers ROLLBACK, which TypeORM would announce
 *   to them as a commit);
 * - `commit(queryRunner, commit)` runs `commit` (TypeORM's own `commitTransaction()`: TypeORM still
 *   sends the COMMIT, broadcasts and resets its runner) so that the COMMIT goes out at once, behind the
 *   writes already sent, and leaves the connection as it found it; it rejects with `commit`'s error.
 * The transaction manager then reads the pending writes: one that failed on the server means the
 * transaction was rolled back (PostgreSQL answers COMMIT on an aborted transaction with ROLLBACK).
 */
export interface CommitPipeline {
  readonly name: string;
  accepts(queryRunner: QueryRunner): boolean;
  commit(queryRunner: QueryRunner, commit: () => Promise<void>): Promise<void>;
}

/** The runner's node-postgres client, when it has pg's `pipeline` mode (pg 8.23 tested). */
function pgClientOf(qr: QueryRunner): { pipeline: boolean } | undefined {
  const c: unknown = (qr as unknown as { databaseConnection?: unknown }).databaseConnection;
  return isPgClient(c) && typeof c.pipeline === 'boolean' ? (c as { pipeline: boolean }) : undefined;
}

/**
 * node-postgres: switches the transaction's client into pg's own pipeline mode for the COMMIT only, so pg
 * writes TypeORM's COMMIT at once instead of after the INSERT's ReadyForQuery, and switches it back once
 * the COMMIT is answered (a client the application configured with `pipeline: true` is left alone).
 */
export class PgCommitPipeline implements CommitPipeline {
  readonly name = 'pg';

  accepts(queryRunner: QueryRunner): boolean {
    if (!pgClientOf(queryRunner)) return false;
    const subscribers = queryRunner.connection.subscribers;
    for (let i = 0; i < subscribers.length; i++) {
      const s = subscribers[i] as { beforeTransactionCommit?: unknown; afterTransactionCommit?: unknown };
      if (typeof s.beforeTransactionCommit === 'function' || typeof s.afterTransactionCommit === 'function') return false;
    }
    return true;
  }

  commit(queryRunner: QueryRunner, commit: () => Promise<void>): Promise<void> {
    const client = pgClientOf(queryRunner);
    if (!client || client.pipeline) return commit();
    client.pipeline = true;
    let done: Promise<void>;
    try {
      done = commit();
    } catch (e) {
      client.pipeline = false;
      throw e;
    }
    return done.then(
      () => {
        client.pipeline = false;
      },
      (e: unknown) => {
        client.pipeline = false;
        throw e;
      },
    );
  }
}

/** The commit pipeline for a DataSource's driver, if it has one (node-postgres, not pg-native). */
export function commitPipelineFor(dataSource: DataSource): CommitPipeline | undefined {
  const options = dataSource.options as { type: string; native?: boolean };
  return options.type === 'postgres' && !options.native ? new PgCommitPipeline() : undefined;
}

/** The writes sent ahead of each open pipelined COMMIT, by the transaction's query runner. */
const aheadOfCommit = new WeakMap<QueryRunner, PendingWrite[]>();

/**
 * Where a beforeCommit hook hands a write it sent without waiting (PendingWrite), when the transaction on
 * `queryRunner` will pipeline its COMMIT behind such writes; undefined when it will not (await the write).
 */
export function writesAheadOfCommit(queryRunner: QueryRunner | undefined): PendingWrite[] | undefined {
  return queryRunner ? aheadOfCommit.get(queryRunner) : undefined;
}

/** @internal The transaction manager opens the list when the physical transaction starts… */
export function openAheadOfCommit(queryRunner: QueryRunner): PendingWrite[] {
  const list: PendingWrite[] = [];
  aheadOfCommit.set(queryRunner, list);
  return list;
}

/** @internal …and closes it before COMMIT (a hook of a later transaction on the same runner never sees it). */
export function closeAheadOfCommit(queryRunner: QueryRunner): void {
  aheadOfCommit.delete(queryRunner);
}
