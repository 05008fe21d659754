import type { EntityManager, QueryRunner } from 'typeorm';

export type Hook = () => Promise<void> | void;

/**
 * One logical transaction as business code and tmm components see it: the physical transaction, or a
 * savepoint inside one (NESTED). Participating calls (REQUIRED inside a transaction) share the scope.
 *
 * Hooks:
 * - beforeCommit hooks run in registration order, awaited, inside the transaction, just before COMMIT
 *   (the outbox append is one). A hook that throws rolls the transaction back and the error propagates.
 * - afterCommit hooks run after COMMIT, awaited, outside the transaction; their errors are logged, not
 *   thrown (the commit has happened).
 * - afterRollback hooks run after a rollback of this scope, awaited; errors are logged.
 * A savepoint scope's beforeCommit/afterCommit hooks move to its parent when the savepoint is released,
 * and are dropped (its afterRollback hooks run) when it is rolled back.
 */
export class TransactionScope {
  readonly beforeCommitHooks: Hook[] = [];
  readonly afterCommitHooks: Hook[] = [];
  readonly afterRollbackHooks: Hook[] = [];
  /** Per-scope resources of tmm components (e.g. the producer's message collector), keyed by symbol. */
  readonly resources = new Map<symbol, unknown>();
  rollbackOnly = false;
  rollbackCause: unknown;

  constructor(
    readonly id: string,
    readonly queryRunner: QueryRunner,
    readonly parent: TransactionScope | undefined,
    readonly name: string | undefined,
  ) {}

  /** The transaction-bound EntityManager: use it (or its repositories) for every write of this transaction. */
  get manager(): EntityManager {
    return this.queryRunner.manager;
  }

  /** True for a savepoint (NESTED) scope. */
  get isSavepoint(): boolean {
    return this.parent !== undefined;
  }

  beforeCommit(hook: Hook): void {
    this.beforeCommitHooks.push(hook);
  }

  afterCommit(hook: Hook): void {
    this.afterCommitHooks.push(hook);
  }

  afterRollback(hook: Hook): void {
    this.afterRollbackHooks.push(hook);
  }

  /** Makes the eventual commit a rollback (UnexpectedRollbackError is thrown to the committer). */
  setRollbackOnly(cause?: unknown): void {
    if (!this.rollbackOnly) this.rollbackCause = cause;
    this.rollbackOnly = true;
  }
}
