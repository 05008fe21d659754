export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Runs `fn` `ops` times sequentially and returns the mean microseconds per op. */
export async function timeOps(ops: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) await fn(i);
  return Number(process.hrtime.bigint() - start) / 1000 / ops;
}

/** Nearest-rank percentile (p in 0..100) of `xs`. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/**
 * Row `row` (mod n) of a Williams design for `n` (even) sides: the orders in which n rounds run the sides so
 * that each side comes first once and follows every other side exactly once. Rotating one order instead
 * (A B C D, then B C D A, …) keeps every side's predecessor the same in every round, so whatever one side
 * leaves behind (GC debt, the database's vacuum or writeback, the broker's queues) is always charged to
 * the same other side.
 */
export function williamsOrder(n: number, row: number): number[] {
  if (n % 2 !== 0) throw new Error(`williamsOrder: n must be even, got ${n}`);
  const first: number[] = [0];
  for (let lo = 1, hi = n - 1; first.length < n; ) {
    first.push(lo++);
    if (first.length < n) first.push(hi--);
  }
  const r = ((row % n) + n) % n;
  return first.map((s) => (s + r) % n);
}
