import { Counter, Gauge, Registry } from 'prom-client';
import type { DeadLetterStore } from '../../deadletter/DeadLetterStore';
import type { OutboxAdminStore, OutboxStats } from '../../deadletter/OutboxAdminStore';
import type { DeadLetterSummaryCounts } from '../../deadletter/DeadLetter';

/** Cumulative counters of this process's components (each optional: a CLI-served admin has none). */
export interface ProcessCounters {
  dispatcher?: { published: number; failed: number; marked: number };
  relay?: { sweeps: number; claimed: number };
  consumers?: { handled: number; duplicates: number; retried: number; deadLettered: number; requeued: number };
  collector?: { stored: number; duplicates: number; failed: number };
}

/**
 * The Prometheus metrics of one tmm process, on its own registry (never the global one):
 * database gauges read at scrape time (cached `cacheMs`, so frequent scrapes cost one query set), and
 * counters mirrored from the components' own stats. A MeteredTransport's registry is appended.
 */
export class TmmMetrics {
  readonly registry = new Registry();
  private cache: { at: number; outbox: OutboxStats; dead: DeadLetterSummaryCounts } | undefined;

  constructor(
    private readonly deps: {
      outboxAdmin: OutboxAdminStore;
      deadLetters: DeadLetterStore;
      counters: () => ProcessCounters;
      extra?: Registry[];
      cacheMs?: number;
    },
  ) {
    const r = [this.registry];
    const snapshot = () => this.snapshot();
    new Gauge({
      name: 'tmm_outbox_rows',
      help: 'tmm_outbox rows by status',
      labelNames: ['status'],
      registers: r,
      async collect() {
        const s = await snapshot();
        for (const [status, n] of Object.entries(s.outbox.byStatus)) this.set({ status }, n);
      },
    });
    new Gauge({
      name: 'tmm_outbox_pending',
      help: 'PENDING outbox rows that are due now (the relay backlog)',
      registers: r,
      async collect() {
        this.set((await snapshot()).outbox.due);
      },
    });
    new Gauge({
      name: 'tmm_outbox_oldest_pending_age_seconds',
      help: 'Age of the oldest due PENDING outbox row (relay lag); 0 when none',
      registers: r,
      async collect() {
        const s = await snapshot();
        this.set(s.outbox.oldestDueAt === null ? 0 : Math.max(0, (Date.now() - s.outbox.oldestDueAt) / 1000));
      },
    });
    new Gauge({
      name: 'tmm_dead_letters',
      help: 'Dead letters in tmm_dead_letter by status',
      labelNames: ['status'],
      registers: r,
      async collect() {
        const s = await snapshot();
        for (const [status, n] of Object.entries(s.dead.byStatus)) this.set({ status }, n);
      },
    });
    new Gauge({
      name: 'tmm_dead_letters_new_by_consumer',
      help: 'NEW dead letters per consumer',
      labelNames: ['consumer'],
      registers: r,
      async collect() {
        this.reset();
        for (const c of (await snapshot()).dead.byConsumer) this.set({ consumer: c.consumer ?? 'unknown' }, c.count);
      },
    });
    const counter = (name: string, help: string, read: (c: ProcessCounters) => number | undefined) =>
      new Counter({
        name,
        help,
        registers: r,
        collect() {
          const v = read(deps.counters());
          this.reset();
          if (v !== undefined) this.inc(v);
        },
      });
    counter('tmm_outbox_published_total', 'Outbox messages published and confirmed by this process', (c) => c.dispatcher?.published);
    counter('tmm_outbox_publish_failed_total', 'Failed publish attempts of outbox messages (retried, or DEAD after the last)', (c) => c.dispatcher?.failed);
    counter('tmm_outbox_marked_total', 'Outbox rows marked delivered by this process', (c) => c.dispatcher?.marked);
    counter('tmm_relay_sweeps_total', 'Relay sweeps', (c) => c.relay?.sweeps);
    counter('tmm_relay_claimed_total', 'Rows claimed by relay sweeps', (c) => c.relay?.claimed);
    counter('tmm_consumer_handled_total', 'Deliveries handled successfully', (c) => c.consumers?.handled);
    counter('tmm_consumer_duplicates_total', 'Duplicate deliveries skipped by idempotent consumers', (c) => c.consumers?.duplicates);
    counter('tmm_consumer_retries_total', 'Failed deliveries sent to a retry queue (or retried in place)', (c) => c.consumers?.retried);
    counter('tmm_consumer_dead_lettered_total', 'Deliveries dead-lettered by consumers', (c) => c.consumers?.deadLettered);
    counter('tmm_dead_letters_collected_total', 'Dead letters stored by this process’s collector', (c) => c.collector?.stored);
  }

  private async snapshot(): Promise<{ outbox: OutboxStats; dead: DeadLetterSummaryCounts }> {
    const now = Date.now();
    if (this.cache && now - this.cache.at < (this.deps.cacheMs ?? 2000)) return this.cache;
    const [outbox, dead] = await Promise.all([this.deps.outboxAdmin.stats(now), this.deps.deadLetters.summarize()]);
    this.cache = { at: now, outbox, dead };
    return this.cache;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition of every metric (this registry, then the extra ones). */
  async render(): Promise<string> {
    const parts = [await this.registry.metrics()];
    for (const extra of this.deps.extra ?? []) parts.push(await extra.metrics());
    return parts.join('\n');
  }
}
