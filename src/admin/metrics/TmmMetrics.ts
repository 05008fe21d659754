import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RelayObserver } from '../../relay/RelayObserver';
import type { DeadLetterStore } from '../../deadletter/DeadLetterStore';
import type { OutboxAdminStore, OutboxStats } from '../../deadletter/OutboxAdminStore';
import type { DeadLetterSummaryCounts } from '../../deadletter/DeadLetter';
import type { SetFlowStats } from '../../transport/sets/SetRoutingTransport';
import type { TmmHealth } from '../../runtime/Tmm';
import { LagMetrics } from './LagMetrics';
import type { TmmQueueDepth } from './LagReport';

/** The SET router's sets and flow counters, when the transport routes to sets. */
export interface SetMetricsSource {
  names: readonly string[];
  stats: ReadonlyMap<string, SetFlowStats>;
}

/** What a consumer's deliveries came to (ConsumerStats). */
export interface ConsumerCounts {
  handled: number;
  duplicates: number;
  retried: number;
  deadLettered: number;
  requeued: number;
  abandoned?: number;
}

/** Cumulative counters of this process's components (each optional: a CLI-served admin has none). */
export interface ProcessCounters {
  dispatcher?: { published: number; failed: number; marked: number };
  relay?: { sweeps: number; claimed: number };
  consumers?: ConsumerCounts;
  /** The same per consumer, by name (`Class.method`, the `consumer` of its dead letters). */
  consumersByName?: ReadonlyMap<string, ConsumerCounts>;
  collector?: { stored: number; duplicates: number; failed: number };
}

/** The `outcome` label of `tmm_consumer_messages_total` for each ConsumerCounts field. */
const CONSUMER_OUTCOMES: readonly (readonly [keyof ConsumerCounts, string])[] = [
  ['handled', 'handled'],
  ['duplicates', 'duplicate'],
  ['retried', 'retried'],
  ['deadLettered', 'dead_lettered'],
  ['requeued', 'requeued'],
  ['abandoned', 'abandoned'],
];

const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const ROWS_BUCKETS = [0, 1, 5, 10, 25, 50, 100, 200, 500, 1000, 2500, 5000, 10_000];

/**
 * The Prometheus metrics of one tmm process, on its own registry (never the global one):
 * database gauges read at scrape time (cached `cacheMs`, so frequent scrapes cost one query set),
 * counters mirrored from the components' own stats, and histograms of the relay's statements fed by
 * `relayObserver` (attach it with `relay.observe(metrics.relayObserver)`; TmmAdmin does). A
 * MeteredTransport's registry is appended.
 */
export class TmmMetrics {
  readonly registry = new Registry();
  /** Feeds `tmm_relay_claim_*` and `tmm_relay_mark_*`: pass it to Relay.observe (or Dispatcher.observe). */
  readonly relayObserver: RelayObserver;
  /** Publish and end-to-end latency histograms and the retry-queue record; attach its observers (TmmAdmin does). */
  readonly lag: LagMetrics;
  private cache: { at: number; outbox: OutboxStats; dead: DeadLetterSummaryCounts } | undefined;

  constructor(
    private readonly deps: {
      outboxAdmin: OutboxAdminStore;
      deadLetters: DeadLetterStore;
      counters: () => ProcessCounters;
      extra?: Registry[];
      cacheMs?: number;
      /** The log-mode sender's health, when this process runs one (tmm_txlog_* gauges). */
      txlog?: () => {
        degraded: boolean;
        directories: { path: string; ok: boolean }[];
        inDoubt: number;
        pendingSend: number;
        problems: number;
        /** Failed directories rebuilt live since start. */
        repairs: number;
        /** Times the log came back after every directory had failed. */
        revivals?: number;
        /** Write batches since start (each one fdatasync per live directory). */
        writeBatches?: number;
        counters?: { commits: number; rollbacks: number; sent: number; checks: number; barrierPurged: number };
      };
      /** SET routing: per-set flow counters and per-set backlog gauges (tmm_set_*, tmm_outbox_*_by_set). */
      sets?: SetMetricsSource;
      /** The depths of the consumers' queues on the broker (tmm_queue_* gauges). */
      queues?: () => Promise<TmmQueueDepth[]>;
      /** tmm.health(): its alerts and consumer heartbeats (tmm_alert_firing, tmm_consumer_up, ...). */
      health?: () => Promise<TmmHealth>;
    },
  ) {
    const r = [this.registry];
    this.lag = new LagMetrics(this.registry);
    const queues = deps.queues;
    if (queues) {
      const queueGauge = (name: string, help: string, value: (q: TmmQueueDepth) => number | null) =>
        new Gauge({
          name,
          help,
          labelNames: ['queue', 'consumer', 'kind'],
          registers: r,
          async collect() {
            this.reset();
            for (const q of await queues()) {
              const v = value(q);
              if (q.error === undefined && v !== null) this.set({ queue: q.queue, consumer: q.consumer, kind: q.kind }, v);
            }
          },
        });
      queueGauge('tmm_queue_messages', 'Messages in a tmm queue on the broker (kind: work|retry|dead-letter); ready only when read by AMQP passive declare', (q) => q.messages);
      queueGauge('tmm_queue_unacked', 'Delivered, unacknowledged messages of a tmm queue (management API only)', (q) => q.unacked);
      queueGauge('tmm_queue_consumers', 'Consumers subscribed to a tmm queue on the broker (any process)', (q) => q.consumers);
    }
    const retries = this.lag.retries;
    new Gauge({
      name: 'tmm_retry_waiting',
      help: 'Messages this process’s consumers put in a retry queue that have not come back yet, per consumer',
      labelNames: ['consumer'],
      registers: r,
      collect() {
        this.reset();
        const by = new Map<string, number>();
        for (const m of retries.list()) by.set(m.consumer, (by.get(m.consumer) ?? 0) + 1);
        for (const [consumer, n] of by) this.set({ consumer }, n);
      },
    });
    const health = deps.health;
    if (health) {
      let cached: { at: number; h: Promise<TmmHealth> } | undefined;
      const read = () => {
        const now = Date.now();
        if (!cached || now - cached.at >= (deps.cacheMs ?? 2000)) cached = { at: now, h: health() };
        return cached.h;
      };
      new Gauge({
        name: 'tmm_alert_firing',
        help: 'Per alert of tmm.health() (backlogAge|outboxDead|deadLetterRate|consumerHeartbeat): 1 firing, 0 not',
        labelNames: ['alert'],
        registers: r,
        async collect() {
          const h = await read();
          for (const [alert, a] of Object.entries(h.alerts)) this.set({ alert }, a.firing ? 1 : 0);
        },
      });
      new Gauge({
        name: 'tmm_consumer_up',
        help: 'Per consumer of this process: 1 when its heartbeat is ok (subscribed, not stalled), 0 when not',
        labelNames: ['consumer'],
        registers: r,
        async collect() {
          this.reset();
          for (const c of (await read()).alerts.consumerHeartbeat.consumers) this.set({ consumer: c.consumer }, c.ok ? 1 : 0);
        },
      });
      new Gauge({
        name: 'tmm_consumer_last_activity_timestamp_seconds',
        help: 'Per consumer of this process: when it last received or settled a delivery (Unix seconds; absent before the first)',
        labelNames: ['consumer'],
        registers: r,
        async collect() {
          this.reset();
          for (const c of (await read()).alerts.consumerHeartbeat.consumers) if (c.lastActivityAt !== null) this.set({ consumer: c.consumer }, c.lastActivityAt / 1000);
        },
      });
    }
    const txlog = deps.txlog;
    if (txlog) {
      new Gauge({ name: 'tmm_txlog_degraded', help: '1 when a transaction-log directory failed and the sender runs on the other', registers: r, collect() { this.set(txlog().degraded ? 1 : 0); } });
      new Gauge({
        name: 'tmm_txlog_directory_ok',
        help: 'Per transaction-log directory: 1 live, 0 failed (out until it is repaired live from the other copy, or the next start)',
        labelNames: ['path'],
        registers: r,
        collect() {
          for (const d of txlog().directories) this.set({ path: d.path }, d.ok ? 1 : 0);
        },
      });
      new Gauge({
        name: 'tmm_txlog_transactions',
        help: 'Log-mode transactions by state: in_doubt (being checked back), pending_send, exception (EXCEPTION/DEAD, in the admin)',
        labelNames: ['state'],
        registers: r,
        collect() {
          const h = txlog();
          this.set({ state: 'in_doubt' }, h.inDoubt);
          this.set({ state: 'pending_send' }, h.pendingSend);
          this.set({ state: 'exception' }, h.problems);
        },
      });
      const txlogCounter = (name: string, help: string, read: (h: ReturnType<NonNullable<typeof deps.txlog>>) => number | undefined) =>
        readCounter(r, name, help, () => read(txlog()));
      txlogCounter('tmm_txlog_repairs_total', 'Failed transaction-log directories rebuilt live from the other copy since start', (h) => h.repairs);
      txlogCounter('tmm_txlog_revivals_total', 'Times the transaction log came back after every directory had failed, since start', (h) => h.revivals ?? 0);
      txlogCounter('tmm_txlog_write_batches_total', 'Transaction-log write batches since start (one fdatasync per live directory each; group commit)', (h) => h.writeBatches);
      txlogCounter('tmm_txlog_sent_total', 'Log-mode transactions whose messages the broker confirmed', (h) => h.counters?.sent);
      txlogCounter('tmm_txlog_checks_total', 'Check-backs of in-doubt log-mode transactions', (h) => h.counters?.checks);
      txlogCounter('tmm_txlog_barrier_purged_total', 'Check-back barrier rows deleted (fate final, older than txlog.barrierRetentionMs)', (h) => h.counters?.barrierPurged);
      new Counter({
        name: 'tmm_txlog_ended_total',
        help: 'Log-mode transactions ended, by outcome (commit, rollback)',
        labelNames: ['outcome'],
        registers: r,
        collect() {
          const c = txlog().counters;
          this.reset();
          if (!c) return;
          this.inc({ outcome: 'commit' }, c.commits);
          this.inc({ outcome: 'rollback' }, c.rollbacks);
        },
      });
    }
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
      help: 'How long the oldest undelivered PENDING outbox row has waited (relay lag): since it became due, or since it was created once a publish of it failed; 0 when none',
      registers: r,
      async collect() {
        const s = await snapshot();
        this.set(s.outbox.oldestWaitingSince === null ? 0 : Math.max(0, (Date.now() - s.outbox.oldestWaitingSince) / 1000));
      },
    });
    new Gauge({
      name: 'tmm_outbox_pending_by_topic',
      help: 'PENDING outbox rows that are due now, per topic (topics with a backlog only: due rows, or rows waiting for a retry)',
      labelNames: ['topic'],
      registers: r,
      async collect() {
        const s = await snapshot();
        this.reset();
        for (const t of s.outbox.dueByTopic) this.set({ topic: t.topic }, t.due);
      },
    });
    new Gauge({
      name: 'tmm_outbox_oldest_pending_age_seconds_by_topic',
      help: 'How long the oldest undelivered PENDING outbox row of the topic has waited (as tmm_outbox_oldest_pending_age_seconds, per topic; topics with a backlog only)',
      labelNames: ['topic'],
      registers: r,
      async collect() {
        const s = await snapshot();
        this.reset();
        const now = Date.now();
        for (const t of s.outbox.dueByTopic) this.set({ topic: t.topic }, Math.max(0, (now - t.waitingSince) / 1000));
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
    if (deps.sets) this.setMetrics(deps.sets, snapshot);
    const counter = (name: string, help: string, read: (c: ProcessCounters) => number | undefined) => readCounter(r, name, help, () => read(deps.counters()));
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
    new Counter({
      name: 'tmm_consumer_messages_total',
      help: 'Deliveries per consumer (Class.method) by outcome: handled|duplicate|retried|dead_lettered|requeued|abandoned',
      labelNames: ['consumer', 'outcome'],
      registers: r,
      collect() {
        const byName = deps.counters().consumersByName;
        this.reset();
        if (!byName) return;
        for (const [consumer, counts] of byName) {
          for (const [field, outcome] of CONSUMER_OUTCOMES) this.inc({ consumer, outcome }, counts[field] ?? 0);
        }
      },
    });

    const claimSeconds = new Histogram({
      name: 'tmm_relay_claim_duration_seconds',
      help: 'Duration of the relay’s claim statement (one per sweep)',
      buckets: SECONDS_BUCKETS,
      registers: r,
    });
    const claimRows = new Histogram({ name: 'tmm_relay_claim_rows', help: 'Rows returned by a claim statement (0: nothing was due)', buckets: ROWS_BUCKETS, registers: r });
    const markSeconds = new Histogram({
      name: 'tmm_relay_mark_duration_seconds',
      help: 'Duration of a mark-delivered statement (relay and fast path)',
      buckets: SECONDS_BUCKETS,
      registers: r,
    });
    const markRows = new Histogram({ name: 'tmm_relay_mark_rows', help: 'Confirmed ids per mark-delivered statement', buckets: ROWS_BUCKETS, registers: r });
    this.relayObserver = {
      onClaim(rows, ms) {
        claimSeconds.observe(ms / 1000);
        claimRows.observe(rows);
      },
      onMarked(rows, ms) {
        markSeconds.observe(ms / 1000);
        markRows.observe(rows);
      },
    };
  }

  /** Per SET: flow counters from the router's stats and backlog gauges from the outbox (label `set`). */
  private setMetrics(sets: SetMetricsSource, snapshot: () => Promise<{ outbox: OutboxStats }>): void {
    const r = [this.registry];
    const flow = (name: string, help: string, field: keyof SetFlowStats) =>
      new Counter({
        name,
        help,
        labelNames: ['set'],
        registers: r,
        collect() {
          this.reset();
          for (const set of sets.names) this.inc({ set }, sets.stats.get(set)?.[field] ?? 0);
        },
      });
    flow('tmm_set_published_total', 'Messages published and confirmed per SET (the set actually used, failovers included)', 'published');
    flow('tmm_set_publish_failed_total', 'Failed publishes per SET (the row stays PENDING and is retried, or fails over where configured)', 'failed');
    flow('tmm_set_failed_over_total', 'Messages of a SET published to its failover set instead', 'failedOver');
    new Gauge({
      name: 'tmm_outbox_pending_by_set',
      help: 'PENDING outbox rows per SET that are due or waiting for a retry (a set whose broker is down keeps its rows here)',
      labelNames: ['set'],
      registers: r,
      async collect() {
        const s = await snapshot();
        for (const b of s.outbox.bySet ?? []) this.set({ set: b.set }, b.pending);
      },
    });
    new Gauge({
      name: 'tmm_outbox_oldest_pending_age_seconds_by_set',
      help: 'Age (since it was sent) of the oldest PENDING outbox row per SET that is due or waiting for a retry; 0 when none',
      labelNames: ['set'],
      registers: r,
      async collect() {
        const s = await snapshot();
        const now = Date.now();
        for (const b of s.outbox.bySet ?? []) this.set({ set: b.set }, b.oldestCreatedAt === null ? 0 : Math.max(0, (now - b.oldestCreatedAt) / 1000));
      },
    });
  }

  private async snapshot(): Promise<{ outbox: OutboxStats; dead: DeadLetterSummaryCounts }> {
    const now = Date.now();
    if (this.cache && now - this.cache.at < (this.deps.cacheMs ?? 2000)) return this.cache;
    const [outbox, dead] = await Promise.all([this.deps.outboxAdmin.stats(now, this.deps.sets?.names), this.deps.deadLetters.summarize()]);
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

/** A counter whose value is read at scrape time (a running total kept elsewhere); absent while `value` is undefined. */
function readCounter(registers: Registry[], name: string, help: string, value: () => number | undefined): Counter {
  return new Counter({
    name,
    help,
    registers,
    collect() {
      const v = value();
      this.reset();
      if (v !== undefined) this.inc(v);
    },
  });
}
