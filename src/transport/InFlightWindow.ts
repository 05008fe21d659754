/**
 * A counting semaphore for publishes awaiting their confirm: at most `size` hold a slot, the rest wait in
 * FIFO order. A waiter gives up at its deadline (and is removed from the queue, so no slot leaks), and
 * `rejectAll` fails every waiter at once (used by close()).
 */
export class InFlightWindow {
  private used = 0;
  private readonly waiters: Array<{ grant: () => void; fail: (err: Error) => void }> = [];

  constructor(readonly size: number) {}

  /** Slots currently held. */
  get inUse(): number {
    return this.used;
  }

  /** A release function when a slot is free now and nobody waits before us; otherwise undefined. */
  tryAcquire(): (() => void) | undefined {
    if (this.used >= this.size || this.waiters.length > 0) return undefined;
    this.used++;
    return this.releaser();
  }

  /** Resolves with a release function (idempotent) once a slot is free. */
  acquire(deadline: number, onTimeout: () => Error): Promise<() => void> {
    if (this.used < this.size) {
      this.used++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          clearTimeout(timer);
          resolve(this.releaser());
        },
        fail: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(onTimeout());
      }, Math.max(0, deadline - Date.now()));
      this.waiters.push(waiter);
    });
  }

  rejectAll(err: () => Error): void {
    for (const w of this.waiters.splice(0)) w.fail(err());
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      // The slot passes straight to the next waiter, so `used` only drops when nobody is waiting.
      if (next) next.grant();
      else this.used--;
    };
  }
}
