import { classifyFailure } from '../errors/failureKind';
import { Logger, silentLogger } from '../logging/Logger';
import type { JourneyEvent, JourneyRecorder } from './JourneyEvent';
import type { JourneyStore } from './JourneyStore';

export interface JourneyWriterOptions {
  /** Most events held in memory waiting to be written; past it new events are dropped and counted. */
  maxBuffered: number;
  /** Most events per write (one multi-row INSERT per 500). */
  batchSize: number;
  /** How often the writer writes what is buffered (sooner once a batch is full). */
  flushIntervalMs: number;
  /** Events older than this are deleted by the purge. */
  retentionMs: number;
  /** How often the purge runs (0: never in the background; `purge()` still works). */
  purgeIntervalMs: number;
  logger: Logger;
}

export const defaultJourneyWriterOptions: Omit<JourneyWriterOptions, 'logger'> = {
  maxBuffered: 20_000,
  batchSize: 1000,
  flushIntervalMs: 200,
  retentionMs: 7 * 24 * 3600_000,
  purgeIntervalMs: 3600_000,
};

export interface JourneyWriterStats {
  /** Events accepted into the buffer. */
  recorded: number;
  /** Events written to the store. */
  written: number;
  /** Events dropped: the buffer was full (the database slower than the traffic, or unreachable), or recorded after stop(). */
  dropped: number;
  /** Writes that failed (their events were kept for the next write while the buffer had room). */
  failedWrites: number;
  /** Events deleted by the retention purge. */
  purged: number;
}

/**
 * The journey recorder tmm uses when `journey.enabled`: record() appends to a bounded in-memory buffer (no I/O,
 * no promise, no lock on the caller's path); a background writer takes up to `batchSize` events at a time and
 * appends them to the JourneyStore, on a timer (`flushIntervalMs`) or as soon as a batch is full, one write at a
 * time. A failed write keeps its events at the front of the buffer and is tried again on the next tick (a
 * batch the database refuses for one of its values — classifyFailure says permanent — is dropped and counted).
 * When the buffer is full, record() drops the event and counts it (`stats.dropped`, tmm.health(), the
 * tmm_journey_events_dropped_total metric): recording never slows or blocks a producer, relay or consumer.
 * Every `purgeIntervalMs` it deletes events older than `retentionMs`.
 */
export class BufferedJourneyRecorder implements JourneyRecorder {
  readonly enabled = true;
  readonly stats: JourneyWriterStats = { recorded: 0, written: 0, dropped: 0, failedWrites: 0, purged: 0 };
  private readonly options: JourneyWriterOptions;
  private buffer: JourneyEvent[] = [];
  private writing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private purgeTimer: NodeJS.Timeout | undefined;
  private soon = false;
  private running = false;
  private accepting = true;
  private lastError: string | undefined;

  constructor(
    readonly store: JourneyStore,
    options: Partial<JourneyWriterOptions> = {},
  ) {
    this.options = { ...defaultJourneyWriterOptions, logger: silentLogger, ...options };
  }

  record(event: JourneyEvent): void {
    // A message without an id (a foreign one) cannot be looked up: nothing to record.
    if (!event.messageId) return;
    if (!this.accepting || this.buffer.length >= this.options.maxBuffered) {
      this.stats.dropped++;
      return;
    }
    this.stats.recorded++;
    if (this.buffer.push(event) >= this.options.batchSize && this.running && !this.soon && !this.writing) {
      this.soon = true;
      setImmediate(() => {
        this.soon = false;
        void this.flush();
      });
    }
  }

  /** Events waiting to be written. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** The last write's or purge's error, until a write succeeds again. */
  get error(): string | undefined {
    return this.lastError;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.accepting = true;
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.timer.unref();
    if (this.options.purgeIntervalMs > 0) {
      this.purgeTimer = setInterval(() => void this.purge(), this.options.purgeIntervalMs);
      this.purgeTimer.unref();
    }
  }

  /**
   * Writes what is buffered now (waits for a write under way first); resolves when that is done, whether or
   * not it succeeded (a failure is counted and logged, its events kept for the next try).
   */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.buffer.length === 0) return;
    this.writing = this.writeSome();
    try {
      await this.writing;
    } finally {
      this.writing = undefined;
    }
  }

  private async writeSome(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.options.batchSize);
      try {
        await this.store.append(batch);
      } catch (e) {
        this.stats.failedWrites++;
        const message = e instanceof Error ? e.message : String(e);
        if (this.lastError === undefined) this.options.logger.warn('journey events could not be written; kept for the next try', { events: batch.length, error: message });
        this.lastError = message;
        if (classifyFailure(e) === 'permanent') {
          // The database refuses a value of the batch: trying again cannot help, and would hold back every later event.
          this.stats.dropped += batch.length;
          this.options.logger.warn('journey events refused by the database; dropped', { events: batch.length, error: message });
          continue;
        }
        // Back to the front, as far as the bound allows; the rest is dropped and counted.
        const room = Math.max(0, this.options.maxBuffered - this.buffer.length);
        this.stats.dropped += Math.max(0, batch.length - room);
        this.buffer = batch.slice(0, room).concat(this.buffer);
        return;
      }
      this.stats.written += batch.length;
      this.lastError = undefined;
    }
  }

  /** Deletes events older than the retention (or `before`, epoch ms); resolves with how many. Never rejects. */
  async purge(before: number = Date.now() - this.options.retentionMs): Promise<number> {
    try {
      const n = await this.store.purge(before);
      this.stats.purged += n;
      return n;
    } catch (e) {
      this.options.logger.warn('journey purge failed', { error: e instanceof Error ? e.message : String(e) });
      return 0;
    }
  }

  /**
   * Stops the timers and writes what is buffered, for at most `timeoutMs` (and no retry once a write fails);
   * what is left, and events recorded after this, are dropped (counted). Resolves true when everything
   * buffered was written.
   */
  async stop(timeoutMs = 5000): Promise<boolean> {
    this.running = false;
    this.accepting = false;
    clearInterval(this.timer);
    clearInterval(this.purgeTimer);
    const deadline = Date.now() + timeoutMs;
    while (this.buffer.length > 0 && Date.now() < deadline) {
      const before = this.stats.failedWrites;
      await Promise.race([this.flush(), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
      if (this.stats.failedWrites !== before) break; // the store refuses now: no retry loop on shutdown
    }
    if (this.writing) await Promise.race([this.writing, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
    const left = this.buffer.length;
    if (left > 0) {
      this.stats.dropped += left;
      this.buffer = [];
      this.options.logger.warn('journey events not written before stop', { events: left });
    }
    return left === 0;
  }
}
