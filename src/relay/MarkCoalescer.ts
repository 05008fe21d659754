import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging/Logger';
import type { OutboxStore } from '../outbox/OutboxStore';
import type { RelayObservers } from './RelayObserver';

export interface MarkCoalescerOptions {
  owner: string;
  markBatchSize: number;
  markLingerMs: number;
  deleteDelivered: boolean;
  logger: Logger;
}

/** What the coalescer marks: a confirmed row (its id, and its ordering key, which makes it urgent). */
export interface Markable {
  readonly m: { readonly id: string; readonly orderingKey: string | null };
}

/**
 * Marks confirmed rows delivered in batches: an id waits up to `markLingerMs` for others to share its
 * statement (at most `markBatchSize` per statement), unless it is urgent — an ordered row (the next row of
 * its key waits for it) or while someone hurries (`hurried`, `settle`). Ids confirmed while a statement runs
 * get a linger of their own unless a batch is already full, so the database sees few large statements.
 * A failed statement is logged (those rows are published again after their lease: a duplicate, never a
 * loss). `done(batch)` is called after each statement, whether or not it succeeded; `changed()` after
 * marking stops, so the owner can check for idleness.
 */
export class MarkCoalescer<E extends Markable> {
  private readonly toMark: E[] = [];
  private marking: Promise<void> | undefined;
  private cutLinger: (() => void) | undefined;
  /** Ordered rows waiting: the next row of their key waits for them, so they skip the linger. */
  private ordered = 0;
  /** hurried() and settle() calls in progress: they want every confirmed id marked now. */
  private hurrying = 0;

  constructor(
    private readonly store: OutboxStore,
    private readonly options: MarkCoalescerOptions,
    private readonly observers: RelayObservers,
    private readonly done: (batch: E[], marked: number) => void,
    private readonly changed: () => void,
  ) {}

  add(entry: E): void {
    this.toMark.push(entry);
    if (entry.m.orderingKey) this.ordered++;
    this.schedule();
  }

  /** Rows waiting to be marked or a statement running. */
  get busy(): boolean {
    return this.toMark.length > 0 || this.marking !== undefined;
  }

  /** Runs `fn` while every confirmed id is marked without its linger (Dispatcher.flush). */
  async hurried<T>(fn: () => Promise<T>): Promise<T> {
    this.hurrying++;
    try {
      this.cutLinger?.();
      return await fn();
    } finally {
      this.hurrying--;
    }
  }

  /** Waits until every id added so far is marked (cutting the linger short). */
  async settle(): Promise<void> {
    this.hurrying++;
    try {
      while (this.toMark.length > 0 || this.marking) {
        if (!this.marking) this.schedule();
        this.cutLinger?.();
        await this.marking;
      }
    } finally {
      this.hurrying--;
    }
  }

  private get hurry(): boolean {
    return this.hurrying > 0 || this.ordered > 0;
  }

  private schedule(): void {
    if (this.marking) {
      if (this.toMark.length >= this.options.markBatchSize || this.hurry) this.cutLinger?.();
      return;
    }
    const now = this.toMark.length >= this.options.markBatchSize || this.hurry;
    this.marking = new Promise<void>((resolve) => {
      if (now || this.options.markLingerMs <= 0) return setImmediate(resolve);
      const timer = setTimeout(resolve, this.options.markLingerMs);
      this.cutLinger = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(() => {
      this.cutLinger = undefined;
      return this.flush();
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.toMark.length > 0) {
        const batch = this.toMark.splice(0, this.options.markBatchSize);
        for (const e of batch) if (e.m.orderingKey) this.ordered--;
        // Timed only when observed: one clock read before and after the statement, not per message.
        const timed = this.observers.active;
        const started = timed ? performance.now() : 0;
        let marked = 0;
        try {
          marked = await this.store.markDelivered(
            batch.map((e) => e.m.id),
            this.options.owner,
            { deleteRows: this.options.deleteDelivered },
          );
          if (timed) this.observers.marked(batch.length, performance.now() - started);
        } catch (e) {
          // Published but not marked: the sweeper will publish these again after the lease (a duplicate, never a loss).
          this.options.logger.error('could not mark messages delivered', { count: batch.length, error: e });
        }
        this.done(batch, marked);
        if (this.toMark.length < this.options.markBatchSize && !this.hurry) break;
      }
    } finally {
      this.marking = undefined;
      if (this.toMark.length > 0) this.schedule();
      this.changed();
    }
  }
}
