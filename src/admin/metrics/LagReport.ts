import type { ConsumerDefinition } from '../../consumer/ConsumerDefinition';
import { retryQueueSpecs } from '../../consumer/ConsumerDefinition';
import type { ConsumerCounts } from './TmmMetrics';
import type { LagMetrics, LatencyPercentiles, RetryingMessage } from './LagMetrics';
import type { QueueDepth, QueueInspector } from '../queues/QueueInspector';
import type { OutboxAdminStore } from '../../deadletter/OutboxAdminStore';

/** A tmm queue with the consumer it belongs to and its role, and its depth on the broker. */
export interface TmmQueueDepth extends QueueDepth {
  consumer: string;
  kind: 'work' | 'retry' | 'dead-letter';
}

/** One consumer's throughput and failure rate over the last minute (and its totals since start). */
export interface ConsumerRate {
  consumer: string;
  /** Deliveries settled per minute (handled, duplicates, retried, dead-lettered). */
  perMinute: number;
  handledPerMinute: number;
  failedPerMinute: number;
  /** Failed (retried or dead-lettered) / settled over the window; null when nothing settled. */
  failureRate: number | null;
  total: { handled: number; failed: number };
  /** The length of the window the rates are over (ms; shorter than a minute just after start). */
  windowMs: number;
}

/** What the admin's lag panel (GET /api/lag) shows. */
export interface LagReport {
  at: number;
  /** The relay's backlog per topic: due PENDING rows and the age of the oldest (topics with a backlog only). */
  backlog: { topic: string; due: number; oldestAgeMs: number }[];
  publishLatency: LatencyPercentiles[];
  endToEndLatency: LatencyPercentiles[];
  consumers: ConsumerRate[];
  queues: { source: QueueInspector['source'] | null; items: TmmQueueDepth[]; note?: string };
  retrying: RetryingMessage[];
}

/** Every queue of the consumers, with its role: work queue, retry queues, dead-letter queue. */
export function tmmQueues(definitions: readonly ConsumerDefinition[]): { queue: string; consumer: string; kind: TmmQueueDepth['kind'] }[] {
  return definitions.flatMap((d) => [
    { queue: d.queue, consumer: d.name, kind: 'work' as const },
    ...retryQueueSpecs(d).map((q) => ({ queue: q.name, consumer: d.name, kind: 'retry' as const })),
    { queue: d.deadLetterQueue, consumer: d.name, kind: 'dead-letter' as const },
  ]);
}

const failedOf = (c: ConsumerCounts) => c.retried + c.deadLettered;
const settledOf = (c: ConsumerCounts) => c.handled + c.duplicates + c.retried + c.deadLettered;

/** Samples the per-consumer counters (every `everyMs`) to give each consumer's rates over the last minute. */
export class ConsumerThroughput {
  private readonly samples: { at: number; counts: Map<string, ConsumerCounts> }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly read: () => ReadonlyMap<string, ConsumerCounts>,
    private readonly everyMs: number,
    private readonly windowMs = 60_000,
  ) {}

  start(): void {
    if (this.timer) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), Math.min(this.everyMs, this.windowMs / 4));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  sample(now = Date.now()): void {
    this.samples.push({ at: now, counts: new Map([...this.read()].map(([k, v]) => [k, { ...v }])) });
    while (this.samples.length > 1 && this.samples[1].at <= now - this.windowMs) this.samples.shift();
  }

  rates(now = Date.now()): ConsumerRate[] {
    const base = this.samples[0];
    const windowMs = base ? Math.max(1, now - base.at) : 0;
    const out: ConsumerRate[] = [];
    for (const [consumer, c] of this.read()) {
      const b = base?.counts.get(consumer) ?? { handled: 0, duplicates: 0, retried: 0, deadLettered: 0, requeued: 0 };
      const settled = Math.max(0, settledOf(c) - settledOf(b));
      const failed = Math.max(0, failedOf(c) - failedOf(b));
      const perMin = (n: number) => (windowMs === 0 ? 0 : Math.round((n * 60_000 * 10) / windowMs) / 10);
      out.push({
        consumer,
        perMinute: perMin(settled),
        handledPerMinute: perMin(Math.max(0, c.handled - b.handled)),
        failedPerMinute: perMin(failed),
        failureRate: settled === 0 ? null : failed / settled,
        total: { handled: c.handled, failed: failedOf(c) },
        windowMs,
      });
    }
    return out.sort((a, b) => a.consumer.localeCompare(b.consumer));
  }
}

/** Reads queue depths for the consumers' queues, cached for `cacheMs` so scrapes and console refreshes share one read. */
export class QueueDepths {
  private cache: { at: number; items: Promise<TmmQueueDepth[]> } | undefined;

  constructor(
    readonly inspector: QueueInspector | undefined,
    private readonly definitions: () => readonly ConsumerDefinition[],
    private readonly cacheMs: number,
  ) {}

  read(now = Date.now()): Promise<TmmQueueDepth[]> {
    if (!this.inspector) return Promise.resolve([]);
    if (this.cache && now - this.cache.at < this.cacheMs) return this.cache.items;
    const queues = tmmQueues(this.definitions());
    const items = this.inspector.inspect(queues.map((q) => q.queue)).then((depths) => depths.map((d, i) => ({ ...d, consumer: queues[i].consumer, kind: queues[i].kind })));
    this.cache = { at: now, items };
    return items;
  }
}

export async function lagReport(parts: { lag: LagMetrics; throughput: ConsumerThroughput; queues: QueueDepths; outboxAdmin: OutboxAdminStore }): Promise<LagReport> {
  const now = Date.now();
  const [p, items, stats] = await Promise.all([parts.lag.percentiles(), parts.queues.read(), parts.outboxAdmin.stats(now)]);
  return {
    at: now,
    backlog: stats.dueByTopic.map((t) => ({ topic: t.topic, due: t.due, oldestAgeMs: Math.max(0, now - t.waitingSince) })),
    publishLatency: p.publish,
    endToEndLatency: p.endToEnd,
    consumers: parts.throughput.rates(),
    queues: {
      source: parts.queues.inspector?.source ?? null,
      items,
      ...(parts.queues.inspector ? {} : { note: 'the transport cannot be inspected (not AMQP) and no management API is configured (admin.queues.management)' }),
    },
    retrying: parts.lag.retries.list(),
  };
}
