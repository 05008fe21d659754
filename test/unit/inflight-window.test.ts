import { InFlightWindow } from '../../src/transport/InFlightWindow';

const never = () => new Error('timed out');

describe('InFlightWindow', () => {
  it('grants at most `size` slots; tryAcquire refuses when full and when anyone waits', async () => {
    const w = new InFlightWindow(2);
    const a = w.tryAcquire();
    const b = await w.acquire(Date.now() + 1000, never);
    expect(a).toBeDefined();
    expect(w.inUse).toBe(2);
    expect(w.tryAcquire()).toBeUndefined();

    const order: string[] = [];
    const waiting = w.acquire(Date.now() + 1000, never).then((release) => (order.push('waiter'), release));
    a!();
    a!(); // idempotent: a second call frees nothing
    // The freed slot went to the waiter: still full, and tryAcquire may not jump the queue.
    expect(w.inUse).toBe(2);
    expect(w.tryAcquire()).toBeUndefined();
    const c = await waiting;
    expect(order).toEqual(['waiter']);
    b();
    expect(w.inUse).toBe(1);
    const d = w.tryAcquire();
    expect(d).toBeDefined();
    expect(w.inUse).toBe(2);
    c();
    d!();
    expect(w.inUse).toBe(0);
  });

  it('a waiter gives up at its deadline without leaking a slot; rejectAll fails the rest', async () => {
    const w = new InFlightWindow(1);
    const held = w.tryAcquire()!;
    const late = w.acquire(Date.now() + 30, () => new Error('no slot in time'));
    await expect(late).rejects.toThrow('no slot in time');
    const closing = w.acquire(Date.now() + 10_000, never);
    w.rejectAll(() => new Error('closed'));
    await expect(closing).rejects.toThrow('closed');
    held();
    expect(w.inUse).toBe(0);
    expect(w.tryAcquire()).toBeDefined();
  });
});
