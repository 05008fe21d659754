import { createHash } from 'node:crypto';
import { QueryFailedError, QueryRunner } from 'typeorm';
import type { PendingWrite } from '../../transaction/CommitPipeline';
import { PreparedWriter } from './PreparedWriter';

type QueryCallback = (err: Error | null) => void;

/** pg's `Query` (the `Client.Query` static): built from a text and values, then handed to `client.query()` as is. */
type PgQueryClass = new (text: string, values: unknown[], callback: QueryCallback) => { name?: string };

/** What tmm uses of a `pg` client: the query-config form, which accepts a statement name, or a prebuilt `Query`. */
interface PgClient {
  query(config: { name?: string; text: string; values: unknown[] } | { name?: string }, callback?: QueryCallback): Promise<unknown> | undefined;
  constructor: { Query?: unknown };
  connection: { parsedStatements: Record<string, string | undefined>; stream?: { cork?: () => void; uncork?: () => void } };
  readyForQuery?: boolean;
  pipeline?: boolean;
}

export function isPgClient(conn: unknown): conn is PgClient {
  const c = conn as { query?: unknown; connection?: { parsedStatements?: unknown } } | null;
  // A node-postgres Client (pool client) keeps its parsed named statements on its connection.
  return !!c && typeof c.query === 'function' && typeof c.connection?.parsedStatements === 'object';
}

/** An error PostgreSQL itself sent (pg's DatabaseError: a severity and a SQLSTATE code). */
function fromServer(e: unknown): boolean {
  const d = e as { severity?: unknown; code?: unknown } | null;
  return !!d && typeof d.severity === 'string' && typeof d.code === 'string';
}

/**
 * Submits a (named) statement on a pg client, `callback` called once with its outcome. pg copies a query-config
 * object through `Object.getOwnPropertyDescriptors` before use, ~1.3 µs per query here against ~0.07 µs for a
 * `Query` built from a text (bench/README.md, seventh round); so the statement is built as a `Query` from its
 * text and values and given its name, and the config form is used only for a client without `Client.Query`.
 */
function submit(conn: PgClient, name: string | undefined, text: string, values: unknown[], callback: QueryCallback): void {
  const Query = conn.constructor.Query;
  if (typeof Query !== 'function') {
    conn.query({ name, text, values }, callback);
    return;
  }
  const q = new (Query as PgQueryClass)(text, values, callback);
  if (name !== undefined) q.name = name;
  conn.query(q);
}

/** One INSERT sent on a pg client without waiting (ADR 0078); settled by pg's callback. */
class PgPendingWrite implements PendingWrite {
  sent = false;
  settled = false;
  error: unknown = undefined;
  serverRefused = false;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] | undefined;

  constructor(
    private readonly queryRunner: QueryRunner,
    private readonly sql: string,
    private readonly params: unknown[],
  ) {}

  readonly settle = (err: Error | null): void => {
    if (this.settled) return; // pg calls back again on the ReadyForQuery after a client-side bind error
    this.settled = true;
    if (err) {
      this.serverRefused = fromServer(err);
      this.queryRunner.connection.logger.logQueryError(err, this.sql, this.params, this.queryRunner);
      this.error = new QueryFailedError(this.sql, this.params, err);
    }
    const waiters = this.waiters;
    this.waiters = undefined;
    if (waiters) for (const w of waiters) this.error === undefined ? w.resolve() : w.reject(this.error);
  };

  wait(): Promise<void> {
    if (this.settled) return this.error === undefined ? Promise.resolve() : Promise.reject(this.error);
    return new Promise((resolve, reject) => (this.waiters ??= []).push({ resolve, reject }));
  }
}

/**
 * `pg` (node-postgres): a named statement per text, so each pooled connection parses and plans the INSERT
 * once and then only binds and executes it (pg keeps the names it parsed per connection). With
 * `prepare: false` the statement goes unnamed (parsed by the server this once), still bypassing TypeORM.
 * `send()` puts the INSERT on the wire without waiting, for a COMMIT pipelined behind it (ADR 0078).
 */
export class PgPreparedWriter implements PreparedWriter {
  readonly name = 'pg';
  private readonly names = new Map<string, string>();

  constructor(private readonly fallback: PreparedWriter) {}

  private nameOf(sql: string, prepare: boolean): string | undefined {
    let name = prepare ? this.names.get(sql) : undefined;
    if (prepare && name === undefined) {
      // Named by content: two texts never share a name, whoever else prepares statements on the connection.
      name = `tmm_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
      this.names.set(sql, name);
    }
    return name;
  }

  async run(queryRunner: QueryRunner, sql: string, params: unknown[], prepare = true): Promise<void> {
    const conn: unknown = await queryRunner.connect();
    if (!isPgClient(conn)) return this.fallback.run(queryRunner, sql, params, prepare);
    const name = this.nameOf(sql, prepare);
    queryRunner.connection.logger.logQuery(sql, params, queryRunner);
    try {
      await new Promise<void>((resolve, reject) => submit(conn, name, sql, params, (err) => (err ? reject(err) : resolve())));
    } catch (e) {
      queryRunner.connection.logger.logQueryError(e as Error, sql, params, queryRunner);
      throw new QueryFailedError(sql, params, e as Error);
    }
  }

  /**
   * Sends the statement now on the runner's connected pg client and returns without waiting, or undefined
   * when it cannot say the statement goes on the wire at once (no pg client yet, a query still in flight on
   * it, a statement name already taken by another text): the caller then uses `run()`.
   */
  send(queryRunner: QueryRunner, sql: string, params: unknown[], prepare = true): PendingWrite | undefined {
    const conn: unknown = (queryRunner as unknown as { databaseConnection?: unknown }).databaseConnection;
    if (!isPgClient(conn)) return undefined;
    // Idle (or in pg's pipeline mode): pg submits the query within query(), ahead of anything sent later.
    if (conn.pipeline !== true && conn.readyForQuery !== true) return undefined;
    const name = this.nameOf(sql, prepare);
    if (name !== undefined) {
      const parsed = conn.connection.parsedStatements[name];
      if (parsed !== undefined && parsed !== sql) return undefined;
    }
    queryRunner.connection.logger.logQuery(sql, params, queryRunner);
    const w = new PgPendingWrite(queryRunner, sql, params);
    // Held in the socket's buffer until the promise jobs now under way have run — the manager's commit among
    // them, whose COMMIT pg then writes behind it — so both leave in one write (one system call, one wake-up
    // of the server). A tick runs only once the microtask queue is empty, so whatever waits, it flushes then.
    const stream = conn.connection.stream;
    if (stream && typeof stream.cork === 'function' && typeof stream.uncork === 'function') {
      stream.cork();
      process.nextTick(() => stream.uncork!());
    }
    submit(conn, name, sql, params, w.settle);
    // A value pg cannot bind fails within query(), before anything is executed.
    w.sent = !w.settled;
    return w;
  }
}
