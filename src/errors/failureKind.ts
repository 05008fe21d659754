import { TmmError } from './TmmError';

/**
 * How a failure bears on the message it happened to. The one place tmm decides whether trying again can help:
 *
 * - `transient`: says nothing about the message — the broker or database is unreachable, the connection was
 *   lost, a confirm did not come in time, the transport was closing. Retried with backoff for as long as it
 *   lasts, without spending the message's attempts (an outage never makes a row DEAD).
 * - `message`: the broker refused this message (unroutable: no queue bound, the exchange is missing; nacked).
 *   Retried, and each failure spends one of the message's attempts; DEAD / a dead letter when they are spent.
 * - `permanent`: will fail again identically, so it is never retried: the client cannot encode the message
 *   (a header table over amqplib's 64 KiB encoding buffer, an invalid value), or the database rejects a
 *   value (invalid byte sequence, NUL in text, a value too long, a constraint on a value). DEAD / a dead
 *   letter at once.
 *
 * Anything unrecognised is `message`: it is retried, within the message's budget, so an unknown failure
 * neither loops forever nor kills a message on its first occurrence.
 */
export type FailureKind = 'transient' | 'message' | 'permanent';

const TRANSIENT_CODES = new Set([
  'TMM_PUBLISH_CONNECTION_LOST',
  'TMM_PUBLISH_TIMEOUT',
  'TMM_PUBLISH_CLOSED',
  'TMM_TRANSPORT_CLOSED',
  'TMM_TRANSPORT_CONNECT_TIMEOUT',
  'TMM_RELAY_STOPPED',
  'TMM_DATABASE_CONNECTION_LOST',
]);
const MESSAGE_CODES = new Set(['TMM_PUBLISH_UNROUTABLE', 'TMM_PUBLISH_NACKED']);
const PERMANENT_CODES = new Set(['TMM_PUBLISH_INVALID', 'TMM_DATABASE_VALUE_REJECTED', 'TMM_PAYLOAD_TOO_LARGE', 'TMM_MESSAGE_INVALID']);

/** Node socket errors: the peer is unreachable or went away. */
const NETWORK_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED']);

/**
 * SQLSTATE classes and codes (PostgreSQL; MariaDB reports them in `sqlState`) that fail again for the same
 * value: 22 data exception (22021 invalid byte sequence, 22P05 untranslatable character, 22001 value too
 * long…), 23 integrity constraint violation (not 23505 unique violation, which callers treat as "already
 * there"), 42 syntax / undefined column.
 */
function permanentSqlState(state: string): boolean {
  if (state === '23505') return false;
  return state.startsWith('22') || state.startsWith('23') || state.startsWith('42');
}

/** SQLSTATE classes of a database that is unreachable, restarting or overloaded. */
function transientSqlState(state: string): boolean {
  return state.startsWith('08') || state.startsWith('57') || state.startsWith('53') || state === '40001' || state === '40P01';
}

/** MariaDB/MySQL errnos that fail again for the same value: bad string (1366), too long (1406), out of range (1264), null (1048). */
const PERMANENT_MYSQL_ERRNOS = new Set([1366, 1406, 1264, 1048, 1292, 1452]);

function walk(e: unknown): unknown[] {
  const chain: unknown[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur !== undefined && cur !== null; i++) {
    chain.push(cur);
    cur = (cur as { cause?: unknown; driverError?: unknown }).driverError ?? (cur as { cause?: unknown }).cause;
  }
  return chain;
}

export function classifyFailure(error: unknown): FailureKind {
  for (const e of walk(error)) {
    const o = e as { code?: unknown; sqlState?: unknown; errno?: unknown; message?: unknown; name?: unknown };
    if (typeof o.code === 'string') {
      if (TRANSIENT_CODES.has(o.code)) return 'transient';
      if (MESSAGE_CODES.has(o.code)) return 'message';
      if (PERMANENT_CODES.has(o.code)) return 'permanent';
      if (NETWORK_ERRNOS.has(o.code)) return 'transient';
      if (/^[0-9A-Z]{5}$/.test(o.code) && /^[0-9]/.test(o.code)) {
        if (permanentSqlState(o.code)) return 'permanent';
        if (transientSqlState(o.code)) return 'transient';
      }
      if (o.code === 'SQLITE_TOOBIG' || o.code === 'SQLITE_CONSTRAINT_NOTNULL' || o.code === 'SQLITE_MISMATCH') return 'permanent';
      if (o.code === 'SQLITE_BUSY' || o.code === 'SQLITE_LOCKED' || o.code === 'SQLITE_IOERR') return 'transient';
      if (o.code === 'PROTOCOL_CONNECTION_LOST' || o.code === 'ER_CON_COUNT_ERROR') return 'transient';
    }
    if (typeof o.errno === 'number' && typeof o.sqlState === 'string' && PERMANENT_MYSQL_ERRNOS.has(o.errno)) return 'permanent';
    const message = typeof o.message === 'string' ? o.message : '';
    // amqplib's encoder: a field table (headers) over its 64 KiB buffer, or a value it cannot encode.
    if (/Encoded field table|exceeds the \d+ byte encoding buffer/.test(message)) return 'permanent';
    if (/invalid byte sequence for encoding|unsupported Unicode escape|invalid input syntax/i.test(message)) return 'permanent';
    if (o.name === 'QueryRunnerAlreadyReleasedError' || /Connection terminated|connection is closed|ECONNREFUSED/i.test(message)) return 'transient';
  }
  return 'message';
}

/** A unique-key violation, as each driver reports it (through TypeORM's QueryFailedError and `cause` chains). */
export function isUniqueViolation(error: unknown): boolean {
  for (const e of walk(error)) {
    const o = e as { code?: unknown; errno?: unknown; message?: unknown };
    if (o.code === '23505' || o.code === 'ER_DUP_ENTRY' || o.errno === 1062 || o.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return true;
    if (o.code === 'SQLITE_CONSTRAINT' && typeof o.message === 'string' && /UNIQUE|PRIMARY KEY/i.test(o.message)) return true;
  }
  return false;
}

/** The code a failure is known by in logs and stored rows (`code: message`). */
export function failureText(error: unknown): string {
  if (error instanceof TmmError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) return `${(error as { code?: unknown }).code ?? error.name}: ${error.message}`;
  return String(error);
}
