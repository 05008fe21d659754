import type { DataSource, EntityManager } from 'typeorm';
import { ConfigurationError } from '../errors';
import { PreparedWriter, preparedWriterFor, writeInTransaction } from '../outbox/writers';
import { writesAheadOfCommit } from '../transaction/CommitPipeline';
import { Dialect, dialectOf } from '../transaction/dialect';
import { BeginRecord } from './records';
import { TxLogRolledBackByCheckError } from './errors';
import { isUniqueViolation } from '../errors/failureKind';

/** A check-back verdict: did the business transaction `uid` commit? */
export type CheckVerdict = 'commit' | 'rollback' | 'unknown';

/**
 * An app-registered checker: asked about an in-doubt transaction, answers from the business state.
 * It must answer `commit` only when the transaction's effects are committed, `rollback` only when they
 * never will be; anything else is `unknown` (asked again later, with backoff).
 */
export type TransactionChecker = (tx: { uid: string; serviceName: string; topics: string[] }) => Promise<CheckVerdict> | CheckVerdict;

export const BARRIER_TABLE = 'tmm_txlog_barrier';

/**
 * The check-back barrier (the DTM 2-phase-message barrier): the business transaction inserts `(uid,
 * 'commit')` just before COMMIT; a check inserts `(uid, 'rollback')` with insert-ignore and reads back.
 * The primary key makes the verdict final and race-free: a check while the business transaction is
 * still open waits on the key until it ends; a commit after a rollback verdict fails on the key (and
 * the business transaction rolls back).
 *
 * Keys are `<log id>.<uid>` (barrierKey()): the log id (one per transaction log, kept in its directories)
 * scopes a log's rows, and its uids are uuidv7s issued in log order, so purgeBelow() deletes a log's final
 * rows as one primary-key range, with no list of uids to keep anywhere.
 */
export class TypeOrmCheckBarrier {
  private readonly dialect: Dialect;
  /** The business transaction's INSERT goes to the driver, prepared per connection (as the outbox row does). */
  private readonly writer: PreparedWriter;
  private readonly insertSql: string;

  constructor(private readonly dataSource: DataSource) {
    this.dialect = dialectOf(dataSource);
    this.writer = preparedWriterFor(dataSource);
    this.insertSql = `INSERT INTO ${BARRIER_TABLE} (uid, reason, created_at) VALUES (${this.p(1)}, 'commit', ${this.p(2)})`;
  }

  /** Fails with a clear error when the barrier table is missing (it is created by migrate(), component `txlog-barrier`). */
  async assertTable(): Promise<void> {
    try {
      await this.dataSource.query(`SELECT uid FROM ${BARRIER_TABLE} WHERE 1 = 0`);
    } catch (e) {
      throw new ConfigurationError('txlog.barrier', `table ${BARRIER_TABLE} is missing: run tmm's migration (Tmm migrate option, \`tmm migrate\`, or the SQL of \`tmm migrate --print-sql\`), or set txlog.barrier: false (${String(e)})`);
    }
  }

  /** True when insertCommit() on this transaction only sends the row, for the COMMIT pipelined behind it (ADR 0078). */
  sendsAheadOfCommit(manager: EntityManager): boolean {
    const qr = manager.queryRunner;
    return !!qr && !qr.isReleased && this.writer.send !== undefined && writesAheadOfCommit(qr) !== undefined;
  }

  /** In the business transaction: marks uid committed (fails on the key when a check already said rollback). */
  insertCommit(manager: EntityManager, uid: string): Promise<void> {
    // Not an async function: when the row rides with a pipelined COMMIT this is the shared settled promise.
    try {
      const params = [uid, Date.now()];
      const qr = manager.queryRunner;
      // The key taken already can only be a check-back's rollback verdict: say so, not "duplicate key".
      const explain = (e: unknown) => (isUniqueViolation(e) ? new TxLogRolledBackByCheckError(uid, { cause: e }) : e);
      // On PostgreSQL the COMMIT follows the barrier row in the same write (ADR 0078).
      if (qr && !qr.isReleased) return writeInTransaction(this.writer, qr, this.insertSql, params, undefined, explain);
      return manager.query(this.insertSql, params).then(
        () => undefined,
        (e: unknown) => Promise.reject(explain(e)),
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The check: insert-ignore `(uid, 'rollback')`, read back what is there. Blocks while the business transaction holds the key. */
  async check(uid: string): Promise<'commit' | 'rollback'> {
    const insert =
      this.dialect === 'postgres'
        ? `INSERT INTO ${BARRIER_TABLE} (uid, reason, created_at) VALUES ($1, 'rollback', $2) ON CONFLICT (uid) DO NOTHING`
        : this.dialect === 'mysql'
          ? `INSERT IGNORE INTO ${BARRIER_TABLE} (uid, reason, created_at) VALUES (?, 'rollback', ?)`
          : `INSERT OR IGNORE INTO ${BARRIER_TABLE} (uid, reason, created_at) VALUES (?, 'rollback', ?)`;
    await this.dataSource.query(insert, [uid, Date.now()]);
    const rows = (await this.dataSource.query(`SELECT reason FROM ${BARRIER_TABLE} WHERE uid = ${this.p(1)}`, [uid])) as { reason: string }[];
    return rows[0]?.reason === 'commit' ? 'commit' : 'rollback';
  }

  /** Deletes the barrier rows of these keys (rows written before keys had a log id: an older snapshot's list). */
  async purge(uids: string[]): Promise<void> {
    if (uids.length === 0) return;
    const params = uids.map((_, i) => this.p(i + 1)).join(', ');
    await this.dataSource.query(`DELETE FROM ${BARRIER_TABLE} WHERE uid IN (${params})`, uids);
  }

  /**
   * Deletes the rows of log `logId` whose uid sorts below `belowUid` (every transaction of that log begun
   * before it is final) and that were created before `createdBefore`; resolves with the rows deleted.
   */
  async purgeBelow(logId: string, belowUid: string, createdBefore: number): Promise<number> {
    const sql = `DELETE FROM ${BARRIER_TABLE} WHERE uid > ${this.p(1)} AND uid < ${this.p(2)} AND created_at < ${this.p(3)}`;
    const qr = this.dataSource.createQueryRunner();
    try {
      const r = await qr.query(sql, [`${logId}.`, barrierKey(logId, belowUid), createdBefore], true);
      return r.affected ?? 0;
    } finally {
      await qr.release();
    }
  }

  private p(i: number): string {
    return this.dialect === 'postgres' ? `$${i}` : '?';
  }
}

/** The barrier row's key of transaction `uid` of log `logId`. */
export function barrierKey(logId: string, uid: string): string {
  return `${logId}.${uid}`;
}

/** Asks a check URL (the begin record's `check.url`): POST `{ uid, serviceName, topics }`, expects `{ "status": "commit" | "rollback" | "unknown" }`. */
export async function httpCheck(url: string, begin: BeginRecord, timeoutMs: number): Promise<CheckVerdict> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uid: begin.uid, serviceName: begin.serviceName, topics: begin.topics }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`check URL answered HTTP ${res.status}`);
  const body = (await res.json()) as { status?: unknown };
  if (body.status === 'commit' || body.status === 'rollback' || body.status === 'unknown') return body.status;
  throw new Error(`check URL answered ${JSON.stringify(body).slice(0, 200)}, expected {"status":"commit"|"rollback"|"unknown"}`);
}
