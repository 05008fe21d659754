/**
 * The log-mode sender on real disk faults (needs root or CAP_SYS_ADMIN for mount): a log directory on a small
 * tmpfs that fills up mid-send (ENOSPC), one whose mount is made read-only mid-send, and both failing.
 * Degraded while one fails, repaired live once the disk is usable again, both copies identical afterwards
 * (read here with a frame reader of the test's own); with both failing, sends are refused and nothing is
 * half-committed. Ground truth: rows in PostgreSQL and messages at a raw amqplib consumer.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, promises as fs, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { AmqpTransport, Logger, Tmm, silentLogger } from '../../src/internal';
import { DualLog } from '../../src/txlog/DualLog';
import { readBack } from '../support/txlogFiles';
import { TransactionalMessage } from 'tmm/decorators';
import { AMQP_URL, EntryTally, waitUntil } from '../support/broker';
import { TestDatabase, createTestDatabase } from '../support/databases';
import { LedgerPosted } from '../support/contracts';
import { LedgerEntry } from '../support/entities';

jest.setTimeout(120_000);

const EXCHANGE = `tmm.txlog.disk.${process.pid}`;
let tmp: string;
let db: TestDatabase;
let tally: EntryTally;
const received = new Map<string, number>();
/** Mount points to unmount in afterAll, innermost last (unmounted in reverse). */
const mounts: string[] = [];

function mount(args: string[], target: string): void {
  try {
    execFileSync('mount', [...args, target], { stdio: 'pipe' });
  } catch (e) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? e);
    throw new Error(`this test needs root (CAP_SYS_ADMIN) to mount file systems: mount ${[...args, target].join(' ')} failed: ${stderr}`);
  }
}

function tmpfs(path: string, size: string): void {
  mkdirSync(path, { recursive: true });
  mount(['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs'], path);
  mounts.push(path);
}

/** Fills the file system holding `dir` with a filler file until ENOSPC; returns the filler's path. */
async function fill(dir: string): Promise<string> {
  const file = join(dir, 'filler.bin');
  const h = await fs.open(file, 'a');
  const chunk = Buffer.alloc(4096, 7);
  try {
    for (;;) await h.write(chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    await h.close();
  }
  return file;
}

/** The log's records as this test reads them: `[len u32 LE][crc32 u32 LE][payload]` per segment, up to the first bad or empty frame. */
function readCopy(dir: string): { segments: Record<string, string>; records: { lsn: number; payload: string }[] } {
  const segments: Record<string, string> = {};
  const records: { lsn: number; payload: string }[] = [];
  for (const name of readdirSync(dir).filter((n) => /^segment-\d{20}\.log$/.test(n)).sort()) {
    const data = readFileSync(join(dir, name));
    let at = 0;
    while (at + 8 <= data.length) {
      const len = data.readUInt32LE(at);
      if (len === 0 || at + 8 + len > data.length) break; // zeros: the preallocated space after the last record
      const payload = data.subarray(at + 8, at + 8 + len);
      if ((crc32(payload) >>> 0) !== data.readUInt32LE(at + 4)) break;
      records.push({ lsn: (JSON.parse(payload.toString()) as { lsn: number }).lsn, payload: payload.toString() });
      at += 8 + len;
    }
    segments[name] = data.subarray(0, at).toString('base64');
  }
  return { segments, records };
}

class CapturingLogger implements Logger {
  readonly lines: string[] = [];
  debug(): void {}
  info(): void {}
  warn(m: string): void {
    this.lines.push(m);
  }
  error(m: string): void {
    this.lines.push(m);
  }
  count(word: string): number {
    return this.lines.filter((l) => l.includes(word)).length;
  }
}

class Ledger {
  constructor(private readonly tmm: Tmm) {}

  @TransactionalMessage({ sender: 'log' })
  async post(id: string): Promise<void> {
    await this.tmm.transactions.getRepository(LedgerEntry).insert({ id, account: 'txlog-disk', amount: 1 });
    await this.tmm.producer.send(LedgerPosted.of(id, 1));
  }
}

let tmm: Tmm | undefined;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'tmm-txlog-disk-'));
  db = await createTestDatabase('postgres', [LedgerEntry]);
  tally = await EntryTally.open(EXCHANGE, received);
});

afterEach(async () => {
  await tmm?.stop();
  tmm = undefined;
});

afterAll(async () => {
  await tmm?.stop().catch(() => undefined);
  for (const m of mounts.reverse()) {
    try {
      execFileSync('umount', [m], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', m], { stdio: 'pipe' });
    }
  }
  await tally?.close();
  await db?.dispose();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function startTmm(dirs: string[], logger: Logger): Promise<Tmm> {
  const t = new Tmm({
    dataSource: db.dataSource,
    transport: new AmqpTransport({ url: AMQP_URL, logger }),
    logger,
    producer: { defaultExchange: EXCHANGE },
    relay: { enabled: false },
    consumers: { enabled: false },
    // Segments large enough not to roll: the comparison at the end covers every record since the start.
    txlog: { directories: dirs, segmentBytes: 1024 * 1024, analysisIntervalMs: 30, repairIntervalMs: 200 },
  });
  await t.start();
  tmm = t;
  return t;
}

async function rows(prefix: string): Promise<string[]> {
  return ((await db.dataSource.query(`SELECT id FROM test_ledger WHERE id LIKE $1`, [`${prefix}%`])) as { id: string }[]).map((r) => r.id).sort();
}
const got = (prefix: string) => [...received.keys()].filter((k) => k.startsWith(prefix)).sort();

/** Posts from `callers` concurrent callers until stop() is called; every post must succeed. */
function keepPosting(ledger: Ledger, prefix: string, callers = 4): { stop: () => Promise<number> } {
  let running = true;
  let n = 0;
  const workers = Array.from({ length: callers }, async (_, w) => {
    while (running) await ledger.post(`${prefix}${w}-${n++}`);
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return n;
    },
  };
}

/** Posts from 4 concurrent callers until stop(); a refused post is recorded with its error code (and its caller pauses 5 ms). */
function postCountingRefusals(ledger: Ledger, prefix: string): { ok: string[]; refused: { id: string; code: unknown }[]; stop: () => Promise<void> } {
  const ok: string[] = [];
  const refused: { id: string; code: unknown }[] = [];
  let running = true;
  let n = 0;
  const workers = Array.from({ length: 4 }, async (_, w) => {
    while (running) {
      const id = `${prefix}${w}-${n++}`;
      try {
        await ledger.post(id);
        ok.push(id);
      } catch (e) {
        refused.push({ id, code: (e as { code?: unknown }).code });
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  });
  return {
    ok,
    refused,
    stop: async () => {
      running = false;
      await Promise.all(workers);
    },
  };
}

/** After stop: both copies hold the same segments byte for byte, lsns consecutive; rows = messages, none twice. */
async function expectIdenticalAndComplete(dirs: string[], prefix: string, total: number): Promise<void> {
  const [a, b] = dirs.map(readCopy);
  const firstDifference = a.records.findIndex((r, i) => r.payload !== b.records[i]?.payload);
  expect({ firstDifference, a: a.records.length, b: b.records.length }).toEqual({ firstDifference: -1, a: b.records.length, b: a.records.length });
  expect(Object.keys(b.segments)).toEqual(Object.keys(a.segments));
  expect(b.segments).toEqual(a.segments); // byte for byte
  expect(a.records.length).toBeGreaterThan(0);
  a.records.forEach((r, i) => expect(r.lsn).toBe(a.records[0].lsn + i));
  expect(await rows(prefix)).toHaveLength(total);
  await waitUntil(() => got(prefix).length === total, `all ${total} messages at the raw consumer`, 20_000);
  expect(got(prefix)).toEqual(await rows(prefix));
  expect([...received.entries()].filter(([k, c]) => k.startsWith(prefix) && c > 1)).toEqual([]);
}

it('a directory whose disk fills up (ENOSPC) mid-send: degraded, nothing lost; space freed: repaired live, both copies identical', async () => {
  const disk = join(tmp, 'full');
  tmpfs(disk, '1m');
  const dirs = [join(tmp, 'full-a'), join(disk, 'log')];
  const logger = new CapturingLogger();
  const t = await startTmm(dirs, logger);
  const ledger = new Ledger(t);
  const prefix = 'full-';
  const posting = keepPosting(ledger, prefix);
  await waitUntil(() => t.txlog!.counters.sent >= 20, '20 sent before the disk fills', 20_000);
  const filler = await fill(disk);
  await waitUntil(() => t.txlog!.health().status === 'degraded', 'degraded once the disk is full', 20_000);
  expect(t.txlog!.health().directories[1]).toMatchObject({ ok: false, error: expect.stringContaining('ENOSPC') });
  const sentWhileFull = t.txlog!.counters.sent;
  await waitUntil(() => t.txlog!.counters.sent >= sentWhileFull + 20, '20 more sent on the one directory left', 20_000);
  await fs.rm(filler);
  await waitUntil(() => t.txlog!.health().status === 'ok' && t.txlog!.health().repairs >= 1, 'ok again after the live repair', 20_000);
  const sentRepaired = t.txlog!.counters.sent;
  await waitUntil(() => t.txlog!.counters.sent >= sentRepaired + 20, '20 more sent on both directories', 20_000);
  const total = await posting.stop();
  await t.txlog!.drained();
  expect(t.txlog!.health()).toMatchObject({ status: 'ok', degraded: false, directories: [{ ok: true }, { ok: true }] });
  expect(logger.count('DEGRADED')).toBeGreaterThanOrEqual(1);
  expect(logger.count('REPAIRED')).toBeGreaterThanOrEqual(1);
  await t.stop();
  tmm = undefined;
  await expectIdenticalAndComplete(dirs, prefix, total);
});

it('a directory whose mount is made read-only mid-send: degraded, nothing lost; read-write again: repaired live, both copies identical', async () => {
  const disk = join(tmp, 'ro');
  tmpfs(disk, '8m');
  const dirs = [join(tmp, 'ro-a'), join(disk, 'log')];
  const logger = new CapturingLogger();
  const t = await startTmm(dirs, logger);
  const ledger = new Ledger(t);
  const prefix = 'ro-';
  const posting = keepPosting(ledger, prefix);
  await waitUntil(() => t.txlog!.counters.sent >= 20, '20 sent before the remount', 20_000);
  // `mount -o remount,ro` of the tmpfs itself is refused (EBUSY) while the log holds a segment open for
  // writing, so the read-only switch is made on a bind mount of it at the same path: every new open there
  // gets EROFS (the next snapshot, the next segment).
  mount(['--bind', disk], disk);
  mounts.push(disk);
  mount(['-o', 'remount,ro,bind'], disk);
  await waitUntil(() => t.txlog!.health().status === 'degraded', 'degraded once the directory is read-only', 20_000);
  expect(t.txlog!.health().directories[1]).toMatchObject({ ok: false, error: expect.stringContaining('EROFS') });
  const sentWhileRo = t.txlog!.counters.sent;
  await waitUntil(() => t.txlog!.counters.sent >= sentWhileRo + 20, '20 more sent on the one directory left', 20_000);
  mount(['-o', 'remount,rw,bind'], disk);
  await waitUntil(() => t.txlog!.health().status === 'ok' && t.txlog!.health().repairs >= 1, 'ok again after the live repair', 20_000);
  const sentRepaired = t.txlog!.counters.sent;
  await waitUntil(() => t.txlog!.counters.sent >= sentRepaired + 20, '20 more sent on both directories', 20_000);
  const total = await posting.stop();
  await t.txlog!.drained();
  expect(t.txlog!.health()).toMatchObject({ status: 'ok', directories: [{ ok: true }, { ok: true }] });
  expect(logger.count('DEGRADED')).toBe(1);
  expect(logger.count('REPAIRED')).toBe(1);
  await t.stop();
  tmm = undefined;
  await expectIdenticalAndComplete(dirs, prefix, total);
});

it('both directories full: sends fail with TMM_TXLOG_UNAVAILABLE and nothing is half-committed', async () => {
  const disks = [join(tmp, 'both-1'), join(tmp, 'both-2')];
  for (const d of disks) tmpfs(d, '1m');
  const dirs = disks.map((d) => join(d, 'log'));
  const t = await startTmm(dirs, new CapturingLogger());
  const ledger = new Ledger(t);
  const prefix = 'both-';
  const { ok, refused, stop } = postCountingRefusals(ledger, prefix);
  await waitUntil(() => ok.length >= 20, '20 sends before the disks fill', 20_000);
  await Promise.all(disks.map(fill));
  await waitUntil(() => refused.length >= 10, '10 refused sends', 20_000);
  await stop();
  // Each refusal (TMM_TXLOG_UNAVAILABLE) came while no directory was live. Whether the log is still down now
  // depends on timing: a revival can cut a torn write, which frees the zeros preallocated after it, and then
  // write into that space until the disk is full again. Either way it was refused or came back, never quietly.
  const h = t.txlog!.health();
  if (h.status !== 'down') expect(h.revivals).toBeGreaterThan(0);
  expect(refused.filter((r) => r.code !== 'TMM_TXLOG_UNAVAILABLE')).toEqual([]);
  await t.txlog!.drained(); // nothing left in flight: whatever is published now has been
  const committed = await rows(prefix);
  expect(committed).toEqual([...ok].sort()); // every accepted send committed, no refused one did
  await waitUntil(() => got(prefix).length >= committed.length, 'a message for every committed row', 20_000);
  expect(got(prefix)).toEqual(committed); // and no message for a refused send
});

it('both directories full, then space freed: the log comes back without a restart (revived from the copy that failed last, the other repaired from it), nothing lost or sent twice', async () => {
  const disks = [join(tmp, 'heal-1'), join(tmp, 'heal-2')];
  for (const d of disks) tmpfs(d, '1m');
  const dirs = disks.map((d) => join(d, 'log'));
  const logger = new CapturingLogger();
  const t = await startTmm(dirs, logger);
  const ledger = new Ledger(t);
  const prefix = 'heal-';
  const { ok, refused, stop } = postCountingRefusals(ledger, prefix);
  await waitUntil(() => ok.length >= 20, '20 sends before the disks fill', 20_000);
  // The second disk fills a moment after the first: the first fails, the second carries on alone, then fails.
  const fillers = [await fill(disks[0])];
  await waitUntil(() => t.txlog!.health().status === 'degraded', 'degraded after the first disk filled', 10_000);
  const okWhileDegraded = ok.length;
  await waitUntil(() => ok.length >= okWhileDegraded + 10, '10 sends on the second directory alone', 20_000);
  fillers.push(await fill(disks[1]));
  await waitUntil(() => refused.length >= 10, '10 refused sends', 20_000);
  expect(t.txlog!.health().status).toBe('down');
  // Space again on both: within a few repair intervals the log is written again, first on the copy that
  // failed last (it holds the records acknowledged while the other was out), then on both.
  const okBeforeHeal = ok.length;
  for (const f of fillers) rmSync(f);
  await waitUntil(() => t.txlog!.health().status === 'ok', 'both directories written again', 20_000);
  await waitUntil(() => ok.length >= okBeforeHeal + 20, '20 sends after the heal', 20_000);
  await stop();
  expect(refused.filter((r) => r.code !== 'TMM_TXLOG_UNAVAILABLE')).toEqual([]);
  // At least once. A try while the disks were still full can also succeed: cutting the torn write frees a few
  // bytes. The next write then fails again, so the log may have come back more than once.
  const revivals = t.txlog!.health().revivals;
  expect(revivals).toBeGreaterThanOrEqual(1);
  expect(logger.count('REVIVED')).toBe(revivals);
  await t.txlog!.drained();
  const committed = await rows(prefix);
  expect(committed).toEqual([...ok].sort()); // every accepted send committed, no refused one did
  await waitUntil(() => got(prefix).length >= committed.length, 'a message for every committed row', 20_000);
  expect(got(prefix)).toEqual(committed);
  // A restart reads the healed copies: every record it needs is there, and it sends nothing again.
  await t.stop();
  tmm = undefined;
  const again = await startTmm(dirs, new CapturingLogger());
  await again.txlog!.drained();
  await new Promise((r) => setTimeout(r, 500));
  expect(got(prefix)).toEqual(committed);
  expect([...received.entries()].filter(([k, c]) => k.startsWith(prefix) && c > 1)).toEqual([]);
  await again.stop();
  tmm = undefined;
  await expectIdenticalAndComplete(dirs, prefix, committed.length);
});

it('a disk with room for the records but not for the preallocated zeros ahead: records are written as appends, the directory stays live', async () => {
  const disk = join(tmp, 'small');
  tmpfs(disk, '256k'); // less than one preallocation chunk (1 MiB for 64 MiB segments)
  const dirs = [join(tmp, 'small-a'), join(disk, 'log')];
  const log = new DualLog(dirs, 64 * 1024 * 1024, silentLogger);
  await log.open();
  const record = (i: number) => [Buffer.from(JSON.stringify({ type: 'sent', lsn: i, uid: `small-${i}`, at: 1 }))];
  for (let i = 0; i < 20; i++) await log.append(() => record(i));
  expect(log.health()).toMatchObject({ degraded: false, directories: [{ ok: true }, { ok: true }] });
  await log.close();
  const again = await readBack(dirs, 64 * 1024 * 1024);
  expect(again.records.map((p) => (JSON.parse(p.toString()) as { uid: string }).uid)).toEqual(Array.from({ length: 20 }, (_, i) => `small-${i}`));
  expect(again.directories.map((d) => d.repair)).toEqual(['none', 'none']);
  expect(readCopy(dirs[1]).records).toHaveLength(20);
});
