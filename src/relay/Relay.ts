import { performance } from 'node:perf_hooks';
import { TmmError } from '../errors';
import { Logger, silentLogger } from '../logging/Logger';
import { OutboxStore } from '../outbox/OutboxStore';
import type { DispatchItem, SettledCallback } from './Dispatcher';
import { RelayLock } from './RelayLock';
import { RelayObserver, RelayObservers } from './RelayObserver';

export interface RelayOptions {
  /** Lease owner name of this process (the same as the Dispatcher's). */
  owner: string;
  /** Sleep between sweeps when the last one found less than a full batch. */
  pollIntervalMs: number;
  /** Rows claimed per sweep. */
  batchSize: number;
  /**
   * Most rows this relay holds at once (claimed, not yet marked or given back; default three batches):
   * the next batch is claimed while earlier ones publish as long as it fits. All of them should be
   * published within the lease.
   */
  maxPendingRows?: number;
  /** How long claimed rows stay reserved for this process. */
  leaseMs: number;
  /** Keep DELIVERED rows this long before the sweeper deletes them (only when rows are kept at all). */
  retentionMs: number;
  /** stop() waits at most this long for in-flight publishes and marks. */
  shutdownTimeoutMs: number;
  logger: Logger;
}

/**
 * What the Relay hands claimed rows to (the Dispatcher is the one implementation). Contract:
 * - dispatch() never throws and never waits for the broker; it calls `settled` exactly once per row, when
 *   the sink is done with it (marked delivered, failure recorded, or handed back to the sweeper).
 * - flush() resolves once nothing dispatched is queued, in flight or waiting to be marked.
 * - takeQueued() removes and returns the rows not started yet (settling them), so their leases can go back.
 * - observe() attaches an observer of the sink's mark-delivered statements; the result detaches it.
 */
export interface RelaySink {
  dispatch(rows: DispatchItem[], settled: SettledCallback): void;
  flush(): Promise<void>;
  takeQueued(): DispatchItem[];
  observe(observer: RelayObserver): () => void;
}

/** What a Relay is built with besides its store and sink. */
export interface RelayConstruction extends Partial<RelayOptions> {
  owner: string;
  /** Held while running (SQLite: one relay per database file). */
  lock?: RelayLock;
  /** Rows are kept as DELIVERED (dispatcher.deleteDelivered false): purge them past retentionMs. */
  keepDelivered?: boolean;
}

export const defaultRelayOptions: Omit<RelayOptions, 'owner'> = {
  pollIntervalMs: 1000,
  batchSize: 500,
  leaseMs: 30_000,
  retentionMs: 24 * 3600_000,
  shutdownTimeoutMs: 10_000,
  logger: silentLogger,
};

export class RelayStoppedError extends TmmError {
  constructor() {
    super('TMM_RELAY_STOPPED', 'the relay is stopped');
  }
}

/**
 * The sweeper: on start and then every `pollIntervalMs` (at once again after a full batch) it claims due
 * rows — left by a crash between commit and publish, failed publishes whose backoff has passed, rows whose
 * lease expired unconfirmed, delayed messages that came due — and hands them to the Dispatcher, which
 * publishes with confirms, marks them in batches and records failures. Several relays may share a
 * PostgreSQL or MariaDB outbox; on SQLite a RelayLock keeps it to one per database file.
 *
 * Draining a backlog is pipelined: the next batch is claimed while the previous ones publish and are
 * marked (a claim never waits for a mark), as long as the rows held stay within `maxPendingRows`; past
 * that the relay waits for rows to settle. Claimed heads of ordering keys are waited for before the next
 * partial sweep, so a key's next row is claimed as soon as its head is gone.
 */
export class Relay {
  private readonly options: RelayOptions;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private lastPurge = 0;
  /** Rows claimed and handed to the Dispatcher that it has not settled yet. */
  private pendingRows = 0;
  private readonly maxPendingRows: number;
  /** Resolves a pause early once enough rows settled for another batch to fit. */
  private roomWaiter: (() => void) | undefined;
  /** Batches with heads of ordering keys not yet settled: their successors are claimable once they are. */
  private readonly orderedBatches = new Set<Promise<void>>();
  readonly stats = { sweeps: 0, claimed: 0 };
  private readonly observers = new RelayObservers();

  private readonly lock: RelayLock | undefined;
  private readonly keepDelivered: boolean;

  constructor(
    private readonly store: OutboxStore,
    private readonly dispatcher: RelaySink,
    construction: RelayConstruction,
  ) {
    const { lock, keepDelivered, ...options } = construction;
    this.lock = lock;
    this.keepDelivered = keepDelivered ?? false;
    this.options = { ...defaultRelayOptions, ...stripUndefined(options), owner: options.owner };
    // A batch always fits when nothing is held, whatever the two settings say.
    this.maxPendingRows = Math.max(this.options.maxPendingRows ?? 3 * this.options.batchSize, this.options.batchSize);
  }

  /** Rows claimed by this relay that the Dispatcher has not settled yet. */
  get pending(): number {
    return this.pendingRows;
  }

  get isRunning(): boolean {
    return this.running;
  }

  async start(): Promise<void> {
    if (this.running) return;
    if (this.lock) await this.lock.acquire();
    this.running = true;
    this.options.logger.info('relay started', { owner: this.options.owner });
    this.loop = this.run();
  }

  /**
   * Attaches an observer of this relay's claim statements (`onClaim`) and of its Dispatcher's
   * mark-delivered statements (`onMarked`, fast-path rows included); see RelayObserver for the contract.
   * The returned function detaches it from both. Several may be attached.
   */
  observe(observer: RelayObserver): () => void {
    const fromRelay = this.observers.add(observer);
    const fromDispatcher = this.dispatcher.observe(observer);
    return () => {
      fromRelay();
      fromDispatcher();
    };
  }

  /** Sweeps now instead of at the next interval. */
  nudge(): void {
    this.wake?.();
  }

  /** Claims and publishes one batch; resolves with the number of rows claimed, once they are settled. */
  async sweepOnce(): Promise<number> {
    const { claimed, settled } = await this.claimBatch();
    await settled;
    return claimed;
  }

  /** Claims up to a batch and hands it to the Dispatcher; `settled` resolves when the Dispatcher is done with every row. */
  private async claimBatch(): Promise<{ claimed: number; settled: Promise<void> }> {
    const timed = this.observers.active;
    const started = timed ? performance.now() : 0;
    const rows = await this.store.claimDue(this.options.owner, { leaseMs: this.options.leaseMs, limit: this.options.batchSize });
    if (timed) this.observers.claimed(rows.length, performance.now() - started);
    this.stats.sweeps++;
    this.stats.claimed += rows.length;
    if (rows.length === 0) return { claimed: 0, settled: Promise.resolve() };
    let left = rows.length;
    this.pendingRows += left;
    // Fresh records from the store: flagged in place rather than copied (this runs for every row of a backlog).
    const items: DispatchItem[] = rows;
    for (const item of items) item.claimed = true;
    const settled = new Promise<void>((resolve) => {
      this.dispatcher.dispatch(
        items,
        () => {
          this.pendingRows--;
          if (this.roomWaiter && this.hasRoom()) this.roomWaiter();
          if (--left === 0) resolve();
        },
      );
    });
    if (rows.some((r) => r.orderingKey !== null)) {
      this.orderedBatches.add(settled);
      void settled.then(() => this.orderedBatches.delete(settled));
    }
    return { claimed: rows.length, settled };
  }

  private hasRoom(): boolean {
    return this.pendingRows + this.options.batchSize <= this.maxPendingRows;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let claimed = 0;
      try {
        if (this.lock) await this.lock.renew();
        if (!this.hasRoom()) {
          // Earlier batches are still publishing: wait for rows to settle (bounded, so the lock is renewed).
          await this.pause(this.options.pollIntervalMs, true);
          continue;
        }
        claimed = (await this.claimBatch()).claimed;
        await this.purge();
      } catch (e) {
        this.options.logger.error('relay sweep failed', { error: e });
      }
      if (!this.running) break;
      if (claimed < this.options.batchSize) {
        if (this.orderedBatches.size > 0) {
          // The next rows of the claimed keys become claimable as soon as a head is gone: sweep again then.
          await this.pause(this.options.leaseMs, false, Promise.race(this.orderedBatches));
        } else {
          await this.pause(this.options.pollIntervalMs);
        }
      }
    }
  }

  /** Waits up to `ms`; nudge() and stop() end it early, so do room for a batch (`forRoom`) and `until` resolving. */
  private async pause(ms: number, forRoom = false, until?: Promise<void>): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
      if (forRoom) this.roomWaiter = done;
      void until?.then(done);
    });
    this.wake = undefined;
    this.roomWaiter = undefined;
  }

  private async purge(): Promise<void> {
    if (!this.keepDelivered || Date.now() - this.lastPurge < 60_000) return;
    this.lastPurge = Date.now();
    const n = await this.store.purgeDelivered(Date.now() - this.options.retentionMs, 5000);
    if (n > 0) this.options.logger.info('purged delivered rows past retention', { count: n });
  }

  /** Stops claiming, waits (bounded) for in-flight publishes and marks, then releases the lock. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake?.();
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), this.options.shutdownTimeoutMs).unref());
    const done = (async () => {
      await this.loop;
      await this.dispatcher.flush();
    })();
    if ((await Promise.race([done, timeout])) === 'timeout') {
      // Rows not yet started go back at once; rows whose publish is in flight keep their lease until it expires.
      const queued = this.dispatcher.takeQueued();
      await this.store.releaseLeases(queued.map((m) => m.id), this.options.owner).catch(() => 0);
      this.options.logger.warn('relay stop timed out; released queued rows, in-flight ones are retried after their lease', {
        timeoutMs: this.options.shutdownTimeoutMs,
        released: queued.length,
      });
    }
    if (this.lock) await this.lock.release();
    this.options.logger.info('relay stopped', { owner: this.options.owner });
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
