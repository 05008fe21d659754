import { OutboxMessage, TmmHeaders } from '../message/OutboxMessage';
import { Logger, silentLogger } from '../logging/Logger';
import { OutboxStore } from '../outbox/OutboxStore';
import { Transport, TransportMessage } from '../transport/Transport';
import { BackoffOptions, backoffDelay, defaultBackoffOptions } from './backoff';

export interface DispatcherOptions {
  /** Identity of this process in leases (lease_owner). */
  owner: string;
  /** Publishes in flight at once. */
  concurrency: number;
  /** Delivered ids are marked in batches of at most this many (one statement per batch). */
  markBatchSize: number;
  /**
   * How long a confirmed id may wait for others to share its mark-delivered statement. The row stays
   * leased by this process meanwhile, so no other relay sends it again; a crash in this window means a
   * duplicate publish after the lease, never a loss.
   */
  markLingerMs: number;
  /** Delete rows once delivered instead of keeping them as DELIVERED. */
  deleteDelivered: boolean;
  /** Delayed messages due within this horizon get an in-process timer; later ones are left to the sweeper. */
  delayHorizonMs: number;
  maxAttempts: number;
  backoff: BackoffOptions;
  logger: Logger;
}

export const defaultDispatcherOptions: Omit<DispatcherOptions, 'owner'> = {
  concurrency: 32,
  markBatchSize: 200,
  markLingerMs: 20,
  deleteDelivered: true,
  delayHorizonMs: 60_000,
  maxAttempts: 10,
  backoff: defaultBackoffOptions,
  logger: silentLogger,
};

/**
 * A row to publish. `attempts` is how many publishes already failed (0 for a fresh row); `claimed` marks a
 * row the relay claimed as the head of its ordering key, which needs no head check.
 */
export type DispatchItem = OutboxMessage & { attempts?: number; claimed?: boolean };

export interface DispatcherStats {
  published: number;
  failed: number;
  marked: number;
  /** Ordered rows handed back to the relay because an older row of their key was still pending. */
  deferred: number;
}

/** Turns an outbox message into what goes on the wire. */
export function toTransportMessage(m: OutboxMessage, attempt = 1): TransportMessage {
  return {
    id: m.id,
    exchange: m.exchange,
    routingKey: m.routingKey,
    body: Buffer.from(m.payload, 'utf8'),
    headers: { ...m.headers, [TmmHeaders.topic]: m.topic, [TmmHeaders.attempt]: attempt, ...(m.orderingKey ? { [TmmHeaders.orderingKey]: m.orderingKey } : {}) },
    contentType: 'application/json',
    timestamp: m.createdAt,
  };
}

/**
 * The fast path: publishes messages right after their transaction committed, without waiting for a poll.
 * dispatch() only enqueues (the committing caller never waits for the broker). Up to `concurrency`
 * publishes run at once; messages with the same orderingKey go one at a time, in order. Confirmed ids are
 * marked delivered in batches; a failed publish is recorded on its row (attempts, last error, next due
 * time) and its lease released, so the sweeper retries it later.
 */
export class Dispatcher {
  private readonly options: DispatcherOptions;
  private readonly queue: DispatchItem[] = [];
  private inFlight = 0;
  private readonly keyChains = new Map<string, Promise<void>>();
  private readonly toMark: string[] = [];
  private marking: Promise<void> | undefined;
  private cutLinger: (() => void) | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private idleWaiters: (() => void)[] = [];
  private stopped = false;
  readonly stats: DispatcherStats = { published: 0, failed: 0, marked: 0, deferred: 0 };

  constructor(
    private readonly transport: Transport,
    private readonly store: OutboxStore,
    options: Partial<DispatcherOptions> & { owner: string },
  ) {
    this.options = { ...defaultDispatcherOptions, ...options };
  }

  /** Hands committed messages to the fast path. Never throws, never waits for the broker. */
  dispatch(messages: DispatchItem[]): void {
    if (this.stopped) return; // the rows are committed; the sweeper will publish them
    const now = Date.now();
    for (const m of messages) {
      const wait = m.availableAt - now;
      if (wait <= 0) {
        this.queue.push(m);
      } else if (wait <= this.options.delayHorizonMs) {
        const t = setTimeout(() => {
          this.timers.delete(t);
          if (!this.stopped) {
            this.queue.push(m);
            this.pump();
          }
        }, wait);
        t.unref();
        this.timers.add(t);
      }
    }
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.options.concurrency && this.queue.length > 0) {
      const m = this.queue.shift()!;
      this.inFlight++;
      const run = m.orderingKey ? this.chain(m.orderingKey, () => this.publishOne(m)) : this.publishOne(m);
      void run.finally(() => {
        this.inFlight--;
        this.pump();
        this.checkIdle();
      });
    }
  }

  private chain(key: string, fn: () => Promise<void>): Promise<void> {
    const previous = this.keyChains.get(key) ?? Promise.resolve();
    const next = previous.then(fn);
    this.keyChains.set(key, next);
    void next.finally(() => {
      if (this.keyChains.get(key) === next) this.keyChains.delete(key);
    });
    return next;
  }

  private async publishOne(m: DispatchItem): Promise<void> {
    try {
      // An ordered row may only go when every older row of its key is gone (published or dead); otherwise
      // it is handed back to the relay, which claims keys head first.
      if (m.orderingKey && !m.claimed) await this.settleMarks(); // rows of this key we published count as gone
      if (m.orderingKey && !m.claimed && !(await this.store.isHeadOfKey(m.id, m.orderingKey))) {
        this.stats.deferred++;
        await this.store.releaseLeases([m.id], this.options.owner);
        return;
      }
    } catch (e) {
      this.options.logger.warn('ordering check failed; left for the relay', { id: m.id, error: e });
      return;
    }
    const attempt = (m.attempts ?? 0) + 1;
    try {
      await this.transport.publish(toTransportMessage(m, attempt));
      this.stats.published++;
      this.toMark.push(m.id);
      this.scheduleMark();
    } catch (e) {
      this.stats.failed++;
      const error = e instanceof Error ? `${(e as { code?: string }).code ?? e.name}: ${e.message}` : String(e);
      const dead = attempt >= this.options.maxAttempts;
      this.options.logger.warn(dead ? 'publish failed; message is DEAD' : 'publish failed; will retry', { id: m.id, topic: m.topic, attempt, error });
      try {
        await this.store.recordFailure(m.id, this.options.owner, { error, retryAt: Date.now() + backoffDelay(attempt, this.options.backoff), dead });
      } catch (storeError) {
        // The row keeps its lease until lease_until; a relay takes it after that.
        this.options.logger.error('could not record publish failure', { id: m.id, error: storeError });
      }
    }
  }

  /** Removes and returns what is queued but not yet started (on shutdown, so its leases can be released). */
  takeQueued(): DispatchItem[] {
    const items = this.queue.splice(0, this.queue.length);
    this.checkIdle();
    return items;
  }

  /** Messages queued or in flight. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  private scheduleMark(): void {
    if (this.marking) {
      if (this.toMark.length >= this.options.markBatchSize) this.cutLinger?.();
      return;
    }
    const full = this.toMark.length >= this.options.markBatchSize;
    this.marking = new Promise<void>((resolve) => {
      if (full || this.options.markLingerMs <= 0) return setImmediate(resolve);
      const timer = setTimeout(resolve, this.options.markLingerMs);
      this.cutLinger = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(() => {
      this.cutLinger = undefined;
      return this.flushMarks();
    });
  }

  /** Waits until every id published so far is marked (cutting the linger short). */
  private async settleMarks(): Promise<void> {
    while (this.toMark.length > 0 || this.marking) {
      if (!this.marking) this.scheduleMark();
      this.cutLinger?.();
      await this.marking;
    }
  }

  /** Marks what is waiting now instead of after the linger, and resolves when the fast path is idle. */
  async flush(): Promise<void> {
    this.cutLinger?.();
    await this.idle();
  }

  private async flushMarks(): Promise<void> {
    try {
      while (this.toMark.length > 0) {
        const batch = this.toMark.splice(0, this.options.markBatchSize);
        try {
          this.stats.marked += await this.store.markDelivered(batch, this.options.owner, { deleteRows: this.options.deleteDelivered });
        } catch (e) {
          // Published but not marked: the sweeper will publish these again after the lease (a duplicate, never a loss).
          this.options.logger.error('could not mark messages delivered', { count: batch.length, error: e });
        }
      }
    } finally {
      this.marking = undefined;
      this.checkIdle();
    }
  }

  private get busy(): boolean {
    return this.inFlight > 0 || this.queue.length > 0 || this.toMark.length > 0 || this.marking !== undefined;
  }

  private checkIdle(): void {
    if (this.busy) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when nothing is queued, in flight or waiting to be marked (delayed timers not counted). */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking work, drops delayed timers (the sweeper owns those rows) and waits for in-flight work. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.flush();
  }
}
