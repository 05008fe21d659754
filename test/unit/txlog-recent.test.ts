import { pushRecent } from '../../src/collections/recent';

describe('pushRecent (the txlog latency window)', () => {
  it('keeps the last keep … 2·keep − 1 values, in order', () => {
    const list: number[] = [];
    for (let i = 1; i <= 50; i++) {
      pushRecent(list, i, 4);
      expect(list.length).toBeLessThan(8);
      expect(list.length).toBeGreaterThanOrEqual(Math.min(i, 4));
      expect(list[list.length - 1]).toBe(i);
      expect(list).toEqual(Array.from({ length: list.length }, (_v, k) => i - list.length + 1 + k));
    }
  });

  it('trims once per keep pushes, not on every push once full', () => {
    const list: number[] = [];
    let trims = 0;
    for (let i = 0; i < 1000; i++) {
      const before = list.length;
      pushRecent(list, i, 100);
      if (list.length < before + 1) trims++;
    }
    // 1000 pushes with keep 100: the list reaches 200 first after 200 pushes, then every 100 pushes.
    expect(trims).toBe(9);
  });
});
