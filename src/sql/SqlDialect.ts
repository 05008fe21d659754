import type { Dialect } from '../transaction/dialect';

export type DialectName = Dialect;

/**
 * What differs between the SQL databases tmm writes to, as one value handed to every TypeORM adapter
 * (outbox, inbox, dead letters, audit, relay lock) instead of each adapter asking the transaction manager
 * which database it is and spelling the difference itself.
 *
 * Contract: every member is a pure function of the dialect (no I/O, no state); `placeholder(n)` is
 * 1-based and positional dialects ignore `n` (so text order must be parameter order: use `params()`).
 */
export interface SqlDialect {
  readonly name: DialectName;
  /** The n-th bind parameter: `$n` on PostgreSQL, `?` elsewhere. */
  placeholder(n: number): string;
  /** A collector that writes placeholders left to right and keeps the values in the same order. */
  params(): SqlParameters;
  /**
   * `column` is one of `values`: one array parameter on PostgreSQL (`= ANY($n::type[])`, a constant
   * statement text), an IN list elsewhere.
   */
  inList(column: string, values: readonly unknown[], q: SqlParameters, pgArrayType?: 'uuid' | 'text'): string;
  /** `INSERT … (cols) VALUES tuples` that skips rows whose `conflictColumns` already exist. */
  insertIgnore(table: string, columns: readonly string[], tuples: string, conflictColumns: readonly string[]): string;
  /** Suffix of a SELECT that locks its rows and skips rows others hold ('' on SQLite: one writer). */
  readonly skipLocked: string;
  /** Suffix of a SELECT that locks its rows ('' on SQLite). */
  readonly forUpdate: string;
  /** DELETE of at most `limit` rows of `table` matching `where` (whose key is `key`). */
  limitedDelete(table: string, key: string, where: string, limit: number): string;
  /** Column types tmm's DDL uses. */
  readonly types: Readonly<{ json: string; epochMs: string; text: string; bytes: string }>;
}

/** Collects bind parameters while a statement is written left to right. */
export class SqlParameters {
  readonly values: unknown[] = [];
  constructor(private readonly dialect: SqlDialect) {}

  /** The placeholder for `value`, remembered in order. */
  p(value: unknown): string {
    this.values.push(value);
    return this.dialect.placeholder(this.values.length);
  }

  list(values: readonly unknown[]): string {
    return values.map((v) => this.p(v)).join(', ');
  }
}

function make(name: DialectName): SqlDialect {
  const pg = name === 'postgres';
  const dialect: SqlDialect = {
    name,
    placeholder: pg ? (n) => `$${n}` : () => '?',
    params: () => new SqlParameters(dialect),
    inList: (column, values, q, pgArrayType = 'uuid') => (pg ? `${column} = ANY(${q.p(values)}::${pgArrayType}[])` : `${column} IN (${q.list(values)})`),
    insertIgnore: (table, columns, tuples, conflict) =>
      name === 'mysql'
        ? `INSERT IGNORE INTO ${table} (${columns.join(', ')}) VALUES ${tuples}`
        : `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples} ON CONFLICT (${conflict.join(', ')}) DO NOTHING`,
    skipLocked: name === 'sqlite' ? '' : ' FOR UPDATE SKIP LOCKED',
    forUpdate: name === 'sqlite' ? '' : ' FOR UPDATE',
    limitedDelete: (table, key, where, limit) =>
      name === 'mysql'
        ? `DELETE FROM ${table} WHERE ${where} LIMIT ${limit}`
        : pg
          ? `DELETE FROM ${table} WHERE ${key} = ANY(ARRAY(SELECT ${key} FROM ${table} WHERE ${where} LIMIT ${limit}))`
          : `DELETE FROM ${table} WHERE ${key} IN (SELECT ${key} FROM ${table} WHERE ${where} LIMIT ${limit})`,
    types:
      name === 'postgres'
        ? { json: 'TEXT', epochMs: 'BIGINT', text: 'TEXT', bytes: 'BYTEA' }
        : name === 'mysql'
          ? { json: 'LONGTEXT', epochMs: 'BIGINT', text: 'TEXT', bytes: 'LONGBLOB' }
          : { json: 'TEXT', epochMs: 'INTEGER', text: 'TEXT', bytes: 'BLOB' },
  };
  return Object.freeze(dialect);
}

const DIALECTS: Record<DialectName, SqlDialect> = { sqlite: make('sqlite'), postgres: make('postgres'), mysql: make('mysql') };

/** The (shared, frozen) SqlDialect of a dialect name. */
export function sqlDialectFor(name: DialectName): SqlDialect {
  return DIALECTS[name];
}
