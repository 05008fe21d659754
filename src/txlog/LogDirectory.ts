import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { decodeFrames } from './frame';

const SEGMENT = /^segment-(\d{20})\.log$/;

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
 * in this process (a failed fsync may have dropped dirty pages: the file cannot be trusted); it is
 * rewritten from the other copy at the next start.
 */
export class LogDirectory {
  failed: Error | undefined;
  private segments: Segment[] = [];
  private handle: fs.FileHandle | undefined;
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
      if (validBytes !== data.length) damaged = true;
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
    this.handle = await fs.open(join(this.path, last.name), 'a');
  }

  /** Appends frames (already encoded, `count` records starting at `firstLsn`) and datasyncs. Rolls first when the segment is full. */
  async append(frames: Buffer, firstLsn: number, count: number, beforeSync?: () => void): Promise<void> {
    if (this.failed) throw this.failed;
    try {
      const last = this.segments[this.segments.length - 1];
      if (!this.handle || !last || (last.bytes >= this.segmentBytes && last.count > 0)) await this.newSegment(firstLsn);
      const seg = this.segments[this.segments.length - 1];
      await this.handle!.write(frames);
      seg.bytes += frames.length;
      seg.count += count;
      beforeSync?.();
      this.syncs++;
      await this.handle!.datasync();
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

  get segmentCount(): number {
    return this.segments.length;
  }

  fail(e: unknown): void {
    if (this.failed) return;
    this.failed = e instanceof Error ? e : new Error(String(e));
    const h = this.handle;
    this.handle = undefined;
    void h?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close().catch(() => undefined);
  }

  private async newSegment(firstLsn: number): Promise<void> {
    await this.handle?.close();
    const name = segmentName(firstLsn);
    this.handle = await fs.open(join(this.path, name), 'a');
    this.segments.push({ firstLsn, name, count: 0, bytes: 0 });
    await fsyncDir(this.path);
  }
}
