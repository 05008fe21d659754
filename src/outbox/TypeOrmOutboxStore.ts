import type { DataSource, EntityManager } from 'typeorm';
import { OutboxMessage, OutboxStatus } from '../message/OutboxMessage';
import { Propagation } from '../transaction/Propagation';
import type { SqlDialect } from '../sql/SqlDialect';
import type { TransactionManager } from '../transaction/TransactionManager';
import { Lease, OutboxRecord, OutboxStore } from './OutboxStore';
import { PreparedWriter, preparedWriterFor, writeInTransaction } from './writers';

const COLUMNS = [
  'id', 'topic', 'exchange', 'routing_key', 'payload', 'headers', 'status', 'attempts',
  'available_at', 'lease_owner', 'lease_until', 'ordering_key', 'created_at',
] as const;

/** Rows per INSERT: 13 parameters each stays far below every driver's bind-parameter limit. */
const CHUNK = 500;

/** Error texts are stored truncated; the full error goes to the log. */
const MAX_ERROR = 2000;

/** OutboxStore on raw SQL through TypeORM (no entity registration needed in the user's DataSource). */
export class TypeOrmOutboxStore implements OutboxStore {
  private readonly dataSource: DataSource;
  /** The outbox INSERT goes to the driver, prepared per connection (src/outbox/writers). */
  private readonly writer: PreparedWriter;
  /** INSERT text per row count: built once, the same text every time (what a prepared statement needs). */
  private readonly insertSql = new Map<number, string>();

  /**
   * `writer` replaces the driver adapter chosen for the DataSource's driver: e.g. `new TypeOrmQueryWriter()`
   * behind a pooler that cannot keep named statements (PgBouncer in transaction mode before 1.21).
   */
  constructor(
    private readonly transactions: TransactionManager,
    private readonly dialect: SqlDialect,
    options: { writer?: PreparedWriter } = {},
  ) {
    this.dataSource = transactions.dataSource;
    this.writer = options.writer ?? preparedWriterFor(this.dataSource);
  }

  /** Rows per INSERT whose statement is kept and prepared: small batches and full chunks (other sizes are rare). */
  private static prepared(rows: number): boolean {
    return rows <= 16 || rows === CHUNK;
  }

  private insertText(rows: number): string {
    let sql = this.insertSql.get(rows);
    if (sql === undefined) {
      const tuples: string[] = [];
      for (let r = 0; r < rows; r++) tuples.push('(' + COLUMNS.map((_c, i) => this.p(r * COLUMNS.length + i + 1)).join(', ') + ')');
      sql = `INSERT INTO tmm_outbox (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}`;
      if (TypeOrmOutboxStore.prepared(rows)) this.insertSql.set(rows, sql);
    }
    return sql;
  }

  private p(n: number): string {
    return this.dialect.placeholder(n);
  }

  append(manager: EntityManager, messages: OutboxMessage[], lease?: Lease): Promise<void> {
    // One chunk (every transaction of up to 500 messages): no async function around the writer's promise,
    // which the better-sqlite3 adapter returns already settled.
    if (messages.length > CHUNK) return this.appendChunks(manager, messages, lease);
    try {
      return this.appendChunk(manager, messages, lease, Date.now());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private async appendChunks(manager: EntityManager, messages: OutboxMessage[], lease: Lease | undefined): Promise<void> {
    const now = Date.now();
    for (let start = 0; start < messages.length; start += CHUNK) await this.appendChunk(manager, messages.slice(start, start + CHUNK), lease, now);
  }

  /** One multi-row INSERT of `chunk` (at most CHUNK rows). */
  private appendChunk(manager: EntityManager, chunk: OutboxMessage[], lease: Lease | undefined, now: number): Promise<void> {
    // Allocated at its final length and filled in place (pushing 13 values per row regrows the array).
    const params: unknown[] = new Array(chunk.length * COLUMNS.length);
    for (let i = 0, j = 0; i < chunk.length; i++) {
      const m = chunk[i];
      params[j++] = m.id;
      params[j++] = m.topic;
      params[j++] = m.exchange;
      params[j++] = m.routingKey;
      params[j++] = m.payload;
      params[j++] = JSON.stringify(m.headers);
      params[j++] = OutboxStatus.Pending;
      params[j++] = 0;
      params[j++] = m.availableAt;
      params[j++] = lease?.owner ?? null;
      params[j++] = lease ? Math.max(lease.until, m.availableAt + (lease.until - now)) : null;
      params[j++] = m.orderingKey;
      params[j++] = m.createdAt;
    }
    const sql = this.insertText(chunk.length);
    // On the transaction's own connection (its QueryRunner), through the driver adapter.
    const qr = manager.queryRunner;
    // On PostgreSQL the transaction's COMMIT follows this INSERT in the same write (ADR 0078).
    if (qr && !qr.isReleased) return writeInTransaction(this.writer, qr, sql, params, TypeOrmOutboxStore.prepared(chunk.length));
    return manager.query(sql, params).then(noResult);
  }

  /**
   * Runs a write as one autocommit statement (no transaction of its own: a BEGIN and a COMMIT through
   * TypeORM cost more than the statement itself on SQLite); on SQLite under the writer lock, so it never
   * lands in another caller's open transaction.
   */
  private write(sql: string, params: unknown[]): Promise<number> {
    return this.transactions.autocommit(async (qr) => (await qr.query(sql, params, true)).affected ?? 0);
  }

  async markDelivered(ids: string[], owner: string, options: { deleteRows?: boolean; now?: number } = {}): Promise<number> {
    if (ids.length === 0) return 0;
    const now = options.now ?? Date.now();
    const params: unknown[] = [];
    const head = options.deleteRows
      ? `DELETE FROM tmm_outbox`
      : (params.push(OutboxStatus.Delivered, now), `UPDATE tmm_outbox SET status = ${this.p(1)}, delivered_at = ${this.p(2)}, lease_owner = NULL, lease_until = NULL`);
    params.push(owner, now);
    // The status as a literal, not a parameter: SQLite then knows which partial indexes the rows are in
    // (tmm_outbox_due is WHERE status = 'PENDING'); with `status = ?` a 50-row DELETE took 2.7× as long.
    const fence = `(lease_owner = ${this.p(params.length - 1)} OR lease_owner IS NULL OR lease_until < ${this.p(params.length)}) AND status = '${OutboxStatus.Pending}'`;
    if (this.dialect.name === 'postgres') {
      // One array parameter instead of one per id: a constant statement text, less to bind and to parse.
      params.push(ids);
      return this.write(`${head} WHERE ${fence} AND id = ANY(${this.p(params.length)}::uuid[])`, params);
    }
    const idList = ids.map((id) => (params.push(id), this.p(params.length))).join(', ');
    // Placeholders are positional on MySQL/SQLite: the SQL text keeps the order in which params were pushed.
    return this.write(`${head} WHERE ${fence} AND id IN (${idList})`, params);
  }

  async recordFailure(id: string, owner: string, failure: { error: string; retryAt: number; dead: boolean; countAttempt?: boolean; now?: number }): Promise<boolean> {
    const now = failure.now ?? Date.now();
    const p = (n: number) => this.p(n);
    const attempts = failure.countAttempt === false ? 'attempts' : 'attempts + 1';
    const sql =
      `UPDATE tmm_outbox SET attempts = ${attempts}, last_error = ${p(1)}, available_at = ${p(2)}, status = ${p(3)}, ` +
      `lease_owner = NULL, lease_until = NULL WHERE id = ${p(4)} AND status = ${p(5)} ` +
      `AND (lease_owner = ${p(6)} OR lease_owner IS NULL OR lease_until < ${p(7)})`;
    const status = failure.dead ? OutboxStatus.Dead : OutboxStatus.Pending;
    const n = await this.write(sql, [failure.error.slice(0, MAX_ERROR), failure.retryAt, status, id, OutboxStatus.Pending, owner, now]);
    return n > 0;
  }

  async claimDue(owner: string, options: { leaseMs: number; limit: number; now?: number }): Promise<OutboxRecord[]> {
    const now = options.now ?? Date.now();
    const until = now + options.leaseMs;
    const limit = Math.max(1, Math.floor(options.limit));
    const due =
      `t.status = 'PENDING' AND t.available_at <= ${this.p(1)} AND (t.lease_until IS NULL OR t.lease_until < ${this.p(2)}) ` +
      `AND (t.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM tmm_outbox o WHERE o.ordering_key = t.ordering_key ` +
      `AND o.status = 'PENDING' AND o.id < t.id))`;
    if (this.dialect.name === 'postgres') {
      const qr = this.dataSource.createQueryRunner();
      try {
        // `id = ANY(ARRAY(subquery))`, not `id IN (subquery)`: for IN, PostgreSQL hash-joins the subquery's ids
        // against a sequential scan of the whole table, so every claim costs O(backlog) (8 ms of a 50,000-row
        // backlog per 500-row claim); the array makes it one primary-key lookup per claimed row.
        const result = await qr.query(
          `UPDATE tmm_outbox SET lease_owner = $4, lease_until = $5 WHERE id = ANY(ARRAY(` +
            `SELECT t.id FROM tmm_outbox t WHERE ${due} ORDER BY t.available_at, t.id LIMIT $3 FOR UPDATE SKIP LOCKED)) RETURNING *`,
          [now, now, limit, owner, until],
          true,
        );
        return (result.records as Record<string, unknown>[]).map(toRecord).sort(byDueThenId);
      } finally {
        await qr.release();
      }
    }
    const claim = async (manager: EntityManager): Promise<OutboxRecord[]> => {
      // MariaDB: read more candidates than needed, as concurrent claimers read the same head of the queue
      // and each then skips the rows the others locked.
      const read = this.dialect.name === 'mysql' ? limit * 4 : limit;
      let ids: string[] = (
        (await manager.query(`SELECT t.id FROM tmm_outbox t WHERE ${due} ORDER BY t.available_at, t.id LIMIT ${read}`, [now, now])) as { id: string }[]
      ).map((r) => String(r.id));
      if (ids.length === 0) return [];
      if (this.dialect.name === 'mysql') {
        // Lock by primary key only, skipping rows another claimer holds: a locking scan of the due index
        // (or of the ordering subquery) takes gap locks and deadlocks concurrent claimers on InnoDB.
        const marks = ids.map(() => '?').join(', ');
        ids = (
          (await manager.query(
            `SELECT id FROM tmm_outbox WHERE id IN (${marks}) AND status = 'PENDING' AND (lease_until IS NULL OR lease_until < ?) ` +
              `ORDER BY available_at, id LIMIT ${limit} FOR UPDATE SKIP LOCKED`,
            [...ids, now],
          )) as { id: string }[]
        ).map((r) => String(r.id));
        if (ids.length === 0) return [];
      }
      const marks = ids.map(() => '?').join(', ');
      await manager.query(`UPDATE tmm_outbox SET lease_owner = ?, lease_until = ? WHERE id IN (${marks})`, [owner, until, ...ids]);
      const rows: Record<string, unknown>[] = await manager.query(`SELECT * FROM tmm_outbox WHERE id IN (${marks})`, ids);
      return rows.map(toRecord).sort(byDueThenId);
    };
    if (this.dialect.name === 'sqlite') {
      return this.transactions.run(() => claim(this.transactions.manager), { propagation: Propagation.Required, name: 'tmm.relay.claim' });
    }
    // MariaDB/MySQL: its own transaction on a pooled connection, so the row locks hold until the UPDATE.
    return this.dataSource.transaction('READ COMMITTED', (manager) => claim(manager));
  }

  async isHeadOfKey(id: string, orderingKey: string): Promise<boolean> {
    const rows: unknown[] = await this.dataSource.query(
      `SELECT 1 AS x FROM tmm_outbox WHERE ordering_key = ${this.p(1)} AND status = 'PENDING' AND id < ${this.p(2)} LIMIT 1`,
      [orderingKey, id],
    );
    return rows.length === 0;
  }

  async releaseLeases(ids: string[], owner: string): Promise<number> {
    if (ids.length === 0) return 0;
    const list = ids.map((_id, i) => this.p(i + 2)).join(', ');
    return this.write(
      `UPDATE tmm_outbox SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ${this.p(1)} AND status = 'PENDING' AND id IN (${list})`,
      [owner, ...ids],
    );
  }

  async purgeDelivered(before: number, limit: number): Promise<number> {
    const n = Math.max(1, Math.floor(limit));
    // PostgreSQL: id = ANY(ARRAY(subquery)), see claimDue.
    return this.write(this.dialect.limitedDelete('tmm_outbox', 'id', `status = 'DELIVERED' AND delivered_at < ${this.p(1)}`, n), [before]);
  }

  async backlogStats(): Promise<{ pending: number; oldestDueAt: number | null; oldestFailingCreatedAt: number | null }> {
    const rows: { n: number | string; oldest: number | string | null; failing: number | string | null }[] = await this.dataSource.query(
      `SELECT COUNT(*) AS n, MIN(available_at) AS oldest, MIN(CASE WHEN last_error IS NOT NULL THEN created_at END) AS failing FROM tmm_outbox WHERE status = 'PENDING'`,
    );
    const r = rows[0];
    const time = (v: number | string | null | undefined) => (v === null || v === undefined ? null : Number(v));
    return { pending: Number(r?.n ?? 0), oldestDueAt: time(r?.oldest), oldestFailingCreatedAt: time(r?.failing) };
  }

  async countDead(): Promise<number> {
    const rows: { n: number | string }[] = await this.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_outbox WHERE status = 'DEAD'`);
    return Number(rows[0]?.n ?? 0);
  }

  async get(id: string): Promise<OutboxRecord | undefined> {
    const rows: Record<string, unknown>[] = await this.dataSource.query(`SELECT * FROM tmm_outbox WHERE id = ${this.p(1)}`, [id]);
    return rows.length > 0 ? toRecord(rows[0]) : undefined;
  }

  async countByStatus(): Promise<Record<OutboxStatus, number>> {
    const rows: { status: OutboxStatus; n: number | string }[] = await this.dataSource.query(
      `SELECT status, COUNT(*) AS n FROM tmm_outbox GROUP BY status`,
    );
    const out: Record<OutboxStatus, number> = { PENDING: 0, DELIVERED: 0, DEAD: 0, EXCEPTION: 0 };
    for (const r of rows) out[r.status] = Number(r.n);
    return out;
  }
}

function noResult(): void {
  // a write's result rows (none) are not needed
}

function byDueThenId(a: OutboxRecord, b: OutboxRecord): number {
  return a.availableAt - b.availableAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export function toRecord(row: Record<string, unknown>): OutboxRecord {
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    id: String(row.id),
    topic: String(row.topic),
    exchange: String(row.exchange),
    routingKey: String(row.routing_key),
    payload: String(row.payload),
    headers: JSON.parse(String(row.headers)),
    status: row.status as OutboxStatus,
    attempts: Number(row.attempts),
    availableAt: Number(row.available_at),
    leaseOwner: (row.lease_owner as string | null) ?? null,
    leaseUntil: num(row.lease_until),
    orderingKey: (row.ordering_key as string | null) ?? null,
    createdAt: Number(row.created_at),
    deliveredAt: num(row.delivered_at),
    lastError: (row.last_error as string | null) ?? null,
  };
}
