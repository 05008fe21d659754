import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { IllegalTransactionStateError, TmmError } from '../errors';
import type { SqlDialect } from '../sql/SqlDialect';
import type { TransactionManager } from '../transaction/TransactionManager';
import type { InboxStore } from './InboxStore';

/** Rows deleted per purge statement, so a purge never holds long locks. */
const PURGE_BATCH = 5000;
const MAX_KEY = 255;
/** Ids per multi-row claim (PostgreSQL allows 65535 parameters). */
const CLAIM_CHUNK = 500;

/**
 * InboxStore on `tmm_inbox` through raw SQL (no entity registration in the user's DataSource). The claim
 * is one INSERT that skips a duplicate key instead of failing: `ON CONFLICT DO NOTHING` on PostgreSQL and
 * SQLite, `INSERT IGNORE` on MySQL/MariaDB (safe here: both values are length-checked first, so the only
 * error it can swallow is the duplicate key); the affected-row count says which happened. claimAll on
 * PostgreSQL is one multi-row INSERT … ON CONFLICT DO NOTHING RETURNING message_id per 500 ids.
 */
export class TypeOrmInboxStore implements InboxStore {
  private readonly dataSource: DataSource;
  private readonly claimSql: string;

  constructor(
    private readonly transactions: TransactionManager,
    private readonly dialect: SqlDialect,
  ) {
    this.dataSource = transactions.dataSource;
    const p = (n: number) => dialect.placeholder(n);
    this.claimSql = dialect.insertIgnore('tmm_inbox', ['consumer', 'message_id', 'processed_at'], `(${p(1)}, ${p(2)}, ${p(3)})`, ['consumer', 'message_id']);
  }

  async claim(manager: EntityManager, consumer: string, messageId: string, now: number = Date.now()): Promise<boolean> {
    checkKey('consumer', consumer);
    checkKey('message id', messageId);
    const result = await this.transactionRunner(manager, messageId).query(this.claimSql, [consumer, messageId, now], true);
    return (result.affected ?? 0) > 0;
  }

  private transactionRunner(manager: EntityManager, messageId: string): QueryRunner {
    const qr = manager.queryRunner;
    if (!qr || !qr.isTransactionActive) {
      throw new IllegalTransactionStateError(`inbox claim of message ${messageId} needs the handler's transaction (got a manager outside one)`);
    }
    return qr;
  }

  async claimAll(manager: EntityManager, consumer: string, messageIds: readonly string[], now: number = Date.now()): Promise<Set<string>> {
    const claimed = new Set<string>();
    const ids = [...new Set(messageIds)];
    if (ids.length === 0) return claimed;
    // Only PostgreSQL gets the multi-row form: MySQL has no RETURNING, and TypeORM's sqlite3 driver runs
    // INSERTs without reading rows (RETURNING would come back empty); SQLite statements cost no round trip.
    if (this.dialect.name !== 'postgres' || ids.length === 1) {
      for (const id of ids) if (await this.claim(manager, consumer, id, now)) claimed.add(id);
      return claimed;
    }
    checkKey('consumer', consumer);
    for (const id of ids) checkKey('message id', id);
    const qr = this.transactionRunner(manager, ids[0]);
    for (let start = 0; start < ids.length; start += CLAIM_CHUNK) {
      const chunk = ids.slice(start, start + CLAIM_CHUNK);
      const tuples = chunk.map((_id, i) => `($1, $${i + 3}, $2)`).join(', ');
      const params = [consumer, now, ...chunk];
      const result = await qr.query(
        `INSERT INTO tmm_inbox (consumer, message_id, processed_at) VALUES ${tuples} ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id`,
        params,
        true,
      );
      for (const row of (result.records ?? []) as { message_id: string }[]) claimed.add(row.message_id);
    }
    return claimed;
  }

  async purge(before: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.write(this.purgeSql(), [before]);
      total += n;
      if (n < PURGE_BATCH) return total;
    }
  }

  async has(consumer: string, messageId: string): Promise<boolean> {
    const p = [this.dialect.placeholder(1), this.dialect.placeholder(2)];
    const rows: unknown[] = await this.dataSource.query(`SELECT 1 AS hit FROM tmm_inbox WHERE consumer = ${p[0]} AND message_id = ${p[1]}`, [consumer, messageId]);
    return rows.length > 0;
  }

  private purgeSql(): string {
    switch (this.dialect.name) {
      case 'postgres':
        return `DELETE FROM tmm_inbox WHERE ctid IN (SELECT ctid FROM tmm_inbox WHERE processed_at < $1 LIMIT ${PURGE_BATCH})`;
      case 'mysql':
        return `DELETE FROM tmm_inbox WHERE processed_at < ? LIMIT ${PURGE_BATCH}`;
      case 'sqlite':
        return `DELETE FROM tmm_inbox WHERE (consumer, message_id) IN (SELECT consumer, message_id FROM tmm_inbox WHERE processed_at < ? LIMIT ${PURGE_BATCH})`;
    }
  }

  /** One autocommit statement outside any caller transaction; on SQLite under the writer lock (the single writer). */
  private write(sql: string, params: unknown[]): Promise<number> {
    return this.transactions.autocommit(async (qr) => (await qr.query(sql, params, true)).affected ?? 0);
  }
}

function checkKey(what: string, value: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_KEY) {
    throw new TmmError('TMM_INBOX_KEY_INVALID', `inbox ${what} must be a non-empty string of at most ${MAX_KEY} characters, got ${JSON.stringify(value)?.slice(0, 80)}`);
  }
}
