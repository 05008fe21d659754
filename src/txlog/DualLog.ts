import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Logger } from '../logging/Logger';
import { TxLogUnavailableError } from './errors';
import { encodeFrame } from './frame';
import { DirectoryContent, LogDirectory, fsyncDir } from './LogDirectory';

/** Copies a small state file (checkpoint, snapshot) atomically; removes the target's when the source has none. */
async function copyStateFile(from: string, to: string, name: string): Promise<void> {
  let content: Buffer;
  try {
    content = await fs.readFile(join(from, name));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    await fs.rm(join(to, name), { force: true });
    return;
  }
  await writeFileAtomically(to, name, content);
}

/**
 * Writes `dir/name` so that a crash leaves the old or the new content, never a mix: a temp file written and
 * fsynced, (`beforeRename`, a test's fault point), renamed over the target, then the directory fsynced.
 */
async function writeFileAtomically(dir: string, name: string, content: string | Buffer, beforeRename?: () => void): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  const h = await fs.open(tmp, 'w');
  try {
    await h.writeFile(content);
    await h.sync();
  } finally {
    await h.close();
  }
  beforeRename?.();
  await fs.rename(tmp, join(dir, name));
  await fsyncDir(dir);
}

const noop = (): void => undefined;

/** Points in the write path where a test may stop the process (TxLogOptions.faultHook). */
export type LogFault = 'record-written' | 'checkpoint-temp' | 'snapshot-temp';

interface Pending {
  frames: Buffer[];
  /** A lazy record (see append()): when it gets a batch of its own if none came. */
  due: number | undefined;
  firstLsn: number;
  resolve: () => void;
  reject: (e: unknown) => void;
  fault?: LogFault;
}

/** What start-up found and did. */
export interface LogRecovery {
  firstLsn: number;
  records: Buffer[];
  /** Per directory: what was repaired (`truncated` a torn tail, `rewritten` from the other copy) or why it is out. */
  directories: { path: string; repair: 'none' | 'truncated' | 'rewritten' | 'failed'; error?: string }[];
}

/**
 * The transaction log written to one or two directories (meant for two disks).
 *
 * Contract:
 * - append() resolves only after the records are written and fdatasync'ed on every directory that has not
 *   failed; concurrent appends are grouped into one write + one sync per directory (group commit). Records
 *   get consecutive lsns in call order. A lazy append (`lingerMs`) does not start a batch: it rides in the
 *   next one, or gets its own after lingerMs; it still resolves only once synced.
 * - A directory that fails a write, a sync, a probe or an atomic file write is out (its files are never
 *   written or synced again), the log is `degraded` (logged at error, counted, shown by health()); the
 *   other keeps serving. With every directory out, append() rejects with TxLogUnavailableError.
 * - repair() brings failed directories back while appends go on: fresh files there, the live copy's
 *   segments and state files copied and synced, the last bytes copied with appends held between two write
 *   batches, then dual writing again (logged at warn). No record is lost or reordered: a held append is
 *   written to both copies after the rejoin.
 * - revive() brings the log back when every directory is out, from a copy that failed in a way that leaves its
 *   files trustworthy (full, read-only, permission: the write was refused, nothing half-accepted; never after
 *   an I/O error, where the page cache may differ from the disk, nor a removed directory) and whose records
 *   reach every acknowledged one (only the copy that failed last can); its torn tail is cut, appends refused
 *   meanwhile stay refused, and it is written again (degraded until repair() copies it to the other).
 * - open() compares the copies: the longer valid prefix wins and repairs the other; torn tails are cut.
 * - writeAtomic() writes a small file in every live directory: temp file, fsync, rename, directory fsync.
 */
export class DualLog {
  readonly dirs: LogDirectory[];
  private nextLsn = 0;
  private queue: Pending[] = [];
  private flushing = false;
  /** A flush is scheduled for the next turn of the event loop (append()). */
  private flushSoon = false;
  private lazyTimer: NodeJS.Timeout | undefined;
  private lazyTimerDue = Infinity;
  /** Write batches (one sync per live directory each). */
  batches = 0;
  private degradedReported = new Set<LogDirectory>();
  /** Set while a repair holds appends (between two write batches); the flush loop waits on it. */
  private hold: Promise<void> | undefined;
  /** The write batch in progress, if any. */
  private writing: Promise<void> | undefined;
  /** Directories brought back by repair(). */
  repairs = 0;
  /** Directories brought back by revive() (every directory had failed). */
  revivals = 0;
  /** The lsn after the last acknowledged record (written on at least one directory): a revived copy must reach it. */
  private ackedEnd = 0;

  constructor(
    paths: string[],
    segmentBytes: number,
    private readonly logger: Logger,
    private readonly faultHook?: (fault: LogFault) => void,
  ) {
    this.dirs = paths.map((p) => new LogDirectory(p, segmentBytes));
  }

  async open(): Promise<LogRecovery> {
    const contents: (DirectoryContent | undefined)[] = [];
    for (const d of this.dirs) {
      try {
        contents.push(await d.load());
      } catch (e) {
        d.fail(e);
        contents.push(undefined);
      }
    }
    const end = (c: DirectoryContent | undefined) => (c ? c.firstLsn + c.records.length : -1);
    let best = -1;
    contents.forEach((c, i) => {
      if (c && (best < 0 || end(c) > end(contents[best]))) best = i;
    });
    if (best < 0) throw new TxLogUnavailableError(this.dirs.map((d) => `${d.path}: ${d.failed?.message}`).join('; '));
    const winner = contents[best]!;
    const recovery: LogRecovery = { firstLsn: winner.firstLsn, records: winner.records, directories: [] };
    for (let i = 0; i < this.dirs.length; i++) {
      const d = this.dirs[i];
      const c = contents[i];
      if (!c) {
        recovery.directories.push({ path: d.path, repair: 'failed', error: d.failed?.message });
        continue;
      }
      try {
        const repair = await d.repairTo(winner, c, encodeFrame);
        recovery.directories.push({ path: d.path, repair });
        if (repair !== 'none') this.logger.warn('tmm txlog: directory repaired at start-up', { path: d.path, repair, records: winner.records.length });
        await d.openForAppend(winner.firstLsn + winner.records.length);
      } catch (e) {
        d.fail(e);
        recovery.directories.push({ path: d.path, repair: 'failed', error: String(e) });
      }
    }
    this.nextLsn = winner.firstLsn + winner.records.length;
    this.ackedEnd = this.nextLsn; // what earlier runs wrote counts as acknowledged
    this.reportDegraded();
    if (this.live().length === 0) throw new TxLogUnavailableError(recovery.directories.map((d) => `${d.path}: ${d.error}`).join('; '));
    return recovery;
  }

  /** The lsn the next appended record gets. */
  peekLsn(): number {
    return this.nextLsn;
  }

  /**
   * Appends records built by `build(lsn)` (called synchronously, in lsn order) and resolves once they are
   * synced on every live directory.
   */
  append(build: (lsn: number) => Buffer[], fault?: LogFault, options?: { lingerMs?: number }): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const firstLsn = this.enqueue(build, options?.lingerMs, () => resolve(firstLsn), reject, fault);
    });
  }

  /**
   * append() for a record nobody waits for (a Sent record): lazy (`lingerMs`), no promise; `onError` when it could
   * not be written on any directory.
   */
  appendUnawaited(build: (lsn: number) => Buffer[], lingerMs: number, onError: (e: unknown) => void): void {
    this.enqueue(build, lingerMs, noop, onError);
  }

  /** Queues the records built by `build` under their lsns and schedules their batch; returns the first lsn. */
  private enqueue(build: (lsn: number) => Buffer[], lingerMs: number | undefined, resolve: () => void, reject: (e: unknown) => void, fault?: LogFault): number {
    const firstLsn = this.nextLsn;
    const payloads = build(firstLsn);
    this.nextLsn += payloads.length;
    const due = lingerMs ? Date.now() + lingerMs : undefined;
    this.queue.push({ frames: payloads.map(encodeFrame), due, firstLsn, resolve, reject, fault });
    // A lazy record only needs the timer re-armed when it is due before the armed one.
    if (due !== undefined) {
      if (due < this.lazyTimerDue) this.armLazy();
    } else if (!this.flushing && !this.flushSoon) {
      // Started on the next turn of the event loop, not now: the appends of this turn's I/O callbacks (other
      // transactions' answers from the database) share its write then, instead of queueing behind a batch
      // of one — fewer O_DSYNC writes under concurrency, one loop turn more at one caller.
      this.flushSoon = true;
      setImmediate(() => {
        this.flushSoon = false;
        if (!this.flushing) void this.flush(false);
      });
    }
    return firstLsn;
  }

  /** Resolves once every record appended so far is durable (lazy ones are written now instead of after their linger). */
  async settle(): Promise<void> {
    while (this.queue.length > 0 || this.flushing) {
      if (!this.flushing) void this.flush(true);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** A timer for the earliest due lazy record in the queue: it then gets a batch even if nothing else came. */
  private armLazy(): void {
    let due = Infinity;
    for (const p of this.queue) if (p.due !== undefined && p.due < due) due = p.due;
    if (due === Infinity || due >= this.lazyTimerDue) return;
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimerDue = due;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      this.lazyTimerDue = Infinity;
      if (!this.flushing) void this.flush(true);
      else this.armLazy();
    }, Math.max(0, due - Date.now()));
    this.lazyTimer.unref?.();
  }

  get degraded(): boolean {
    return this.dirs.some((d) => d.failed);
  }

  live(): LogDirectory[] {
    return this.dirs.filter((d) => !d.failed);
  }

  get syncs(): number {
    return this.dirs.reduce((n, d) => n + d.syncs, 0);
  }

  health(): { degraded: boolean; directories: { path: string; ok: boolean; error?: string; segments: number }[] } {
    return {
      degraded: this.degraded,
      directories: this.dirs.map((d) => ({ path: d.path, ok: !d.failed, error: d.failed?.message, segments: d.segmentCount })),
    };
  }

  /** Checks every live directory still exists (a removed directory keeps accepting writes through open files). */
  async probe(): Promise<void> {
    await Promise.all(this.dirs.map((d) => d.probe()));
    this.reportDegraded();
  }

  /**
   * Atomic writes, segment deletion and repair one after another: two writers of one file must not share
   * (and rename away) its temp file, and a repair copies segments and state files that must hold still.
   */
  private chain: Promise<unknown> = Promise.resolve();

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  writeAtomic(name: string, content: string, fault?: LogFault): Promise<void> {
    return this.serial(() => this.writeAtomicNow(name, content, fault));
  }

  /**
   * Tries to bring every failed directory back from a live one (see the contract); resolves with the paths
   * repaired. A directory that still cannot be written stays out (the error is logged) and is tried again
   * at the next call. State files named in `stateFiles` are copied too.
   */
  repair(stateFiles: string[]): Promise<string[]> {
    return this.serial(async () => {
      const repaired: string[] = [];
      for (const d of this.dirs.filter((x) => x.failed)) {
        const source = this.live()[0];
        if (!source) break;
        try {
          await d.clear();
          for (const name of stateFiles) await copyStateFile(source.path, d.path, name);
          await d.copyFrom(source); // the bulk, appends going on
          let release!: () => void;
          this.hold = new Promise<void>((r) => (release = r));
          try {
            await this.writing; // the batch in progress ends; the next one waits for the hold
            if (source.failed) throw new Error(`the source copy ${source.path} failed during the repair: ${source.failed.message}`);
            await d.copyFrom(source); // what was appended meanwhile
            await d.rejoin(source);
          } finally {
            this.hold = undefined;
            release();
          }
          this.degradedReported.delete(d);
          this.repairs++;
          repaired.push(d.path);
          this.logger.warn('tmm txlog: REPAIRED — a failed transaction-log directory was rebuilt from the other copy and is written again', {
            path: d.path,
            from: source.path,
            segments: d.segmentCount,
          });
        } catch (e) {
          await d.close();
          this.logger.warn('tmm txlog: repair of a failed directory did not succeed (tried again later)', { path: d.path, error: String(e), was: d.failed?.message });
        }
      }
      return repaired;
    });
  }

  /**
   * Every directory is out: brings back one whose failure left its files trustworthy (see the contract) and whose
   * records reach every acknowledged one, which only the copy that failed last can. Resolves with its path, or
   * undefined when none qualifies or it still cannot be written (tried again at the next call).
   */
  revive(): Promise<string | undefined> {
    return this.serial(async () => {
      if (this.live().length > 0) return undefined;
      for (const d of this.dirs) {
        if (!d.failed || !revivable(d.failed)) continue;
        let release!: () => void;
        this.hold = new Promise<void>((r) => (release = r));
        const was = d.failed.message;
        try {
          await this.writing;
          // Never re-created (it may be an unmounted disk's empty mount point), and it must hold every acknowledged record.
          if (!(await fs.stat(d.path).then((st) => st.isDirectory(), () => false))) throw new Error(`${d.path} is missing`);
          const own = await d.load();
          const end = own.firstLsn + own.records.length;
          if (end < this.ackedEnd) throw new Error(`its records end at lsn ${end}, but records up to ${this.ackedEnd - 1} were acknowledged`);
          await d.repairTo(own, own, encodeFrame); // a torn tail (the write that failed) is cut
          await d.openForAppend(end);
          // Appends that came while no directory was live got lsns past what is on disk: they stay refused.
          const refused = this.queue;
          this.queue = [];
          for (const p of refused) p.reject(new TxLogUnavailableError(`no transaction-log directory was writable when the record was appended (${was})`));
          this.nextLsn = end;
          d.rejoined();
          this.degradedReported.delete(d);
          this.revivals++;
          this.logger.warn('tmm txlog: REVIVED — every transaction-log directory had failed; this one is written again (still degraded until the other is repaired from it)', {
            path: d.path,
            was,
            records: own.records.length,
          });
          this.reportDegraded();
          return d.path;
        } catch (e) {
          await d.close();
          this.logger.warn('tmm txlog: revival of a failed directory did not succeed (tried again later)', { path: d.path, error: String(e), was });
        } finally {
          this.hold = undefined;
          release();
        }
      }
      return undefined;
    });
  }

  private async writeAtomicNow(name: string, content: string, fault?: LogFault): Promise<void> {
    const dirs = this.live();
    if (dirs.length === 0) throw new TxLogUnavailableError(`cannot write ${name}`);
    await Promise.all(
      dirs.map(async (d) => {
        try {
          await writeFileAtomically(d.path, name, content, fault ? () => this.faultHook?.(fault) : undefined);
        } catch (e) {
          d.fail(e);
        }
      }),
    );
    this.reportDegraded();
    if (this.live().length === 0) throw new TxLogUnavailableError(`cannot write ${name}`);
  }

  /** The newest readable copy of an atomic file among the directories, parsed; undefined when none is. */
  async readAtomic<T>(name: string, pick: (candidates: T[]) => T | undefined): Promise<T | undefined> {
    const found: T[] = [];
    for (const d of this.dirs) {
      if (d.failed) continue;
      try {
        found.push(JSON.parse(await fs.readFile(join(d.path, name), 'utf8')) as T);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn('tmm txlog: unreadable state file ignored', { path: join(d.path, name), error: String(e) });
      }
    }
    return found.length > 0 ? pick(found) : undefined;
  }

  deleteBelow(lsn: number): Promise<number> {
    return this.serial(async () => {
      let n = 0;
      for (const d of this.dirs) n += await d.deleteBelow(lsn);
      this.reportDegraded();
      return n;
    });
  }

  async close(): Promise<void> {
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimer = undefined;
    this.lazyTimerDue = Infinity;
    while (this.flushing) await new Promise((r) => setTimeout(r, 5));
    if (this.queue.length > 0) await this.flush(true);
    await Promise.all(this.dirs.map((d) => d.close()));
  }

  /** Writes batches until the queue is empty; unless `force`, stops when only lazy records are left (they wait). */
  private async flush(force: boolean): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        if (this.hold) {
          await this.hold;
          continue;
        }
        if (!force && this.queue.every((p) => p.due !== undefined)) {
          this.armLazy();
          break;
        }
        const batch = this.queue;
        this.queue = [];
        const parts: Buffer[] = [];
        let fault: LogFault | undefined;
        for (const p of batch) {
          for (const f of p.frames) parts.push(f);
          if (!fault && p.fault) fault = p.fault;
        }
        const frames = parts.length === 1 ? parts[0] : Buffer.concat(parts);
        const count = parts.length;
        const dirs = this.live();
        this.batches++;
        const written = Promise.allSettled(dirs.map((d) => d.append(frames, batch[0].firstLsn, count, fault ? () => this.faultHook?.(fault) : undefined)));
        this.writing = written.then(() => undefined);
        const results = await written;
        this.writing = undefined;
        this.reportDegraded();
        if (results.some((r) => r.status === 'fulfilled')) {
          this.ackedEnd = Math.max(this.ackedEnd, batch[0].firstLsn + count);
          for (const p of batch) p.resolve();
        } else {
          const error = new TxLogUnavailableError(
            dirs.map((d, i) => `${d.path}: ${String((results[i] as PromiseRejectedResult).reason)}`).join('; ') || 'no directory is live',
          );
          for (const p of batch) p.reject(error);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private reportDegraded(): void {
    for (const d of this.dirs) {
      if (d.failed && !this.degradedReported.has(d)) {
        this.degradedReported.add(d);
        this.logger.error('tmm txlog: DEGRADED — a transaction-log directory failed and is out until it is repaired from the other copy (live, every txlog.repairIntervalMs, or at the next start)', {
          path: d.path,
          error: d.failed.message,
          live: this.live().map((x) => x.path),
        });
      }
    }
  }
}

/**
 * Failures after which a directory's files still hold exactly what was written before: the kernel refused
 * the write (no space, read-only file system, no permission). Not an I/O error (EIO: after a failed write-back
 * the page cache may show what the disk does not have) and not a removed or replaced directory.
 */
const REVIVABLE = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM']);
function revivable(e: Error): boolean {
  return REVIVABLE.has(String((e as NodeJS.ErrnoException).code));
}
