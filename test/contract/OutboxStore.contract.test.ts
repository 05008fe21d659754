import { uuidv7 } from 'uuidv7';
import { MIGRATIONS, OutboxMessage, TypeOrmOutboxStore, TypeOrmTransactionManager, migrate } from '../../src/internal';
import { sqlDialectFor } from '../../src/sql/SqlDialect';
import { QueryFailedError } from 'typeorm';
import { BetterSqlite3PreparedWriter, PgPreparedWriter, TypeOrmQueryWriter, preparedWriterFor } from '../../src/outbox/writers';
import { TestDatabase, createTestDatabase, dbLanes, typeormLane } from '../support/databases';

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
    store = new TypeOrmOutboxStore(tm, sqlDialectFor(tm.dialect));
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
      if (store.backlogStats) expect(await store.backlogStats()).toMatchObject({ oldestDueAt: retryAt, oldestFailingCreatedAt: m.createdAt });
      expect(await store.recordFailure(m.id, 'me', { error: 'x'.repeat(5000), retryAt, dead: true })).toBe(true);
      const dead = await store.get(m.id);
      expect(dead).toMatchObject({ status: 'DEAD', attempts: 2 });
      expect(dead!.lastError!.length).toBe(2000);
      expect(await store.countByStatus()).toMatchObject({ DEAD: 1, PENDING: 0 });
      expect(await store.countDead()).toBe(1);
    });

    it('recordFailure with countAttempt false (a transient failure) keeps the attempts, stores the error and reschedules', async () => {
      const m = message();
      await tm.run(() => store.append(tm.manager, [m], { owner: 'me', until: Date.now() + 60_000 }));
      const retryAt = Date.now() + 5000;
      expect(await store.recordFailure(m.id, 'me', { error: 'TMM_PUBLISH_CONNECTION_LOST: down', retryAt, dead: false, countAttempt: false })).toBe(true);
      expect(await store.get(m.id)).toMatchObject({ status: 'PENDING', attempts: 0, availableAt: retryAt, leaseOwner: null, lastError: 'TMM_PUBLISH_CONNECTION_LOST: down' });
      expect(await store.recordFailure(m.id, 'me', { error: 'TMM_PUBLISH_UNROUTABLE: no queue', retryAt, dead: false })).toBe(true);
      expect(await store.get(m.id)).toMatchObject({ attempts: 1 });
    });

    it('claimDue leases due, unleased rows oldest first and skips future and live-leased ones', async () => {
      const now = Date.now();
      const due = [message({ availableAt: now - 2000 }), message({ availableAt: now - 1000 })];
      const future = message({ availableAt: now + 60_000 });
      const leased = message({ availableAt: now - 3000 });
      const expired = message({ availableAt: now - 500 });
      await tm.run(async () => {
        await store.append(tm.manager, [...due, future]);
        await store.append(tm.manager, [leased], { owner: 'other', until: now + 60_000 });
        await store.append(tm.manager, [expired], { owner: 'crashed', until: now - 1 });
      });
      const claimed = await store.claimDue('me', { leaseMs: 30_000, limit: 10, now });
      expect(claimed.map((r) => r.id)).toEqual([due[0].id, due[1].id, expired.id]);
      expect(claimed.every((r) => r.leaseOwner === 'me' && r.leaseUntil === now + 30_000)).toBe(true);
      expect(await store.claimDue('me2', { leaseMs: 30_000, limit: 10, now })).toEqual([]);
      expect((await store.claimDue('me2', { leaseMs: 30_000, limit: 10, now: now + 61_000 })).map((r) => r.id).sort()).toEqual(
        [leased.id, future.id, ...claimed.map((r) => r.id)].sort(),
      );
    });

    it('claimDue gives only the oldest pending row of each ordering key', async () => {
      const now = Date.now();
      const k = Array.from({ length: 3 }, () => message({ orderingKey: 'acct-1', availableAt: now - 10 }));
      const other = message({ orderingKey: 'acct-2', availableAt: now - 10 });
      await tm.run(() => store.append(tm.manager, [...k, other]));
      const first = await store.claimDue('me', { leaseMs: 30_000, limit: 10, now });
      expect(first.map((r) => r.id).sort()).toEqual([k[0].id, other.id].sort());
      // While the head is pending (even leased), nothing behind it is claimable.
      expect(await store.claimDue('me', { leaseMs: 30_000, limit: 10, now })).toEqual([]);
      expect(await store.isHeadOfKey(k[1].id, 'acct-1')).toBe(false);
      await store.markDelivered([k[0].id], 'me');
      expect(await store.isHeadOfKey(k[1].id, 'acct-1')).toBe(true);
      expect((await store.claimDue('me', { leaseMs: 30_000, limit: 10, now })).map((r) => r.id)).toEqual([k[1].id]);
    });

    it('concurrent claimers never get the same row', async () => {
      const rows = Array.from({ length: 300 }, () => message({ availableAt: Date.now() - 1000 }));
      await tm.run(() => store.append(tm.manager, rows));
      const ids: string[] = [];
      for (let round = 0; round < 20; round++) {
        const claims = await Promise.all(Array.from({ length: 6 }, (_v, i) => store.claimDue(`relay-${i}`, { leaseMs: 30_000, limit: 40 })));
        const got = claims.flat().map((r) => r.id);
        if (got.length === 0) break;
        ids.push(...got);
      }
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(300);
    });

    it('releaseLeases frees only the owner’s rows; purgeDelivered deletes only old DELIVERED rows', async () => {
      const now = Date.now();
      const [a, b, c] = [message(), message(), message()];
      await tm.run(async () => {
        await store.append(tm.manager, [a, b], { owner: 'me', until: now + 60_000 });
        await store.append(tm.manager, [c], { owner: 'other', until: now + 60_000 });
      });
      expect(await store.releaseLeases([a.id, c.id], 'me')).toBe(1);
      expect((await store.get(a.id))!.leaseOwner).toBeNull();
      expect((await store.get(c.id))!.leaseOwner).toBe('other');
      await store.markDelivered([b.id], 'me', { now: now - 10_000 });
      await store.markDelivered([a.id], 'me', { now });
      expect(await store.purgeDelivered(now - 5000, 100)).toBe(1);
      expect(await store.get(b.id)).toBeUndefined();
      expect((await store.get(a.id))!.status).toBe('DELIVERED');
    });
  });
  // The PreparedWriter port (src/outbox/writers), on the adapter this lane's driver gets.
  describe('driver writer', () => {
    const expected = kind === 'postgres' ? 'pg' : kind === 'mariadb' ? 'mysql2' : typeormLane === 'typeorm03' ? 'sqlite3' : 'better-sqlite3';

    beforeEach(async () => {
      await db.dataSource.query('DELETE FROM tmm_outbox');
    });

    it(`append writes through the ${expected} adapter on the transaction's connection, not TypeORM's query path`, async () => {
      expect(preparedWriterFor(db.dataSource).name).toBe(expected);
      const rows = [message(), message()];
      let typeormQueries = 0;
      await tm.run(async () => {
        const qr = tm.current()!.queryRunner;
        const query = qr.query.bind(qr);
        qr.query = ((...args: Parameters<typeof qr.query>) => (String(args[0]).includes('tmm_outbox') && typeormQueries++, query(...args))) as typeof qr.query;
        await store.append(tm.manager, rows, { owner: 'me', until: Date.now() + 10_000 });
        // Visible inside the transaction, on its own connection.
        const seen: unknown[] = await query(`SELECT id FROM tmm_outbox`);
        expect(seen).toHaveLength(2);
      });
      expect(typeormQueries).toBe(0);
      const stored = await store.get(rows[1].id);
      expect(stored).toMatchObject({ topic: 'order.paid', payload: rows[1].payload, headers: rows[1].headers, leaseOwner: 'me', status: 'PENDING' });
    });

    it('the writer option replaces the adapter (TypeOrmQueryWriter: every INSERT through TypeORM)', async () => {
      const viaTypeorm = new TypeOrmOutboxStore(tm, sqlDialectFor(tm.dialect), { writer: new TypeOrmQueryWriter() });
      const m = message();
      let typeormInserts = 0;
      await tm.run(async () => {
        const qr = tm.current()!.queryRunner;
        const query = qr.query.bind(qr);
        qr.query = ((...args: Parameters<typeof qr.query>) => (String(args[0]).startsWith('INSERT INTO tmm_outbox') && typeormInserts++, query(...args))) as typeof qr.query;
        await viaTypeorm.append(tm.manager, [m]);
      });
      expect(typeormInserts).toBe(1);
      expect((await store.get(m.id))?.id).toBe(m.id);
    });

    it('rows written through the adapter are rolled back with the transaction', async () => {
      const m = message();
      await expect(
        tm.run(async () => {
          await store.append(tm.manager, [m]);
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(await store.get(m.id)).toBeUndefined();
    });

    it('a refused statement rejects with QueryFailedError and nothing of the transaction is stored', async () => {
      const m = message();
      await tm.run(() => store.append(tm.manager, [m]));
      const other = message();
      const failed = await tm
        .run(async () => {
          await store.append(tm.manager, [other]);
          await store.append(tm.manager, [{ ...m }]); // duplicate primary key
        })
        .then(() => undefined, (e: unknown) => e);
      expect(failed).toBeInstanceOf(QueryFailedError);
      expect((failed as QueryFailedError).query).toContain('INSERT INTO tmm_outbox');
      expect(await store.get(other.id)).toBeUndefined();
      expect((await store.countByStatus()).PENDING).toBe(1);
    });

    it('the same statement runs again and again on one connection (prepared once where the driver allows)', async () => {
      await tm.run(async () => {
        for (let i = 0; i < 3; i++) await store.append(tm.manager, [message()]);
        const qr = tm.current()!.queryRunner;
        if (kind === 'postgres') {
          const prepared: { name: string }[] = await qr.query(`SELECT name FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO tmm_outbox %VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)'`);
          expect(prepared.map((p) => p.name)).toEqual([expect.stringMatching(/^tmm_[0-9a-f]{24}$/)]);
        }
        if (kind === 'mariadb') {
          const before = Number((await qr.query(`SHOW SESSION STATUS LIKE 'Com_stmt_prepare'`))[0].Value);
          await store.append(tm.manager, [message()]);
          await store.append(tm.manager, [message()]);
          const after = Number((await qr.query(`SHOW SESSION STATUS LIKE 'Com_stmt_prepare'`))[0].Value);
          expect(after - before).toBe(0);
        }
      });
      expect((await store.countByStatus()).PENDING).toBe(kind === 'mariadb' ? 5 : 3);
    });

    it('a rare batch size (17 rows) is written without keeping a prepared statement for it', async () => {
      const rows = Array.from({ length: 17 }, () => message());
      await tm.run(async () => {
        const qr = tm.current()!.queryRunner;
        const prepares = async () => (kind === 'mariadb' ? Number((await qr.query(`SHOW SESSION STATUS LIKE 'Com_stmt_prepare'`))[0].Value) : 0);
        const before = await prepares();
        await store.append(tm.manager, rows);
        expect(await prepares()).toBe(before);
        if (kind === 'postgres') {
          const named: unknown[] = await qr.query(`SELECT name FROM pg_prepared_statements WHERE statement LIKE '%$221)'`);
          expect(named).toEqual([]);
        }
      });
      expect((await store.countByStatus()).PENDING).toBe(17);
    });

    it('run() never throws: a refused statement is a rejection; on better-sqlite3 the row is written within the call', async () => {
      const writer = preparedWriterFor(db.dataSource);
      const m = message();
      const cols = 'id, topic, exchange, routing_key, payload, headers, status, attempts, available_at, created_at';
      const marks = kind === 'postgres' ? '$1, $2, $3, $4, $5, $6, $7, $8, $9, $10' : '?, ?, ?, ?, ?, ?, ?, ?, ?, ?';
      const params = [m.id, m.topic, m.exchange, m.routingKey, m.payload, '{}', 'PENDING', 0, m.availableAt, m.createdAt];
      await tm.run(async () => {
        const qr = tm.current()!.queryRunner;
        const written = writer.run(qr, `INSERT INTO tmm_outbox (${cols}) VALUES (${marks})`, params);
        if (expected === 'better-sqlite3') {
          // Before the promise is awaited: the statement already ran on the transaction's connection.
          const conn = (qr.connection.driver as unknown as { databaseConnection: { prepare(sql: string): { get(...p: unknown[]): unknown } } }).databaseConnection;
          expect(conn.prepare('SELECT id FROM tmm_outbox WHERE id = ?').get(m.id)).toEqual({ id: m.id });
        }
        await written;
      });
      expect((await store.get(m.id))?.id).toBe(m.id);
      const failure = await tm
        .run(async () => {
          let refused: Promise<void> | undefined;
          // A duplicate primary key.
          expect(() => (refused = writer.run(tm.current()!.queryRunner, `INSERT INTO tmm_outbox (${cols}) VALUES (${marks})`, params))).not.toThrow();
          await refused;
        })
        .then(() => undefined, (e: unknown) => e);
      expect(failure).toBeInstanceOf(QueryFailedError);
      expect((failure as QueryFailedError).query).toContain('INSERT INTO tmm_outbox');
    });

    it("an adapter given another driver's connection falls back to TypeORM's query path", async () => {
      let fallbackRuns = 0;
      const fallback = { name: 'counting', run: async (qr: { query: (s: string, p: unknown[]) => Promise<unknown> }, sql: string, params: unknown[]) => (fallbackRuns++, void (await qr.query(sql, params))) };
      const foreign = kind === 'postgres' ? new BetterSqlite3PreparedWriter(fallback) : new PgPreparedWriter(fallback);
      const m = message();
      const sql = `INSERT INTO tmm_outbox (id, topic, exchange, routing_key, payload, headers, status, attempts, available_at, created_at) VALUES (${kind === 'postgres' ? '$1, $2, $3, $4, $5, $6, $7, $8, $9, $10' : '?, ?, ?, ?, ?, ?, ?, ?, ?, ?'})`;
      await tm.run(() => foreign.run(tm.current()!.queryRunner, sql, [m.id, m.topic, m.exchange, m.routingKey, m.payload, '{}', 'PENDING', 0, m.availableAt, m.createdAt]));
      expect(fallbackRuns).toBe(1);
      expect((await store.get(m.id))?.id).toBe(m.id);
    });
  });
});
