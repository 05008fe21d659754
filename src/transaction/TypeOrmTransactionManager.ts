import type { DataSource, EntityManager, EntityTarget, ObjectLiteral, QueryRunner, Repository } from 'typeorm';
import { AsyncLocalContextStore, ContextStore, TmmContext, newContext } from '../context';
import { CommitInDoubtError, IllegalTransactionStateError, TmmError, UnexpectedRollbackError } from '../errors';
import { Logger, silentLogger } from '../logging/Logger';
import { CommitPipeline, PendingWrite, closeAheadOfCommit, commitPipelineFor, openAheadOfCommit } from './CommitPipeline';
import { Dialect, dialectOf } from './dialect';
import { IsolationLevel, Propagation, TransactionOptions } from './Propagation';
import { Hook, TransactionScope } from './TransactionScope';
import { TransactionManager } from './TransactionManager';
import { WriterLock } from './WriterLock';

/** Marker stored in the context while a transaction is suspended (REQUIRES_NEW / NOT_SUPPORTED). */
interface Suspended {
  suspended: TransactionScope;
}
type Slot = TransactionScope | Suspended | undefined;

export interface TypeOrmTransactionManagerOptions {
  contextStore?: ContextStore;
  logger?: Logger;
  /**
   * Sends COMMIT behind the writes tmm's hooks sent before it, in the same round trip (ADR 0078). Default:
   * the driver's adapter (node-postgres); `false` waits for each write before COMMIT.
   */
  commitPipeline?: CommitPipeline | false;
}

let nextScopeId = 1;

/** One writer lock per SQLite DataSource, shared by every manager built on it. */
const sqliteLocks = new WeakMap<DataSource, WriterLock>();
function lockFor(ds: DataSource): WriterLock {
  let lock = sqliteLocks.get(ds);
  if (!lock) sqliteLocks.set(ds, (lock = new WriterLock()));
  return lock;
}

/**
 * TransactionManager over a TypeORM DataSource. Each physical transaction gets its own QueryRunner
 * (a pooled connection on PostgreSQL/MariaDB; the single shared connection on SQLite, hence the writer lock);
 * NESTED uses the query runner's savepoints.
 */
export class TypeOrmTransactionManager implements TransactionManager {
  readonly dialect: Dialect;
  private readonly store: ContextStore;
  private readonly logger: Logger;
  /** Each manager owns a slot in the context, so several DataSources can be used side by side. */
  private readonly slot = Symbol('tmm:transaction');
  private readonly writerLock: WriterLock | undefined;
  private readonly pipeline: CommitPipeline | undefined;

  constructor(
    readonly dataSource: DataSource,
    options: TypeOrmTransactionManagerOptions = {},
  ) {
    this.dialect = dialectOf(dataSource);
    this.store = options.contextStore ?? new AsyncLocalContextStore();
    this.logger = options.logger ?? silentLogger;
    this.writerLock = this.dialect === 'sqlite' ? lockFor(dataSource) : undefined;
    this.pipeline = options.commitPipeline === false ? undefined : (options.commitPipeline ?? commitPipelineFor(dataSource));
  }


  get contextStore(): ContextStore {
    return this.store;
  }

  current(): TransactionScope | undefined {
    const slot = this.store.get()?.slots.get(this.slot) as Slot;
    return slot instanceof TransactionScope ? slot : undefined;
  }

  get manager(): EntityManager {
    return this.current()?.manager ?? this.dataSource.manager;
  }

  getRepository<E extends ObjectLiteral>(target: EntityTarget<E>): Repository<E> {
    return this.manager.getRepository(target);
  }

  async autocommit<T>(fn: (queryRunner: QueryRunner) => Promise<T>): Promise<T> {
    // SQLite's one connection: inside this manager's transaction the lock is ours and the statement joins it.
    const current = this.writerLock ? this.current() : undefined;
    if (current) return fn(current.queryRunner);
    const release = await this.writerLock?.acquire();
    const qr = this.dataSource.createQueryRunner();
    try {
      return await fn(qr);
    } finally {
      await this.releaseRunner(qr);
      release?.();
    }
  }

  async run<T>(fn: () => Promise<T> | T, options: TransactionOptions = {}): Promise<T> {
    const propagation = options.propagation ?? Propagation.Required;
    const slot = this.store.get()?.slots.get(this.slot) as Slot;
    const current = slot instanceof TransactionScope ? slot : undefined;
    const label = options.name ? ` in ${options.name}` : '';
    switch (propagation) {
      case Propagation.Required:
        return current ? this.participate(current, fn) : this.startPhysical(fn, options, slot);
      case Propagation.Supports:
        return current ? this.participate(current, fn) : fn();
      case Propagation.Mandatory:
        if (!current) throw new IllegalTransactionStateError(`propagation MANDATORY${label}: no transaction is open`);
        return this.participate(current, fn);
      case Propagation.RequiresNew:
        return this.startPhysical(fn, options, current ? { suspended: current } : slot);
      case Propagation.Nested:
        return current ? this.savepoint(current, fn, options) : this.startPhysical(fn, options, slot);
      case Propagation.Never:
        if (current) throw new IllegalTransactionStateError(`propagation NEVER${label}: a transaction is open (${current.name ?? current.id})`);
        return fn();
      case Propagation.NotSupported:
        return current ? this.withSlot({ suspended: current }, fn) : fn();
      default:
        throw new IllegalTransactionStateError(`unknown propagation "${String(propagation)}"${label}`);
    }
  }

  private withSlot<T>(slot: Slot, fn: () => T): T {
    const ctx: TmmContext = newContext(this.store.get());
    ctx.slots.set(this.slot, slot);
    return this.store.run(ctx, fn);
  }

  private async participate<T>(scope: TransactionScope, fn: () => Promise<T> | T): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      scope.setRollbackOnly(e);
      throw e;
    }
  }

  private async startPhysical<T>(fn: () => Promise<T> | T, options: TransactionOptions, outer: Slot): Promise<T> {
    let release: (() => void) | undefined;
    if (this.writerLock) {
      if (outer !== undefined && 'suspended' in outer) {
        throw new IllegalTransactionStateError(
          `cannot start a new transaction${options.name ? ` in ${options.name}` : ''} while transaction ` +
            `${outer.suspended.name ?? outer.suspended.id} is open: SQLite has a single writer connection, ` +
            'so REQUIRES_NEW (or a transaction under NOT_SUPPORTED) inside a transaction would deadlock',
        );
      }
      release = await this.writerLock.acquire();
    }
    let queryRunner: QueryRunner | undefined;
    let scope: TransactionScope | undefined;
    let watch: ConnectionWatch | undefined;
    try {
      queryRunner = this.dataSource.createQueryRunner();
      await queryRunner.connect();
      watch = watchConnection(queryRunner);
      await queryRunner.startTransaction(options.isolation as IsolationLevel | undefined);
      scope = new TransactionScope(`tx${nextScopeId++}`, queryRunner, undefined, options.name);
      const active = scope;
      const ahead: PendingWrite[] | undefined = this.pipeline?.accepts(queryRunner) ? openAheadOfCommit(queryRunner) : undefined;
      let result: T;
      try {
        result = await this.withSlot(active, fn);
        if (active.rollbackOnly) throw new UnexpectedRollbackError(active.rollbackCause);
        // Hooks that finish synchronously cost no promise (a hook's promise is awaited, in order).
        const before = this.withSlot(active, () => runAll(active.beforeCommitHooks, 0));
        if (before) await before;
        if (ahead) {
          closeAheadOfCommit(queryRunner);
          // A write still queued behind another query is not ahead of the COMMIT yet: wait for it, as without pipelining.
          for (let i = 0; i < ahead.length; i++) if (!ahead[i].sent) await ahead[i].wait();
        }
      } catch (thrown) {
        let e = thrown;
        if (ahead) {
          closeAheadOfCommit(queryRunner);
          await settleAll(ahead);
          // A write sent ahead ran first: when the server refused it, what failed after it ("current transaction
          // is aborted") is its consequence, and the refusal is what the caller needs to see.
          const refused = ahead.find((w) => w.serverRefused);
          if (refused) e = refused.error;
        }
        const lost = connectionLost(queryRunner, watch, e, options.name ?? active.id);
        // A connection that is gone has no transaction to roll back: the server rolled it back itself.
        if (lost) await this.withSlot(undefined, () => this.runLogged(active.afterRollbackHooks, 'afterRollback', active, 0));
        else await this.rollback(queryRunner, active);
        throw lost ?? e;
      }
      const pipelined = ahead !== undefined && ahead.length > 0;
      try {
        if (pipelined) await this.pipeline!.commit(queryRunner, () => queryRunner!.commitTransaction());
        else await queryRunner.commitTransaction();
      } catch (e) {
        if (pipelined) await settleAll(ahead);
        const refused = pipelined ? ahead.find((w) => w.error !== undefined) : undefined;
        throw connectionLost(queryRunner, watch, e, options.name ?? active.id) ?? refused?.error ?? e;
      }
      if (pipelined) {
        // Their answers came before COMMIT's. One that failed on the server aborted the transaction, and
        // PostgreSQL answered the COMMIT with ROLLBACK; a client-side failure leaves the outcome unknown.
        if (ahead.some((w) => !w.settled)) await settleAll(ahead);
        const failed = ahead.find((w) => w.error !== undefined);
        if (failed) {
          if (failed.serverRefused) {
            await this.withSlot(undefined, () => this.runLogged(active.afterRollbackHooks, 'afterRollback', active, 0));
            throw failed.error;
          }
          throw new CommitInDoubtError(options.name ?? active.id, failed.error);
        }
      }
      await this.releaseRunner(queryRunner);
      queryRunner = undefined;
      release?.();
      release = undefined;
      // After-commit work runs outside the transaction (a hook that writes starts its own).
      const after = this.withSlot(undefined, () => this.runLogged(active.afterCommitHooks, 'afterCommit', active, 0));
      if (after) await after;
      return result;
    } finally {
      watch?.stop();
      if (queryRunner) await this.releaseRunner(queryRunner);
      release?.();
    }
  }

  private async savepoint<T>(parent: TransactionScope, fn: () => Promise<T> | T, options: TransactionOptions): Promise<T> {
    const qr = parent.queryRunner;
    await qr.startTransaction();
    const scope = new TransactionScope(`${parent.id}.sp${nextScopeId++}`, qr, parent, options.name);
    let result: T;
    try {
      result = await this.withSlot(scope, fn);
      if (scope.rollbackOnly) throw new UnexpectedRollbackError(scope.rollbackCause);
    } catch (e) {
      await this.rollback(qr, scope);
      throw e;
    }
    await qr.commitTransaction(); // RELEASE SAVEPOINT
    parent.beforeCommitHooks.push(...scope.beforeCommitHooks);
    parent.afterCommitHooks.push(...scope.afterCommitHooks);
    parent.afterRollbackHooks.push(...scope.afterRollbackHooks);
    return result;
  }

  private async rollback(qr: QueryRunner, scope: TransactionScope): Promise<void> {
    try {
      if (qr.isTransactionActive) await qr.rollbackTransaction();
    } catch (e) {
      this.logger.error('rollback failed', { transaction: scope.name ?? scope.id, error: e });
    }
    await this.withSlot(undefined, () => this.runLogged(scope.afterRollbackHooks, 'afterRollback', scope, 0));
  }

  private async releaseRunner(qr: QueryRunner): Promise<void> {
    if (qr.isReleased) return;
    try {
      await qr.release();
    } catch (e) {
      this.logger.warn('query runner release failed', { error: e });
    }
  }

  /**
   * Runs `hooks` from index `from` in order (hooks registered meanwhile included), each awaited, logging
   * (not throwing) their errors. Undefined when every hook finished synchronously; otherwise a promise for
   * the rest, which never rejects.
   */
  private runLogged(hooks: Hook[], phase: string, scope: TransactionScope, from: number): Promise<void> | undefined {
    for (let i = from; i < hooks.length; i++) {
      let r: Promise<void> | void;
      try {
        r = hooks[i]();
      } catch (e) {
        this.hookFailed(phase, scope, e);
        continue;
      }
      if (isThenable(r)) {
        return Promise.resolve(r).then(
          () => this.runLogged(hooks, phase, scope, i + 1),
          (e: unknown) => {
            this.hookFailed(phase, scope, e);
            return this.runLogged(hooks, phase, scope, i + 1);
          },
        );
      }
    }
    return undefined;
  }

  private hookFailed(phase: string, scope: TransactionScope, e: unknown): void {
    this.logger.error(`${phase} hook failed`, { transaction: scope.name ?? scope.id, error: e });
  }
}

/** Waits until every write has its answer (none rejects). */
async function settleAll(writes: PendingWrite[]): Promise<void> {
  for (const w of writes) if (!w.settled) await w.wait().catch(() => undefined);
}

function isThenable(r: unknown): r is PromiseLike<void> {
  return r !== null && typeof r === 'object' && typeof (r as { then?: unknown }).then === 'function';
}

/**
 * Runs `hooks` from index `from` in order, each awaited; the first error stops the run and is thrown (or
 * the returned promise rejects with it). Undefined when every hook finished synchronously.
 */
function runAll(hooks: Hook[], from: number): Promise<void> | undefined {
  // A hook may register more hooks (e.g. a message sent from a beforeCommit hook): index, do not iterate.
  for (let i = from; i < hooks.length; i++) {
    const r = hooks[i]();
    if (isThenable(r)) return Promise.resolve(r).then(() => runAll(hooks, i + 1));
  }
  return undefined;
}

/** The error the driver's connection emitted while a transaction ran on it (pg: a terminated backend, a restart). */
interface ConnectionWatch {
  readonly error: unknown;
  stop(): void;
}

function watchConnection(qr: QueryRunner): ConnectionWatch | undefined {
  const conn = (qr as unknown as { databaseConnection?: { on?: unknown; off?: unknown; removeListener?: unknown } }).databaseConnection;
  if (!conn || typeof conn.on !== 'function' || typeof conn.removeListener !== 'function') return undefined;
  const emitter = conn as unknown as NodeJS.EventEmitter;
  const watch = { error: undefined as unknown, stop: () => emitter.removeListener('error', onError) };
  const onError = (e: unknown) => {
    watch.error ??= e;
  };
  emitter.on('error', onError);
  return watch;
}

/**
 * A TmmError TMM_DATABASE_CONNECTION_LOST (the driver's error as cause) when `e` means the transaction's
 * connection is gone — TypeORM's "query runner already released" after the driver dropped it, or any error
 * once the connection reported one — so the caller sees why, not TypeORM's follow-up error. Undefined otherwise.
 */
function connectionLost(qr: QueryRunner, watch: ConnectionWatch | undefined, e: unknown, name: string): TmmError | undefined {
  const released = e instanceof Error && /AlreadyReleased/.test(e.name);
  const cause = watch?.error;
  if (!released && cause === undefined) return undefined;
  if (e instanceof TmmError) return undefined;
  const why = cause instanceof Error ? cause.message : e instanceof Error ? e.message : String(e);
  return new TmmError('TMM_DATABASE_CONNECTION_LOST', `transaction ${name}: the database connection was lost (${why}); it was rolled back`, {
    cause: cause ?? e,
  });
}
