import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { OutboxMessage, OutboxStatus } from '../message/OutboxMessage';
import { Dialect } from '../transaction/dialect';
import { Propagation } from '../transaction/Propagation';
import { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import { Lease, OutboxRecord, OutboxStore } from './OutboxStore';

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
  private readonly dialect: Dialect;
  private readonly dataSource: DataSource;

  constructor(private readonly transactions: TypeOrmTransactionManager) {
    this.dialect = transactions.dialect;
    this.dataSource = transactions.dataSource;
  }

  private p(n: number): string {
    return this.dialect === 'postgres' ? `$${n}` : '?';
  }

  async append(manager: EntityManager, messages: OutboxMessage[], lease?: Lease): Promise<void> {
    for (let start = 0; start < messages.length; start += CHUNK) {
      const chunk = messages.slice(start, start + CHUNK);
      const params: unknown[] = [];
      const tuples = chunk.map((m) => {
        params.push(
          m.id, m.topic, m.exchange, m.routingKey, m.payload, JSON.stringify(m.headers), OutboxStatus.Pending, 0,
          m.availableAt, lease?.owner ?? null, lease ? Math.max(lease.until, m.availableAt + (lease.until - Date.now())) : null,
          m.orderingKey, m.createdAt,
        );
        const base = params.length - COLUMNS.length;
        return '(' + COLUMNS.map((_c, i) => this.p(base + i + 1)).join(', ') + ')';
      });
      await manager.query(`INSERT INTO tmm_outbox (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}`, params);
    }
  }

  /** Runs a write outside any caller transaction; on SQLite through the writer lock. */
  private async write(sql: string, params: unknown[]): Promise<number> {
    const exec = async (qr: QueryRunner): Promise<number> => (await qr.query(sql, params, true)).affected ?? 0;
    if (this.dialect === 'sqlite') {
      return this.transactions.run(() => exec(this.transactions.current()!.queryRunner), { propagation: Propagation.Required, name: 'tmm.outbox' });
    }
    const qr = this.dataSource.createQueryRunner();
    try {
      return await exec(qr);
    } finally {
      await qr.release();
    }
  }

  async markDelivered(ids: string[], owner: string, options: { deleteRows?: boolean; now?: number } = {}): Promise<number> {
    if (ids.length === 0) return 0;
    const now = options.now ?? Date.now();
    const params: unknown[] = [];
    const head = options.deleteRows
      ? `DELETE FROM tmm_outbox`
      : (params.push(OutboxStatus.Delivered, now), `UPDATE tmm_outbox SET status = ${this.p(1)}, delivered_at = ${this.p(2)}, lease_owner = NULL, lease_until = NULL`);
    params.push(owner, now, OutboxStatus.Pending);
    const fence = `(lease_owner = ${this.p(params.length - 2)} OR lease_owner IS NULL OR lease_until < ${this.p(params.length - 1)}) AND status = ${this.p(params.length)}`;
    const idList = ids.map((id) => (params.push(id), this.p(params.length))).join(', ');
    // Placeholders are positional on MySQL/SQLite: the SQL text keeps the order in which params were pushed.
    return this.write(`${head} WHERE ${fence} AND id IN (${idList})`, params);
  }

  async recordFailure(id: string, owner: string, failure: { error: string; retryAt: number; dead: boolean; now?: number }): Promise<boolean> {
    const now = failure.now ?? Date.now();
    const p = (n: number) => this.p(n);
    const sql =
      `UPDATE tmm_outbox SET attempts = attempts + 1, last_error = ${p(1)}, available_at = ${p(2)}, status = ${p(3)}, ` +
      `lease_owner = NULL, lease_until = NULL WHERE id = ${p(4)} AND status = ${p(5)} ` +
      `AND (lease_owner = ${p(6)} OR lease_owner IS NULL OR lease_until < ${p(7)})`;
    const status = failure.dead ? OutboxStatus.Dead : OutboxStatus.Pending;
    const n = await this.write(sql, [failure.error.slice(0, MAX_ERROR), failure.retryAt, status, id, OutboxStatus.Pending, owner, now]);
    return n > 0;
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
