import { Fifo } from '../../src/collections/Fifo';

describe('Fifo', () => {
  it('behaves as an array used as a queue (push, shift, unshift, peek, length, drain), over random operations', () => {
    const fifo = new Fifo<number>();
    const model: number[] = [];
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let next = 0;
    for (let i = 0; i < 20_000; i++) {
      const r = rand();
      if (r < 0.55) {
        fifo.push(next);
        model.push(next++);
      } else if (r < 0.95) {
        expect(fifo.shift()).toBe(model.shift());
      } else if (r < 0.99) {
        fifo.unshift(next);
        model.unshift(next++);
      } else {
        expect(fifo.drain()).toEqual(model.splice(0, model.length));
      }
      expect(fifo.length).toBe(model.length);
      expect(fifo.peek()).toBe(model[0]);
    }
  });

  it('drains a backlog of 200,000 in order, with unshifted items first', () => {
    const fifo = new Fifo<number>();
    for (let i = 0; i < 200_000; i++) fifo.push(i);
    for (let i = 0; i < 150_000; i++) expect(fifo.shift()).toBe(i);
    fifo.unshift(-1);
    expect(fifo.length).toBe(50_001);
    expect(fifo.shift()).toBe(-1);
    for (let i = 150_000; i < 200_000; i++) expect(fifo.shift()).toBe(i);
    expect(fifo.shift()).toBeUndefined();
    expect(fifo.length).toBe(0);
  });
});
