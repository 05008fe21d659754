/**
 * The JourneyStore port's contract (src/journey/JourneyStore.ts), run unchanged on every database the TypeORM
 * adapter supports (and on TypeORM 0.3 + sqlite3): append as given, read back per message in write order, the
 * resend links, search by message id / correlation id / business key, texts cut to their columns (NUL kept
 * readable), batches larger than one statement, and the retention purge. Ground truth: SQL counts.
 */
import { randomUUID } from 'node:crypto';
import { type JourneyEvent, type JourneyStore, TypeOrmJourneyStore, TypeOrmTransactionManager, migrate } from '../../src/internal';
import { sqlDialectFor } from '../../src/sql/SqlDialect';
import { type TestDatabase, createTestDatabase, dbLanes } from '../support/databases';

describe.each(dbLanes())('JourneyStore contract on $name', ({ kind }) => {
  let db: TestDatabase;
  let store: JourneyStore;
  let tag: string;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    await migrate(db.dataSource);
    const tm = new TypeOrmTransactionManager(db.dataSource);
    store = new TypeOrmJourneyStore(tm, sqlDialectFor(tm.dialect));
  });
  afterAll(async () => db?.dispose());
  beforeEach(() => {
    tag = randomUUID().slice(0, 8);
  });

  const count = async (where: string, params: unknown[]): Promise<number> => {
    const sql = kind === 'postgres' ? where.replace(/\?/g, (() => { let n = 0; return () => `$${++n}`; })()) : where;
    const rows: { n: number | string }[] = await db.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_journey WHERE ${sql}`, params);
    return Number(rows[0].n);
  };

  it('stores events as given and reads one message’s back in write order', async () => {
    const id = `m-${tag}`;
    const events: JourneyEvent[] = [
      { messageId: id, step: 'stored', at: 1000, source: 'host-1', durationMs: 12, outcome: 'tmm_outbox', detail: 'order.placed in transaction tx1', correlationId: `c-${tag}`, businessKey: `k-${tag}` },
      { messageId: id, step: 'published', at: 1010, source: 'host-1', attempt: 1, detail: 'confirmed' },
      { messageId: `other-${tag}`, step: 'published', at: 1011, source: 'host-2', attempt: 1 },
      { messageId: id, step: 'delivered', at: 1005, source: 'Orders.onPlaced@host-1', attempt: 1, outcome: 'consumed', durationMs: 3 },
    ];
    await store.append(events);
    const got = await store.events([id]);
    expect(got.map((e) => [e.step, e.at, e.source, e.attempt, e.outcome, e.durationMs])).toEqual([
      ['stored', 1000, 'host-1', null, 'tmm_outbox', 12],
      ['published', 1010, 'host-1', 1, null, null],
      ['delivered', 1005, 'Orders.onPlaced@host-1', 1, 'consumed', 3],
    ]);
    expect(got[0]).toMatchObject({ detail: 'order.placed in transaction tx1', correlationId: `c-${tag}`, businessKey: `k-${tag}`, linkedId: null });
    expect(got[0].id).toBeLessThan(got[1].id);
    expect(await count('message_id = ?', [id])).toBe(3);
  });

  it('finds messages by message id, correlation id and business key, and the copies a resend links', async () => {
    const [a, b, copy] = [`a-${tag}`, `b-${tag}`, `copy-${tag}`];
    await store.append([
      { messageId: a, step: 'stored', at: 2000, source: 'p', durationMs: 5, correlationId: `conv-${tag}`, businessKey: `order-${tag}` },
      { messageId: b, step: 'received', at: 2100, source: 'c@p', correlationId: `conv-${tag}` },
      { messageId: a, step: 'resent', at: 2200, source: 'admin:ops', linkedId: copy },
      { messageId: copy, step: 'stored', at: 2201, source: 'admin:ops', linkedId: a },
    ]);
    const byConversation = await store.search({ correlationId: `conv-${tag}` }, 10);
    expect(byConversation.map((h) => h.messageId)).toEqual([b, a]); // the newest match first
    expect(byConversation[1]).toMatchObject({ firstStep: 'sent', firstAt: 1995, lastAt: 2200, correlationId: `conv-${tag}`, businessKey: `order-${tag}` });
    expect((await store.search({ businessKey: `order-${tag}` }, 10)).map((h) => h.messageId)).toEqual([a]);
    expect((await store.search({ messageId: b }, 10))[0]).toMatchObject({ messageId: b, firstStep: 'received', steps: 1 });
    expect(await store.search({ businessKey: `nothing-${tag}` }, 10)).toEqual([]);
    expect(await store.linked([a])).toEqual([copy]);
    expect(await store.linked([b])).toEqual([]);
  });

  it('cuts texts to their columns and keeps a NUL readable', async () => {
    const id = `long-${tag}`;
    await store.append([{ messageId: id, step: 'delivered', at: 1, source: 's'.repeat(400), detail: `x\u0000y${'d'.repeat(2000)}` }]);
    const [e] = await store.events([id]);
    expect(e.source).toHaveLength(255);
    expect(e.detail).toHaveLength(1000);
    expect(e.detail!.startsWith('x\\0y')).toBe(true);
  });

  it('appends a batch larger than one statement, all of it', async () => {
    const id = `batch-${tag}`;
    await store.append(Array.from({ length: 5200 }, (_, i) => ({ messageId: id, step: 'published' as const, at: 10_000 + i, source: 'relay', attempt: 1 })));
    expect(await count('message_id = ?', [id])).toBe(5200);
  });

  it('purges events older than the cut-off, and only those', async () => {
    const [old, recent] = [`old-${tag}`, `recent-${tag}`];
    const now = Date.now();
    await store.append([
      { messageId: old, step: 'stored', at: now - 10 * 86_400_000, source: 'p' },
      { messageId: recent, step: 'stored', at: now - 60_000, source: 'p' },
    ]);
    expect(await store.purge(now - 7 * 86_400_000)).toBeGreaterThanOrEqual(1);
    expect(await count('message_id = ?', [old])).toBe(0);
    expect(await count('message_id = ?', [recent])).toBe(1);
  });
});
