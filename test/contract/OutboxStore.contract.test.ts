import { uuidv7 } from 'uuidv7';
import { MIGRATIONS, OutboxMessage, TypeOrmOutboxStore, TypeOrmTransactionManager, migrate } from 'tmm';
import { TestDatabase, createTestDatabase, dbLanes } from '../support/databases';

const message = (over: Partial<OutboxMessage> = {}): OutboxMessage => ({
  id: uuidv7(),
  topic: 'order.paid',
  exchange: 'tmm.events',
  routingKey: 'order.paid',
  payload: JSON.stringify({ orderId: 'o-1', note: 'ünïcødé ✓' }),
  headers: { 'tmm-contract-version': 1, flag: true, none: null },
  availableAt: Date.now(),
  orderingKey: null,
  createdAt: Date.now(),
  ...over,
});

describe.each(dbLanes())('OutboxStore contract on $name', ({ kind }) => {
  let db: TestDatabase;
  let tm: TypeOrmTransactionManager;
  let store: TypeOrmOutboxStore;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    tm = new TypeOrmTransactionManager(db.dataSource);
    store = new TypeOrmOutboxStore(tm);
  });
  afterAll(async () => db?.dispose());

  describe('migration', () => {
    it('creates the tables on first run and is a no-op afterwards', async () => {
      const first = await migrate(db.dataSource);
      expect(first.applied).toEqual(MIGRATIONS.map((m) => ({ component: m.component, version: m.version })));
      const second = await migrate(db.dataSource);
      expect(second.applied).toEqual([]);
      await Promise.all([migrate(db.dataSource), migrate(db.dataSource)]);
    });

    it('creates the indexes the relay queries need', async () => {
      const indexes: string[] =
        kind === 'sqlite'
          ? (await db.dataSource.query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tmm_outbox'`)).map((r: { name: string }) => r.name)
          : kind === 'postgres'
            ? (await db.dataSource.query(`SELECT indexname AS name FROM pg_indexes WHERE tablename = 'tmm_outbox' AND schemaname = current_schema()`)).map((r: { name: string }) => r.name)
            : (await db.dataSource.query(`SHOW INDEX FROM tmm_outbox`)).map((r: { Key_name: string }) => r.Key_name);
      expect(indexes).toEqual(expect.arrayContaining(['tmm_outbox_due', 'tmm_outbox_ordering']));
    });
  });

  describe('rows', () => {
    beforeEach(async () => {
      await db.dataSource.query('DELETE FROM tmm_outbox');
    });

    it('append writes rows in the caller’s transaction: committed rows are readable, rolled-back ones are gone', async () => {
      const kept = message();
      const dropped = message();
      await tm.run(async () => store.append(tm.manager, [kept], { owner: 'me', until: Date.now() + 10_000 }));
      await tm.run(async () => {
        await store.append(tm.manager, [dropped]);
        throw new Error('rollback');
      }).catch(() => undefined);
      expect(await store.get(dropped.id)).toBeUndefined();
      const row = await store.get(kept.id);
      expect(row).toMatchObject({
        id: kept.id,
        topic: 'order.paid',
        payload: kept.payload,
        headers: kept.headers,
        status: 'PENDING',
        attempts: 0,
        leaseOwner: 'me',
        availableAt: kept.availableAt,
        createdAt: kept.createdAt,
      });
      expect(row!.leaseUntil).toBeGreaterThan(Date.now());
    });

    it('append stores more rows than one INSERT chunk', async () => {
      const many = Array.from({ length: 1203 }, () => message());
      await tm.run(() => store.append(tm.manager, many));
      expect((await store.countByStatus()).PENDING).toBe(1203);
    });

    it('markDelivered marks the owner’s and unleased rows, never a row another process leases', async () => {
      const mine = message();
      const free = message();
      const theirs = message();
      await tm.run(async () => {
        await store.append(tm.manager, [mine], { owner: 'me', until: Date.now() + 60_000 });
        await store.append(tm.manager, [free]);
        await store.append(tm.manager, [theirs], { owner: 'other', until: Date.now() + 60_000 });
      });
      expect(await store.markDelivered([mine.id, free.id, theirs.id], 'me')).toBe(2);
      expect((await store.get(mine.id))!.status).toBe('DELIVERED');
      expect((await store.get(free.id))!.deliveredAt).toEqual(expect.any(Number));
      expect((await store.get(theirs.id))!.status).toBe('PENDING');
      // An expired lease no longer protects the row.
      expect(await store.markDelivered([theirs.id], 'me', { now: Date.now() + 120_000 })).toBe(1);
      // Marking twice changes nothing.
      expect(await store.markDelivered([mine.id], 'me')).toBe(0);
    });

    it('markDelivered with deleteRows removes the rows', async () => {
      const m = message();
      await tm.run(() => store.append(tm.manager, [m], { owner: 'me', until: Date.now() + 60_000 }));
      expect(await store.markDelivered([m.id], 'me', { deleteRows: true })).toBe(1);
      expect(await store.get(m.id)).toBeUndefined();
    });

    it('recordFailure counts the attempt, keeps the error, releases the lease and reschedules, or makes the row DEAD', async () => {
      const m = message();
      await tm.run(() => store.append(tm.manager, [m], { owner: 'me', until: Date.now() + 60_000 }));
      expect(await store.recordFailure(m.id, 'other', { error: 'nope', retryAt: 1, dead: false })).toBe(false);
      const retryAt = Date.now() + 5000;
      expect(await store.recordFailure(m.id, 'me', { error: 'TMM_PUBLISH_UNROUTABLE: no queue', retryAt, dead: false })).toBe(true);
      expect(await store.get(m.id)).toMatchObject({ status: 'PENDING', attempts: 1, availableAt: retryAt, leaseOwner: null, lastError: 'TMM_PUBLISH_UNROUTABLE: no queue' });
      expect(await store.recordFailure(m.id, 'me', { error: 'x'.repeat(5000), retryAt, dead: true })).toBe(true);
      const dead = await store.get(m.id);
      expect(dead).toMatchObject({ status: 'DEAD', attempts: 2 });
      expect(dead!.lastError!.length).toBe(2000);
      expect(await store.countByStatus()).toMatchObject({ DEAD: 1, PENDING: 0 });
    });
  });
});
