import { TmmError } from '../errors';
import { Logger, silentLogger } from '../logging/Logger';
import { OutboxStore } from '../outbox/OutboxStore';
import { Dispatcher } from './Dispatcher';
import { RelayLock } from './RelayLock';

export interface RelayOptions {
  /** Lease owner name of this process (the same as the Dispatcher's). */
  owner: string;
  /** Sleep between sweeps when the last one found less than a full batch. */
  pollIntervalMs: number;
  /** Rows claimed per sweep. */
  batchSize: number;
  /** How long claimed rows stay reserved for this process. */
  leaseMs: number;
  /** Keep DELIVERED rows this long before the sweeper deletes them (only when rows are kept at all). */
  retentionMs: number;
  /** stop() waits at most this long for in-flight publishes and marks. */
  shutdownTimeoutMs: number;
  logger: Logger;
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
 */
export class Relay {
  private readonly options: RelayOptions;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private lastPurge = 0;
  /** The last sweep claimed heads of ordering keys: their successors are claimable as soon as they settle. */
  private claimedOrdered = false;
  readonly stats = { sweeps: 0, claimed: 0 };

  constructor(
    private readonly store: OutboxStore,
    private readonly dispatcher: Dispatcher,
    options: Partial<RelayOptions> & { owner: string },
    private readonly lock?: RelayLock,
    private readonly keepDelivered = false,
  ) {
    this.options = { ...defaultRelayOptions, ...options };
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

  /** Sweeps now instead of at the next interval. */
  nudge(): void {
    this.wake?.();
  }

  /** Claims and publishes one batch; resolves with the number of rows claimed, once they are settled. */
  async sweepOnce(): Promise<number> {
    const rows = await this.store.claimDue(this.options.owner, { leaseMs: this.options.leaseMs, limit: this.options.batchSize });
    this.stats.sweeps++;
    this.stats.claimed += rows.length;
    this.claimedOrdered = rows.some((r) => r.orderingKey !== null);
    if (rows.length > 0) {
      this.dispatcher.dispatch(rows.map((r) => ({ ...r, claimed: true })));
      await this.dispatcher.flush();
    }
    return rows.length;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let claimed = 0;
      try {
        if (this.lock) await this.lock.renew();
        claimed = await this.sweepOnce();
        await this.purge();
      } catch (e) {
        this.options.logger.error('relay sweep failed', { error: e });
      }
      if (!this.running) break;
      if (claimed < this.options.batchSize && !this.claimedOrdered) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.options.pollIntervalMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
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
