import type { QueryRunner } from 'typeorm';
import { PgPreparedWriter } from '../../src/outbox/writers/PgPreparedWriter';
import type { PreparedWriter } from '../../src/outbox/writers/PreparedWriter';

/**
 * How PgPreparedWriter hands a statement to a pg client: as a `Query` built from the text (pg would copy a
 * config object through its property descriptors on every query), named; as a config object when the client's
 * class has no `Query`. The real client is exercised by the OutboxStore contract and commit-pipeline tests.
 */
const fallback: PreparedWriter = { name: 'fallback', run: async () => { throw new Error('fallback used'); } };
const logger = { logQuery: () => undefined, logQueryError: () => undefined };

class FakeQuery {
  name?: string;
  constructor(
    readonly text: string,
    readonly values: unknown[],
    readonly callback: (err: Error | null) => void,
  ) {}
}

function client(withQuery: boolean, answer: Error | null = null) {
  const seen: unknown[] = [];
  class Client {
    static Query = withQuery ? FakeQuery : undefined;
    readyForQuery = true;
    connection = { parsedStatements: {} as Record<string, string> };
    query(config: unknown, cb?: (err: Error | null) => void): Promise<void> | undefined {
      seen.push(config);
      const callback = cb ?? (config as Partial<FakeQuery>).callback;
      // As pg: a callback (given, or on a Query) is called; without one, query() returns a promise.
      if (callback) return void setImmediate(() => callback(answer));
      return new Promise((resolve, reject) => setImmediate(() => (answer ? reject(answer) : resolve())));
    }
  }
  const conn = new Client();
  const qr = { connect: async () => conn, connection: { logger }, databaseConnection: conn } as unknown as QueryRunner;
  return { qr, seen };
}

describe('PgPreparedWriter: the statement handed to pg', () => {
  const sql = 'INSERT INTO t (a) VALUES ($1)';

  it('builds a pg Query from the text and values, with the statement name set', async () => {
    const { qr, seen } = client(true);
    await new PgPreparedWriter(fallback).run(qr, sql, [1]);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeInstanceOf(FakeQuery);
    expect(seen[0]).toMatchObject({ text: sql, values: [1], name: expect.stringMatching(/^tmm_[0-9a-f]{24}$/) });
  });

  it('leaves the statement unnamed with prepare: false', async () => {
    const { qr, seen } = client(true);
    await new PgPreparedWriter(fallback).run(qr, sql, [1], false);
    expect((seen[0] as FakeQuery).name).toBeUndefined();
  });

  it('uses the config form on a client class without Query', async () => {
    const { qr, seen } = client(false);
    await new PgPreparedWriter(fallback).run(qr, sql, [2]);
    expect(seen[0]).not.toBeInstanceOf(FakeQuery);
    expect(seen[0]).toEqual({ name: expect.stringMatching(/^tmm_/), text: sql, values: [2] });
  });

  it('rejects with a QueryFailedError naming the statement when pg answers with an error', async () => {
    const { qr } = client(true, new Error('duplicate key value'));
    await expect(new PgPreparedWriter(fallback).run(qr, sql, [3])).rejects.toMatchObject({ name: 'QueryFailedError', query: sql, message: 'duplicate key value' });
  });

  it('send() settles its pending write from the Query callback', async () => {
    const { qr, seen } = client(true);
    const w = new PgPreparedWriter(fallback).send(qr, sql, [4])!;
    expect(w.sent).toBe(true);
    expect(seen[0]).toBeInstanceOf(FakeQuery);
    await w.wait();
    expect(w.settled).toBe(true);
  });
});
