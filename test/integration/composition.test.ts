import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as amqp from 'amqplib';
import { DataSource } from 'typeorm';
import { MessageContract } from 'tmm/decorators';
import { AmqpTransport } from 'tmm/amqp';
import { IsString } from 'class-validator';
import { MIGRATIONS, MemoryTransport, Tmm, TmmError, TmmSchemaMigration, migrationStatements, resolveTmmOptions, toLogger } from '../../src/internal';
import { TmmAdmin } from '../../src/admin';
import { AMQP_URL } from '../support/broker';
import { FixtureProcess, killFixtures } from '../support/fixtureProcess';
import { LedgerPosted } from '../support/contracts';

const sqliteFile = () => {
  const dir = mkdtempSync(join(tmpdir(), 'tmm-comp-'));
  return { file: join(dir, 'db.sqlite'), dispose: () => rmSync(dir, { recursive: true, force: true }) };
};

afterEach(() => killFixtures());

describe('resolved options', () => {
  const dataSource = new DataSource({ type: 'better-sqlite3', database: ':memory:' });

  it('fills every default in one place, and an explicit undefined never overrides one', () => {
    const o = resolveTmmOptions({ dataSource, dispatcher: { concurrency: undefined, maxAttempts: 3 }, relay: { batchSize: undefined }, producer: { leaseMs: undefined } });
    expect(o.dispatcher.concurrency).toBe(256);
    expect(o.dispatcher.maxAttempts).toBe(3);
    expect(o.relay.batchSize).toBe(500);
    expect(o.relay.maxPendingRows).toBe(1500);
    expect(o.producer.leaseMs).toBe(30_000);
    expect(o.consumers.retry.maxAttempts).toBe(5);
    expect(Object.isFrozen(o) && Object.isFrozen(o.dispatcher) && Object.isFrozen(o.dispatcher.backoff)).toBe(true);
    expect(() => ((o.dispatcher as { concurrency: number }).concurrency = 1)).toThrow(TypeError);
  });

  it('dispatcher.concurrency: undefined still publishes (regression: it used to stop the fast path)', async () => {
    const ds = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
    const transport = new MemoryTransport();
    const tmm = new Tmm({ dataSource: ds, logger: 'silent', dispatcher: { concurrency: undefined } }, { transport });
    await tmm.start();
    const got: string[] = [];
    await transport.subscribe({ queue: { name: 'q', bindings: [{ exchange: 'tmm.events', routingKey: '#' }] }, prefetch: 10 }, async (d) => {
      got.push(d.message.id);
      await d.ack();
    });
    try {
      await tmm.transactions.run(() => tmm.producer.send(LedgerPosted.of('e1', 5)));
      const until = Date.now() + 5000;
      while (got.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(got).toHaveLength(1);
    } finally {
      await tmm.stop();
      await ds.destroy();
    }
  });

  it('the admin uses the configured payload limit and producer lease, not the defaults (regression)', () => {
    const ds = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
    const tmm = new Tmm({ dataSource: ds, logger: 'silent', producer: { maxPayloadBytes: 1234, leaseMs: 45_000 } });
    const admin = new TmmAdmin(tmm, { auth: { tokens: { ops: 'a-long-enough-token-for-tests-0001' } } });
    const deps = (admin.service as unknown as { deps: { maxPayloadBytes: number; leaseMs: number } }).deps;
    expect(deps.maxPayloadBytes).toBe(1234);
    expect(deps.leaseMs).toBe(45_000);
  });
});

describe('health()', () => {
  it('reports database, broker, relay, outbox backlog and consumers; the database check fails when it goes away', async () => {
    const db = sqliteFile();
    const dataSource = new DataSource({ type: 'better-sqlite3', database: db.file });
    const tmm = new Tmm({ dataSource, logger: 'silent', relay: { enabled: false } });
    try {
      expect((await tmm.health()).ok).toBe(false); // not started
      await tmm.start();
      // A row due an hour ago with the relay off: the backlog and its age show.
      await tmm.transactions.run(() => tmm.producer.send(LedgerPosted.of('h1', 1), { delay: 3_600_000 }));
      await dataSource.query(`UPDATE tmm_outbox SET available_at = ?`, [Date.now() - 3_600_000]);
      const h = await tmm.health();
      expect(h.ok).toBe(true);
      expect(h.checks.database.ok).toBe(true);
      expect(h.checks.broker.ok).toBe(true);
      expect(h.checks.relay).toMatchObject({ ok: true, enabled: false });
      expect(h.checks.outbox.pending).toBe(1);
      expect(h.checks.outbox.oldestPendingAgeMs).toBeGreaterThan(3_500_000);
      await dataSource.destroy();
      const down = await tmm.health();
      expect(down.ok).toBe(false);
      expect(down.checks.database.ok).toBe(false);
    } finally {
      await tmm.stop().catch(() => undefined);
      db.dispose();
    }
  });
});

describe('the producer declares its exchanges at start', () => {
  const exchange = `tmm.comp.${randomBytes(4).toString('hex')}`;
  @MessageContract({ topic: 'comp.declared', exchange })
  class Declared {
    @IsString() id!: string;
  }
  void Declared;

  it('a producer-only process (no consumer anywhere) finds its contract exchange declared, so rows are not stuck on a missing exchange', async () => {
    const ds = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
    const tmm = new Tmm({ dataSource: ds, logger: 'silent', consumers: { enabled: false } }, { transport: new AmqpTransport({ url: AMQP_URL, connectionName: 'tmm-comp-declare' }) });
    const c = await amqp.connect(AMQP_URL);
    try {
      const probe = await c.createChannel();
      probe.on('error', () => undefined); // the 404 below closes this channel
      await expect(probe.checkExchange(exchange)).rejects.toThrow(/404/); // not there before start
      await tmm.start();
      const ch = await c.createChannel();
      await expect(ch.checkExchange(exchange)).resolves.toBeDefined();
      await ch.deleteExchange(exchange);
    } finally {
      await tmm.stop();
      await ds.destroy();
      await c.close();
    }
  });
});

describe('migrate', () => {
  it('several processes migrating one fresh PostgreSQL schema at the same moment all succeed, and it is applied once', async () => {
    const schema = `tmm_mig_${randomBytes(4).toString('hex')}`;
    const admin = new DataSource({ type: 'postgres', host: '127.0.0.1', port: 5432, username: 'postgres', database: 'test' });
    await admin.initialize();
    await admin.query(`CREATE SCHEMA ${schema}`);
    try {
      const startAt = String(Date.now() + 2500);
      const workers = Array.from({ length: 4 }, () => FixtureProcess.spawn('migrate-worker.ts', { TMM_FIXTURE_SCHEMA: schema, TMM_FIXTURE_START_AT: startAt }));
      const events = await Promise.all(workers.map((w) => w.waitFor((e) => e.event === 'migrated' || e.event === 'failed', 'migrate result', 40_000)));
      expect(events.map((e) => e.event)).toEqual(['migrated', 'migrated', 'migrated', 'migrated']);
      // Exactly one of them applied the migrations; the others found nothing left to do.
      expect(events.map((e) => e.applied).sort()).toEqual([0, 0, 0, MIGRATIONS.length]);
      const rows = await admin.query(`SELECT component FROM ${schema}.tmm_schema`);
      expect(rows).toHaveLength(new Set(MIGRATIONS.map((m) => m.component)).size); // one version row per component
    } finally {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.destroy();
    }
  });

  it("runs from the app's own TypeORM migrations on SQLite, inside TypeORM's transaction (no WAL switch there)", async () => {
    const db = sqliteFile();
    const ds = new DataSource({ type: 'better-sqlite3', database: db.file, migrations: [TmmSchemaMigration], migrationsTransactionMode: 'all' });
    try {
      await ds.initialize();
      const ran = await ds.runMigrations();
      expect(ran.map((m) => m.name)).toEqual(['TmmSchema1764547200000']);
      const tables = (await ds.query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'tmm_%' ORDER BY name`)).map((r: { name: string }) => r.name);
      expect(tables).toEqual(expect.arrayContaining(['tmm_outbox', 'tmm_inbox', 'tmm_lock', 'tmm_dead_letter', 'tmm_audit', 'tmm_txlog_barrier', 'tmm_schema']));
      const tmm = new Tmm({ dataSource: ds, logger: 'silent' });
      const result = await tmm.start();
      expect(result?.applied).toEqual([]);
      expect((await ds.query('PRAGMA journal_mode'))[0].journal_mode).toBe('wal'); // switched by start(), outside a transaction
      await tmm.stop();
    } finally {
      if (ds.isInitialized) await ds.destroy();
      db.dispose();
    }
  });

  it('prints the SQL a fresh database needs, for each dialect', () => {
    for (const d of ['sqlite', 'postgres', 'mysql'] as const) {
      const sql = migrationStatements(d, 1);
      expect(sql[0]).toMatch(/CREATE TABLE IF NOT EXISTS tmm_schema/);
      expect(sql.filter((s) => s.includes('INSERT INTO tmm_schema'))).toHaveLength(MIGRATIONS.length);
      expect(sql.join('\n')).not.toMatch(/\$\d|\?/);
    }
  });
});

describe('shutdown hooks', () => {
  it('SIGTERM stops tmm, destroys the DataSource and exits 0 by itself', async () => {
    const db = sqliteFile();
    try {
      const p = FixtureProcess.spawn('shutdown-hooks.ts', { TMM_FIXTURE_SQLITE_FILE: db.file });
      await p.waitFor((e) => e.event === 'ready', 'ready', 30_000);
      p.child.kill('SIGTERM');
      const exit = await p.waitFor((e) => e.event === 'exit', 'exit', 15_000);
      expect(exit).toMatchObject({ code: 0, tmmStarted: false, dataSourceInitialized: false });
      expect((await p.exited).code).toBe(0);
    } finally {
      db.dispose();
    }
  });
});

describe('loggers and errors from elsewhere', () => {
  it('a pino-shaped logger gets (fields, message); a winston/console-shaped one (message, fields)', () => {
    const calls: unknown[][] = [];
    const pino = { levels: {}, bindings: () => ({}), child: () => pino, info: (...a: unknown[]) => calls.push(['pino', ...a]), warn() {}, error() {}, debug() {} };
    const winston = { info: (...a: unknown[]) => calls.push(['winston', ...a]), warn() {}, error() {}, debug() {} };
    toLogger(pino).info('relay started', { owner: 'x' });
    toLogger(winston).info('relay started', { owner: 'x' });
    expect(calls).toEqual([
      ['pino', { owner: 'x' }, 'relay started'],
      ['winston', 'relay started', { owner: 'x' }],
    ]);
  });

  it('errors made by another loaded copy of tmm are recognized by their brand (NonRetryableError stays non-retryable)', () => {
    let Other: typeof import('../../src/errors/TmmError') | undefined;
    jest.isolateModules(() => {
      Other = require('../../src/errors/TmmError');
    });
    const foreign = new Other!.NonRetryableError('no such account');
    expect(foreign).not.toBeInstanceOf(require('../../src/errors/TmmError').NonRetryableError); // a different class…
    expect(TmmError.isNonRetryable(foreign)).toBe(true); // …still recognized
    expect(TmmError.is(foreign, 'TMM_NON_RETRYABLE')).toBe(true);
    expect(TmmError.is(new Error('plain'))).toBe(false);
  });
});
