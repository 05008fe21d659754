/**
 * The InboxStore port's contract (src/consumer/InboxStore.ts), run unchanged on every database the
 * TypeORM adapter supports. The claim is what makes an idempotent consumer's effect happen once, so the
 * cases here are the races and rollbacks around it.
 */
import { randomUUID } from 'node:crypto';
import { IllegalTransactionStateError, type InboxStore, TypeOrmInboxStore, TypeOrmTransactionManager, migrate } from '../../src/internal';
import { sqlDialectFor } from '../../src/sql/SqlDialect';
import { type TestDatabase, createTestDatabase, dbLanes } from '../support/databases';
import { LedgerEntry } from '../support/entities';

describe.each(dbLanes())('InboxStore contract on $name', ({ kind }) => {
  let db: TestDatabase;
  let tm: TypeOrmTransactionManager;
  let inbox: InboxStore;
  let consumer: string;

  beforeAll(async () => {
    db = await createTestDatabase(kind, [LedgerEntry]);
    await migrate(db.dataSource);
    tm = new TypeOrmTransactionManager(db.dataSource);
    inbox = new TypeOrmInboxStore(tm, sqlDialectFor(tm.dialect));
  });
  afterAll(async () => db?.dispose());
  beforeEach(() => {
    consumer = `queue-${randomUUID().slice(0, 8)}`;
  });

  const claim = (id: string) => tm.run(() => inbox.claim(tm.manager, consumer, id));

  it('the migration creates tmm_inbox with the index the purge uses', async () => {
    const indexes: string[] =
      kind === 'sqlite'
        ? (await db.dataSource.query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tmm_inbox'`)).map((r: { name: string }) => r.name)
        : kind === 'postgres'
          ? (await db.dataSource.query(`SELECT indexname AS name FROM pg_indexes WHERE tablename = 'tmm_inbox' AND schemaname = current_schema()`)).map((r: { name: string }) => r.name)
          : (await db.dataSource.query(`SHOW INDEX FROM tmm_inbox`)).map((r: { Key_name: string }) => r.Key_name);
    expect(indexes).toEqual(expect.arrayContaining(['tmm_inbox_processed']));
  });

  it('a committed claim makes every later claim of the same key a duplicate; other keys are independent', async () => {
    expect(await claim('m-1')).toBe(true);
    expect(await claim('m-1')).toBe(false);
    expect(await claim('m-2')).toBe(true);
    expect(await tm.run(() => inbox.claim(tm.manager, `${consumer}-other`, 'm-1'))).toBe(true);
    expect(await inbox.has(consumer, 'm-1')).toBe(true);
  });

  it('a claim rolls back with its transaction, so the message can be claimed again', async () => {
    await expect(
      tm.run(async () => {
        expect(await inbox.claim(tm.manager, consumer, 'm-rb')).toBe(true);
        throw new Error('handler failed');
      }),
    ).rejects.toThrow('handler failed');
    expect(await inbox.has(consumer, 'm-rb')).toBe(false);
    expect(await claim('m-rb')).toBe(true);
  });

  it('a duplicate leaves the transaction usable: writes after it still commit', async () => {
    await claim('m-dup');
    await tm.run(async () => {
      expect(await inbox.claim(tm.manager, consumer, 'm-dup')).toBe(false);
      // On PostgreSQL a failed INSERT would have aborted the transaction here.
      await tm.manager.insert(LedgerEntry, { id: `after-dup-${consumer}`, account: 'a', amount: 1 });
    });
    expect(await db.dataSource.getRepository(LedgerEntry).findOneBy({ id: `after-dup-${consumer}` })).not.toBeNull();
  });

  it('of two concurrent claims of one key, the second waits for the first: false after its commit, true after its rollback', async () => {
    for (const outcome of ['commit', 'rollback'] as const) {
      const id = `m-race-${outcome}`;
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let firstClaimed!: () => void;
      const claimedFirst = new Promise<void>((r) => (firstClaimed = r));
      const first = tm
        .run(async () => {
          expect(await inbox.claim(tm.manager, consumer, id)).toBe(true);
          firstClaimed();
          await held;
          if (outcome === 'rollback') throw new Error('first handler failed');
        })
        .catch(() => 'rolled back');
      await claimedFirst;
      const second = claim(id);
      // The second claim cannot finish while the first transaction is open.
      const early = await Promise.race([second.then(() => 'finished'), new Promise((r) => setTimeout(() => r('waiting'), 150))]);
      expect(early).toBe('waiting');
      release();
      await first;
      expect(await second).toBe(outcome === 'rollback');
    }
  });

  it('claimAll claims the new ids of a group in one go, once each, and skips those already claimed', async () => {
    await claim('g-old');
    const claimed = await tm.run(() => inbox.claimAll(tm.manager, consumer, ['g-1', 'g-old', 'g-2', 'g-1']));
    expect([...claimed].sort()).toEqual(['g-1', 'g-2']);
    expect(await claim('g-2')).toBe(false);
    const many = Array.from({ length: 1200 }, (_, i) => `bulk-${i}`);
    expect((await tm.run(() => inbox.claimAll(tm.manager, consumer, many))).size).toBe(1200);
  });

  it('refuses to claim outside a transaction, or with a key longer than 255 characters', async () => {
    await expect(inbox.claim(db.dataSource.manager, consumer, 'm-x')).rejects.toBeInstanceOf(IllegalTransactionStateError);
    await expect(claim('x'.repeat(256))).rejects.toThrow(/at most 255 characters/);
    expect(await claim('y'.repeat(255))).toBe(true);
  });

  it('purge deletes the claims processed before the cut-off and keeps the newer ones', async () => {
    const now = Date.now();
    await tm.run(async () => {
      await inbox.claim(tm.manager, consumer, 'old-1', now - 10_000);
      await inbox.claim(tm.manager, consumer, 'old-2', now - 5_000);
      await inbox.claim(tm.manager, consumer, 'new-1', now);
    });
    const purged = await inbox.purge(now - 1000);
    expect(purged).toBeGreaterThanOrEqual(2);
    expect(await inbox.has(consumer, 'old-1')).toBe(false);
    expect(await inbox.has(consumer, 'old-2')).toBe(false);
    expect(await inbox.has(consumer, 'new-1')).toBe(true);
  });
});
