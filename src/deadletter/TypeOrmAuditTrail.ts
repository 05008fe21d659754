import type { DataSource, EntityManager } from 'typeorm';
import { uuidv7 } from 'uuidv7';
import type { Dialect } from '../transaction/dialect';
import { AuditEntry, AuditFilter, AuditTargetType, AuditTrail } from './AuditTrail';
import type { Page, PageRequest } from './DeadLetter';
import { SqlParams, num, strOrNull } from './SqlParams';
import { affectedRows, clampInt } from './TypeOrmDeadLetterStore';

const COLUMNS = ['id', 'at', 'principal', 'action', 'target_type', 'target_id', 'before_state', 'after_state', 'comment'];
/** 9 parameters a row: 200 rows stay under every driver's bind limit. */
const CHUNK = 200;

/** AuditTrail on raw SQL through TypeORM. */
export class TypeOrmAuditTrail implements AuditTrail {
  constructor(
    private readonly dataSource: DataSource,
    private readonly dialect: Dialect,
  ) {}

  async record(manager: EntityManager, entries: Omit<AuditEntry, 'id'>[]): Promise<void> {
    for (let i = 0; i < entries.length; i += CHUNK) {
      const q = new SqlParams(this.dialect);
      const tuples = entries.slice(i, i + CHUNK).map(
        (e) =>
          `(${q.p(uuidv7())}, ${q.p(e.at)}, ${q.p(e.principal.slice(0, 255))}, ${q.p(e.action)}, ${q.p(e.targetType)}, ${q.p(e.targetId)}, ` +
          `${q.p(e.before === undefined ? null : JSON.stringify(e.before))}, ${q.p(e.after === undefined ? null : JSON.stringify(e.after))}, ${q.p(e.comment)})`,
      );
      await manager.query(`INSERT INTO tmm_audit (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}`, q.values);
    }
  }

  async purge(manager: EntityManager, before: number, limit: number): Promise<number> {
    const q = new SqlParams(this.dialect);
    const pick = `SELECT id FROM tmm_audit WHERE at < ${q.p(before)} ORDER BY at LIMIT ${clampInt(limit, 1, 1_000_000)}`;
    return affectedRows(manager, `DELETE FROM tmm_audit WHERE id IN (SELECT id FROM (${pick}) AS purgeable)`, q.values);
  }

  async countPurgeable(before: number): Promise<number> {
    const q = new SqlParams(this.dialect);
    const rows: { n: unknown }[] = await this.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_audit WHERE at < ${q.p(before)}`, q.values);
    return Number(rows[0]?.n ?? 0);
  }

  async list(filter: AuditFilter, page: PageRequest): Promise<Page<AuditEntry>> {
    const limit = clampInt(page.limit, 1, 1000);
    const offset = clampInt(page.offset, 0, Number.MAX_SAFE_INTEGER);
    const where = (q: SqlParams) => {
      const parts: string[] = [];
      if (filter.targetType) parts.push(`target_type = ${q.p(filter.targetType)}`);
      if (filter.targetId) parts.push(`target_id = ${q.p(filter.targetId)}`);
      if (filter.principal) parts.push(`principal = ${q.p(filter.principal)}`);
      if (filter.action) parts.push(`action = ${q.p(filter.action)}`);
      return parts.length > 0 ? `WHERE ${parts.join(' AND ')}` : '';
    };
    const q = new SqlParams(this.dialect);
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT * FROM tmm_audit ${where(q)} ORDER BY at DESC, id DESC LIMIT ${limit} OFFSET ${offset}`,
      q.values,
    );
    const c = new SqlParams(this.dialect);
    const counted: { n: unknown }[] = await this.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_audit ${where(c)}`, c.values);
    return {
      items: rows.map((r) => ({
        id: String(r.id),
        at: num(r.at),
        principal: String(r.principal),
        action: String(r.action),
        targetType: String(r.target_type) as AuditTargetType,
        targetId: String(r.target_id),
        before: parseJson(r.before_state),
        after: parseJson(r.after_state),
        comment: strOrNull(r.comment),
      })),
      total: num(counted[0]?.n ?? 0),
      limit,
      offset,
    };
  }
}

function parseJson(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  try {
    return JSON.parse(String(v));
  } catch {
    return String(v);
  }
}
