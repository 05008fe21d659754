import type { Headers } from '../transport/Transport';

/** One message as the log keeps it (an OutboxMessage without what only the table needs). */
export interface LoggedMessage {
  id: string;
  topic: string;
  exchange: string;
  routingKey: string;
  payload: string;
  headers: Headers;
  createdAt: number;
}

/** Durable before the business transaction commits. */
export interface BeginRecord {
  type: 'begin';
  lsn: number;
  uid: string;
  serviceName: string;
  topics: string[];
  messages: LoggedMessage[];
  /**
   * How to check back: `barrier` (tmm's table in the business DB; `key` its row's key, `<log id>.<uid>` —
   * absent in records written before keys had a log id, whose row is keyed by the bare uid), `checker`
   * (app callback), or an HTTP URL.
   */
  check: { barrier: boolean; key?: string; url?: string };
  at: number;
}

/** The fate of the business transaction: written after COMMIT / after rollback, or from a check-back verdict. */
export interface EndRecord {
  type: 'end';
  lsn: number;
  uid: string;
  outcome: 'commit' | 'rollback';
  source: 'transaction' | 'check-back' | 'admin';
  at: number;
}

/** Every message of the transaction was confirmed by the broker. */
export interface SentRecord {
  type: 'sent';
  lsn: number;
  uid: string;
  at: number;
}

export type LogRecord = BeginRecord | EndRecord | SentRecord;

/** Parses one payload; undefined when it is not a well-formed record (quarantined by the caller). */
export function parseRecord(payload: Buffer): LogRecord | undefined {
  let r: unknown;
  try {
    r = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof r !== 'object' || r === null) return undefined;
  const o = r as Record<string, unknown>;
  if (typeof o.lsn !== 'number' || typeof o.uid !== 'string' || typeof o.at !== 'number') return undefined;
  if (o.type === 'begin') return Array.isArray(o.messages) && Array.isArray(o.topics) && typeof o.serviceName === 'string' ? (o as unknown as BeginRecord) : undefined;
  if (o.type === 'end') return o.outcome === 'commit' || o.outcome === 'rollback' ? (o as unknown as EndRecord) : undefined;
  if (o.type === 'sent') return o as unknown as SentRecord;
  return undefined;
}

/** The lsn of a payload even when the rest is unreadable (for quarantining it), if it can be found. */
export function lsnOf(payload: Buffer): number | undefined {
  const m = /"lsn":(\d+)/.exec(payload.toString('utf8'));
  return m ? Number(m[1]) : undefined;
}
