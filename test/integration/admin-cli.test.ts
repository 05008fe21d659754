import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DataSource } from 'typeorm';
import { uuidv7 } from 'uuidv7';
import { TypeOrmAuditTrail, TypeOrmDeadLetterStore, TypeOrmOutboxStore, TypeOrmTransactionManager } from '../../src/internal';
import { type DbKind, type TestDatabase, createTestDatabase } from '../support/databases';
import { sqlDialectFor } from '../../src/sql/SqlDialect';
import { newDeadLetter } from '../support/deadLetters';

const root = resolve(__dirname, '..', '..');
/** The CLI's entry point: what package.json "bin" points to once built (dist/src/admin/cli/main.js). */
const ENTRY = join(root, 'src', 'admin', 'cli', 'main.ts');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tmm …` in its own process, as a script would, and returns its exit code and output; `preload`: modules `node -r` loads first. */
function tmm(args: string[], env: Record<string, string> = {}, preload: string[] = []): Promise<Run> {
  return new Promise((done) => {
    const requires = [join(root, 'test', 'support', 'register.js'), ...preload].flatMap((m) => ['-r', m]);
    execFile(process.execPath, [...requires, ENTRY, ...args], { env: { ...process.env, ...env }, cwd: root }, (error, stdout, stderr) => {
      done({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
const json = (r: Run) => JSON.parse(r.stdout);

describe('tmm CLI (through its entry point, in a child process)', () => {
  let dir: string;
  let db: string;
  let env: Record<string, string>;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tmm-cli-'));
    db = join(dir, 'app.sqlite');
    env = { TMM_DB_URL: `sqlite:${db}` };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes rows the way the application would, in another connection (the CLI is its own process). */
  async function withDb<T>(fn: (ds: DataSource, tm: TypeOrmTransactionManager) => Promise<T>): Promise<T> {
    const ds = new DataSource({ type: 'better-sqlite3', database: db });
    await ds.initialize();
    try {
      return await fn(ds, new TypeOrmTransactionManager(ds));
    } finally {
      await ds.destroy();
    }
  }
  const addLetter = (over = {}) =>
    withDb(async (ds, tm) => (await tm.run(() => new TypeOrmDeadLetterStore(ds, 'sqlite').add(tm.manager, newDeadLetter(over)))).id);

  it('package.json "bin" names the built entry point of this CLI', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(pkg.bin.tmm).toBe('./dist/src/admin/cli/main.js');
    expect(readFileSync(ENTRY, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('usage errors exit 2; a missing schema or database exits 5 with a hint', async () => {
    expect((await tmm(['frobnicate'], env)).code).toBe(2);
    expect((await tmm(['dead', 'list', '--limit', 'lots'], env)).code).toBe(2);
    const noTables = await tmm(['status'], env);
    expect(noTables.code).toBe(5);
    expect(noTables.stderr).toContain('run `tmm migrate`');
    const noDb = await tmm(['status'], { TMM_DB_URL: '' });
    expect(noDb.code).toBe(5);
    const refused = await tmm(['--db', 'postgres://app:hunter2@127.0.0.1:1/x', 'status']);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain('postgres://app:***@127.0.0.1:1/x');
    expect(refused.stderr).not.toContain('hunter2');
  });

  it('migrate creates the tables and is idempotent', async () => {
    const first = await tmm(['migrate', '--json'], env);
    expect(first.code).toBe(0);
    expect(json(first).applied.map((a: { component: string }) => a.component)).toEqual(['outbox', 'lock', 'inbox', 'deadletter', 'audit', 'deadletter', 'txlog-barrier', 'journey']);
    const second = await tmm(['migrate'], env);
    expect(second).toMatchObject({ code: 0, stdout: 'schema is up to date (sqlite)\n' });
    for (const dialect of ['sqlite', 'postgres', 'mysql']) {
      const printed = await tmm(['migrate', '--print-sql', dialect], {});
      expect(printed.code).toBe(0);
      expect(printed.stdout).toContain('CREATE TABLE IF NOT EXISTS tmm_txlog_barrier');
      expect(printed.stdout).toContain("VALUES ('txlog-barrier', 1,");
    }
  });

  it('status reports counts; --check exits 7 while something needs attention', async () => {
    const clean = await tmm(['status', '--check', '--json'], env);
    expect(clean.code).toBe(0);
    expect(json(clean).deadLetters).toMatchObject({ NEW: 0 });
    await addLetter({ consumer: 'Billing.onOrderPaid' });
    const dirty = await tmm(['status', '--check'], env);
    expect(dirty.code).toBe(7);
    expect(dirty.stdout).toContain('dead letters  new 1');
    expect(dirty.stdout).toContain('Billing.onOrderPaid: 1 new');
  });

  it('dead list / show / resend / discard, with exit codes for missing and already-handled dead letters', async () => {
    const id = await addLetter({ topic: 'invoice.requested' });
    const list = await tmm(['dead', 'list', '--topic', 'invoice.requested', '--json'], env);
    expect(list.code).toBe(0);
    expect(json(list)).toMatchObject({ total: 1, items: [{ id, status: 'NEW', topic: 'invoice.requested' }] });
    const table = await tmm(['dead', 'list'], env);
    expect(table.stdout).toMatch(/^ID\s+LASTFAILURE\s+STATUS/m);

    const show = await tmm(['dead', 'show', id, '--json'], env);
    expect(json(show)).toMatchObject({ id, payload: expect.any(String), headers: expect.any(Object), audit: [] });
    expect((await tmm(['dead', 'show', uuidv7()], env)).code).toBe(3);

    const resent = await tmm(['--as', 'ops:jane', 'dead', 'resend', id, '--comment', 'fixed in 1.4.2', '--json'], env);
    expect(resent.code).toBe(0);
    const messageId = json(resent).messages[id];
    // The resend is a PENDING outbox row: the application's relay publishes it.
    const row = await withDb(async (_ds, tm) => new TypeOrmOutboxStore(tm, sqlDialectFor(tm.dialect)).get(messageId));
    expect(row).toMatchObject({ status: 'PENDING', routingKey: 'ticketing.order-paid', exchange: '' });
    const shown = json(await tmm(['dead', 'show', id, '--json'], env));
    expect(shown).toMatchObject({ status: 'RESENT', statusBy: 'ops:jane', audit: [{ principal: 'ops:jane', action: 'dead-letter.resend', comment: 'fixed in 1.4.2' }] });

    const again = await tmm(['dead', 'resend', id], env);
    expect(again.code).toBe(4);
    expect(again.stdout).toContain(`skipped ${id}: RESENT`);
    expect((await tmm(['dead', 'resend', uuidv7()], env)).code).toBe(3);

    const other = await addLetter();
    expect((await tmm(['dead', 'discard', other], env)).code).toBe(0);
    expect((await tmm(['dead', 'discard', other], env)).code).toBe(4);
  });

  it('an edited payload is validated (exit 6 when it is not JSON) and resent', async () => {
    const id = await addLetter();
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"orderId": ');
    const refused = await tmm(['dead', 'resend', id, '--payload-file', bad], env);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain('not valid JSON');
    const good = join(dir, 'good.json');
    writeFileSync(good, '{"orderId":"o-1","amountCents":150}');
    const ok = await tmm(['dead', 'resend', id, '--payload-file', good, '--json'], env);
    expect(ok.code).toBe(0);
    const row = await withDb(async (_ds, tm) => new TypeOrmOutboxStore(tm, sqlDialectFor(tm.dialect)).get(json(ok).messages[id]));
    expect(row?.payload).toBe('{"orderId":"o-1","amountCents":150}');
  });

  it('validates an edited payload against the contract classes loaded with --require, by the letter’s topic and version', async () => {
    const missing = await tmm(['--require', './no/such/contracts.js', 'dead', 'list'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--require ./no/such/contracts.js: module not found');
    // LedgerPosted: ledger.posted, version 2 (a path relative to the working directory, as with node -r)
    const withContracts = (args: string[]) => tmm(['--require', './test/support/contracts.ts', ...args], env);
    const ledger = { topic: 'ledger.posted', originalRoutingKey: 'ledger.posted', headers: { 'tmm-contract-version': 2 } };
    const id = await addLetter(ledger);
    const bad = join(dir, 'ledger-bad.json');
    writeFileSync(bad, '{"entryId":"e-1","amount":300}');
    const refused = await withContracts(['dead', 'resend', id, '--payload-file', bad]);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain('LedgerPosted');
    expect(refused.stderr).toContain('currency');
    expect(json(await tmm(['dead', 'show', id, '--json'], env))).toMatchObject({ status: 'NEW', resentMessageId: null, audit: [] });
    const good = join(dir, 'ledger-good.json');
    writeFileSync(good, '{"entryId":"e-1","amount":300,"currency":"EUR"}');
    const ok = await withContracts(['dead', 'resend', id, '--payload-file', good, '--json']);
    expect(ok.code).toBe(0);
    const row = await withDb(async (_ds, tm) => new TypeOrmOutboxStore(tm, sqlDialectFor(tm.dialect)).get(json(ok).messages[id]));
    expect(row?.payload).toBe('{"entryId":"e-1","amount":300,"currency":"EUR"}');
  });

  it('bulk by filter needs --all-matching and at least one criterion', async () => {
    const fp = 'b'.repeat(16);
    for (let i = 0; i < 3; i++) await addLetter({ fingerprint: fp });
    expect((await tmm(['dead', 'resend', '--all-matching'], env)).code).toBe(2);
    expect((await tmm(['dead', 'resend', 'x', '--all-matching', '--fingerprint', fp], env)).code).toBe(2);
    const r = await tmm(['dead', 'resend', '--all-matching', '--fingerprint', fp, '--json'], env);
    expect(r.code).toBe(0);
    expect(json(r)).toMatchObject({ matched: 3, skipped: [] });
    expect(json(r).done).toHaveLength(3);
    expect(json(await tmm(['dead', 'groups', '--status', 'RESENT', '--json'], env)).groups).toEqual(expect.arrayContaining([expect.objectContaining({ fingerprint: fp, count: 3 })]));
  });

  it('--set lists only the outbox rows and dead letters of one SET; a bad set name is a usage error', async () => {
    const ids = { a: uuidv7(), b1: uuidv7(), b2: uuidv7() };
    const set = (s: string) => ({ 'tmm-set': s });
    await withDb(async (ds, tm) => {
      const outbox = new TypeOrmOutboxStore(tm, sqlDialectFor(tm.dialect));
      const m = (id: string, s: string) => ({ id, topic: 'set.cli', exchange: 'x', routingKey: 'set.cli', payload: '{}', headers: set(s), availableAt: Date.now(), orderingKey: null, createdAt: Date.now() });
      await tm.run(() => outbox.append(tm.manager, [m(ids.a, 'A'), m(ids.b1, 'B'), m(ids.b2, 'B')]));
      const store = new TypeOrmDeadLetterStore(ds, 'sqlite');
      for (const s of ['A', 'B']) await tm.run(() => store.add(tm.manager, newDeadLetter({ topic: 'set.cli', headers: { 'tmm-contract-version': 1, ...set(s) } })));
    });
    const rows = json(await tmm(['outbox', 'list', '--status', 'PENDING', '--topic', 'set.cli', '--set', 'B', '--json'], env));
    expect(rows.items.map((r: { id: string }) => r.id).sort()).toEqual([ids.b1, ids.b2].sort());
    expect(rows.items.every((r: { set: string }) => r.set === 'B')).toBe(true);
    const table = await tmm(['outbox', 'list', '--status', 'PENDING', '--topic', 'set.cli', '--set', 'A'], env);
    expect(table.stdout).toContain(ids.a);
    expect(table.stdout).not.toContain(ids.b1);
    const letters = json(await tmm(['dead', 'list', '--topic', 'set.cli', '--set', 'A', '--json'], env));
    expect(letters.items.map((d: { set: string }) => d.set)).toEqual(['A']);
    const bad = await tmm(['outbox', 'list', '--set', 'a"b'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--set must be a SET name');
    await withDb((ds) => ds.query(`DELETE FROM tmm_outbox WHERE topic = 'set.cli'`));
  });

  it('outbox list / retry / discard act on DEAD rows only', async () => {
    const [dead, other] = [uuidv7(), uuidv7()];
    await withDb(async (_ds, tm) => {
      const outbox = new TypeOrmOutboxStore(tm, sqlDialectFor(tm.dialect));
      const m = (id: string) => ({ id, topic: 'a.b', exchange: 'x', routingKey: 'a.b', payload: '{}', headers: {}, availableAt: Date.now(), orderingKey: null, createdAt: Date.now() });
      await tm.run(() => outbox.append(tm.manager, [m(dead), m(other)]));
      await outbox.recordFailure(dead, 'relay', { error: 'TMM_PUBLISH_UNROUTABLE: no queue', retryAt: Date.now(), dead: true });
    });
    const list = await tmm(['outbox', 'list', '--json'], env);
    expect(json(list).items.map((r: { id: string }) => r.id)).toEqual([dead]);
    expect((await tmm(['outbox', 'list', '--status', 'NOPE'], env)).code).toBe(2);
    expect((await tmm(['outbox', 'retry', other], env)).code).toBe(4); // PENDING: nothing to retry
    expect((await tmm(['outbox', 'retry', dead], env)).code).toBe(0);
    const revived = await withDb(async (_ds, tm) => new TypeOrmOutboxStore(tm, sqlDialectFor(tm.dialect)).get(dead));
    expect(revived).toMatchObject({ status: 'PENDING', attempts: 0 });
    expect((await tmm(['outbox', 'discard', dead], env)).code).toBe(4); // PENDING again, not DEAD
    expect((await tmm(['outbox', 'discard', uuidv7()], env)).code).toBe(3);
  });
});


/** The CLI's --db URL (and --schema) for a test database. */
function cliDb(kind: DbKind, ds: DataSource): string[] {
  const o = ds.options as { database?: string; schema?: string; host?: string; port?: number; username?: string; password?: string };
  if (kind === 'sqlite') return ['--db', `sqlite:${o.database}`];
  const auth = `${o.username}${o.password ? `:${o.password}` : ''}@${o.host ?? '127.0.0.1'}:${o.port}`;
  if (kind === 'postgres') return ['--db', `postgres://${auth}/${o.database}`, '--schema', o.schema!];
  return ['--db', `mysql://${auth}/${o.database}`];
}

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('tmm purge on %s (through its entry point)', (kind) => {
  let database: TestDatabase;
  let db: string[];
  const DAY = 86_400_000;
  const count = async (sql: string) => Number((await database.dataSource.query(sql))[0].n);

  beforeAll(async () => {
    database = await createTestDatabase(kind);
    db = cliDb(kind, database.dataSource);
    expect((await tmm([...db, 'migrate'])).code).toBe(0);
    const tm = new TypeOrmTransactionManager(database.dataSource);
    const store = new TypeOrmDeadLetterStore(database.dataSource, tm.dialect);
    const now = Date.now();
    // Ground truth written with SQL: which rows are old, and in which status.
    for (const [tag, status, age] of [['new-old', 'NEW', 90], ['resent-old', 'RESENT', 40], ['discarded-old', 'DISCARDED', 31], ['resent-recent', 'RESENT', 2]] as const) {
      const { id } = await tm.run(() => store.add(tm.manager, newDeadLetter({ topic: tag })));
      if (status !== 'NEW') await database.dataSource.query(`UPDATE tmm_dead_letter SET status = '${status}', status_at = ${now - age * DAY}, status_by = 'test' WHERE id = '${id}'`);
    }
    const audit = new TypeOrmAuditTrail(database.dataSource, tm.dialect);
    await tm.run(() =>
      audit.record(tm.manager, [400, 100, 1].map((age) => ({ at: now - age * DAY, principal: 'test', action: 'dead-letter.discard', targetType: 'dead-letter' as const, targetId: uuidv7(), before: null, after: null, comment: `${age} days ago` }))),
    );
  }, 60_000);
  afterAll(async () => database?.dispose());

  it('--dry-run counts; then RESENT/DISCARDED dead letters and audit entries past their age are deleted, NEW ones never', async () => {
    const dry = await tmm([...db, 'purge', '--dead-letters', '30d', '--audit', '365d', '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(json(dry)).toMatchObject({ deadLetters: 2, audit: 1, dryRun: true });
    expect(await count('SELECT COUNT(*) AS n FROM tmm_dead_letter')).toBe(4);

    const done = await tmm([...db, 'purge', '--dead-letters', '30d', '--audit', '365d', '--json']);
    expect(done.code).toBe(0);
    expect(json(done)).toMatchObject({ deadLetters: 2, audit: 1, dryRun: false });
    const left = (await database.dataSource.query('SELECT topic FROM tmm_dead_letter ORDER BY topic')).map((r: { topic: string }) => r.topic);
    expect(left).toEqual(['new-old', 'resent-recent']);
    expect(await count('SELECT COUNT(*) AS n FROM tmm_audit')).toBe(2);

    const text = await tmm([...db, 'purge', '--dead-letters', '1d', '--audit', 'forever']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('deleted 1 dead letters');
    expect(text.stdout).toContain('deleted 0 audit entries (kept forever)');
    expect(await count('SELECT COUNT(*) AS n FROM tmm_audit')).toBe(2);
    expect(await count(`SELECT COUNT(*) AS n FROM tmm_dead_letter WHERE status = 'NEW'`)).toBe(1);
  });

  it('--journey deletes recorded journey steps older than the age (only when given), --dry-run counts them', async () => {
    const now = Date.now();
    const p = (i: number) => (kind === 'postgres' ? `$${i}` : '?');
    for (const [id, age] of [['j-old-1', 10], ['j-old-2', 9], ['j-recent', 1]] as const) {
      await database.dataSource.query(`INSERT INTO tmm_journey (message_id, step, at, source) VALUES (${p(1)}, 'stored', ${p(2)}, 'test')`, [id, now - age * DAY]);
    }
    const steps = () => count(`SELECT COUNT(*) AS n FROM tmm_journey WHERE message_id LIKE 'j-%'`);
    expect(json(await tmm([...db, 'purge', '--json']))).not.toHaveProperty('journey'); // not asked: untouched
    expect(await steps()).toBe(3);
    expect(json(await tmm([...db, 'purge', '--journey', '7d', '--dry-run', '--json']))).toMatchObject({ journey: 2, dryRun: true });
    expect(await steps()).toBe(3);
    const done = await tmm([...db, 'purge', '--journey', '7d']);
    expect(done.code).toBe(0);
    expect(done.stdout).toContain('deleted 2 journey steps');
    expect((await database.dataSource.query(`SELECT message_id AS id FROM tmm_journey WHERE message_id LIKE 'j-%'`)).map((r: { id: string }) => r.id)).toEqual(['j-recent']);
    expect((await tmm([...db, 'purge', '--journey', 'soon'])).code).toBe(2);
  });

  it('a malformed age is a usage error (exit 2) that deletes nothing', async () => {
    const bad = await tmm([...db, 'purge', '--dead-letters', 'soon', '--json']);
    expect(bad.code).toBe(2);
    expect(json(bad).error).toMatchObject({ exitCode: 2, message: expect.stringContaining('--dead-letters must be an age') });
    expect((await tmm([...db, 'purge', '--audit', '5s'])).code).toBe(2);
    expect(await count('SELECT COUNT(*) AS n FROM tmm_dead_letter')).toBe(1);
  });
});
