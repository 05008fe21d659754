import { deadLetterQueueSpec } from '../consumer/ConsumerDefinition';
import { DeadLetterCollector, DeadLetterSource } from '../deadletter/DeadLetterCollector';
import { DeadLetterService } from '../deadletter/DeadLetterService';
import { contractsForDeadLetter } from '../deadletter/deadLetterContracts';
import { TypeOrmAuditTrail } from '../deadletter/TypeOrmAuditTrail';
import { TypeOrmDeadLetterStore } from '../deadletter/TypeOrmDeadLetterStore';
import { TypeOrmOutboxAdminStore } from '../deadletter/TypeOrmOutboxAdminStore';
import { TmmError } from '../errors';
import { TypeOrmJourneyStore } from '../journey/TypeOrmJourneyStore';
import { sqlDialectFor } from '../sql/SqlDialect';
import type { Tmm } from '../runtime/Tmm';
import { AdminContext, AdminServer } from './AdminServer';
import { AdminOptions, ResolvedAdminOptions, resolveAdminOptions } from './AdminOptions';
import { MeteredTransport } from './metrics/MeteredTransport';
import { ThroughputSampler } from './metrics/ThroughputSampler';
import { journeyMetricsRegistry } from './metrics/journeyMetrics';
import { type SetMetricsSource, TmmMetrics } from './metrics/TmmMetrics';
import type { Transport } from '../transport/Transport';
import { SetRoutingTransport } from '../transport/sets/SetRoutingTransport';
import { PurgeResult, purgeExpired } from '../deadletter/Retention';
import { ConsumerThroughput, QueueDepths, lagReport } from './metrics/LagReport';
import { AmqpQueueInspector, QueueInspector, RabbitManagementQueueInspector, inspectableTransport } from './queues/QueueInspector';

/**
 * The operator's side of one tmm instance: the dead-letter collector, the actions (resend, edit and
 * resend, discard, bulk; retry/discard DEAD outbox rows) with their audit trail, the HTTP API + web
 * console, and the Prometheus metrics. Options are validated here (ConfigurationError naming the path;
 * no credentials ⇒ refused unless `auth.anonymousLocalRead`).
 *
 * ```ts
 * await tmm.start();
 * const admin = new TmmAdmin(tmm, { auth: { tokens: { ops: process.env.TMM_ADMIN_TOKEN! } } });
 * await admin.start();            // listens on 127.0.0.1:8089, collects from every consumer's dead-letter queue
 * ...
 * await admin.stop();             // before tmm.stop()
 * ```
 */
export class TmmAdmin {
  readonly options: ResolvedAdminOptions;
  readonly deadLetters: TypeOrmDeadLetterStore;
  readonly audit: TypeOrmAuditTrail;
  readonly outboxAdmin: TypeOrmOutboxAdminStore;
  readonly service: DeadLetterService;
  readonly collector: DeadLetterCollector;
  readonly sampler: ThroughputSampler;
  readonly metrics: TmmMetrics;
  readonly server: AdminServer;
  /** Per-consumer rates over the last minute (the lag panel). */
  readonly throughput: ConsumerThroughput;
  /** The consumers' queue depths on the broker, cached (`queues.cacheMs`). */
  readonly queueDepths: QueueDepths;
  private started = false;
  private unobserveConsumers: (() => void) | undefined;
  private purgeTimer: NodeJS.Timeout | undefined;
  /** Detaches the metrics' relay observer (attached while started with metrics enabled). */
  private unobserveRelay: (() => void) | undefined;

  constructor(
    readonly tmm: Tmm,
    options: AdminOptions,
  ) {
    this.options = resolveAdminOptions(options);
    const logger = this.options.logger ?? tmm.logger;
    const dataSource = tmm.dataSource;
    const dialect = tmm.transactions.dialect;
    this.deadLetters = new TypeOrmDeadLetterStore(dataSource, dialect);
    this.audit = new TypeOrmAuditTrail(dataSource, dialect);
    this.outboxAdmin = new TypeOrmOutboxAdminStore(dataSource, dialect);
    this.service = new DeadLetterService({
      transactions: tmm.transactions,
      outbox: tmm.outbox,
      deadLetters: this.deadLetters,
      outboxAdmin: this.outboxAdmin,
      audit: this.audit,
      dispatcher: tmm.dispatcher,
      relay: tmm.relay,
      owner: tmm.instanceId,
      // The configured limits, not the defaults: a resend obeys what a send would.
      maxPayloadBytes: tmm.options.producer.maxPayloadBytes,
      leaseMs: tmm.options.producer.leaseMs,
      contractFor: (letter) => contractsForDeadLetter(letter, tmm.consumers.definitions),
      logger,
      journey: tmm.journey,
    });
    this.collector = new DeadLetterCollector(tmm.transport, tmm.transactions, this.deadLetters, {
      prefetch: this.options.collector.prefetch,
      retryDelayMs: this.options.collector.retryDelayMs,
      fingerprint: this.options.collector.fingerprint,
      logger,
      journey: tmm.journey ? { recorder: tmm.journey, source: `collector@${tmm.instanceId}` } : undefined,
    });
    const counters = () => ({
      published: tmm.dispatcher.stats.published,
      publishFailed: tmm.dispatcher.stats.failed,
      consumed: tmm.consumers.stats.handled,
      retried: tmm.consumers.stats.retried,
      deadLettered: tmm.consumers.stats.deadLettered,
      collected: this.collector.stats.stored,
    });
    this.sampler = new ThroughputSampler(counters, this.options.metrics.sampleIntervalMs);
    this.throughput = new ConsumerThroughput(() => tmm.consumers.statsByConsumer, this.options.metrics.sampleIntervalMs);
    this.queueDepths = new QueueDepths(queueInspector(this.options, tmm.transport), () => tmm.consumers.definitions, this.options.queues.cacheMs);
    this.metrics = new TmmMetrics({
      outboxAdmin: this.outboxAdmin,
      deadLetters: this.deadLetters,
      counters: () => ({
        dispatcher: tmm.dispatcher.stats,
        relay: tmm.relay.stats,
        consumers: tmm.consumers.stats,
        consumersByName: tmm.consumers.statsByConsumer,
        collector: this.collector.stats,
      }),
      extra: [...(tmm.transport instanceof MeteredTransport ? [tmm.transport.registry] : []), ...(tmm.journey ? [journeyMetricsRegistry(tmm.journey)] : [])],
      txlog: tmm.txlog ? () => ({ ...tmm.txlog!.health(), writeBatches: tmm.txlog!.log.batches, counters: tmm.txlog!.counters }) : undefined,
      sets: setsOf(tmm.transport),
      queues: this.queueDepths.inspector ? () => this.queueDepths.read() : undefined,
      health: () => tmm.health(),
    });
    const context: AdminContext = {
      service: this.service,
      deadLetters: this.deadLetters,
      outboxAdmin: this.outboxAdmin,
      outbox: tmm.outbox,
      audit: this.audit,
      sampler: this.sampler,
      metrics: this.metrics,
      info: () => ({
        consumers: tmm.consumers.definitions.map((d) => ({ name: d.name, queue: d.queue, deadLetterQueue: d.deadLetterQueue })),
        collecting: this.collector.queues,
      }),
      health: () => tmm.health(),
      // Read even when this process records nothing: another process may.
      journey: tmm.journey?.store ?? new TypeOrmJourneyStore(tmm.transactions, sqlDialectFor(dialect)),
      lag: () => lagReport({ lag: this.metrics.lag, throughput: this.throughput, queues: this.queueDepths, outboxAdmin: this.outboxAdmin }),
      logger,
      txlog: tmm.txlog ? { sender: tmm.txlog, auditManager: dataSource.manager } : undefined,
    };
    this.server = new AdminServer(context, this.options);
  }

  /** The dead-letter queues collected from: every consumer's of this instance, plus `collector.queues`. */
  sources(): DeadLetterSource[] {
    const fromConsumers = this.tmm.consumers.definitions.map((d) => ({ queue: deadLetterQueueSpec(d), consumerQueue: d.queue, consumer: d.name }));
    const extra = this.options.collector.queues.filter((q) => !fromConsumers.some((s) => s.queue.name === q)).map((name) => ({ queue: { name } }));
    return [...fromConsumers, ...extra];
  }

  /** Starts collecting (after tmm.start(), which declares the consumers' queues), sampling and serving; resolves with the URL. */
  async start(): Promise<string> {
    if (this.started) return this.server.url;
    if (!this.tmm.isStarted) throw new TmmError('TMM_NOT_STARTED', 'start the Tmm instance before its admin (the admin needs its tables and consumers)');
    if (this.options.collector.enabled) {
      // A process that runs no consumers (consumers.enabled: false) still knows them: declare them (idempotent)
      // so their dead-letter queues exist and are collected here.
      if (!this.tmm.consumers.isRunning && this.tmm.consumers.definitions.length === 0) await this.tmm.consumers.declare();
      await this.collector.start(this.sources());
    }
    this.sampler.start();
    this.throughput.start();
    // Publish confirms, retries and handled deliveries for the latency histograms and the retry record.
    const unobserveConfirms = this.tmm.relay.observe(this.metrics.lag.relayObserver);
    const unobserveDeliveries = this.tmm.consumers.observe(this.metrics.lag.consumerObserver);
    this.unobserveConsumers = () => {
      unobserveConfirms();
      unobserveDeliveries();
    };
    // Claim and mark statement timings for the tmm_relay_* histograms.
    if (this.options.metrics.enabled) this.unobserveRelay = this.tmm.relay.observe(this.metrics.relayObserver);
    try {
      await this.server.listen();
    } catch (e) {
      this.stopObserving();
      this.sampler.stop();
      await this.collector.stop();
      throw e;
    }
    this.started = true;
    if (this.options.retention.purgeIntervalMs > 0) {
      this.purgeTimer = setInterval(() => void this.purge().catch((e: unknown) => this.tmm.logger.warn('retention purge failed', { error: (e as Error).message })), this.options.retention.purgeIntervalMs);
      this.purgeTimer.unref();
    }
    this.tmm.logger.info('tmm admin listening', { url: this.server.url, collecting: this.collector.queues });
    return this.server.url;
  }

  get url(): string {
    return this.server.url;
  }

  /** Deletes the dead letters and audit entries past `retention` now (also run every `retention.purgeIntervalMs`). */
  purge(options: { dryRun?: boolean } = {}): Promise<PurgeResult> {
    return purgeExpired({ transactions: this.tmm.transactions, deadLetters: this.deadLetters, audit: this.audit }, this.options.retention, options);
  }

  /** Stops serving and collecting (dead letters being stored finish first). Call before tmm.stop(). */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    clearInterval(this.purgeTimer);
    await this.server.close();
    this.stopObserving();
    this.sampler.stop();
    await this.collector.stop();
  }

  private stopObserving(): void {
    this.unobserveRelay?.();
    this.unobserveRelay = undefined;
    this.unobserveConsumers?.();
    this.unobserveConsumers = undefined;
    this.throughput.stop();
  }
}

/** The SET router's sets, when the transport is one (or wraps one: MeteredTransport, TracingTransport). */
function setsOf(transport: Transport): SetMetricsSource | undefined {
  let t: Transport | undefined = transport;
  for (let depth = 0; t && depth < 8; depth++) {
    if (t instanceof SetRoutingTransport) return { names: t.setNames, stats: t.stats };
    t = (t as { inner?: Transport }).inner;
  }
  return undefined;
}

/** The queue-depth source the options ask for: the management API, or passive declares on an AMQP transport (none otherwise). */
function queueInspector(options: ResolvedAdminOptions, transport: unknown): QueueInspector | undefined {
  const m = options.queues.management;
  if (options.queues.source === 'management' && m) return new RabbitManagementQueueInspector(m);
  const amqp = inspectableTransport(transport);
  return amqp ? new AmqpQueueInspector(amqp) : undefined;
}
