import type { Dialect } from '../transaction/dialect';

/**
 * Collects bind parameters while a statement is written left to right: `p(value)` returns the
 * placeholder (`$n` on PostgreSQL, `?` elsewhere) and remembers the value, so the text order always
 * matches the parameter order on the positional dialects.
 */
export class SqlParams {
  readonly values: unknown[] = [];
  constructor(readonly dialect: Dialect) {}

  p(value: unknown): string {
    this.values.push(value);
    return this.dialect === 'postgres' ? `$${this.values.length}` : '?';
  }

  list(values: readonly unknown[]): string {
    return values.map((v) => this.p(v)).join(', ');
  }
}

/** BIGINT and COUNT values arrive as strings from pg and mysql2. */
export function num(v: unknown): number {
  return Number(v);
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

export function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}
