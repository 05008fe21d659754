import { classifyFailure, failureText } from '../errors/failureKind';
import { Fifo } from '../collections/Fifo';
import { OutboxMessage, TmmHeaders } from '../message/OutboxMessage';
import { Logger, silentLogger } from '../logging/Logger';
import type { OutboxStore } from '../outbox/OutboxStore';
import { toTransportMessage } from '../message/toTransportMessage';
import { Headers, Transport, TransportMessage } from '../transport/Transport';
import { BackoffOptions, backoffDelay, defaultBackoffOptions } from './backoff';
import { MarkCoalescer, type Markable } from './MarkCoalescer';
import { RelayObserver, RelayObservers } from './RelayObserver';
import { JourneyStep, type JourneyRecorder, noopJourneyRecorder } from '../journey/JourneyEvent';

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
  /**
   * Most rows waiting in the fast path's queue (not yet publishing). Past it, rows dispatched after their
   * commit are handed back at once (their leases released) and left to the sweeper, so an outage cannot
   * grow the queue without bound. Rows the relay claimed do not count here: relay.maxPendingRows bounds them.
   */
  maxQueuedRows: number;
  logger: Logger;
  /** Records `published` / `publish-failed` steps (default: none). */
  journey?: JourneyRecorder;
}

export const defaultDispatcherOptions: Omit<DispatcherOptions, 'owner'> = {
  concurrency: 256,
  markBatchSize: 200,
  markLingerMs: 100,
  deleteDelivered: true,
  delayHorizonMs: 60_000,
  maxAttempts: 10,
  backoff: defaultBackoffOptions,
  maxQueuedRows: 10_000,
  logger: silentLogger,
};

/**
 * A row to publish. `attempts` is how many publishes already failed (0 for a fresh row); `claimed` marks a
 * row the relay claimed as the head of its ordering key, which needs no head check; `leaseUntil` is when
 * this process's lease on the row ends (after that another relay may have taken and delivered it, so this
 * process must not publish it).
 */
export type DispatchItem = OutboxMessage & { attempts?: number; claimed?: boolean; leaseUntil?: number | null };

/** Called once per dispatched row when it is settled (see Dispatcher.dispatch). */
export type SettledCallback = (message: DispatchItem) => void;

/** A row on its way through the Dispatcher, with whoever waits for it to settle. */
interface Entry {
  readonly m: DispatchItem;
  readonly settled?: SettledCallback;
}

/**
 * What waits for its mark-delivered statement: the entry itself when someone waits for it to settle, else only
 * the id and ordering key, so a confirmed row's payload and headers are not kept alive (and copied by the
 * young-generation GC) for the linger.
 */
type MarkEntry = Entry | { readonly m: Markable['m']; readonly settled?: undefined };

export interface DispatcherStats {
  published: number;
  failed: number;
  marked: number;
  /** Ordered rows handed back to the relay because an older row of their key was still pending. */
  deferred: number;
  /** Failed publishes that were transient (spent no attempt). */
  transientFailures: number;
  /** Rows not published because this process's lease on them had passed (another relay owns them now). */
  leaseExpired: number;
  /** Rows handed back to the sweeper because the queue was full (maxQueuedRows). */
  overflowed: number;
}

// The wire form of an outbox row lives with the message (src/message): the producer needs it too.
export { toTransportMessage } from '../message/toTransportMessage';

/**
 * The fast path: publishes messages right after their transaction committed, without waiting for a poll.
 * dispatch() only enqueues (the committing caller never waits for the broker). Up to `concurrency`
 * publishes run at once; messages with the same orderingKey go one at a time, in order. Confirmed ids are
 * marked delivered in batches; a failed publish is recorded on its row (attempts, last error, next due
 * time) and its lease released, so the sweeper retries it later.
 */
export class Dispatcher {
  private readonly options: DispatcherOptions;
  private readonly queue = new Fifo<Entry>();
  private inFlight = 0;
  /** Ordering keys with a row publishing now (one at a time per key). */
  private readonly activeKeys = new Set<string>();
  /**
   * Rows of an active key, in dispatch order, waiting for it without holding a publish slot (a slot held
   * by a waiting row would stall unrelated rows behind a slow key).
   */
  private readonly keyWaiting = new Map<string, Entry[]>();
  private keyWaitingCount = 0;
  private readonly marks: MarkCoalescer<MarkEntry>;
  /** Delayed rows waiting for their in-process timer. */
  private readonly timers = new Map<NodeJS.Timeout, Entry>();
  private idleWaiters: (() => void)[] = [];
  /** Committed rows handed over by dispatchSoon(), dispatched on the next turn of the event loop. */
  private soon: { messages: DispatchItem[]; settled?: SettledCallback }[] = [];
  private stopped = false;
  readonly stats: DispatcherStats = { published: 0, failed: 0, marked: 0, deferred: 0, transientFailures: 0, leaseExpired: 0, overflowed: 0 };
  /**
   * Per route, when its current run of transient publish failures (an outage) began; reset by a confirmed
   * publish on that route. The route is the message's SET (its `tmm-set` header, stamped by SET routing) or
   * '' without one: a set whose broker is down backs off while the other sets confirm.
   */
  private readonly outageSince = new Map<string, number>();
  private readonly observers = new RelayObservers();
  private readonly journey: JourneyRecorder;

  constructor(
    private readonly transport: Transport,
    private readonly store: OutboxStore,
    options: Partial<DispatcherOptions> & { owner: string },
  ) {
    this.options = { ...defaultDispatcherOptions, ...options };
    this.journey = this.options.journey ?? noopJourneyRecorder;
    this.marks = new MarkCoalescer<MarkEntry>(
      store,
      this.options,
      this.observers,
      (batch, marked) => {
        this.stats.marked += marked;
        for (const e of batch) if (e.settled) settle(e as Entry);
      },
      () => this.checkIdle(),
    );
  }

  /**
   * Attaches an observer of the mark-delivered statements (`onMarked`; see RelayObserver for the contract);
   * the returned function detaches it. Several may be attached.
   */
  observe(observer: RelayObserver): () => void {
    return this.observers.add(observer);
  }

  /**
   * Hands committed messages to the fast path. Never throws, never waits for the broker.
   *
   * `settled`, when given, is called exactly once per message, when this process is done with it: its
   * mark-delivered statement ran (whether or not it succeeded), its failure was recorded, or it was
   * handed back (an ordered row that is not the head of its key, a row queued when stop() timed out, a
   * delayed row beyond the horizon or whose timer stop() dropped, every row dispatched after stop()).
   * The relay uses it to bound the rows it holds and to know when a key's head is gone.
   */
  dispatch(messages: DispatchItem[], settled?: SettledCallback): void {
    if (this.stopped) {
      // The rows are committed; the sweeper will publish them.
      for (const m of messages) settle({ m, settled });
      return;
    }
    const now = Date.now();
    const later: string[] = [];
    for (const m of messages) {
      const entry: Entry = { m, settled };
      const wait = m.availableAt - now;
      if (wait <= 0) {
        // Only fast-path rows count against the bound: the relay bounds what it claims itself (relay.maxPendingRows).
        if (!m.claimed && this.queue.length >= this.options.maxQueuedRows) {
          this.stats.overflowed++;
          later.push(m.id);
          settle(entry); // left to the sweeper
          continue;
        }
        this.queue.push(entry);
      } else if (wait <= this.options.delayHorizonMs) {
        const t = setTimeout(() => {
          this.timers.delete(t);
          // Timers run on the monotonic clock and can fire up to 1 ms before Date.now() reaches available_at.
          if (!this.stopped && Date.now() < m.availableAt) return this.dispatch([m], settled);
          if (!this.stopped) {
            this.queue.push(entry);
            this.pump();
          } else {
            settle(entry);
          }
        }, wait);
        t.unref();
        this.timers.set(t, entry);
      } else {
        later.push(m.id);
        settle(entry); // left to the sweeper
      }
    }
    // They were inserted leased to this process, which sets no timer for them: any sweeper may take them when due.
    if (later.length > 0) void this.releaseLeases(later);
    this.pump();
  }

  /**
   * dispatch() on the next turn of the event loop (setImmediate), so a committing caller's `await` ends
   * when COMMIT returns and the publishes overlap its next database wait. idle() and flush() count these
   * rows as pending; after stop() they are handed back like any dispatch(). Calls of one turn share one
   * dispatch, in call (commit) order.
   */
  dispatchSoon(messages: DispatchItem[], settled?: SettledCallback): void {
    if (this.soon.push({ messages, settled }) > 1) return;
    setImmediate(() => {
      const batches = this.soon;
      this.soon = [];
      for (const b of batches) this.dispatch(b.messages, b.settled);
      this.checkIdle();
    });
  }

  /** Gives up this process's lease on rows it will not publish itself; on failure they wait for the lease to expire. */
  private async releaseLeases(ids: string[]): Promise<void> {
    try {
      await this.store.releaseLeases(ids, this.options.owner);
    } catch (e) {
      this.options.logger.warn('could not release leases; the rows wait for them to expire', { count: ids.length, error: e });
    }
  }

  private pump(): void {
    while (this.inFlight < this.options.concurrency && this.queue.length > 0) {
      const entry = this.queue.shift()!;
      if (this.leaseGone(entry)) continue;
      const key = entry.m.orderingKey;
      if (key) {
        if (this.activeKeys.has(key)) {
          const waiting = this.keyWaiting.get(key);
          if (waiting) waiting.push(entry);
          else this.keyWaiting.set(key, [entry]);
          this.keyWaitingCount++;
          continue;
        }
        this.activeKeys.add(key);
        this.inFlight++;
        void this.publishOrdered(entry).then(
          () => this.keyDone(key),
          () => this.keyDone(key),
        );
        continue;
      }
      this.inFlight++;
      this.publishOne(entry); // settles its slot itself: one promise per message on this path
    }
  }

  /**
   * True (and the row settled, untouched) when this process's lease on the row has passed: another relay
   * may have claimed and delivered it meanwhile (after a long GC pause or a SIGSTOP of this process).
   */
  private leaseGone(entry: Entry): boolean {
    const until = entry.m.leaseUntil;
    if (until === undefined || until === null || Date.now() < until) return false;
    this.stats.leaseExpired++;
    this.options.logger.warn('lease passed before publishing; the row is left to whoever holds it now', { id: entry.m.id });
    settle(entry);
    return true;
  }

  /** A publish slot is free again. */
  private readonly published = (): void => {
    this.inFlight--;
    this.pump();
    this.checkIdle();
  };

  /** The row of `key` in flight settled: the key's next waiting row goes to the front of the queue, then its slot is freed. */
  private keyDone(key: string): void {
    this.activeKeys.delete(key);
    const waiting = this.keyWaiting.get(key);
    if (waiting) {
      const next = waiting.shift()!;
      this.keyWaitingCount--;
      if (waiting.length === 0) this.keyWaiting.delete(key);
      this.queue.unshift(next);
    }
    this.published();
  }

  /** An ordered row: published only once every older row of its key is gone (published or dead). */
  private async publishOrdered(entry: Entry): Promise<void> {
    const m = entry.m;
    try {
      // Otherwise it is handed back to the relay, which claims keys head first.
      if (!m.claimed) {
        await this.marks.settle(); // rows of this key we published count as gone
        if (!(await this.store.isHeadOfKey(m.id, m.orderingKey!))) {
          this.stats.deferred++;
          await this.store.releaseLeases([m.id], this.options.owner);
          settle(entry);
          return;
        }
      }
    } catch (e) {
      this.options.logger.warn('ordering check failed; left for the relay', { id: m.id, error: e });
      settle(entry);
      return;
    }
    if (this.leaseGone(entry)) return;
    const attempt = (m.attempts ?? 0) + 1;
    try {
      await this.transport.publish(toTransportMessage(m, attempt));
    } catch (e) {
      await this.recordFailure(entry, attempt, e);
      return;
    }
    this.confirmed(entry, attempt);
  }

  /** An unordered row; frees its publish slot (this.published) once confirmed or its failure recorded. */
  private publishOne(entry: Entry): void {
    const attempt = (entry.m.attempts ?? 0) + 1;
    let publishing: Promise<void>;
    try {
      publishing = this.transport.publish(toTransportMessage(entry.m, attempt));
    } catch (e) {
      publishing = Promise.reject(e); // a transport that throws instead of rejecting
    }
    publishing.then(
      () => {
        this.confirmed(entry, attempt);
        this.published();
      },
      (e: unknown) => void this.recordFailure(entry, attempt, e).then(this.published),
    );
  }

  private confirmed(entry: Entry, attempt: number): void {
    const m = entry.m;
    this.stats.published++;
    if (this.observers.active) this.observers.confirmed(m);
    if (this.outageSince.size > 0) this.outageSince.delete(outageRoute(m));
    if (this.journey.enabled) {
      this.journey.record({ messageId: m.id, step: JourneyStep.Published, at: Date.now(), source: this.options.owner, attempt, detail: `confirmed by the broker: ${m.exchange || '(default exchange)'} / ${m.routingKey}` });
    }
    this.marks.add(entry.settled ? entry : { m: { id: m.id, orderingKey: m.orderingKey } });
  }

  /**
   * Records a failed publish on its row and settles it. Never rejects. What is recorded depends on
   * classifyFailure: a transient failure (broker unreachable, connection lost, confirm timeout, transport
   * closing) spends none of the row's attempts and backs off by how long this process's outage of the message's route has lasted
   * (its SET under SET routing; since the first transient failure after the route's last confirmed publish), between backoff.initialDelayMs
   * and backoff.maxDelayMs, jittered — so retries thin out as an outage goes on, whatever the number of rows; a failure about the
   * message (unroutable, nacked) spends an attempt and makes the row DEAD when maxAttempts are spent; a
   * permanent one (the client cannot encode it) makes it DEAD at once.
   */
  private async recordFailure(entry: Entry, attempt: number, e: unknown): Promise<void> {
    const m = entry.m;
    this.stats.failed++;
    const error = failureText(e);
    const kind = classifyFailure(e);
    let dead: boolean;
    let retryAt: number;
    if (kind === 'transient') {
      this.stats.transientFailures++;
      const now = Date.now();
      const route = outageRoute(m);
      const since = this.outageSince.get(route) ?? now;
      this.outageSince.set(route, since);
      dead = false;
      retryAt = now + outageDelay(now - since, this.options.backoff);
    } else {
      dead = kind === 'permanent' || attempt >= this.options.maxAttempts;
      retryAt = Date.now() + backoffDelay(attempt, this.options.backoff);
    }
    this.options.logger.warn(dead ? 'publish failed; message is DEAD' : 'publish failed; will retry', { id: m.id, topic: m.topic, attempt, kind, error });
    if (this.journey.enabled) {
      this.journey.record({ messageId: m.id, step: JourneyStep.PublishFailed, at: Date.now(), source: this.options.owner, attempt, outcome: dead ? 'dead' : kind, detail: error });
    }
    try {
      await this.store.recordFailure(m.id, this.options.owner, { error, retryAt, dead, countAttempt: kind !== 'transient' });
    } catch (storeError) {
      // The row keeps its lease until lease_until; a relay takes it after that.
      this.options.logger.error('could not record publish failure', { id: m.id, error: storeError });
    }
    settle(entry);
  }

  /** Removes and returns what is queued but not yet started (on shutdown, so its leases can be released). */
  takeQueued(): DispatchItem[] {
    const entries = this.queue.drain();
    for (const b of this.soon.splice(0, this.soon.length)) for (const m of b.messages) entries.push({ m, settled: b.settled });
    for (const waiting of this.keyWaiting.values()) entries.push(...waiting);
    this.keyWaiting.clear();
    this.keyWaitingCount = 0;
    for (const e of entries) settle(e);
    this.checkIdle();
    return entries.map((e) => e.m);
  }

  /** Messages queued or in flight (or handed over by dispatchSoon and not yet dispatched). */
  get pending(): number {
    let soon = 0;
    for (const b of this.soon) soon += b.messages.length;
    return this.queue.length + this.keyWaitingCount + this.inFlight + soon;
  }

  /** Marks what is waiting now instead of after the linger, and resolves when the fast path is idle. */
  flush(): Promise<void> {
    return this.marks.hurried(() => this.idle());
  }

  private get busy(): boolean {
    return this.inFlight > 0 || this.queue.length > 0 || this.keyWaitingCount > 0 || this.marks.busy || this.soon.length > 0;
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

  /**
   * Stops taking work, drops delayed timers (the sweeper owns those rows) and waits for in-flight work —
   * at most `timeoutMs` when given: then rows not yet started get their leases released, and publishes
   * still in flight keep their rows leased until the transport fails them (close()) or the lease passes.
   * Resolves true when everything finished in time.
   */
  async stop(timeoutMs?: number): Promise<boolean> {
    this.stopped = true;
    const dropped = [...this.timers.values()].map((e) => e.m.id);
    for (const [t, entry] of this.timers) {
      clearTimeout(t);
      settle(entry);
    }
    this.timers.clear();
    if (dropped.length > 0) await this.releaseLeases(dropped);
    if (timeoutMs === undefined) {
      await this.flush();
      return true;
    }
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      this.flush().then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), Math.max(0, timeoutMs));
      }),
    ]);
    clearTimeout(timer);
    if (!inTime) {
      const queued = this.takeQueued();
      if (queued.length > 0) await this.releaseLeases(queued.map((m) => m.id));
      this.options.logger.warn('fast path stop timed out; queued rows released, in-flight ones are left to the sweeper', {
        timeoutMs,
        released: queued.length,
        inFlight: this.inFlight,
      });
    }
    return inTime;
  }
}

/** Retry delay during an outage that has lasted `elapsedMs`: about as long again, within [initialDelayMs, maxDelayMs], jittered. */
/** The outage a message's publish failures count towards: its SET (SET routing's `tmm-set` header), or '' without one. */
function outageRoute(m: OutboxMessage): string {
  const set = m.headers[SET_HEADER];
  return typeof set === 'string' ? set : '';
}
/** SetHeaders.set (src/transport/sets), not imported: the relay does not depend on the SET router. */
const SET_HEADER = 'tmm-set';

export function outageDelay(elapsedMs: number, o: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(o.maxDelayMs, Math.max(o.initialDelayMs, elapsedMs));
  const jitter = Math.min(1, Math.max(0, o.jitter));
  return Math.round(base * (1 - jitter) + base * jitter * random());
}

/** Tells whoever dispatched the row that this process is done with it; their error never reaches the Dispatcher. */
function settle(entry: Entry): void {
  if (!entry.settled) return;
  try {
    entry.settled(entry.m);
  } catch {
    // A settle callback must not break publishing or marking of other rows.
  }
}
