import { constants, write as writeFd, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { decodeFrames } from './frame';

const SEGMENT = /^segment-(\d{20})\.log$/;
/**
 * Read-write, created if missing; not O_APPEND (records are written at their offset, into preallocated space);
 * O_DSYNC: a write returns once its data is durable, as write + fdatasync would, in one system call and one
 * trip through libuv's thread pool instead of two (on this machine 330–420 → 255–265 µs of process CPU per
 * two-directory batch; ADR 0034).
 */
const WRITE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC;
/** The segment file is extended by zeros this far ahead of its records (a quarter segment at most). */
const PREALLOCATE_BYTES = 1024 * 1024;

/** Whether every byte of `data` is zero (a preallocated tail, not a torn record). */
function allZero(data: Buffer): boolean {
  for (let at = 0; at < data.length; at += 65536) {
    const part = data.subarray(at, at + 65536);
    if (!part.equals(Buffer.alloc(part.length))) return false;
  }
  return true;
}

export function segmentName(firstLsn: number): string {
  return `segment-${String(firstLsn).padStart(20, '0')}.log`;
}

/** fsync of a directory, so a created, renamed or deleted entry in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

interface Segment {
  firstLsn: number;
  name: string;
  /** Frames in the segment (valid ones, after load()). */
  count: number;
  bytes: number;
}

/** What one directory holds: the valid records from `firstLsn` on, and whether anything past them was invalid. */
export interface DirectoryContent {
  firstLsn: number;
  records: Buffer[];
  /** Bytes or segments after the valid prefix (a torn tail, a corrupt record, a gap). */
  damaged: boolean;
}

/**
 * One copy of the segmented log in one directory. Segments are `segment-<first lsn>.log`; the lsn of a
 * record is its segment's first lsn plus its position in it, so continuity between segments is checked
 * by name. After a write or sync error the directory is `failed` and is never written or synced again
 * (a failed fsync may have dropped dirty pages: the file cannot be trusted) until it is rebuilt from the
 * other copy: live (clear() then copyFrom() then rejoin(), driven by DualLog.repair()) or at the next start.
 *
 * The segment being written is **preallocated**: extended with written zeros ahead of its records (up to 1 MiB,
 * a quarter segment at most), and records are written at their offset into that space. fdatasync then has no
 * file size to make durable — on ext4 it flushes the data blocks without a journal commit, about half the time
 * and CPU of an appending one on this machine (ADR 0034). A zero tail after the valid records is the clean end
 * of a segment (a frame is never empty), not damage; close() trims it.
 */
export class LogDirectory {
  failed: Error | undefined;
  private segments: Segment[] = [];
  private handle: fs.FileHandle | undefined;
  /** Size of the file behind `handle` (records plus preallocated zeros). */
  private allocated = 0;
  /** During a live repair: bytes of each segment already copied from the other directory. */
  private readonly copied = new Map<string, number>();
  syncs = 0;

  constructor(
    readonly path: string,
    private readonly segmentBytes: number,
  ) {}

  /** Reads every segment, in lsn order, up to the first invalid frame or gap. */
  async load(): Promise<DirectoryContent> {
    await fs.mkdir(this.path, { recursive: true });
    const names = (await fs.readdir(this.path)).filter((n) => SEGMENT.test(n)).sort();
    const records: Buffer[] = [];
    let firstLsn = -1;
    let damaged = false;
    const kept: Segment[] = [];
    for (const name of names) {
      const segFirst = Number(SEGMENT.exec(name)![1]);
      if (damaged || (firstLsn >= 0 && segFirst !== firstLsn + records.length)) {
        damaged = true;
        break;
      }
      if (firstLsn < 0) firstLsn = segFirst;
      const data = await fs.readFile(join(this.path, name));
      const { frames, validBytes } = decodeFrames(data);
      for (const f of frames) records.push(Buffer.from(f.payload));
      kept.push({ firstLsn: segFirst, name, count: frames.length, bytes: validBytes });
      if (validBytes !== data.length && !allZero(data.subarray(validBytes))) damaged = true;
    }
    this.segments = kept;
    return { firstLsn: firstLsn < 0 ? 0 : firstLsn, records, damaged };
  }

  /**
   * Makes the directory hold exactly `content` (records from content.firstLsn): truncates a torn tail in place
   * when this copy is a prefix of it, else rewrites the copy as one segment. Every change is synced.
   */
  async repairTo(content: { firstLsn: number; records: Buffer[] }, own: DirectoryContent, encode: (p: Buffer) => Buffer): Promise<'none' | 'truncated' | 'rewritten'> {
    const sameStart = own.firstLsn === content.firstLsn || own.records.length === 0;
    const isPrefix = sameStart && own.records.length <= content.records.length && own.records.every((r, i) => r.equals(content.records[i]));
    if (isPrefix && own.records.length === content.records.length && !own.damaged) return 'none';
    const names = (await fs.readdir(this.path)).filter((n) => SEGMENT.test(n)).sort();
    if (isPrefix && own.records.length === content.records.length) {
      // Only a torn/corrupt tail: cut the last kept segment at its valid end, drop segments after it.
      const last = this.segments[this.segments.length - 1];
      for (const n of names) if (!this.segments.some((s) => s.name === n)) await fs.rm(join(this.path, n), { force: true });
      if (last) {
        const h = await fs.open(join(this.path, last.name), 'r+');
        try {
          await h.truncate(last.bytes);
          await h.sync();
        } finally {
          await h.close();
        }
      }
      await fsyncDir(this.path);
      return 'truncated';
    }
    // Rewrite: the new single segment first (under a temp name), then drop the old ones, then rename.
    const tmp = join(this.path, 'repair.tmp');
    const h = await fs.open(tmp, 'w');
    try {
      if (content.records.length > 0) await h.write(Buffer.concat(content.records.map(encode)));
      await h.sync();
    } finally {
      await h.close();
    }
    for (const n of names) await fs.rm(join(this.path, n), { force: true });
    const name = segmentName(content.firstLsn);
    await fs.rename(tmp, join(this.path, name));
    await fsyncDir(this.path);
    this.segments = [{ firstLsn: content.firstLsn, name, count: content.records.length, bytes: (await fs.stat(join(this.path, name))).size }];
    return 'rewritten';
  }

  /** Opens the last segment for appending (after load/repair); a new one starting at `nextLsn` when there is none. */
  async openForAppend(nextLsn: number): Promise<void> {
    const last = this.segments[this.segments.length - 1];
    if (!last) {
      await this.newSegment(nextLsn);
      return;
    }
    await this.openWriter(last.name);
  }

  /** Opens `name` for writing records at their offsets; `allocated` is its current size. */
  private async openWriter(name: string): Promise<void> {
    this.handle = await fs.open(join(this.path, name), WRITE_FLAGS);
    this.allocated = (await this.handle.stat()).size;
  }

  /**
   * Appends frames (already encoded, `count` records starting at `firstLsn`), durable when it resolves (O_DSYNC
   * writes). Rolls first when the segment is full. `beforeSync` (a test's fault point) runs once the frames are
   * handed over and before they are durable: just before their write.
   */
  async append(frames: Buffer, firstLsn: number, count: number, beforeSync?: () => void): Promise<void> {
    if (this.failed) throw this.failed;
    try {
      const last = this.segments[this.segments.length - 1];
      if (!this.handle || !last || (last.bytes >= this.segmentBytes && last.count > 0)) await this.newSegment(firstLsn);
      const seg = this.segments[this.segments.length - 1];
      const end = seg.bytes + frames.length;
      if (end > this.allocated) {
        // Zeros ahead, written (not fallocate'd: an unwritten extent would need a journal commit on first write).
        const chunk = Math.max(end - this.allocated, Math.min(PREALLOCATE_BYTES, Math.ceil(this.segmentBytes / 4)));
        try {
          await writeAll(this.handle!, Buffer.alloc(chunk), this.allocated);
          this.allocated += chunk;
        } catch (e) {
          // A disk with room for the records but not for the zeros ahead: write the records as an append would.
          if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
          this.allocated = (await this.handle!.stat()).size;
        }
      }
      beforeSync?.();
      this.syncs++;
      await writeAll(this.handle!, frames, seg.bytes);
      seg.bytes = end;
      seg.count += count;
    } catch (e) {
      this.fail(e);
      throw e;
    }
  }

  /** Checks the directory is still there (a removed directory keeps accepting writes through the open file). */
  async probe(): Promise<void> {
    if (this.failed) return;
    try {
      const st = await fs.stat(this.path);
      if (!st.isDirectory()) throw new Error(`${this.path} is no longer a directory`);
      await fs.stat(join(this.path, this.segments[this.segments.length - 1]?.name ?? '.'));
    } catch (e) {
      this.fail(e);
    }
  }

  /** Deletes segments whose every record is below `lsn` (never the one being written). */
  async deleteBelow(lsn: number): Promise<number> {
    if (this.failed) return 0;
    let deleted = 0;
    try {
      while (this.segments.length > 1 && this.segments[1].firstLsn <= lsn) {
        const s = this.segments.shift()!;
        await fs.rm(join(this.path, s.name), { force: true });
        deleted++;
      }
      if (deleted > 0) await fsyncDir(this.path);
    } catch (e) {
      this.fail(e);
    }
    return deleted;
  }

  /**
   * Live repair, step 1: forgets this copy (its files are not trusted) and unlinks its segments, so what
   * copyFrom() writes goes to fresh files (new inodes, never the file whose sync failed).
   */
  async clear(): Promise<void> {
    await this.close();
    this.copied.clear();
    // Never re-created here: a missing directory may be an unmounted disk, and a copy on the disk below the
    // mount point would not be a second disk. The operator re-creates it; the next repair fills it.
    const st = await fs.stat(this.path).catch((e: NodeJS.ErrnoException) => {
      throw new Error(`${this.path} is missing (${e.code}): re-create it on its disk to have it repaired`);
    });
    if (!st.isDirectory()) throw new Error(`${this.path} is not a directory`);
    for (const n of await fs.readdir(this.path)) if (SEGMENT.test(n) || n.endsWith('.tmp')) await fs.rm(join(this.path, n), { force: true });
    this.segments = [];
  }

  /**
   * Live repair, step 2 (repeatable): makes this copy's segments byte-identical to `source`'s valid
   * written bytes, copying only what is not copied yet, then syncs every file it touched and the directory.
   * The source's segments must not be deleted between calls (DualLog serializes deleteBelow with repair).
   */
  async copyFrom(source: LogDirectory): Promise<void> {
    let touched = false;
    for (const s of source.segments) {
      const done = this.copied.get(s.name) ?? 0;
      const end = s.bytes; // the source may append while this copies: copy up to what it had now
      if (end <= done) continue;
      const src = await fs.open(join(source.path, s.name), 'r');
      let data: Buffer;
      try {
        data = Buffer.alloc(end - done);
        let at = 0;
        while (at < data.length) {
          const { bytesRead } = await src.read(data, at, data.length - at, done + at);
          if (bytesRead === 0) throw new Error(`${join(source.path, s.name)} is shorter than its ${end} written bytes`);
          at += bytesRead;
        }
      } finally {
        await src.close();
      }
      const dst = await fs.open(join(this.path, s.name), 'a');
      try {
        await writeAll(dst, data);
        await dst.sync();
      } finally {
        await dst.close();
      }
      this.copied.set(s.name, end);
      touched = true;
    }
    if (touched) await fsyncDir(this.path);
  }

  /** Live repair, step 3: this copy now equals `source` (copyFrom() under the append lock): trusted and written again. */
  async rejoin(source: LogDirectory): Promise<void> {
    this.segments = source.segments.map((s) => ({ ...s }));
    this.copied.clear();
    const last = this.segments[this.segments.length - 1];
    if (last) await this.openWriter(last.name);
    this.failed = undefined;
  }

  /** After DualLog.revive() reloaded and reopened this copy from its own files: written again. */
  rejoined(): void {
    this.copied.clear();
    this.failed = undefined;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  fail(e: unknown): void {
    if (this.failed) return;
    // An error from another realm (a vm context, jest) is not `instanceof Error` but still carries its `code`.
    this.failed = e instanceof Error ? e : Object.assign(new Error(typeof (e as Error | undefined)?.message === 'string' ? (e as Error).message : String(e)), { code: (e as NodeJS.ErrnoException | undefined)?.code });
    const h = this.handle;
    this.handle = undefined;
    void h?.close().catch(() => undefined);
  }

  /** Closes the segment being written, trimmed to its records (no sync needed: either length reads the same). */
  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    const last = this.segments[this.segments.length - 1];
    if (h && last && !this.failed && this.allocated > last.bytes) await h.truncate(last.bytes).catch(() => undefined);
    await h?.close().catch(() => undefined);
  }

  private async newSegment(firstLsn: number): Promise<void> {
    await this.close(); // the full segment trimmed to its records
    const name = segmentName(firstLsn);
    await this.openWriter(name);
    this.segments.push({ firstLsn, name, count: 0, bytes: 0 });
    await fsyncDir(this.path);
  }
}

/**
 * write() may write less than asked (a filling disk): loop until done, so a short write becomes ENOSPC, never a
 * lost tail. At `position` when given (a segment's own offsets), else at the file's end (O_APPEND handles).
 * Through fs.write on the handle's descriptor with a callback: one promise per call, and about half the
 * main-thread time of FileHandle.write per system call (bench:log-producer, 4 KiB O_DSYNC writes).
 */
function writeAll(h: fs.FileHandle, data: Buffer, position?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const fd = h.fd;
    let at = 0;
    const next = (): void => {
      writeFd(fd, data, at, data.length - at, position === undefined ? null : position + at, (e, bytesWritten) => {
        if (e) return reject(e);
        if (bytesWritten === 0) return reject(new Error('write wrote nothing'));
        at += bytesWritten;
        if (at < data.length) next();
        else resolve();
      });
    };
    next();
  });
}
