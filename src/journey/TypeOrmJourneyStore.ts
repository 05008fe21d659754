import type { DataSource } from 'typeorm';
import { newContext } from '../context/ContextStore';
import type { SqlDialect } from '../sql/SqlDialect';
import { Propagation } from '../transaction/Propagation';
import type { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import type { JourneyEvent, RecordedJourneyEvent } from './JourneyEvent';
import type { JourneyHit, JourneySearch, JourneyStore } from './JourneyStore';
import { expandSteps } from './timeline';

const COLUMNS = ['message_id', 'step', 'at', 'source', 'attempt', 'outcome', 'duration_ms', 'detail', 'linked_id', 'correlation_id', 'business_key'];
/** Rows per INSERT (11 parameters each on MariaDB and SQLite). */
const INSERT_CHUNK = 500;
/** Rows per INSERT on PostgreSQL (11 array parameters whatever the count). */
const PG_INSERT_CHUNK = 5000;
const PG_TYPES = ['text', 'text', 'int8', 'text', 'int4', 'text', 'int4', 'text', 'text', 'text', 'text'];
const PG_INSERT = `INSERT INTO tmm_journey (${COLUMNS.join(', ')}) SELECT * FROM unnest(${PG_TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})`;
const PURGE_BATCH = 5000;
const MAX_IDS = 500;

const cut = (s: string | null, max: number): string | null => (s === null ? null : s.length <= max ? s : `${s.slice(0, max - 1)}…`);
const int = (n: number | null | undefined): number | null => (n === undefined || n === null || !Number.isFinite(n) ? null : Math.round(n));

/**
 * JourneyStore on `tmm_journey` through raw SQL. Writes run outside any caller transaction: on a pooled
 * connection of their own (PostgreSQL, MariaDB), or through the transaction manager's writer lock in a fresh
 * context (SQLite's single connection). Texts are cut to their column widths, a NUL written as `\0`.
 */
export class TypeOrmJourneyStore implements JourneyStore {
  private readonly dataSource: DataSource;

  constructor(
    private readonly transactions: TypeOrmTransactionManager,
    private readonly dialect: SqlDialect,
  ) {
    this.dataSource = transactions.dataSource;
  }

  async append(events: readonly JourneyEvent[]): Promise<void> {
    const chunk = this.dialect.name === 'postgres' ? PG_INSERT_CHUNK : INSERT_CHUNK;
    for (let i = 0; i < events.length; i += chunk) {
      const rows = events.slice(i, i + chunk).map(toRow);
      if (this.dialect.name === 'postgres') {
        // One array per column: a constant statement of 11 parameters, several times cheaper to parse and bind
        // than a VALUES list of 11 × rows (bench:journey).
        const columns: unknown[][] = COLUMNS.map(() => []);
        for (const r of rows) for (let c = 0; c < r.length; c++) columns[c].push(r[c]);
        await this.write(PG_INSERT, columns);
        continue;
      }
      const q = this.dialect.params();
      await this.write(`INSERT INTO tmm_journey (${COLUMNS.join(', ')}) VALUES ${rows.map((r) => `(${q.list(r)})`).join(', ')}`, q.values);
    }
  }

  async events(messageIds: readonly string[]): Promise<RecordedJourneyEvent[]> {
    if (messageIds.length === 0) return [];
    const q = this.dialect.params();
    const rows: Row[] = await this.dataSource.query(
      `SELECT id, ${COLUMNS.join(', ')} FROM tmm_journey WHERE ${this.dialect.inList('message_id', messageIds.slice(0, MAX_IDS), q, 'text')} ORDER BY id`,
      q.values,
    );
    return rows.map(toEvent);
  }

  async linked(messageIds: readonly string[]): Promise<string[]> {
    if (messageIds.length === 0) return [];
    const q = this.dialect.params();
    const rows: { linked_id: string }[] = await this.dataSource.query(
      `SELECT DISTINCT linked_id FROM tmm_journey WHERE ${this.dialect.inList('message_id', messageIds.slice(0, MAX_IDS), q, 'text')} AND step = 'resent' AND linked_id IS NOT NULL`,
      q.values,
    );
    return rows.map((r) => r.linked_id);
  }

  async search(query: JourneySearch, limit: number): Promise<JourneyHit[]> {
    const q = this.dialect.params();
    const where: string[] = [];
    if (query.messageId) where.push(`message_id = ${q.p(query.messageId)}`);
    if (query.correlationId) where.push(`correlation_id = ${q.p(query.correlationId)}`);
    if (query.businessKey) where.push(`business_key = ${q.p(query.businessKey)}`);
    if (where.length === 0) return [];
    const n = Math.max(1, Math.min(500, Math.floor(limit)));
    // The matching events name the messages; a second query summarizes each message's whole journey.
    const ids: { message_id: string }[] = await this.dataSource.query(
      `SELECT message_id FROM tmm_journey WHERE ${where.join(' AND ')} GROUP BY message_id ORDER BY MAX(at) DESC LIMIT ${n}`,
      q.values,
    );
    if (ids.length === 0) return [];
    const q2 = this.dialect.params();
    const rows: Row[] = await this.dataSource.query(
      `SELECT id, ${COLUMNS.join(', ')} FROM tmm_journey WHERE ${this.dialect.inList('message_id', ids.map((r) => r.message_id), q2, 'text')} ORDER BY id`,
      q2.values,
    );
    const hits = new Map<string, JourneyHit>();
    for (const r of expandSteps(rows.map(toEvent))) {
      const hit = hits.get(r.messageId);
      if (!hit) {
        hits.set(r.messageId, { messageId: r.messageId, firstStep: r.step, firstAt: r.at, lastAt: r.at, steps: 1, correlationId: r.correlationId, businessKey: r.businessKey });
        continue;
      }
      hit.steps++;
      if (r.at < hit.firstAt) {
        hit.firstAt = r.at;
        hit.firstStep = r.step;
      }
      hit.lastAt = Math.max(hit.lastAt, r.at);
      hit.correlationId ??= r.correlationId;
      hit.businessKey ??= r.businessKey;
    }
    return ids.map((r) => hits.get(r.message_id)!).filter(Boolean);
  }

  async purge(before: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.write(this.dialect.limitedDelete('tmm_journey', 'id', `at < ${this.dialect.placeholder(1)}`, PURGE_BATCH), [before]);
      total += n;
      if (n < PURGE_BATCH) return total;
    }
  }

  /** A write outside any caller transaction; on SQLite through the writer lock (the single writer), in a context of its own. */
  private async write(sql: string, params: unknown[]): Promise<number> {
    if (this.dialect.name === 'sqlite') {
      const tx = this.transactions;
      return tx.contextStore.run(newContext(), () =>
        tx.run(async () => (await tx.current()!.queryRunner.query(sql, params, true)).affected ?? 0, { propagation: Propagation.RequiresNew, name: 'tmm.journey.write' }),
      );
    }
    const qr = this.dataSource.createQueryRunner();
    try {
      return (await qr.query(sql, params, true)).affected ?? 0;
    } finally {
      await qr.release();
    }
  }
}

/** An event as the column values, in COLUMNS order: NULs escaped, then texts cut to their widths. */
function toRow(e: JourneyEvent): unknown[] {
  return [
    cut(clean(e.messageId), 255),
    e.step,
    Math.round(e.at),
    cut(clean(e.source), 255),
    int(e.attempt),
    cut(clean(e.outcome), 64),
    int(e.durationMs),
    cut(clean(e.detail), 1000),
    cut(clean(e.linkedId), 255),
    cut(clean(e.correlationId), 128),
    cut(clean(e.businessKey), 255),
  ];
}

interface Row {
  id: number | string;
  message_id: string;
  step: string;
  at: number | string;
  source: string;
  attempt: number | string | null;
  outcome: string | null;
  duration_ms: number | string | null;
  detail: string | null;
  linked_id: string | null;
  correlation_id: string | null;
  business_key: string | null;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

function toEvent(r: Row): RecordedJourneyEvent {
  return {
    id: Number(r.id),
    messageId: r.message_id,
    step: r.step,
    at: Number(r.at),
    source: r.source,
    attempt: num(r.attempt),
    outcome: r.outcome,
    durationMs: num(r.duration_ms),
    detail: r.detail,
    linkedId: r.linked_id,
    correlationId: r.correlation_id,
    businessKey: r.business_key,
  };
}

/** PostgreSQL text refuses NUL: written as the two characters `\0`. */
function clean(s: string | null | undefined): string | null {
  if (s === undefined || s === null) return null;
  return !s.includes('\u0000') ? s : s.replace(/\u0000/g, '\\0');
}
