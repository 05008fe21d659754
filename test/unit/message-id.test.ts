/**
 * The pooled UUIDv7 generator for message ids (src/message/messageId.ts): RFC 9562 layout, strict order
 * within a millisecond and across small clock steps back, uniqueness, the random pool's refills.
 */
import { UUID } from 'uuidv7';
import { UuidV7Generator, newMessageId } from '../../src/internal';

const FORMAT = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The 48-bit timestamp of an id (ms). */
const tsOf = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

/** A clock that returns what the test sets. */
function manualClock(start: number) {
  const clock = { ms: start, now: () => clock.ms };
  return clock;
}

describe('UuidV7Generator', () => {
  it('lays an id out as RFC 9562 version 7, variant 10, with the clock in the first 48 bits', () => {
    const clock = manualClock(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    const gen = new UuidV7Generator(clock.now);
    for (let i = 0; i < 1000; i++) {
      const id = gen.next();
      expect(id).toMatch(FORMAT);
      // The uuidv7 package reads it back as the same version and variant.
      const parsed = UUID.parse(id);
      expect(parsed.getVariant()).toBe('VAR_10');
      expect(parsed.getVersion()).toBe(7);
      expect(parsed.toString()).toBe(id);
      expect(tsOf(id)).toBe(clock.ms);
      if (i % 100 === 99) clock.ms += 1;
    }
    // The timestamp field is zero-padded: the epoch and the largest 48-bit value.
    expect(tsOf(new UuidV7Generator(() => 0).next())).toBe(0);
    expect(new UuidV7Generator(() => 0).next().slice(0, 14)).toBe('00000000-0000-');
    expect(new UuidV7Generator(() => 2 ** 48 - 1).next().slice(0, 14)).toBe('ffffffff-ffff-');
  });

  it('writes the timestamp as toString(16) would, on both sides of the 32-bit boundary', () => {
    const values = [1, 0xff, 0x1_0000_0000 - 1, 0x1_0000_0000, 0x1_0000_0001, 0xabcd_1234_5678, 2 ** 47, 2 ** 48 - 2];
    for (let i = 0; i < 2000; i++) values.push(Math.floor(Math.random() * 2 ** 48));
    for (const ms of values) {
      const hex = ms.toString(16).padStart(12, '0');
      expect(new UuidV7Generator(() => ms).next().slice(0, 14)).toBe(`${hex.slice(0, 8)}-${hex.slice(8)}-`);
    }
  });

  it('refuses a clock value that is not a 48-bit unsigned integer of ms', () => {
    for (const bad of [-1, 1.5, 2 ** 48, Number.NaN]) {
      expect(() => new UuidV7Generator(() => bad).next()).toThrow(new RangeError('the clock must give a 48-bit unsigned integer of ms'));
    }
  });

  it('gives 100,000 ids in strictly increasing order, all distinct, on the real clock', () => {
    const gen = new UuidV7Generator();
    const ids: string[] = [];
    for (let i = 0; i < 100_000; i++) ids.push(gen.next());
    for (let i = 1; i < ids.length; i++) {
      if (!(ids[i - 1] < ids[i])) throw new Error(`id ${i} (${ids[i]}) is not above id ${i - 1} (${ids[i - 1]})`);
    }
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of [ids[0], ids[50_000], ids[99_999]]) expect(id).toMatch(FORMAT);
  });

  it('counts on within one millisecond: 100,000 ids of the same ms stay in order and distinct', () => {
    const gen = new UuidV7Generator(() => 1_700_000_000_000);
    let prev = gen.next();
    const seen = new Set([prev]);
    for (let i = 1; i < 100_000; i++) {
      const id = gen.next();
      if (!(prev < id)) throw new Error(`id ${i} (${id}) is not above ${prev}`);
      seen.add(id);
      prev = id;
    }
    expect(seen.size).toBe(100_000);
    // The counter did not overflow (a 42-bit counter from a random start): still the same ms.
    expect(tsOf(prev)).toBe(1_700_000_000_000);
  });

  it('keeps the order when the clock steps back by up to 10 s (keeping the last timestamp), starts over beyond', () => {
    const clock = manualClock(1_700_000_100_000);
    const gen = new UuidV7Generator(clock.now);
    const a = gen.next();
    clock.ms -= 5_000;
    const b = gen.next();
    expect(b > a).toBe(true);
    expect(tsOf(b)).toBe(1_700_000_100_000);
    clock.ms = 1_700_000_100_000 - 10_000; // exactly the allowance: still kept
    const c = gen.next();
    expect(c > b).toBe(true);
    expect(tsOf(c)).toBe(1_700_000_100_000);
    // The clock moves on past the last timestamp: its own time again.
    clock.ms = 1_700_000_100_001;
    const d = gen.next();
    expect(d > c).toBe(true);
    expect(tsOf(d)).toBe(1_700_000_100_001);
    // More than 10 s back: a fresh start at the new time (the order breaks, as with the uuidv7 package).
    clock.ms = 1_700_000_100_001 - 10_001;
    const e = gen.next();
    expect(tsOf(e)).toBe(1_700_000_090_000);
    expect(e < d).toBe(true);
    const f = gen.next();
    expect(f > e).toBe(true);
  });

  it('moves the timestamp on by 1 ms when the counter overflows', () => {
    // The first six random bytes all ones start the 42-bit counter at its maximum: the next id of that ms
    // overflows it; the bytes after them are zeros (the second start's counter is 0).
    const gen = new UuidV7Generator(() => 1_000, (buf) => void buf.fill(0).fill(0xff, 0, 6));
    const a = gen.next();
    expect(a).toBe('00000000-03e8-7fff-bfff-ffff00000000');
    const b = gen.next();
    expect(b).toBe('00000000-03e9-7000-8000-000000000000');
    expect(b > a).toBe(true);
    // The clock still says 1000, now 1 ms behind the ids: they keep counting at 1001.
    const c = gen.next();
    expect(c).toBe('00000000-03e9-7000-8000-000100000000');
  });

  it('draws its random bits from a pool it refills, and every id gets fresh ones', () => {
    let fills = 0;
    let n = 0;
    const gen = new UuidV7Generator(
      () => 5_000 + Math.floor(n++ / 3), // three ids per ms: counter resets and increments both draw
      (buf) => {
        fills++;
        for (let i = 0; i < buf.length; i++) buf[i] = (i * 7 + fills * 13) & 0xff;
      },
    );
    const ids = Array.from({ length: 3000 }, () => gen.next());
    // 6 bytes per counter start (1000 of them) and 4 per id (3000): 18,000 bytes, a refill per 4 KiB.
    expect(fills).toBeGreaterThanOrEqual(5);
    expect(fills).toBeLessThanOrEqual(6);
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 1; i < ids.length; i++) expect(ids[i] > ids[i - 1]).toBe(true);
  });

  it('newMessageId: the process-wide generator, increasing across calls', () => {
    const a = newMessageId();
    const b = newMessageId();
    expect(a).toMatch(FORMAT);
    expect(b > a).toBe(true);
  });
});
