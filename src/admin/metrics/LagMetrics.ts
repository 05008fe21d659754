import { Histogram, Registry } from 'prom-client';
import type { ConsumerObserver, SettledDelivery } from '../../consumer/ConsumerObserver';
import type { OutboxMessage } from '../../message/OutboxMessage';
import type { RelayObserver } from '../../relay/RelayObserver';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** Percentiles of one topic's latency (seconds), estimated from the histogram's buckets. */
export interface LatencyPercentiles {
  topic: string;
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** A copy this process's consumer put in a retry queue, and when the queue's TTL gives it back. */
export interface RetryingMessage {
  messageId: string;
  consumer: string;
  topic: string;
  retryQueue: string;
  /** The attempt that failed; the copy comes back as attempt + 1. */
  attempt: number;
  error: string;
  retriedAt: number;
  dueAt: number;
}

/**
 * The lag metrics fed by observers: publish latency (due → broker confirm) and end-to-end latency
 * (created → handled) per topic as prom-client histograms on the given registry, and the record of
 * messages this process put in retry queues (see RetryRecord).
 */
export class LagMetrics {
  readonly relayObserver: RelayObserver;
  readonly consumerObserver: ConsumerObserver;
  readonly retries: RetryRecord;
  private readonly publish: Histogram<'topic'>;
  private readonly endToEnd: Histogram<'topic'>;

  constructor(registry: Registry, retryRecordSize = 1000) {
    this.publish = new Histogram({
      name: 'tmm_publish_latency_seconds',
      help: 'Per topic: from when an outbox row became due (created, or its delay passed) to the broker’s confirm of its publish (relay or fast path)',
      labelNames: ['topic'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.endToEnd = new Histogram({
      name: 'tmm_end_to_end_latency_seconds',
      help: 'Per topic: from the message’s creation (its timestamp: send() in the business transaction) to its successful handling by a consumer of this process',
      labelNames: ['topic'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    const retries = (this.retries = new RetryRecord(retryRecordSize));
    const publish = this.publish;
    const endToEnd = this.endToEnd;
    this.relayObserver = {
      onConfirmed(m: OutboxMessage, at: number) {
        publish.observe({ topic: m.topic }, Math.max(0, at - Math.max(m.createdAt, m.availableAt)) / 1000);
      },
    };
    this.consumerObserver = {
      onDelivery(consumer, messageId) {
        retries.returned(consumer, messageId);
      },
      onSettled(d: SettledDelivery) {
        if (d.outcome === 'handled') endToEnd.observe({ topic: d.topic }, Math.max(0, d.settledAt - d.createdAt) / 1000);
        else if (d.outcome === 'retried' && d.retry) retries.add(d);
      },
    };
  }

  /** p50/p95/p99 of the publish and end-to-end latencies per topic, since this process started. */
  async percentiles(): Promise<{ publish: LatencyPercentiles[]; endToEnd: LatencyPercentiles[] }> {
    return { publish: await percentilesOf(this.publish), endToEnd: await percentilesOf(this.endToEnd) };
  }
}

/**
 * The messages this process's consumers sent to a retry queue, until they come back (a delivery of the
 * same message id to the same consumer) — tmm's own record, written when the copy was confirmed in the
 * retry queue, with its due time (publish time + the queue's TTL). Limits: in memory and per process (a
 * restart forgets it, other processes' retries are not in it); bounded to `size` entries (the oldest go
 * first); a copy removed from the queue by hand is shown until its due time has passed by a minute.
 */
export class RetryRecord {
  private readonly entries = new Map<string, RetryingMessage>();

  constructor(private readonly size: number) {}

  add(d: SettledDelivery): void {
    const key = `${d.consumer}\u0000${d.messageId}`;
    this.entries.delete(key);
    this.entries.set(key, { messageId: d.messageId, consumer: d.consumer, topic: d.topic, retryQueue: d.retry!.queue, attempt: d.attempt, error: d.retry!.error, retriedAt: d.settledAt, dueAt: d.retry!.dueAt });
    if (this.entries.size > this.size) this.entries.delete(this.entries.keys().next().value as string);
  }

  returned(consumer: string, messageId: string): void {
    if (this.entries.size > 0) this.entries.delete(`${consumer}\u0000${messageId}`);
  }

  /** Waiting copies, soonest due first. */
  list(now = Date.now()): RetryingMessage[] {
    for (const [k, e] of this.entries) if (e.dueAt < now - 60_000) this.entries.delete(k);
    return [...this.entries.values()].sort((a, b) => a.dueAt - b.dueAt);
  }
}

/**
 * Percentiles per label value from a histogram's cumulative buckets, interpolated linearly within the
 * bucket as Prometheus's histogram_quantile() does (an estimate: as exact as the buckets are fine).
 */
export async function percentilesOf(h: Histogram<'topic'>): Promise<LatencyPercentiles[]> {
  const data = await h.get();
  const byTopic = new Map<string, { le: number; n: number }[]>();
  for (const v of data.values) {
    if (!v.metricName?.endsWith('_bucket')) continue;
    const labels = v.labels as Record<string, string | number | undefined>;
    const topic = String(labels.topic);
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
    const list = byTopic.get(topic) ?? [];
    list.push({ le, n: v.value });
    byTopic.set(topic, list);
  }
  const out: LatencyPercentiles[] = [];
  for (const [topic, buckets] of byTopic) {
    buckets.sort((a, b) => a.le - b.le);
    const count = buckets[buckets.length - 1]?.n ?? 0;
    out.push({ topic, count, p50: quantile(0.5, buckets, count), p95: quantile(0.95, buckets, count), p99: quantile(0.99, buckets, count) });
  }
  return out.sort((a, b) => a.topic.localeCompare(b.topic));
}

function quantile(q: number, buckets: { le: number; n: number }[], count: number): number | null {
  if (count === 0) return null;
  const rank = q * count;
  let prevLe = 0;
  let prevN = 0;
  for (const b of buckets) {
    if (b.n >= rank) {
      // Above the largest finite bucket: the best estimate is that bucket's bound.
      if (b.le === Infinity) return prevLe;
      return prevLe + (b.le - prevLe) * ((rank - prevN) / Math.max(1, b.n - prevN));
    }
    prevLe = b.le;
    prevN = b.n;
  }
  return prevLe;
}
