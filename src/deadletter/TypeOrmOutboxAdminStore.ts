import type { DataSource, EntityManager } from 'typeorm';
import { OutboxStatus } from '../message/OutboxMessage';
import type { OutboxRecord } from '../outbox/OutboxStore';
import { toRecord } from '../outbox/TypeOrmOutboxStore';
import type { Dialect } from '../transaction/dialect';
import type { Page, PageRequest } from './DeadLetter';
import { OutboxAdminStore, OutboxRowFilter, OutboxRowSummary, OutboxStats } from './OutboxAdminStore';
import { SqlParams, lockRowsByIdAndStatus, num, numOrNull, strOrNull } from './SqlParams';
import { affectedRows, clampInt, isUuid } from './TypeOrmDeadLetterStore';
import { storedSetCondition, storedSetOf } from './storedSet';

const STUCK: OutboxStatus[] = [OutboxStatus.Dead, OutboxStatus.Exception];
const SUMMARY_COLUMNS =
  'id, topic, exchange, routing_key, status, attempts, available_at, lease_owner, lease_until, ordering_key, created_at, delivered_at, last_error, headers';

/** OutboxAdminStore on raw SQL through TypeORM. */
export class TypeOrmOutboxAdminStore implements OutboxAdminStore {
  constructor(
    private readonly dataSource: DataSource,
    private readonly dialect: Dialect,
  ) {}

  async list(filter: OutboxRowFilter, page: PageRequest): Promise<Page<OutboxRowSummary>> {
    const limit = clampInt(page.limit, 1, 1000);
    const offset = clampInt(page.offset, 0, Number.MAX_SAFE_INTEGER);
    const where = (q: SqlParams) => {
      const parts = [`status IN (${q.list(filter.status.length > 0 ? filter.status : STUCK)})`];
      if (filter.topic !== undefined) parts.push(`topic = ${q.p(filter.topic)}`);
      if (filter.set !== undefined) parts.push(storedSetCondition(q, filter.set));
      if (filter.from !== undefined) parts.push(`created_at >= ${q.p(filter.from)}`);
      if (filter.to !== undefined) parts.push(`created_at <= ${q.p(filter.to)}`);
      return `WHERE ${parts.join(' AND ')}`;
    };
    const q = new SqlParams(this.dialect);
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT ${SUMMARY_COLUMNS} FROM tmm_outbox ${where(q)} ORDER BY created_at DESC, id DESC LIMIT ${limit} OFFSET ${offset}`,
      q.values,
    );
    const c = new SqlParams(this.dialect);
    const counted: { n: unknown }[] = await this.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_outbox ${where(c)}`, c.values);
    return {
      items: rows.map((r) => ({
        id: String(r.id),
        topic: String(r.topic),
        exchange: String(r.exchange),
        routingKey: String(r.routing_key),
        status: String(r.status) as OutboxStatus,
        attempts: num(r.attempts),
        availableAt: num(r.available_at),
        leaseOwner: strOrNull(r.lease_owner),
        leaseUntil: numOrNull(r.lease_until),
        orderingKey: strOrNull(r.ordering_key),
        createdAt: num(r.created_at),
        deliveredAt: numOrNull(r.delivered_at),
        lastError: strOrNull(r.last_error),
        set: storedSetOf(r.headers),
      })),
      total: num(counted[0]?.n ?? 0),
      limit,
      offset,
    };
  }

  async stats(now = Date.now(), sets: readonly string[] = []): Promise<OutboxStats> {
    const byStatus: Record<OutboxStatus, number> = { PENDING: 0, DELIVERED: 0, DEAD: 0, EXCEPTION: 0 };
    const rows: { status: OutboxStatus; n: unknown }[] = await this.dataSource.query(`SELECT status, COUNT(*) AS n FROM tmm_outbox GROUP BY status`);
    for (const r of rows) byStatus[r.status] = num(r.n);
    const q = new SqlParams(this.dialect);
    // Over the PENDING rows of the partial tmm_outbox_due index (status = 'PENDING', available_at): the due ones,
    // and those waiting for a retry after a failed publish (last_error set), which wait since they were created.
    // (One placeholder per use: MySQL's and SQLite's are positional.)
    const due: { topic: unknown; n: unknown; oldest: unknown; waiting: unknown }[] = await this.dataSource.query(
      `SELECT topic, SUM(CASE WHEN available_at <= ${q.p(now)} THEN 1 ELSE 0 END) AS n, MIN(CASE WHEN available_at <= ${q.p(now)} THEN available_at END) AS oldest, ` +
        `MIN(CASE WHEN last_error IS NOT NULL AND created_at < available_at THEN created_at ELSE available_at END) AS waiting ` +
        `FROM tmm_outbox WHERE status = 'PENDING' AND (available_at <= ${q.p(now)} OR last_error IS NOT NULL) GROUP BY topic`,
      q.values,
    );
    const dueByTopic = due
      .map((r) => ({ topic: String(r.topic), due: num(r.n), oldestDueAt: numOrNull(r.oldest), waitingSince: num(r.waiting) }))
      .sort((a, b) => b.due - a.due || a.waitingSince - b.waitingSince || a.topic.localeCompare(b.topic));
    const dueAts = dueByTopic.flatMap((t) => (t.oldestDueAt === null ? [] : [t.oldestDueAt]));
    return {
      byStatus,
      due: dueByTopic.reduce((n, t) => n + t.due, 0),
      oldestDueAt: dueAts.length === 0 ? null : Math.min(...dueAts),
      oldestWaitingSince: dueByTopic.length === 0 ? null : Math.min(...dueByTopic.map((t) => t.waitingSince)),
      dueByTopic: dueByTopic.slice(0, 200),
      ...(sets.length > 0 ? { bySet: await this.backlogBySet(now, sets) } : {}),
    };
  }

  /** One statement for every set: a count and a MIN per set over the set's backlog rows (see OutboxStats.bySet). */
  private async backlogBySet(now: number, sets: readonly string[]): Promise<NonNullable<OutboxStats['bySet']>> {
    const q = new SqlParams(this.dialect);
    const columns = sets.map((set, i) => {
      const cond = storedSetCondition(q, set);
      return `SUM(CASE WHEN ${cond} THEN 1 ELSE 0 END) AS n${i}, MIN(CASE WHEN ${storedSetCondition(q, set)} THEN created_at END) AS o${i}`;
    });
    const backlog = `status = 'PENDING' AND (available_at <= ${q.p(now)} OR last_error IS NOT NULL)`;
    const [row] = (await this.dataSource.query(`SELECT ${columns.join(', ')} FROM tmm_outbox WHERE ${backlog}`, q.values)) as Record<string, unknown>[];
    return sets.map((set, i) => ({ set, pending: num(row?.[`n${i}`] ?? 0), oldestCreatedAt: numOrNull(row?.[`o${i}`]) }));
  }

  async lock(manager: EntityManager, ids: string[], statuses: OutboxStatus[]): Promise<OutboxRecord[]> {
    const rows = await lockRowsByIdAndStatus(manager, this.dialect, 'tmm_outbox', ids.filter(isUuid), statuses);
    return rows.map(toRecord);
  }

  async revive(manager: EntityManager, ids: string[], now: number): Promise<number> {
    const valid = ids.filter(isUuid);
    if (valid.length === 0) return 0;
    const q = new SqlParams(this.dialect);
    const sql =
      `UPDATE tmm_outbox SET status = ${q.p(OutboxStatus.Pending)}, attempts = 0, available_at = ${q.p(now)}, lease_owner = NULL, lease_until = NULL ` +
      `WHERE id IN (${q.list(valid)}) AND status IN (${q.list(STUCK)})`;
    return affectedRows(manager, sql, q.values);
  }

  async remove(manager: EntityManager, ids: string[]): Promise<number> {
    const valid = ids.filter(isUuid);
    if (valid.length === 0) return 0;
    const q = new SqlParams(this.dialect);
    return affectedRows(manager, `DELETE FROM tmm_outbox WHERE id IN (${q.list(valid)}) AND status IN (${q.list(STUCK)})`, q.values);
  }
}
