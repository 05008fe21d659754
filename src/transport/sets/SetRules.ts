import { createHash } from 'node:crypto';
import { ConfigurationError } from '../../errors';
import type { TransportMessage } from '../Transport';

/** Where a message's routing key is read from: a header, or a field of the JSON payload (dotted path). */
export type SetKeySource = { header: string } | { field: string };

/**
 * How messages are mapped to sets. Checked in this order: `values` (exact key → set), `ranges` (numeric
 * key in [from, to) → set), `hash` (weighted rendezvous hashing of the key over the named sets);
 * a message without a key, or with a key nothing matches, goes to `center`.
 */
export interface SetRules {
  key: SetKeySource;
  center: string;
  values?: Record<string, string>;
  ranges?: Array<{ from: number; to: number; set: string }>;
  /** Set → weight (> 0): a set with twice the weight gets about twice the keys; keys move only when sets change. */
  hash?: Record<string, number>;
}

/** Checks rules against the configured set names; throws ConfigurationError naming the rule path. */
export function validateSetRules(rules: SetRules, sets: readonly string[], path = 'sets.rules'): void {
  const known = new Set(sets);
  const need = (set: unknown, where: string) => {
    if (typeof set !== 'string' || !known.has(set)) throw new ConfigurationError(where, `unknown set ${JSON.stringify(set)} (sets: ${sets.join(', ')})`);
  };
  if (!rules || typeof rules !== 'object') throw new ConfigurationError(path, 'must be an object');
  if (rules.center === undefined) throw new ConfigurationError(`${path}.center`, 'a center set is required (it takes every message no rule matches)');
  need(rules.center, `${path}.center`);
  const k = rules.key as Partial<{ header: unknown; field: unknown }> | undefined;
  if (!k || (typeof k.header !== 'string' && typeof k.field !== 'string') || (k.header !== undefined && k.field !== undefined)) {
    throw new ConfigurationError(`${path}.key`, 'must be { header: "<name>" } or { field: "<payload path>" }');
  }
  for (const [value, set] of Object.entries(rules.values ?? {})) need(set, `${path}.values.${value}`);
  const ranges = [...(rules.ranges ?? [])].map((r, i) => ({ ...r, i }));
  for (const r of ranges) {
    need(r.set, `${path}.ranges.${r.i}.set`);
    if (typeof r.from !== 'number' || typeof r.to !== 'number' || !(r.from < r.to)) {
      throw new ConfigurationError(`${path}.ranges.${r.i}`, `needs numbers from < to, got [${String(r.from)}, ${String(r.to)})`);
    }
  }
  ranges.sort((a, b) => a.from - b.from);
  for (let i = 1; i < ranges.length; i++) {
    const a = ranges[i - 1];
    const b = ranges[i];
    if (b.from < a.to) throw new ConfigurationError(`${path}.ranges.${b.i}`, `[${b.from}, ${b.to}) overlaps ranges.${a.i} [${a.from}, ${a.to})`);
  }
  for (const [set, weight] of Object.entries(rules.hash ?? {})) {
    need(set, `${path}.hash.${set}`);
    if (typeof weight !== 'number' || !(weight > 0) || !Number.isFinite(weight)) throw new ConfigurationError(`${path}.hash.${set}`, `weight must be a number > 0, got ${String(weight)}`);
  }
}

/** The routing key of a message per the rules, or undefined when it has none. */
export function setKeyOf(rules: SetRules, message: TransportMessage): string | undefined {
  if ('header' in rules.key) {
    const v = message.headers[rules.key.header];
    return v === undefined || v === null ? undefined : String(v);
  }
  let v: unknown;
  try {
    v = JSON.parse(message.body.toString('utf8'));
  } catch {
    return undefined;
  }
  for (const part of rules.key.field.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v === undefined || v === null || typeof v === 'object' ? undefined : String(v);
}

/** The set a key maps to (center when nothing matches). */
export function setOfKey(rules: SetRules, key: string | undefined): string {
  if (key === undefined) return rules.center;
  const exact = rules.values?.[key];
  if (exact !== undefined) return exact;
  const n = Number(key);
  if (rules.ranges && key.trim() !== '' && Number.isFinite(n)) {
    for (const r of rules.ranges) if (n >= r.from && n < r.to) return r.set;
  }
  if (rules.hash && Object.keys(rules.hash).length > 0) {
    let best = rules.center;
    let bestScore = -Infinity;
    for (const [set, weight] of Object.entries(rules.hash)) {
      const h = createHash('sha256').update(`${set}\u0000${key}`).digest();
      const u = (h.readUInt32BE(0) + 1) / 4294967297; // (0, 1)
      const score = -weight / Math.log(u);
      if (score > bestScore) {
        bestScore = score;
        best = set;
      }
    }
    return best;
  }
  return rules.center;
}
