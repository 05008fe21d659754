import { randomFillSync } from 'node:crypto';

/** Random bytes drawn per refill: one `randomFillSync` call per ~400 ids (10 bytes at most per id). */
const POOL_BYTES = 4096;
/** The counter's two fields: the 12 bits of `rand_a` and the top 30 bits of `rand_b` (as the `uuidv7` package lays them out). */
const HI_MAX = 0xfff;
const LO_MAX = 0x3fffffff;
/** A clock step backwards up to this many ms keeps the previous timestamp (order kept); a larger one resets. */
const ROLLBACK_ALLOWANCE_MS = 10_000;
const MAX_TIMESTAMP = 2 ** 48 - 1;

/** Two lower-case hex digits per byte value. */
const HEX: string[] = Array.from({ length: 256 }, (_v, i) => i.toString(16).padStart(2, '0'));
const HEX1 = '0123456789abcdef';

/**
 * UUID version 7 (RFC 9562) generator for message ids, laid out as the `uuidv7` package does it
 * (method 1 of RFC 9562 §6.2, a 42-bit counter seeded at random each millisecond):
 *
 *   48-bit unix_ts_ms | ver 0111 | 12-bit counter (high) | var 10 | 30-bit counter (low) | 32 random bits
 *
 * Ids of one generator are strictly increasing (as strings and as bytes): within a millisecond the counter
 * counts up from a random start; when the clock steps backwards by up to 10 s the generator keeps the last
 * timestamp and goes on counting (a counter overflow moves the timestamp on by 1 ms); a step back of more than
 * 10 s starts over at the new time, breaking the order, as `uuidv7` does. The random bits come from
 * `crypto.randomFillSync` into a pooled buffer (refilled every 4 KiB), not one `getRandomValues` call per
 * few ids, and the string is assembled from a byte → hex table with the timestamp's part kept per
 * millisecond: about a tenth of the `uuidv7` package's cost per id.
 *
 * `now` is the clock (injectable for tests); `fill` the random source (defaults to `randomFillSync`).
 */
export class UuidV7Generator {
  private readonly pool = Buffer.allocUnsafe(POOL_BYTES);
  private cursor = POOL_BYTES;
  /** Timestamp of the last id (ms), -1 before the first. */
  private last = -1;
  /**
   * The 42-bit counter as its two fields, 12 bits (`rand_a`) and 30 bits (top of `rand_b`), each a small integer:
   * one number above 2^31 made `%` a call to the C library's fmod per id.
   */
  private hi = 0;
  private lo = 0;
  /** `last` as the id's first 14 characters ("xxxxxxxx-xxxx-"). */
  private prefix = '';

  constructor(
    private readonly now: () => number = Date.now,
    private readonly fill: (buf: Buffer) => void = randomFillSync,
  ) {}

  next(): string {
    const now = this.now();
    if (!Number.isInteger(now) || now < 0 || now > MAX_TIMESTAMP) throw new RangeError('the clock must give a 48-bit unsigned integer of ms');
    if (now > this.last || now + ROLLBACK_ALLOWANCE_MS < this.last) {
      // A new millisecond, or a step back too large to keep counting from the last one: start over.
      this.start(now);
    } else if (++this.lo > LO_MAX && ((this.lo = 0), ++this.hi > HI_MAX)) {
      // Same (or a slightly earlier) millisecond: count on; on overflow borrow the next millisecond.
      this.start(this.last + 1);
    }
    if (this.cursor > POOL_BYTES - 4) this.refill();
    const p = this.pool;
    const c = this.cursor;
    this.cursor = c + 4;
    const hi = this.hi; // 12 bits
    const lo = this.lo; // 30 bits
    return (
      this.prefix +
      '7' + HEX1[hi >>> 8] + HEX[hi & 0xff] + '-' +
      HEX[0x80 | (lo >>> 24)] + HEX[(lo >>> 16) & 0xff] + '-' +
      HEX[(lo >>> 8) & 0xff] + HEX[lo & 0xff] +
      HEX[p[c]] + HEX[p[c + 1]] + HEX[p[c + 2]] + HEX[p[c + 3]]
    );
  }

  /** Timestamp `ms` with a fresh random counter (42 bits, like `uuidv7`'s). */
  private start(ms: number): void {
    if (this.cursor > POOL_BYTES - 6) this.refill();
    const p = this.pool;
    const c = this.cursor;
    this.cursor = c + 6;
    // 42 random bits: 2 of byte c, 8 of byte c + 1, 32 of the next four; the top 12 are `hi`, the rest `lo`.
    const low32 = p.readUInt32BE(c + 2);
    this.hi = ((p[c] & 0x03) << 10) | (p[c + 1] << 2) | (low32 >>> 30);
    this.lo = low32 & LO_MAX;
    if (ms !== this.last) {
      this.last = ms;
      // From the byte table, not ms.toString(16): V8 formats a number in radix 16 with one libm fmod per digit.
      const high = Math.floor(ms / 0x100000000); // the top 16 of the 48 bits
      const low = ms >>> 0; // the low 32
      this.prefix = HEX[high >>> 8] + HEX[high & 0xff] + HEX[low >>> 24] + HEX[(low >>> 16) & 0xff] + '-' + HEX[(low >>> 8) & 0xff] + HEX[low & 0xff] + '-';
    }
  }

  private refill(): void {
    this.fill(this.pool);
    this.cursor = 0;
  }
}

const shared = new UuidV7Generator();

/** A new UUIDv7 message id (the process-wide generator: ids sent by this process increase). */
export function newMessageId(): string {
  return shared.next();
}
