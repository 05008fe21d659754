import { JourneyStep, type JourneyRecorder } from '../journey/JourneyEvent';
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { ConsumerHeaders } from '../consumer/ConsumerHeaders';
import { TmmError } from '../errors';
import { Logger, silentLogger } from '../logging/Logger';
import { TmmHeaders } from '../message/OutboxMessage';
import { LegacyHeaders } from '../message/WireHeaders';
import type { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import type { Delivery, HeaderValue, QueueSpec, Subscription, Transport } from '../transport/Transport';
import type { NewDeadLetter } from './DeadLetter';
import type { DeadLetterStore } from './DeadLetterStore';
import { type FingerprintFunction, errorFingerprint } from './errorFingerprint';

/** A dead-letter queue to collect from, and what the collector knows about the consumer it belongs to. */
export interface DeadLetterSource {
  /** Declared exactly as its consumer declares it (a different spec is a TopologyError). */
  queue: QueueSpec;
  /** The consumer's work queue, when known (where resends go). */
  consumerQueue?: string;
  /** `Class.method`, when known. */
  consumer?: string;
}

export interface DeadLetterCollectorOptions {
  /** Unsettled dead letters per queue. */
  prefetch: number;
  /** After a failed store, wait this long before giving the message back to its queue (no hot loop). */
  retryDelayMs: number;
  logger: Logger;
  /** The app's grouping of dead letters; default errorFingerprint (consumer, code, normalized message). */
  fingerprint?: FingerprintFunction;
  /** Records a `collected` step per stored dead letter, with `source` (default: none). */
  journey?: { recorder: JourneyRecorder; source: string };
}

export const defaultDeadLetterCollectorOptions: DeadLetterCollectorOptions = { prefetch: 32, retryDelayMs: 1000, logger: silentLogger };

export interface DeadLetterCollectorStats {
  stored: number;
  /** Redeliveries of dead letters already stored (acked, not stored again). */
  duplicates: number;
  /** Store failures: the message went back to its queue. */
  failed: number;
}

/**
 * Moves dead letters from the broker into tmm_dead_letter. Subscribes to each source queue through the
 * Transport; for each message it inserts a row in its own transaction and acks only after that commit,
 * so a crash at any point loses nothing (before the commit: the broker redelivers; after it but before
 * the ack: the redelivery finds the row by (message id, queue) and is acked without a second row). A
 * failed insert nacks the message back to its queue after `retryDelayMs`.
 *
 * Reads the consumer side's headers (ConsumerHeaders: error, code, stack, attempts, consumer, original
 * route, first/last failure) and, for messages the broker dead-lettered itself (TTL expired: nobody
 * consumed it in time; rejected), its x-death headers.
 */
export class DeadLetterCollector {
  readonly stats: DeadLetterCollectorStats = { stored: 0, duplicates: 0, failed: 0 };
  private readonly options: DeadLetterCollectorOptions;
  private subscriptions: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private stopping = false;
  /** Called after each stored dead letter (metrics, tests). */
  onStored: (letter: NewDeadLetter & { id: string }) => void = () => undefined;

  constructor(
    private readonly transport: Transport,
    private readonly transactions: TypeOrmTransactionManager,
    private readonly store: DeadLetterStore,
    options: Partial<DeadLetterCollectorOptions> = {},
  ) {
    this.options = { ...defaultDeadLetterCollectorOptions, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
  }

  get queues(): string[] {
    return this.sources.map((s) => s.queue.name);
  }

  private sources: DeadLetterSource[] = [];

  async start(sources: DeadLetterSource[]): Promise<void> {
    if (this.subscriptions.length > 0) throw new TmmError('TMM_COLLECTOR_STARTED', 'the dead-letter collector is already started');
    this.stopping = false;
    const unique = new Map<string, DeadLetterSource>();
    for (const s of sources) if (!unique.has(s.queue.name)) unique.set(s.queue.name, s);
    this.sources = [...unique.values()];
    try {
      for (const source of this.sources) {
        this.subscriptions.push(
          await this.transport.subscribe({ queue: source.queue, prefetch: this.options.prefetch }, (d) => this.track(this.collect(source, d))),
        );
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.options.logger.info('dead-letter collector started', { queues: this.queues });
  }

  /** Stops taking dead letters and waits for those being stored. */
  async stop(): Promise<void> {
    this.stopping = true;
    const subs = this.subscriptions.splice(0);
    await Promise.all(subs.map((s) => s.cancel().catch(() => undefined)));
    await Promise.all([...this.inFlight]);
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
    return p;
  }

  private async collect(source: DeadLetterSource, delivery: Delivery): Promise<void> {
    if (this.stopping) {
      await delivery.nack({ requeue: true });
      return;
    }
    let letter: NewDeadLetter;
    try {
      letter = toDeadLetter(delivery, source, Date.now(), this.options.fingerprint, this.options.logger);
      const { id, inserted } = await this.transactions.run(() => this.store.add(this.transactions.manager, letter), { name: 'tmm.deadletter.collect' });
      if (inserted) {
        this.stats.stored++;
        this.options.logger.info('dead letter stored', { id, messageId: letter.messageId, queue: source.queue.name, consumer: letter.consumer, reason: letter.reason });
        this.onStored({ ...letter, id });
        const j = this.options.journey;
        if (j?.recorder.enabled) {
          j.recorder.record({ messageId: letter.messageId, step: JourneyStep.Collected, at: Date.now(), source: j.source, attempt: letter.attempts, outcome: letter.reason, detail: `dead letter ${id} stored from ${source.queue.name}` });
        }
      } else {
        this.stats.duplicates++;
      }
    } catch (e) {
      this.stats.failed++;
      this.options.logger.error('could not store a dead letter; it goes back to its queue', {
        queue: source.queue.name,
        messageId: delivery.message.id,
        error: e instanceof Error ? e.message : String(e),
      });
      await new Promise((r) => setTimeout(r, this.options.retryDelayMs).unref?.());
      await delivery.nack({ requeue: true });
      return;
    }
    // Only now, after the commit.
    await delivery.ack();
  }
}

/** A message from a dead-letter queue → the row to store. */
export function toDeadLetter(delivery: Delivery, source: DeadLetterSource, now: number, fingerprint?: FingerprintFunction, logger: Logger = silentLogger): NewDeadLetter {
  const m = delivery.message;
  const h = m.headers;
  // Header texts go into text columns: a NUL (which PostgreSQL text refuses) is written as the two characters `\0`.
  const str = (v: HeaderValue | undefined): string | undefined => (typeof v === 'string' && v.length > 0 ? v.replace(/\u0000/g, '\\0') : undefined);
  const int = (v: HeaderValue | undefined): number | undefined => {
    const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
    return Number.isFinite(n) ? Math.floor(n) : undefined;
  };
  const time = (v: HeaderValue | undefined): number | undefined => {
    const t = typeof v === 'string' ? Date.parse(v) : typeof v === 'number' ? v : NaN;
    return Number.isFinite(t) ? t : undefined;
  };
  const death = firstDeath(h['x-death']);
  const brokerReason = str(h['x-first-death-reason']) ?? death?.reason;
  const deathQueue = str(h['x-first-death-queue']) ?? death?.queue;
  const consumerQueue = str(h[ConsumerHeaders.consumerQueue]) ?? source.consumerQueue ?? deathQueue ?? null;
  const consumer = str(h[ConsumerHeaders.consumer]) ?? source.consumer ?? null;
  const originalExchange = str(h[ConsumerHeaders.originalExchange]) ?? str(h['x-first-death-exchange']) ?? death?.exchange ?? m.exchange;
  const originalRoutingKey = str(h[ConsumerHeaders.originalRoutingKey]) ?? death?.routingKey ?? m.routingKey;
  const reason = str(h[ConsumerHeaders.deadLetterReason]) ?? brokerReason ?? 'unknown';
  const errorCode = str(h[ConsumerHeaders.errorCode]) ?? (brokerReason ? `broker:${brokerReason}` : null);
  const errorMessage =
    str(h[ConsumerHeaders.errorMessage]) ??
    (brokerReason === 'expired'
      ? `not consumed within the message TTL of queue "${deathQueue ?? '?'}"`
      : brokerReason
        ? `dead-lettered by the broker (${brokerReason}) from queue "${deathQueue ?? '?'}"`
        : 'dead-lettered without a reason');
  // Text only when it round-trips: valid UTF-8 without NUL (PostgreSQL text refuses 0x00); otherwise the exact bytes in base64.
  const asText = isUtf8(m.body) && !m.body.includes(0);
  const body = asText ? m.body.toString('utf8') : m.body.toString('base64');
  const rawId = m.id || `sha256:${createHash('sha256').update(m.body).update(JSON.stringify(h)).digest('hex').slice(0, 48)}`;
  const messageId = rawId.includes('\u0000') ? `base64:${Buffer.from(rawId, 'utf8').toString('base64')}` : rawId;
  const last = time(h[ConsumerHeaders.lastFailureAt]) ?? death?.time ?? now;
  const topic = str(h[TmmHeaders.topic]) ?? originalRoutingKey;
  return {
    messageId,
    deadLetterQueue: delivery.queue,
    queue: consumerQueue,
    consumer,
    topic,
    originalExchange,
    originalRoutingKey,
    payload: body,
    payloadEncoding: asText ? 'utf8' : 'base64',
    headers: h,
    contentType: m.contentType || 'application/octet-stream',
    reason,
    errorCode,
    errorMessage,
    errorStack: str(h[ConsumerHeaders.errorStack]) ?? null,
    fingerprint: fingerprintOf(fingerprint, { consumer, errorCode, errorMessage, topic, headers: h }, logger),
    attempts: int(h[ConsumerHeaders.attempt]) ?? int(h[LegacyHeaders.consumeAttempts]) ?? (brokerReason === 'expired' ? 0 : 1),
    firstFailureAt: time(h[ConsumerHeaders.firstFailureAt]) ?? last,
    lastFailureAt: last,
    messageCreatedAt: m.timestamp ? m.timestamp : null,
    receivedAt: now,
  };
}

/** The latest entry (RabbitMQ puts it first) of the x-death header (JSON text through the transport), if readable. */
function firstDeath(v: HeaderValue | undefined): { queue?: string; reason?: string; exchange?: string; routingKey?: string; time?: number } | undefined {
  if (typeof v !== 'string') return undefined;
  try {
    const parsed = JSON.parse(v) as unknown;
    const first = (Array.isArray(parsed) ? parsed[0] : parsed) as Record<string, unknown> | undefined;
    if (!first || typeof first !== 'object') return undefined;
    const keys = first['routing-keys'];
    const t = first.time as unknown;
    const time =
      typeof t === 'number' ? t * 1000 : t && typeof t === 'object' && typeof (t as { value?: unknown }).value === 'number' ? (t as { value: number }).value * 1000 : undefined;
    return {
      queue: typeof first.queue === 'string' ? first.queue : undefined,
      reason: typeof first.reason === 'string' ? first.reason : undefined,
      exchange: typeof first.exchange === 'string' ? first.exchange : undefined,
      routingKey: Array.isArray(keys) && typeof keys[0] === 'string' ? keys[0] : undefined,
      time,
    };
  } catch {
    return undefined;
  }
}

/** The app's fingerprint when it gives a usable one, else tmm's (a broken function must not lose the letter). */
function fingerprintOf(fn: FingerprintFunction | undefined, input: Parameters<FingerprintFunction>[0], logger: Logger): string {
  const fallback = errorFingerprint(input.consumer, input.errorCode, input.errorMessage);
  if (!fn) return fallback;
  try {
    const v = fn(input);
    if (typeof v === 'string' && v.length >= 1 && v.length <= 64) return v;
    logger.warn('the fingerprint function returned no 1–64 character string; tmm\'s fingerprint is used', { got: typeof v === 'string' ? `${v.length} characters` : typeof v });
  } catch (e) {
    logger.warn('the fingerprint function threw; tmm\'s fingerprint is used', { error: (e as Error)?.message ?? String(e) });
  }
  return fallback;
}
