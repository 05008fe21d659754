import { williamsOrder } from '../../bench/support/stats';

describe('williamsOrder (the benchmarks\' side order)', () => {
  it.each([2, 4, 6, 8])('for %i sides: every row a permutation, each side first once, and each follows every other exactly once', (n) => {
    const rows = Array.from({ length: n }, (_v, r) => williamsOrder(n, r));
    for (const row of rows) expect([...row].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_v, i) => i));
    expect(rows.map((row) => row[0]).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_v, i) => i));
    const pairs = new Map<string, number>();
    for (const row of rows) for (let i = 1; i < n; i++) pairs.set(`${row[i - 1]}>${row[i]}`, (pairs.get(`${row[i - 1]}>${row[i]}`) ?? 0) + 1);
    expect(pairs.size).toBe(n * (n - 1));
    expect([...pairs.values()].every((c) => c === 1)).toBe(true);
  });

  it('repeats with period n (a round number past n picks row mod n) and refuses an odd n', () => {
    expect(williamsOrder(4, 5)).toEqual(williamsOrder(4, 1));
    expect(williamsOrder(4, 0)).toEqual([0, 1, 3, 2]);
    expect(() => williamsOrder(3, 0)).toThrow(/must be even/);
  });
});
