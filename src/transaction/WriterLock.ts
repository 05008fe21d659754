/**
 * A FIFO async mutex. Used to serialize SQLite write transactions: TypeORM's sqlite drivers share one
 * connection (one query runner), so two concurrent transactions would otherwise interleave on it.
 */
export class WriterLock {
  private tail: Promise<void> = Promise.resolve();
  private held = 0;

  get isHeld(): boolean {
    return this.held > 0;
  }

  async acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const previous = this.tail;
    this.tail = previous.then(() => next);
    await previous;
    this.held++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.held--;
      release();
    };
  }
}
