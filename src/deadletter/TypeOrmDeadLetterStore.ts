import { createHash } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { NotConfiguredError } from '../errors';
import { uuidv7 } from 'uuidv7';
import type { Dialect } from '../transaction/dialect';
import {
  DEAD_LETTER_STATUSES,
  DeadLetter,
  DeadLetterFilter,
  DeadLetterGroup,
  DeadLetterStatus,
  DeadLetterSummary,
  DeadLetterSummaryCounts,
  NewDeadLetter,
  Page,
  PageRequest,
} from './DeadLetter';
import { DeadLetterStatusChange, DeadLetterStore } from './DeadLetterStore';
import { SqlParams, lockRowsByIdAndStatus, num, numOrNull, strOrNull } from './SqlParams';
import { TraceHeaders } from '../tracing/MessageTracer';
import { storedSetCondition, storedSetOf } from './storedSet';

/** What a correlation id searched for may contain (so that it needs no escaping in LIKE). */
export const CORRELATION_ID = /^[A-Za-z0-9.:-]{1,128}$/;

const INSERT_COLUMNS = [
  'id', 'message_id', 'dead_letter_queue', 'queue', 'consumer', 'topic', 'original_exchange', 'original_routing_key',
  'payload', 'headers', 'content_type', 'reason', 'error_code', 'error_message', 'error_stack', 'fingerprint',
  'attempts', 'first_failure_at', 'last_failure_at', 'message_created_at', 'received_at', 'status', 'payload_encoding',
] as const;

const SUMMARY_COLUMNS =
  'id, message_id, dead_letter_queue, queue, consumer, topic, original_exchange, original_routing_key, content_type, reason, ' +
  'error_code, error_message, fingerprint, attempts, first_failure_at, last_failure_at, message_created_at, received_at, ' +
  'status, status_at, status_by, resent_message_id, headers';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for the id format tmm uses (UUID); other strings can never be a row's id. */
export function isUuid(id: string): boolean {
  return UUID.test(id);
}

/** A message id over the column's 255 characters is kept as `sha256:` + its hash (unique, stable across redeliveries). */
function fitId(id: string): string {
  return id.length <= 255 ? id : `sha256:${createHash('sha256').update(id, 'utf8').digest('hex')}`;
}

/** Longest error message kept in a row (the full text stays in the message headers). */
const MAX_ERROR = 4000;

/** DeadLetterStore on raw SQL through TypeORM (no entity registration needed in the user's DataSource). */
export class TypeOrmDeadLetterStore implements DeadLetterStore {
  constructor(
    private readonly dataSource: DataSource,
    private readonly dialect: Dialect,
  ) {}

  private sql(): SqlParams {
    return new SqlParams(this.dialect);
  }

  async add(manager: EntityManager, letter: NewDeadLetter): Promise<{ id: string; inserted: boolean }> {
    const id = uuidv7();
    const q = this.sql();
    // Column widths are limits on values, which would fail the insert on every redelivery: fit them here.
    letter = { ...letter, messageId: fitId(letter.messageId), queue: letter.queue?.slice(0, 255) ?? null, consumer: letter.consumer?.slice(0, 255) ?? null };
    const values = [
      id, letter.messageId, letter.deadLetterQueue.slice(0, 255), letter.queue, letter.consumer, letter.topic.slice(0, 255), letter.originalExchange.slice(0, 255),
      letter.originalRoutingKey.slice(0, 255), letter.payload, JSON.stringify(letter.headers), letter.contentType.slice(0, 255), letter.reason.slice(0, 64),
      letter.errorCode?.slice(0, 255) ?? null, letter.errorMessage.slice(0, MAX_ERROR), letter.errorStack, letter.fingerprint,
      letter.attempts, letter.firstFailureAt, letter.lastFailureAt, letter.messageCreatedAt, letter.receivedAt, DeadLetterStatus.New,
      letter.payloadEncoding ?? 'utf8',
    ];
    const tuple = values.map((v) => q.p(v)).join(', ');
    const conflict =
      this.dialect === 'mysql' ? ' ON DUPLICATE KEY UPDATE id = id' : ' ON CONFLICT (message_id, dead_letter_queue) DO NOTHING';
    await manager.query(`INSERT INTO tmm_dead_letter (${INSERT_COLUMNS.join(', ')}) VALUES (${tuple})${conflict}`, q.values);
    const r = this.sql();
    const rows: { id: string }[] = await manager.query(
      `SELECT id FROM tmm_dead_letter WHERE message_id = ${r.p(letter.messageId)} AND dead_letter_queue = ${r.p(letter.deadLetterQueue)}`,
      r.values,
    );
    const stored = String(rows[0]?.id ?? id);
    return { id: stored, inserted: stored === id };
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    if (!isUuid(id)) return undefined;
    const q = this.sql();
    const rows: Record<string, unknown>[] = await this.dataSource.query(`SELECT * FROM tmm_dead_letter WHERE id = ${q.p(id)}`, q.values);
    return rows.length > 0 ? toDeadLetter(rows[0]) : undefined;
  }

  private where(filter: DeadLetterFilter, q: SqlParams): string {
    const parts: string[] = [];
    if (filter.ids) {
      const ids = filter.ids.filter(isUuid);
      if (ids.length === 0) return 'WHERE 1 = 0';
      parts.push(`id IN (${q.list(ids)})`);
    }
    if (filter.status && filter.status.length > 0) parts.push(`status IN (${q.list(filter.status)})`);
    if (filter.consumer !== undefined) parts.push(`consumer = ${q.p(filter.consumer)}`);
    if (filter.fingerprint !== undefined) parts.push(`fingerprint = ${q.p(filter.fingerprint)}`);
    if (filter.topic !== undefined) parts.push(`topic = ${q.p(filter.topic)}`);
    if (filter.messageId !== undefined) parts.push(`message_id = ${q.p(filter.messageId)}`);
    if (filter.correlationId !== undefined) {
      // The headers are stored as JSON.stringify wrote them; the id's characters need no LIKE escaping.
      if (!CORRELATION_ID.test(filter.correlationId)) return 'WHERE 1 = 0';
      parts.push(`headers LIKE ${q.p(`%${JSON.stringify(TraceHeaders.correlationId)}:${JSON.stringify(filter.correlationId)}%`)}`);
    }
    if (filter.set !== undefined) parts.push(storedSetCondition(q, filter.set));
    if (filter.from !== undefined) parts.push(`last_failure_at >= ${q.p(filter.from)}`);
    if (filter.to !== undefined) parts.push(`last_failure_at <= ${q.p(filter.to)}`);
    return parts.length > 0 ? `WHERE ${parts.join(' AND ')}` : '';
  }

  async list(filter: DeadLetterFilter, page: PageRequest): Promise<Page<DeadLetterSummary>> {
    const limit = clampInt(page.limit, 1, 1000);
    const offset = clampInt(page.offset, 0, Number.MAX_SAFE_INTEGER);
    const q = this.sql();
    const where = this.where(filter, q);
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT ${SUMMARY_COLUMNS} FROM tmm_dead_letter ${where} ORDER BY last_failure_at DESC, id DESC LIMIT ${limit} OFFSET ${offset}`,
      q.values,
    );
    const c = this.sql();
    const counted: { n: unknown }[] = await this.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_dead_letter ${this.where(filter, c)}`, c.values);
    return { items: rows.map(toSummary), total: num(counted[0]?.n ?? 0), limit, offset };
  }

  async ids(filter: DeadLetterFilter, limit: number): Promise<string[]> {
    const q = this.sql();
    const rows: { id: string }[] = await this.dataSource.query(
      `SELECT id FROM tmm_dead_letter ${this.where(filter, q)} ORDER BY last_failure_at DESC, id DESC LIMIT ${clampInt(limit, 1, 1_000_000)}`,
      q.values,
    );
    return rows.map((r) => String(r.id));
  }

  async groups(filter: DeadLetterFilter, limit: number): Promise<DeadLetterGroup[]> {
    const q = this.sql();
    const rows: Record<string, unknown>[] = await this.dataSource.query(
      `SELECT fingerprint, COUNT(*) AS n, MAX(consumer) AS consumer, MAX(topic) AS topic, MAX(error_code) AS error_code,
              MAX(error_message) AS sample_error, MIN(first_failure_at) AS first_at, MAX(last_failure_at) AS last_at
       FROM tmm_dead_letter ${this.where(filter, q)} GROUP BY fingerprint ORDER BY n DESC, last_at DESC LIMIT ${clampInt(limit, 1, 1000)}`,
      q.values,
    );
    return rows.map((r) => ({
      fingerprint: String(r.fingerprint),
      count: num(r.n),
      consumer: strOrNull(r.consumer),
      topic: String(r.topic),
      errorCode: strOrNull(r.error_code),
      sampleError: String(r.sample_error ?? ''),
      firstFailureAt: num(r.first_at),
      lastFailureAt: num(r.last_at),
    }));
  }

  async summarize(): Promise<DeadLetterSummaryCounts> {
    const byStatus = Object.fromEntries(DEAD_LETTER_STATUSES.map((s) => [s, 0])) as Record<DeadLetterStatus, number>;
    const statusRows: { status: DeadLetterStatus; n: unknown }[] = await this.dataSource.query(
      `SELECT status, COUNT(*) AS n FROM tmm_dead_letter GROUP BY status`,
    );
    for (const r of statusRows) byStatus[r.status] = num(r.n);
    const q = this.sql();
    const consumerRows: { consumer: unknown; n: unknown }[] = await this.dataSource.query(
      `SELECT consumer, COUNT(*) AS n FROM tmm_dead_letter WHERE status = ${q.p(DeadLetterStatus.New)} GROUP BY consumer ORDER BY n DESC LIMIT 50`,
      q.values,
    );
    const o = this.sql();
    const oldest: { t: unknown }[] = await this.dataSource.query(
      `SELECT MIN(last_failure_at) AS t FROM tmm_dead_letter WHERE status = ${o.p(DeadLetterStatus.New)}`,
      o.values,
    );
    return {
      byStatus,
      byConsumer: consumerRows.map((r) => ({ consumer: strOrNull(r.consumer), count: num(r.n) })),
      oldestNewAt: numOrNull(oldest[0]?.t),
    };
  }

  async lock(manager: EntityManager, ids: string[], statuses: DeadLetterStatus[]): Promise<DeadLetter[]> {
    const rows = await lockRowsByIdAndStatus(manager, this.dialect, 'tmm_dead_letter', ids.filter(isUuid), statuses);
    return rows.map(toDeadLetter);
  }

  async purge(manager: EntityManager, before: number, limit: number): Promise<number> {
    // Through the primary key, oldest first: MySQL allows no LIMIT in a subquery of IN, hence the derived table.
    const q = new SqlParams(this.dialect);
    const pick = `SELECT id FROM tmm_dead_letter WHERE status IN ('RESENT', 'DISCARDED') AND status_at < ${q.p(before)} ORDER BY status_at LIMIT ${clampInt(limit, 1, 1_000_000)}`;
    return affectedRows(manager, `DELETE FROM tmm_dead_letter WHERE id IN (SELECT id FROM (${pick}) AS purgeable)`, q.values);
  }

  async countPurgeable(before: number): Promise<number> {
    const q = new SqlParams(this.dialect);
    const rows: { n: unknown }[] = await this.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_dead_letter WHERE status IN ('RESENT', 'DISCARDED') AND status_at < ${q.p(before)}`, q.values);
    return Number(rows[0]?.n ?? 0);
  }

  async setStatus(manager: EntityManager, ids: string[], change: DeadLetterStatusChange): Promise<number> {
    const valid = ids.filter(isUuid);
    if (valid.length === 0) return 0;
    const exec = (sql: string, params: unknown[]) => affectedRows(manager, sql, params);
    let changed = 0;
    if (change.resentMessageIds) {
      // Each row gets its own resent message id: one statement per row, all in the caller's transaction.
      for (const id of valid) {
        const q = this.sql();
        const sql =
          `UPDATE tmm_dead_letter SET status = ${q.p(change.to)}, status_at = ${q.p(change.at)}, status_by = ${q.p(change.by)}, ` +
          `resent_message_id = ${q.p(change.resentMessageIds.get(id) ?? null)} WHERE id = ${q.p(id)} AND status IN (${q.list(change.from)})`;
        changed += await exec(sql, q.values);
      }
      return changed;
    }
    const q = this.sql();
    return exec(
      `UPDATE tmm_dead_letter SET status = ${q.p(change.to)}, status_at = ${q.p(change.at)}, status_by = ${q.p(change.by)} ` +
        `WHERE id IN (${q.list(valid)}) AND status IN (${q.list(change.from)})`,
      q.values,
    );
  }
}

/** Runs a write on the manager's (transaction's) query runner and returns the number of rows it changed. */
export async function affectedRows(manager: EntityManager, sql: string, params: unknown[]): Promise<number> {
  const runner = manager.queryRunner;
  if (!runner) throw new NotConfiguredError('tmm admin writes need a transaction-bound EntityManager (run them in TransactionManager.run)');
  const result = await runner.query(sql, params, true);
  return Number(result.affected ?? 0);
}

export function clampInt(v: number, min: number, max: number): number {
  const n = Math.floor(Number.isFinite(v) ? v : min);
  return Math.min(max, Math.max(min, n));
}

function toSummary(r: Record<string, unknown>): DeadLetterSummary {
  return {
    id: String(r.id),
    messageId: String(r.message_id),
    deadLetterQueue: String(r.dead_letter_queue),
    queue: strOrNull(r.queue),
    consumer: strOrNull(r.consumer),
    topic: String(r.topic),
    originalExchange: String(r.original_exchange),
    originalRoutingKey: String(r.original_routing_key),
    contentType: String(r.content_type),
    reason: String(r.reason),
    errorCode: strOrNull(r.error_code),
    errorMessage: String(r.error_message),
    fingerprint: String(r.fingerprint),
    attempts: num(r.attempts),
    firstFailureAt: num(r.first_failure_at),
    lastFailureAt: num(r.last_failure_at),
    messageCreatedAt: numOrNull(r.message_created_at),
    receivedAt: num(r.received_at),
    status: String(r.status) as DeadLetterStatus,
    statusAt: numOrNull(r.status_at),
    statusBy: strOrNull(r.status_by),
    resentMessageId: strOrNull(r.resent_message_id),
    set: storedSetOf(r.headers),
  };
}

function toDeadLetter(r: Record<string, unknown>): DeadLetter {
  let headers: DeadLetter['headers'] = {};
  try {
    headers = JSON.parse(String(r.headers));
  } catch {
    headers = {};
  }
  return {
    ...toSummary(r),
    payload: String(r.payload),
    payloadEncoding: r.payload_encoding === 'base64' ? 'base64' : 'utf8',
    headers,
    errorStack: strOrNull(r.error_stack),
  };
}
