/**
 * The log-mode sender in process, on real disks, a real broker and real databases: torn and corrupt log
 * copies, a directory removed while sending, both directories gone, check-back that says unknown / fails /
 * hangs (→ EXCEPTION, then force-send), the barrier race on PostgreSQL and MariaDB, segments rolled and
 * deleted. Ground truth: SQL rows and a raw amqplib consumer.
 */
import type * as amqp from 'amqplib';
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { uuidv7 } from 'uuidv7';
import { resolve } from 'node:path';
import { AmqpTransport, Tmm, migrate, silentLogger } from '../../src/internal';
import { TmmAdmin } from '../../src/admin';
import { TransactionalMessage } from 'tmm/decorators';
import { TxLogSender, TypeOrmCheckBarrier } from '../../src/txlog';
import { TypeOrmTransactionManager } from '../../src/transaction';
import { DualLog } from '../../src/txlog/DualLog';
import { readBack } from '../support/txlogFiles';
import { encodeFrame } from '../../src/txlog/frame';
import { AMQP_URL, EntryTally, sleep, waitUntil } from '../support/broker';
import { TestDatabase, createTestDatabase } from '../support/databases';
import { LedgerPosted } from '../support/contracts';
import { LedgerEntry } from '../support/entities';

jest.setTimeout(60_000);

const EXCHANGE = `tmm.txlog.it.${process.pid}`;
let tmp: string;
let tally: EntryTally;
let ch: amqp.Channel;
const received = new Map<string, number>();

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'tmm-txlog-'));
  tally = await EntryTally.open(EXCHANGE, received);
  ch = tally.ch;
});

afterAll(async () => {
  await tally?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const ENTRY = join(resolve(__dirname, '..', '..'), 'src', 'admin', 'cli', 'main.ts');
function runCli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['-r', join(resolve(__dirname, '..', '..'), 'test', 'support', 'register.js'), ENTRY, ...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      done({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const payloads = (n: number, from = 0) => Array.from({ length: n }, (_, i) => Buffer.from(JSON.stringify({ type: 'sent', lsn: from + i, uid: `u${from + i}`, at: 1 })));

async function writeLog(dirs: string[], n: number, segmentBytes = 1 << 20): Promise<void> {
  const log = new DualLog(dirs, segmentBytes, silentLogger);
  await log.open();
  for (let i = 0; i < n; i++) await log.append(() => payloads(1, i));
  await log.close();
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((n) => n.startsWith('segment-')).sort().map((n) => join(dir, n));
}

describe('the two copies on disk', () => {
  it('cuts a torn last record (both copies truncated mid-record) and keeps every record before it', async () => {
    const dirs = [join(tmp, 'torn', 'a'), join(tmp, 'torn', 'b')];
    await writeLog(dirs, 10);
    for (const d of dirs) {
      const [file] = await segmentFiles(d);
      const size = (await fs.stat(file)).size;
      await fs.truncate(file, size - 5);
    }
    const log = new DualLog(dirs, 1 << 20, silentLogger);
    const r = await log.open();
    expect(r.records.map((p) => JSON.parse(p.toString()).uid)).toEqual(payloads(9).map((p) => JSON.parse(p.toString()).uid));
    expect(r.directories.map((d) => d.repair)).toEqual(['truncated', 'truncated']);
    await log.append(() => payloads(1, 9));
    await log.close();
    const again = await readBack(dirs, 1 << 20);
    expect(again.records).toHaveLength(10);
    expect(again.directories.map((d) => d.repair)).toEqual(['none', 'none']);
  });

  it('writes into preallocated zeros: a crash leaves them, the next open reads every record and repairs nothing; a record torn inside them is cut', async () => {
    const dirs = [join(tmp, 'prealloc', 'a'), join(tmp, 'prealloc', 'b')];
    const log = new DualLog(dirs, 1 << 20, silentLogger);
    await log.open();
    for (let i = 0; i < 10; i++) await log.append(() => payloads(1, i));
    const valid = payloads(10).reduce((n, p) => n + encodeFrame(p).length, 0);
    // Not closed (its handles dropped as a SIGKILL would): the files keep the zeros past their synced records.
    for (const d of log.dirs) d.fail(new Error('simulated crash'));
    for (const d of dirs) {
      const [file] = await segmentFiles(d);
      expect((await fs.stat(file)).size).toBeGreaterThan(valid);
    }
    const crashed = new DualLog(dirs, 1 << 20, silentLogger);
    const r = await crashed.open();
    expect(r.records.map((p) => JSON.parse(p.toString()).uid)).toEqual(payloads(10).map((p) => JSON.parse(p.toString()).uid));
    expect(r.directories.map((d) => d.repair)).toEqual(['none', 'none']);
    await crashed.append(() => payloads(1, 10)); // written over the zeros, right after the tenth record
    await crashed.close();
    for (const d of dirs) {
      const [file] = await segmentFiles(d);
      expect((await fs.stat(file)).size).toBe(valid + encodeFrame(payloads(1, 10)[0]).length); // close() trims the zeros
    }
    // A record torn inside the preallocated space: its header and part of it written, zeros after.
    const again = new DualLog(dirs, 1 << 20, silentLogger);
    await again.open();
    await again.append(() => payloads(1, 11));
    const torn = encodeFrame(payloads(1, 12)[0]).subarray(0, 15);
    for (const d of dirs) {
      const [file] = await segmentFiles(d);
      const h = await fs.open(file, 'r+');
      const end = valid + encodeFrame(payloads(1, 10)[0]).length + encodeFrame(payloads(1, 11)[0]).length;
      await h.write(torn, 0, torn.length, end);
      await h.close();
    }
    const afterTear = await readBack(dirs, 1 << 20);
    expect(afterTear.records).toHaveLength(12);
    expect(afterTear.directories.map((d) => d.repair)).toEqual(['truncated', 'truncated']);
    await again.close().catch(() => undefined);
  });

  it('repairs a copy with a flipped byte from the other', async () => {
    const dirs = [join(tmp, 'flip', 'a'), join(tmp, 'flip', 'b')];
    await writeLog(dirs, 20);
    const [file] = await segmentFiles(dirs[0]);
    const data = await fs.readFile(file);
    const at = encodeFrame(payloads(1)[0]).length * 3 + 12; // inside the 4th record's payload
    data[at] ^= 0xff;
    await fs.writeFile(file, data);
    const log = new DualLog(dirs, 1 << 20, silentLogger);
    const r = await log.open();
    expect(r.records).toHaveLength(20);
    expect(r.directories.map((d) => d.repair)).toEqual(['rewritten', 'none']);
    await log.close();
    const a = Buffer.concat(await Promise.all((await segmentFiles(dirs[0])).map((f) => fs.readFile(f))));
    const b = Buffer.concat(await Promise.all((await segmentFiles(dirs[1])).map((f) => fs.readFile(f))));
    expect(a.equals(b)).toBe(true);
  });
});

describe('lazy appends', () => {
  it('a lazy record rides in the next batch; alone it gets one after its linger; it resolves only once synced', async () => {
    const dirs = [join(tmp, 'lazy', 'a'), join(tmp, 'lazy', 'b')];
    const log = new DualLog(dirs, 1 << 20, silentLogger);
    await log.open();
    const before = log.batches;
    let synced = false;
    const lazy = log.append(() => payloads(1, 0), undefined, { lingerMs: 60_000 }).then(() => (synced = true));
    await sleep(100);
    expect({ synced, batches: log.batches - before }).toEqual({ synced: false, batches: 0 });
    await log.append(() => payloads(1, 1)); // a synced append takes it along
    await lazy;
    expect(log.batches - before).toBe(1);
    await log.append(() => payloads(1, 2), undefined, { lingerMs: 30 }); // nothing else comes: its own batch
    expect(log.batches - before).toBe(2);
    const pending = log.append(() => payloads(1, 3), undefined, { lingerMs: 60_000 });
    await log.close(); // close writes what is still lingering
    await pending;
    const again = await readBack(dirs, 1 << 20);
    expect(again.records.map((p) => JSON.parse(p.toString()).lsn)).toEqual([0, 1, 2, 3]);
  });
});

describe('live repair', () => {
  it('rebuilds a removed directory while appends go on (segments rolling), then writes both again: copies byte-identical', async () => {
    const dirs = [join(tmp, 'live', 'a'), join(tmp, 'live', 'b')];
    const log = new DualLog(dirs, 1024, silentLogger);
    await log.open();
    let stop = false;
    let n = 0;
    const writers = Array.from({ length: 4 }, async () => {
      while (!stop) await log.append((lsn) => payloads(1, lsn).map((p) => { n++; return p; }));
    });
    await waitUntil(() => n >= 200, '200 records', 20_000);
    await fs.rm(dirs[1], { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
    await log.probe();
    expect(log.health().directories.map((d) => d.ok)).toEqual([true, false]);
    const atFailure = n;
    await waitUntil(() => n >= atFailure + 200, '200 records on one directory', 20_000);
    expect(await log.repair([])).toEqual([]); // a missing directory is not re-created (it may be an unmounted disk)
    expect(log.degraded).toBe(true);
    await fs.mkdir(dirs[1]);
    expect(await log.repair([])).toEqual([dirs[1]]);
    expect(log.degraded).toBe(false);
    const atRepair = n;
    await waitUntil(() => n >= atRepair + 200, '200 records on both again', 20_000);
    stop = true;
    await Promise.all(writers);
    await log.close();
    const files = await Promise.all(dirs.map(segmentFiles));
    expect(files[1].map((f) => f.slice(dirs[1].length))).toEqual(files[0].map((f) => f.slice(dirs[0].length)));
    expect(files[0].length).toBeGreaterThan(10); // rolled many times, during the repair too
    for (let i = 0; i < files[0].length; i++) expect((await fs.readFile(files[1][i])).equals(await fs.readFile(files[0][i]))).toBe(true);
    const again = await readBack(dirs, 1024);
    expect(again.records.map((p) => JSON.parse(p.toString()).lsn)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(again.directories.map((d) => d.repair)).toEqual(['none', 'none']);
  });
});

describe('revival (every directory out)', () => {
  const failure = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
  const lsns = async (dirs: string[]) => (await readBack(dirs, 1 << 20)).records.map((p) => JSON.parse(p.toString()).lsn as number);

  it('brings back the copy that failed last after a refused write; appends go on with consecutive lsns, the other is repaired from it', async () => {
    const dirs = [join(tmp, 'revive-ok', 'a'), join(tmp, 'revive-ok', 'b')];
    const log = new DualLog(dirs, 1 << 20, silentLogger);
    await log.open();
    for (let i = 0; i < 5; i++) await log.append((lsn) => payloads(1, lsn)); // 0..4 on both
    log.dirs[0].fail(failure('ENOSPC'));
    await log.probe();
    for (let i = 0; i < 5; i++) await log.append((lsn) => payloads(1, lsn)); // 5..9 on b only
    log.dirs[1].fail(failure('ENOSPC'));
    await log.probe();
    await expect(log.append((lsn) => payloads(1, lsn))).rejects.toMatchObject({ code: 'TMM_TXLOG_UNAVAILABLE' });
    expect(await log.revive()).toBe(dirs[1]); // b holds 0..9; a lacks 5..9
    expect(log.revivals).toBe(1);
    expect(log.health().directories.map((d) => d.ok)).toEqual([false, true]);
    await log.append((lsn) => payloads(1, lsn)); // 10: the refused record's lsn, taken again
    expect(await log.repair([])).toEqual([dirs[0]]);
    await log.append((lsn) => payloads(1, lsn)); // 11 on both
    await log.close();
    for (const d of dirs) expect(await lsns([d])).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it('does not bring back a copy that was removed (nor re-create it), or one that lacks acknowledged records', async () => {
    const dirs = [join(tmp, 'revive-gone', 'a'), join(tmp, 'revive-gone', 'b')];
    await writeLog(dirs, 3); // 0..2 from an earlier run: acknowledged too
    const log = new DualLog(dirs, 1 << 20, silentLogger);
    await log.open();
    await log.append((lsn) => payloads(1, lsn)); // 3
    log.dirs[0].fail(failure('ENOSPC'));
    log.dirs[1].fail(failure('ENOSPC'));
    await log.probe();
    await fs.rm(dirs[1], { recursive: true, force: true }); // b, a candidate, is gone (an unmounted disk, say)
    await fs.rm(dirs[0], { recursive: true, force: true });
    expect(await log.revive()).toBeUndefined();
    await expect(fs.stat(dirs[1])).rejects.toMatchObject({ code: 'ENOENT' }); // not re-created
    await fs.mkdir(dirs[0]); // an empty directory where a was: it holds none of 0..3
    await fs.mkdir(dirs[1]);
    expect(await log.revive()).toBeUndefined();
    expect(log.live()).toEqual([]);
    await log.close();
  });

  it('does not bring back a copy that failed with an I/O error, nor one that failed earlier (it lacks what the other acknowledged)', async () => {
    const dirs = [join(tmp, 'revive-no', 'a'), join(tmp, 'revive-no', 'b')];
    const log = new DualLog(dirs, 1 << 20, silentLogger);
    await log.open();
    for (let i = 0; i < 3; i++) await log.append((lsn) => payloads(1, lsn));
    log.dirs[0].fail(failure('ENOSPC'));
    await log.probe();
    await log.append((lsn) => payloads(1, lsn)); // 3 on b only
    log.dirs[1].fail(failure('EIO')); // after a failed write-back the page cache may differ from the disk
    await log.probe();
    expect(await log.revive()).toBeUndefined();
    expect(log.live()).toEqual([]);
    await expect(log.append((lsn) => payloads(1, lsn))).rejects.toMatchObject({ code: 'TMM_TXLOG_UNAVAILABLE' });
    await log.close();
    // A restart reads b, the longer copy: the acknowledged record 3 is there.
    expect(await lsns(dirs)).toEqual([0, 1, 2, 3]);
  });
});

describe('a bad record', () => {
  it('is quarantined into EXCEPTION and the checkpoint moves past it', async () => {
    const dirs = [join(tmp, 'bad', 'a'), join(tmp, 'bad', 'b')];
    const log = new DualLog(dirs, 1 << 20, silentLogger);
    await log.open();
    await log.append(() => [Buffer.from('{"type":"begin","lsn":0,"uid":"x"'), Buffer.from('not json at all')]); // CRC-valid, unreadable
    await log.close();
    const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger });
    const sender = new TxLogSender({ directories: dirs, barrier: false, analysisIntervalMs: 20 }, { transport, logger: silentLogger, serviceName: 'svc' });
    await sender.start();
    try {
      expect(sender.listProblems().map((p) => [p.uid, p.state])).toEqual([['quarantined-lsn-0', 'EXCEPTION'], ['quarantined-lsn-1', 'EXCEPTION']]);
      await waitUntil(() => sender.health().checkpoint === 2, 'the checkpoint past both bad records', 5000);
    } finally {
      await sender.stop();
      await transport.close();
    }
    // The quarantine survives a restart (it is in the snapshot), the checkpoint too.
    const transport2 = new AmqpTransport({ url: AMQP_URL, logger: silentLogger });
    const again = new TxLogSender({ directories: dirs, barrier: false }, { transport: transport2, logger: silentLogger, serviceName: 'svc' });
    await again.start();
    expect(again.listProblems()).toHaveLength(2);
    expect(again.health().checkpoint).toBe(2);
    await again.stop();
    await transport2.close();
  });
});

class Ledger {
  constructor(private readonly tmm: Tmm) {}

  @TransactionalMessage({ sender: 'log' })
  async post(id: string, amount = 1): Promise<void> {
    await this.tmm.transactions.getRepository(LedgerEntry).insert({ id, account: 'txlog', amount });
    await this.tmm.producer.send(LedgerPosted.of(id, amount));
  }
}

describe.each(['postgres', 'mariadb'] as const)('with the sender on %s', (kind) => {
  let db: TestDatabase;
  let tmm: Tmm | undefined;
  const extraOptions: { faultHook?: (w: string) => void } = {};

  beforeAll(async () => {
    db = await createTestDatabase(kind, [LedgerEntry]);
  });
  afterEach(async () => {
    await tmm?.stop();
    tmm = undefined;
    delete extraOptions.faultHook;
  });
  afterAll(async () => db?.dispose());

  async function startTmm(dirs: string[], txlog: Record<string, unknown> = {}): Promise<Tmm> {
    const t = new Tmm({
      dataSource: db.dataSource,
      transport: new AmqpTransport({ url: AMQP_URL, logger: silentLogger }),
      logger: 'silent',
      producer: { defaultExchange: EXCHANGE },
      relay: { enabled: false },
      consumers: { enabled: false },
      txlog: { directories: dirs, analysisIntervalMs: 30, inDoubtAfterMs: 100, checkBackoff: { initialDelayMs: 20, maxDelayMs: 40 }, faultHook: (w) => extraOptions.faultHook?.(w), ...txlog },
    });
    await t.start();
    tmm = t;
    return t;
  }

  async function rows(prefix: string): Promise<string[]> {
    const p = kind === 'postgres' ? '$1' : '?';
    return ((await db.dataSource.query(`SELECT id FROM test_ledger WHERE id LIKE ${p}`, [`${prefix}%`])) as { id: string }[]).map((r) => r.id).sort();
  }
  const got = (prefix: string) => [...received.keys()].filter((k) => k.startsWith(prefix)).sort();

  it('keeps sending on one directory when the other is removed (degraded, loud) and loses nothing', async () => {
    const dirs = [join(tmp, kind, 'rm', 'a'), join(tmp, kind, 'rm', 'b')];
    const t = await startTmm(dirs, { inDoubtAfterMs: 30_000 }); // no check-back wanted: every send must commit
    const ledger = new Ledger(t);
    const prefix = `${kind}-rm-`;
    for (let i = 0; i < 10; i++) await ledger.post(`${prefix}${i}`);
    await fs.rm(dirs[1], { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
    await waitUntil(() => t.txlog!.health().degraded, 'degraded after the directory was removed', 5000);
    for (let i = 10; i < 20; i++) await ledger.post(`${prefix}${i}`);
    await t.txlog!.drained();
    expect(t.txlog!.health()).toMatchObject({ status: 'degraded', degraded: true, directories: [{ ok: true }, { ok: false }] });
    await waitUntil(() => got(prefix).length === 20, 'all 20 messages at the raw consumer', 5000);
    expect(got(prefix)).toEqual(await rows(prefix));
    // Both gone: the send fails with a clear error and the business row is not committed.
    await fs.rm(dirs[0], { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
    await waitUntil(() => t.txlog!.health().status === 'down', 'down after both directories were removed', 5000);
    await expect(ledger.post(`${prefix}x`)).rejects.toMatchObject({ code: 'TMM_TXLOG_UNAVAILABLE' });
    expect(await rows(`${prefix}x`)).toEqual([]);
  });

  it.each([
    ['says unknown', () => 'unknown' as const],
    ['throws', () => { throw new Error('checker down'); }],
    ['hangs', () => new Promise<never>(() => undefined)],
  ])('moves an in-doubt transaction whose checker %s to EXCEPTION after maxChecks, then force-sends it', async (what, checker) => {
    const dirs = [join(tmp, kind, `exc-${what}`, 'a'), join(tmp, kind, `exc-${what}`, 'b')];
    const t = await startTmm(dirs, { maxChecks: 3, checkTimeoutMs: 100 });
    t.txlog!.registerChecker({ topic: 'ledger.posted' }, checker);
    // The transaction commits, then its end record is never written (the hook throws): it is in doubt.
    extraOptions.faultHook = (w) => {
      if (w === 'committed') throw new Error('no end record');
    };
    const id = `${kind}-exc-${what.replace(/ /g, '')}`;
    await new Ledger(t).post(id);
    await waitUntil(() => t.txlog!.listProblems().length === 1, 'EXCEPTION', 10_000);
    const [p] = t.txlog!.listProblems();
    expect(p).toMatchObject({ state: 'EXCEPTION', topics: ['ledger.posted'] });
    expect(p.checks).toHaveLength(3);
    expect(p.checks.every((c) => c.via === 'checker')).toBe(true);
    expect(received.has(id)).toBe(false);
    await t.txlog!.forceSend(p.uid);
    await waitUntil(() => received.get(id) === 1, 'the force-sent message', 5000);
    expect(t.txlog!.listProblems()).toEqual([]);
    // Restart: the EXCEPTION is gone for good (the snapshot was persisted), nothing is sent again.
    await t.stop();
    tmm = undefined;
    const t2 = await startTmm(dirs);
    await t2.txlog!.drained();
    await sleep(300);
    expect(t2.txlog!.listProblems()).toEqual([]);
    expect(received.get(id)).toBe(1);
  });

  // One database is enough for the admin surface (the log behaves the same on both).
  if (kind === 'postgres') it('shows EXCEPTIONs in TMM-ADMIN: force-send from the CLI, discard from the API, both audited', async () => {
    const dirs = [join(tmp, kind, 'admin', 'a'), join(tmp, kind, 'admin', 'b')];
    const t = await startTmm(dirs, { maxChecks: 2 });
    t.txlog!.registerChecker({ service: 'default' }, () => 'unknown');
    extraOptions.faultHook = (w) => {
      if (w === 'committed') throw new Error('no end record');
    };
    const ledger = new Ledger(t);
    await ledger.post(`${kind}-admin-send`);
    await ledger.post(`${kind}-admin-drop`);
    await waitUntil(() => t.txlog!.listProblems().length === 2, 'two EXCEPTIONs', 10_000);
    const token = randomBytes(16).toString('hex');
    const admin = new TmmAdmin(t, { port: 0, auth: { tokens: { ops: token } }, collector: { enabled: false } });
    const url = await admin.start();
    try {
      const [send, drop] = t.txlog!.listProblems().sort((a, b) => (JSON.parse(a.messages[0].payload).entryId.endsWith('send') ? -1 : 1) - (JSON.parse(b.messages[0].payload).entryId.endsWith('send') ? -1 : 1));
      const headers = { authorization: `Bearer ${token}` };
      const listed = (await (await fetch(`${url}/api/txlog`, { headers })).json()) as { health: { status: string }; problems: { uid: string; state: string }[] };
      expect(listed.problems.map((p) => p.uid).sort()).toEqual([send.uid, drop.uid].sort());
      expect(listed.problems.every((p) => p.state === 'EXCEPTION')).toBe(true);
      const metrics = await (await fetch(`${url}/metrics`, { headers })).text();
      expect(metrics).toContain('tmm_txlog_transactions{state="exception"} 2');
      expect(metrics).toContain('tmm_txlog_degraded 0');
      expect(metrics).toContain('tmm_txlog_repairs_total 0');
      expect(metrics).toContain(`tmm_txlog_ended_total{outcome="commit"} ${t.txlog!.counters.commits}`);
      expect(Number(/^tmm_txlog_write_batches_total (\d+)$/m.exec(metrics)?.[1])).toBe(t.txlog!.log.batches);
      expect(metrics).toMatch(/^tmm_txlog_checks_total [1-9]/m); // both were checked back (the checker said unknown)
      const cli = await runCli(['txlog', 'force-send', send.uid, '--url', url, '--comment', 'checked by hand'], { TMM_ADMIN_TOKEN: token });
      expect(cli).toMatchObject({ code: 0 });
      await waitUntil(() => received.get(`${kind}-admin-send`) === 1, 'the force-sent message', 5000);
      const { csrfToken } = (await (await fetch(`${url}/api/session`, { headers })).json()) as { csrfToken: string };
      const res = await fetch(`${url}/api/txlog/exceptions/${drop.uid}/discard`, { method: 'POST', headers: { ...headers, 'x-csrf-token': csrfToken, 'content-type': 'application/json' }, body: '{}' });
      expect(res.status).toBe(200);
      expect((await runCli(['txlog', 'discard', drop.uid, '--url', url], { TMM_ADMIN_TOKEN: token })).code).not.toBe(0); // gone
      expect(t.txlog!.listProblems()).toEqual([]);
      const audit = (await (await fetch(`${url}/api/audit?targetType=txlog`, { headers })).json()) as { items: { action: string; targetId: string; comment: string | null }[] };
      expect(audit.items.map((a) => [a.action, a.targetId]).sort()).toEqual([['txlog.discard', drop.uid], ['txlog.force-send', send.uid]].sort());
      await sleep(300);
      expect(received.has(`${kind}-admin-drop`)).toBe(false);
    } finally {
      await admin.stop();
    }
  });

  it('checks back through the HTTP check URL carried in the begin record', async () => {
    const asked: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        asked.push((JSON.parse(body) as { uid: string }).uid);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ status: asked.length === 1 ? 'unknown' : 'commit' }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const dirs = [join(tmp, kind, 'url', 'a'), join(tmp, kind, 'url', 'b')];
      const t = await startTmm(dirs, { checkUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/check` });
      extraOptions.faultHook = (w) => {
        if (w === 'committed') throw new Error('no end record');
      };
      const id = `${kind}-url-1`;
      await new Ledger(t).post(id);
      await waitUntil(() => received.get(id) === 1, 'the message after the URL said commit', 10_000);
      expect(asked.length).toBe(2); // unknown, then commit
      expect(new Set(asked).size).toBe(1);
    } finally {
      server.close();
    }
  });

  it('moves a transaction whose publishing keeps failing to DEAD (unroutable), then force-sends it once a queue is bound', async () => {
    const dirs = [join(tmp, kind, 'dead', 'a'), join(tmp, kind, 'dead', 'b')];
    const unbound = `${EXCHANGE}.unbound.${kind}`;
    await ch.assertExchange(unbound, 'topic', { durable: false, autoDelete: false });
    const t = new Tmm({
      dataSource: db.dataSource,
      transport: new AmqpTransport({ url: AMQP_URL, logger: silentLogger }),
      logger: 'silent',
      producer: { defaultExchange: unbound },
      relay: { enabled: false },
      consumers: { enabled: false },
      txlog: { directories: dirs, analysisIntervalMs: 30, maxSendAttempts: 3, sendBackoff: { initialDelayMs: 20, maxDelayMs: 40 } },
    });
    await t.start();
    tmm = t;
    const id = `${kind}-dead-1`;
    await new Ledger(t).post(id);
    await waitUntil(() => t.txlog!.listProblems().length === 1, 'DEAD', 10_000);
    expect(t.txlog!.listProblems()[0]).toMatchObject({ state: 'DEAD', sendAttempts: 3 });
    await ch.bindExchange(EXCHANGE, unbound, '#');
    try {
      await t.txlog!.forceSend(t.txlog!.listProblems()[0].uid);
      await waitUntil(() => received.get(id) === 1, 'the force-sent message', 5000);
    } finally {
      await ch.deleteExchange(unbound).catch(() => undefined);
    }
  });

  it('barrier: a check while the business transaction is open waits for it; a commit after a rollback verdict fails on the key', async () => {
    await migrate(db.dataSource); // the barrier table is component txlog-barrier
    const barrier = new TypeOrmCheckBarrier(db.dataSource);
    const qr = db.dataSource.createQueryRunner();
    await qr.connect();
    await qr.startTransaction();
    await barrier.insertCommit(qr.manager, `${kind}-open`);
    let verdict: string | undefined;
    const check = barrier.check(`${kind}-open`).then((v) => (verdict = v));
    await sleep(400);
    expect(verdict).toBeUndefined(); // blocked on the key
    await qr.commitTransaction();
    await check;
    expect(verdict).toBe('commit');
    // Rollback verdict first, then the late business commit.
    expect(await barrier.check(`${kind}-late`)).toBe('rollback');
    await qr.startTransaction();
    // Not "duplicate key": the error says the check-back's rollback verdict came first.
    await expect(barrier.insertCommit(qr.manager, `${kind}-late`)).rejects.toMatchObject({ code: 'TMM_TXLOG_ROLLED_BACK_BY_CHECK' });
    await qr.rollbackTransaction();
    await qr.release();
    expect(await barrier.check(`${kind}-late`)).toBe('rollback');
    // The same through tmm's transaction manager, where on PostgreSQL the barrier row rides with the COMMIT
    // (ADR 0078): the caller gets the same error, and the business row is not committed.
    expect(await barrier.check(`${kind}-late-2`)).toBe('rollback');
    const transactions = new TypeOrmTransactionManager(db.dataSource);
    const id = `${kind}-late-2-row`;
    await expect(
      transactions.run(async () => {
        await transactions.getRepository(LedgerEntry).insert({ id, account: 'txlog', amount: 1 });
        const scope = transactions.current()!;
        scope.beforeCommit(() => barrier.insertCommit(scope.manager, `${kind}-late-2`));
      }),
    ).rejects.toMatchObject({ code: 'TMM_TXLOG_ROLLED_BACK_BY_CHECK' });
    expect(await db.dataSource.query(`SELECT id FROM test_ledger WHERE id = ${kind === 'postgres' ? '$1' : '?'}`, [id])).toEqual([]);
  });

  it('purges the barrier rows of sent transactions once they are older than barrierRetentionMs, not before', async () => {
    const dirs = [join(tmp, kind, 'purge', 'a'), join(tmp, kind, 'purge', 'b')];
    const since = Date.now(); // before any of the three is final: none may go before since + retention
    const t = await startTmm(dirs, { barrierRetentionMs: 10_000, inDoubtAfterMs: 30_000 }); // all three must commit
    const ledger = new Ledger(t);
    for (let i = 0; i < 3; i++) await ledger.post(`${kind}-purge-${i}`);
    await t.txlog!.drained();
    const p = kind === 'postgres' ? '$1' : '?';
    const barrierRows = async () => ((await db.dataSource.query(`SELECT uid, reason FROM tmm_txlog_barrier WHERE created_at >= ${p}`, [since])) as { uid: string; reason: string }[]);
    expect((await barrierRows()).map((r) => r.reason)).toEqual(['commit', 'commit', 'commit']); // final, but younger than the retention
    let firstGoneAt = 0;
    await waitUntil(async () => {
      const left = (await barrierRows()).length;
      if (left < 3 && firstGoneAt === 0) firstGoneAt = Date.now();
      return left === 0 && t.txlog!.counters.barrierPurged === 3;
    }, 'barrier rows purged after the retention', 40_000);
    expect(firstGoneAt - since).toBeGreaterThanOrEqual(10_000);
  });

  it('purges no barrier row while an earlier transaction of its log is not final, and never another log’s rows', async () => {
    const dirs = [join(tmp, kind, 'purge-hold', 'a'), join(tmp, kind, 'purge-hold', 'b')];
    const p = (i: number) => (kind === 'postgres' ? `$${i}` : '?');
    // Rows of another log and a legacy bare-uid row, long past any retention: not this log's to delete.
    const foreign = [`0123456789abcdef.${uuidv7()}`, uuidv7()];
    for (const uid of foreign) await db.dataSource.query(`INSERT INTO tmm_txlog_barrier (uid, reason, created_at) VALUES (${p(1)}, 'commit', 0)`, [uid]);
    let t = await startTmm(dirs, { barrierRetentionMs: 0, inDoubtAfterMs: 60_000 });
    extraOptions.faultHook = (w) => {
      if (w === 'committed') {
        delete extraOptions.faultHook;
        throw new Error('no end record'); // the first transaction stays in doubt
      }
    };
    const ledger = new Ledger(t);
    const since = Date.now(); // this log's rows: created from now on (earlier tests' logs left theirs)
    const ids = [`${kind}-hold-0`, `${kind}-hold-1`, `${kind}-hold-2`];
    for (const id of ids) await ledger.post(id);
    await waitUntil(() => received.get(ids[2]) === 1 && received.get(ids[1]) === 1, 'the two later messages', 10_000);
    const own = async () => ((await db.dataSource.query(`SELECT uid FROM tmm_txlog_barrier WHERE uid NOT IN (${p(1)}, ${p(2)}) AND created_at >= ${p(3)}`, [...foreign, since])) as { uid: string }[]).map((r) => r.uid);
    const ownKeys = await own();
    expect(ownKeys).toHaveLength(3);
    const logId = ownKeys[0].split('.')[0];
    const mine = (keys: string[]) => keys.filter((k) => k.startsWith(`${logId}.`));
    expect(mine(ownKeys)).toHaveLength(3);
    await sleep(2500); // two purge intervals (retention 0: every second): the in-doubt first one holds them all
    expect(mine(await own())).toHaveLength(3);
    expect(received.has(ids[0])).toBe(false);
    // Restarted with a short in-doubt time: the barrier says commit, it is sent, and the range moves past all three.
    await t.stop();
    tmm = undefined;
    t = await startTmm(dirs, { barrierRetentionMs: 0, inDoubtAfterMs: 100 });
    await waitUntil(() => received.get(ids[0]) === 1, 'the in-doubt message after check-back', 10_000);
    await waitUntil(async () => mine(await own()).length === 0, 'the three rows purged', 10_000);
    const left = (await db.dataSource.query(`SELECT uid FROM tmm_txlog_barrier WHERE uid IN (${p(1)}, ${p(2)})`, foreign)) as { uid: string }[];
    expect(left.map((r) => r.uid).sort()).toEqual([...foreign].sort());
    await db.dataSource.query(`DELETE FROM tmm_txlog_barrier WHERE uid IN (${p(1)}, ${p(2)})`, foreign);
  });

  it('barrier check-back: a committed transaction whose end record is missing is found committed and sent', async () => {
    const dirs = [join(tmp, kind, 'barrier', 'a'), join(tmp, kind, 'barrier', 'b')];
    const t = await startTmm(dirs);
    extraOptions.faultHook = (w) => {
      if (w === 'committed') throw new Error('no end record');
    };
    const id = `${kind}-barrier-1`;
    await new Ledger(t).post(id);
    await waitUntil(() => received.get(id) === 1, 'the message after check-back', 10_000);
    await t.txlog!.drained();
    expect(t.txlog!.counters.checks).toBeGreaterThanOrEqual(1);
  });

  it('rolls segments and deletes them behind the checkpoint under a long run; a restart sends nothing again', async () => {
    const dirs = [join(tmp, kind, 'long', 'a'), join(tmp, kind, 'long', 'b')];
    // No check-back during the run (inDoubtAfterMs 30 s): on a loaded machine a begin synced more than 100 ms
    // before its COMMIT would get a rollback verdict first, and its send would fail (as it must).
    const t = await startTmm(dirs, { segmentBytes: 4096, inDoubtAfterMs: 30_000 });
    const ledger = new Ledger(t);
    const prefix = `${kind}-long-`;
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 40; i++) await ledger.post(`${prefix}${w}-${i}`);
    }));
    await t.txlog!.drained();
    await waitUntil(() => t.txlog!.counters.segmentsDeleted > 10, 'segments deleted', 5000);
    await waitUntil(() => got(prefix).length === 320, 'all 320 messages', 10_000);
    await t.stop();
    tmm = undefined;
    expect((await segmentFiles(dirs[0])).length).toBeLessThanOrEqual(2);
    const t2 = await startTmm(dirs, { segmentBytes: 4096, inDoubtAfterMs: 30_000 });
    await t2.txlog!.drained();
    await sleep(300);
    expect(got(prefix)).toEqual(await rows(prefix));
    expect([...received.entries()].filter(([k, c]) => k.startsWith(prefix) && c > 1)).toEqual([]);
  });
});
