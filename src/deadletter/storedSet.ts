import { SetHeaders } from '../transport/sets/SetRoutingTransport';
import type { SqlParams } from './SqlParams';

/** What a set name given as a filter may be: what JSON writes unescaped (no quote, backslash or control character). */
export const SET_NAME_PATTERN = '^[^"\\\\\\u0000-\\u001f]{1,128}$';
const SET_NAME = new RegExp(SET_NAME_PATTERN);

/** `"tmm-set":"<name>"` as JSON.stringify writes it into a stored headers column. */
const STORED_SET = new RegExp(`${escapeRegExp(JSON.stringify(SetHeaders.set))}:("(?:[^"\\\\]|\\\\.)*")`);

/**
 * The SET a stored message belongs to (the `tmm-set` header the SET router stamps at send time), read from
 * a headers column as tmm writes it (JSON text), or null for a message without one. Reads only that one
 * header, so a list need not parse every row's headers. A header *value* that contains the same text is
 * JSON-escaped (`\"tmm-set\":…`) and does not match.
 */
export function storedSetOf(headersColumn: unknown): string | null {
  if (headersColumn === null || headersColumn === undefined) return null;
  const m = STORED_SET.exec(String(headersColumn));
  if (!m) return null;
  try {
    const v: unknown = JSON.parse(m[1]);
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
}

/**
 * A condition on a headers column: the stored message belongs to `set`. A LIKE over the JSON text (not
 * indexed: for an operator's list and the metrics' scrape, not for the publish path), with `%`, `_` and the
 * escape character escaped; a name JSON would escape matches nothing (`1 = 0`).
 */
export function storedSetCondition(q: SqlParams, set: string, column = 'headers'): string {
  if (!SET_NAME.test(set)) return '1 = 0';
  const needle = `${JSON.stringify(SetHeaders.set)}:${JSON.stringify(set)}`.replace(/[!%_]/g, (c) => `!${c}`);
  return `${column} LIKE ${q.p(`%${needle}%`)} ESCAPE '!'`;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
