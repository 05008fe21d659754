import { EventEmitter } from 'node:events';
import { AsyncLocalContextStore, ClsHookedContextStore, ContextStore, TmmContext, newContext } from '../../src/internal';

const KEY = Symbol('test');
const ctxWith = (value: string): TmmContext => {
  const ctx = newContext();
  ctx.slots.set(KEY, value);
  return ctx;
};
const valueIn = (store: ContextStore): unknown => store.get()?.slots.get(KEY);
const tick = (ms = 1) => new Promise((r) => setTimeout(r, ms));

const adapters: [string, () => ContextStore][] = [
  ['AsyncLocalContextStore', () => new AsyncLocalContextStore()],
  ['ClsHookedContextStore', () => new ClsHookedContextStore(`tmm-test-${Math.random()}`)],
];

describe.each(adapters)('ContextStore contract: %s', (_name, make) => {
  let store: ContextStore;
  beforeEach(() => {
    store = make();
  });

  it('has no context outside run()', () => {
    expect(store.get()).toBeUndefined();
  });

  it('returns what fn returns, sync and async', async () => {
    expect(store.run(ctxWith('a'), () => 42)).toBe(42);
    await expect(store.run(ctxWith('a'), async () => 43)).resolves.toBe(43);
  });

  it('keeps the context across await, timers, setImmediate, nextTick and promise callbacks', async () => {
    const seen: unknown[] = [];
    await store.run(ctxWith('x'), async () => {
      await tick();
      seen.push(valueIn(store));
      await new Promise<void>((r) => setTimeout(() => (seen.push(valueIn(store)), r()), 2));
      await new Promise<void>((r) => setImmediate(() => (seen.push(valueIn(store)), r())));
      await new Promise<void>((r) => process.nextTick(() => (seen.push(valueIn(store)), r())));
      await Promise.resolve().then(() => seen.push(valueIn(store)));
    });
    expect(seen).toEqual(['x', 'x', 'x', 'x', 'x']);
    expect(store.get()).toBeUndefined();
  });

  it('keeps the context in event-emitter listeners registered inside run()', async () => {
    const emitter = new EventEmitter();
    const seen: unknown[] = [];
    await store.run(ctxWith('ev'), async () => {
      emitter.on('data', () => seen.push(valueIn(store)));
      await tick();
      emitter.emit('data');
      setTimeout(() => emitter.emit('data'), 1);
      await tick(5);
    });
    expect(seen).toEqual(['ev', 'ev']);
  });

  it('keeps the context in every branch of a Promise.all fan-out', async () => {
    const seen = await store.run(ctxWith('fan'), () =>
      Promise.all(
        Array.from({ length: 20 }, async (_v, i) => {
          await tick(i % 3);
          return valueIn(store);
        }),
      ),
    );
    expect(seen).toEqual(Array(20).fill('fan'));
  });

  it('lets a nested run shadow the outer context only inside, then restores it', async () => {
    await store.run(ctxWith('outer'), async () => {
      const inner = await store.run(ctxWith('inner'), async () => {
        await tick();
        return valueIn(store);
      });
      expect(inner).toBe('inner');
      await tick();
      expect(valueIn(store)).toBe('outer');
    });
  });

  it('never lets 100 concurrent requests see each other’s values', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, (_v, i) =>
        store.run(ctxWith(`req-${i}`), async () => {
          const seen: unknown[] = [];
          for (let step = 0; step < 5; step++) {
            await tick((i * 7 + step) % 4);
            seen.push(valueIn(store));
            await new Promise<void>((r) => setImmediate(r));
          }
          return seen;
        }),
      ),
    );
    results.forEach((seen, i) => expect(seen).toEqual(Array(5).fill(`req-${i}`)));
  });
});
