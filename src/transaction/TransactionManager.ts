import type { DataSource, EntityManager, EntityTarget, ObjectLiteral, QueryRunner, Repository } from 'typeorm';
import { TransactionOptions } from './Propagation';
import { TransactionScope } from './TransactionScope';

/**
 * Runs code in database transactions with Spring's propagation rules, keeping the current transaction in
 * the async context (no patching of TypeORM).
 *
 * Contract:
 * - run(fn, options) applies `options.propagation` (default REQUIRED) and returns fn's result. When it
 *   started the transaction it commits after fn resolves (beforeCommit hooks first) and rolls back when fn
 *   throws, then rethrows the same error. When it joined one (REQUIRED/SUPPORTS/MANDATORY) and fn throws,
 *   the joined transaction is marked rollback-only before the error propagates.
 * - Code inside fn gets the transaction-bound EntityManager from `manager` / `getRepository()` /
 *   `current().manager`; outside a transaction those return the DataSource's default manager.
 * - Concurrent run() calls never share a transaction unless one was started inside the other's context.
 * - On SQLite, physical transactions are serialized (one writer at a time, FIFO), and REQUIRES_NEW or a
 *   new transaction under NOT_SUPPORTED while a transaction is open is an IllegalTransactionStateError
 *   (SQLite has one writer; waiting would deadlock).
 */
export interface TransactionManager {
  readonly dataSource: DataSource;
  run<T>(fn: () => Promise<T> | T, options?: TransactionOptions): Promise<T>;
  /** The innermost transaction scope of the current async context, if any. */
  current(): TransactionScope | undefined;
  /** The transaction-bound EntityManager, or the DataSource's manager outside a transaction. */
  readonly manager: EntityManager;
  getRepository<E extends ObjectLiteral>(target: EntityTarget<E>): Repository<E>;
  /**
   * Runs `fn` with a query runner that holds no transaction, so each statement it runs commits by itself
   * (one autocommit statement: no BEGIN/COMMIT of its own). On SQLite, after taking the writer lock, so the
   * statement cannot land in another caller's open transaction on the one shared connection; elsewhere on
   * a pooled connection, released afterwards. Called inside a transaction of this manager on SQLite, it
   * runs `fn` on that transaction's query runner (the statement is part of it), since the writer lock is held.
   */
  autocommit<T>(fn: (queryRunner: QueryRunner) => Promise<T>): Promise<T>;
}
