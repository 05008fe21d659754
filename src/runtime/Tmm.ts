import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { DataSource } from 'typeorm';
import { ResolvedTmmOptions, TmmOptions, resolveTmmOptions } from '../config/TmmOptions';
import { AsyncLocalContextStore } from '../context/AsyncLocalContextStore';
import { ClsHookedContextStore } from '../context/ClsHookedContextStore';
import type { ContextStore } from '../context/ContextStore';
import { ConsumerRunner } from '../consumer/ConsumerRunner';
import type { InboxStore } from '../consumer/InboxStore';
import { TypeOrmInboxStore } from '../consumer/TypeOrmInboxStore';
import { ConsoleLogger, Logger, toLogger } from '../logging/Logger';
import { getContractMetadataList } from '../metadata/keys';
import { MessageProducer } from '../outbox/MessageProducer';
import type { OutboxStore } from '../outbox/OutboxStore';
import { TypeOrmOutboxStore } from '../outbox/TypeOrmOutboxStore';
import { MigrationResult, migrate, prepareSqlite } from './migrate';
import { Dispatcher } from '../relay/Dispatcher';
import { Relay, defaultRelayOptions } from '../relay/Relay';
import { RelayLock } from '../relay/RelayLock';
import { sqlDialectFor } from '../sql/SqlDialect';
import type { TransactionManager } from '../transaction/TransactionManager';
import { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import { MemoryTransport } from '../transport/memory/MemoryTransport';
import type { ExchangeSpec, Transport } from '../transport/Transport';
import { TxLogSender } from '../txlog/TxLogSender';
import { messageTracerFor } from '../tracing/OpenTelemetryMessageTracer';
import { TracingTransport } from '../tracing/TracingTransport';
import { TmmRegistry } from './TmmRegistry';
import { BufferedJourneyRecorder, type JourneyWriterStats } from '../journey/BufferedJourneyRecorder';
import { noopJourneyRecorder } from '../journey/JourneyEvent';
import { TypeOrmJourneyStore } from '../journey/TypeOrmJourneyStore';
import { checkBusinessKeyPaths } from '../journey/businessKey';
import { CounterWindow, type TmmAlerts, consumerHeartbeats, thresholdAlert } from './HealthAlerts';

/**
 * Adapters a Tmm can be given instead of the ones it builds from its options (a port each; see their doc
 * comments for the contract an implementation must keep). Anything left out is built as usual.
 */
export interface TmmComponents {
  /** Replaces `options.transport`. */
  transport?: Transport;
  /** Replaces the TypeORM outbox (tmm_outbox) the producer writes and the relay reads. */
  outbox?: OutboxStore;
  /** Replaces the TypeORM inbox (tmm_inbox) idempotent consumers claim in. */
  inbox?: InboxStore;
  /** Replaces `options.logger`. Any object with debug/info/warn/error works; pino and winston loggers as they are. */
  logger?: Logger | object;
  /** Replaces `options.context`. */
  contextStore?: ContextStore;
}

export type { TmmAlert, TmmAlerts, ConsumerHeartbeat } from './HealthAlerts';

/** One check of tmm.health(). */
export interface TmmHealthCheck {
  ok: boolean;
  detail?: string;
}

/** What tmm.health() reports: `ok` when every check is ok. Shaped for a /health route or a terminus indicator. */
export interface TmmHealth {
  ok: boolean;
  started: boolean;
  checks: {
    database: TmmHealthCheck & { latencyMs?: number };
    broker: TmmHealthCheck;
    relay: TmmHealthCheck & { enabled: boolean; pendingRows: number };
    outbox: TmmHealthCheck & { pending: number | null; oldestPendingAgeMs: number | null };
    consumers: TmmHealthCheck & { enabled: boolean; count: number; runningHandlers: number };
    /**
     * The journey writer, informational: always ok (a journey problem never takes an instance out of a load
     * balancer); failing writes and dropped events are counted and named in `detail`.
     */
    journey: TmmHealthCheck & { enabled: boolean; buffered: number; written: number; dropped: number };
  };
  /**
   * What an operator alerts on (thresholds: the `alerts` option). A firing alert does not make `ok` false
   * unless `alerts.failHealth` is set: a backlog is no reason for a load balancer to take the instance out.
   */
  alerts: TmmAlerts;
  /** The names of the firing alerts. */
  alerting: (keyof TmmAlerts)[];
}

/** Counters of this process since start. */
export interface TmmStats {
  dispatcher: Readonly<{ published: number; failed: number; marked: number; deferred: number }>;
  relay: Readonly<{ sweeps: number; claimed: number }>;
  consumers: ReturnType<ConsumerRunner['statsSnapshot']>;
  /** The journey writer's counters (undefined when the journey is off). */
  journey: Readonly<JourneyWriterStats & { buffered: number }> | undefined;
}

export interface ShutdownHooksOptions {
  /** Signals to stop on (default SIGTERM and SIGINT). */
  signals?: NodeJS.Signals[];
  /** The whole shutdown may take at most this long before the process exits anyway (default 30 s). */
  timeoutMs?: number;
  /** Destroy the DataSource after tmm stopped (default true). */
  destroyDataSource?: boolean;
  /** Exit the process when done (default true; exit code 0, or 1 when the shutdown failed or timed out). */
  exit?: boolean;
}

/**
 * One configured tmm instance: the components wired for one DataSource. Build it with `new Tmm(options)`
 * (or through `tmm/inversify` / `tmm/nestjs`), `await start()` before use, `await stop()` on shutdown.
 *
 * Its facade: `producer`, `transactions`, `consumers`, `options`, `stats()`, `health()`, `start()`,
 * `stop()`, `enableShutdownHooks()`. The other members are the wired components, exposed for tmm's own
 * admin and tests (marked internal: left out of the published typings).
 */
export class Tmm {
  /** The resolved options (every default filled in), frozen. */
  readonly options: ResolvedTmmOptions;
  readonly name: string;
  readonly instanceId: string;
  /** Runs code in transactions (Spring propagation), with the transaction-bound EntityManager. */
  readonly transactions: TypeOrmTransactionManager;
  /** Sends message contracts: in a transaction they are stored with it and published iff it commits. */
  readonly producer: MessageProducer;
  /** Runs the @Consumer handlers: found at start(), stopped (drained) first by stop(). */
  readonly consumers: ConsumerRunner;
  readonly logger: Logger;
  /** @internal */ readonly dataSource: DataSource;
  /** @internal */ readonly contextStore: ContextStore;
  /** @internal */ readonly outbox: OutboxStore;
  /** @internal */ readonly transport: Transport;
  /** @internal */ readonly dispatcher: Dispatcher;
  /** @internal */ readonly relay: Relay;
  /** @internal Where idempotent consumers claim messages (`tmm_inbox`). */
  readonly inbox: InboxStore;
  /** The local transaction-log sender, when `txlog` is configured (started and stopped with tmm). */
  readonly txlog: TxLogSender | undefined;
  /** The journey recorder (tmm_journey), when `journey.enabled`: started and stopped with tmm. */
  readonly journey: BufferedJourneyRecorder | undefined;
  private started = false;
  private stopping: Promise<void> | undefined;
  /** Dead letters of this process's consumers over the alert window (alerts.deadLetterRate). */
  private readonly deadLetterWindow: CounterWindow | undefined;
  private deadLetterTimer: NodeJS.Timeout | undefined;

  constructor(options: TmmOptions, components: TmmComponents = {}) {
    const o = (this.options = resolveTmmOptions(options));
    this.name = o.name;
    this.instanceId = o.instanceId ?? `${hostname().slice(0, 40)}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.logger = components.logger
      ? toLogger(components.logger)
      : typeof o.logger === 'object'
        ? toLogger(o.logger)
        : new ConsoleLogger(o.logger);
    this.dataSource = o.dataSource;
    this.contextStore =
      components.contextStore ??
      (o.context === 'async-local-storage' ? new AsyncLocalContextStore() : o.context === 'cls-hooked' ? new ClsHookedContextStore() : o.context);
    const transactions = new TypeOrmTransactionManager(this.dataSource, {
      contextStore: this.contextStore,
      logger: this.logger,
      ...(o.postgres.pipelineCommit ? {} : { commitPipeline: false as const }),
    });
    this.transactions = transactions;
    const dialect = sqlDialectFor(transactions.dialect);
    this.outbox = components.outbox ?? new TypeOrmOutboxStore(transactions, dialect);
    this.transport = components.transport ?? (o.transport === 'memory' ? new MemoryTransport(this.logger) : o.transport);
    const tracer = messageTracerFor(o.tracing, { system: this.transport instanceof MemoryTransport ? 'tmm-memory' : 'rabbitmq' });
    const publishing = TracingTransport.wrap(this.transport, tracer);
    this.journey = o.journey.enabled
      ? new BufferedJourneyRecorder(new TypeOrmJourneyStore(transactions, dialect), {
          maxBuffered: o.journey.maxBuffered,
          batchSize: o.journey.batchSize,
          flushIntervalMs: o.journey.flushIntervalMs,
          retentionMs: o.journey.retentionMs,
          purgeIntervalMs: o.journey.purgeIntervalMs,
          logger: this.logger,
        })
      : undefined;
    const recorder = this.journey ?? noopJourneyRecorder;
    const businessKeys = checkBusinessKeyPaths(o.journey.businessKeys);
    this.dispatcher = new Dispatcher(publishing, this.outbox, {
      ...o.dispatcher,
      owner: this.instanceId,
      logger: this.logger,
      journey: recorder,
    });
    const { enabled: _enabled, ...relayOptions } = o.relay;
    this.relay = new Relay(this.outbox, this.dispatcher, {
      ...relayOptions,
      owner: this.instanceId,
      logger: this.logger,
      lock: transactions.dialect === 'sqlite' ? new RelayLock(transactions, this.instanceId) : undefined,
      keepDelivered: !o.dispatcher.deleteDelivered,
    });
    this.txlog = o.txlog
      ? new TxLogSender(o.txlog, { transport: publishing, logger: this.logger, dataSource: this.dataSource, serviceName: this.name, journey: recorder, instance: this.instanceId })
      : undefined;
    this.producer = new MessageProducer(
      transactions,
      this.outbox,
      this.dispatcher,
      publishing,
      { ...o.producer, owner: this.instanceId },
      { log: this.txlog, default: o.sender },
      tracer,
      { recorder, businessKeys },
    );
    this.inbox = components.inbox ?? new TypeOrmInboxStore(transactions, dialect);
    this.consumers = new ConsumerRunner(
      {
        transport: this.transport,
        transactions,
        contextStore: this.contextStore,
        inbox: this.inbox,
        logger: this.logger,
        tmmName: this.name,
        defaultExchange: o.producer.defaultExchange,
        tracer,
        journey: { recorder, instance: this.instanceId, businessKeys },
      },
      o.consumers,
    );
    const rate = o.alerts.deadLetterRate;
    this.deadLetterWindow = rate ? new CounterWindow(rate.windowMs, () => this.consumers.stats.deadLettered) : undefined;
  }

  /**
   * Initializes the DataSource if needed, migrates tmm's tables (unless `migrate: false`), declares the
   * exchanges the producer publishes to (the default one and every loaded contract's), registers for
   * decorators, starts the relay (unless `relay.enabled: false`) and the consumers (unless
   * `consumers.enabled: false`); a failure of either undoes the rest.
   */
  async start(): Promise<MigrationResult | undefined> {
    if (this.started) return undefined;
    if (!this.dataSource.isInitialized) await this.dataSource.initialize();
    const result = this.options.migrate ? await migrate(this.dataSource, { sqliteBusyTimeoutMs: this.options.sqlite.busyTimeoutMs }) : undefined;
    if (!this.options.migrate && this.transactions.dialect === 'sqlite') await prepareSqlite(this.dataSource, this.options.sqlite.busyTimeoutMs ?? 5000);
    // A producer may start before any consumer declared its exchange: without this its rows would wait
    // PENDING with "exchange does not exist" until some consumer process came up. A broker that is down
    // must not keep the producer from starting (the outbox holds what it sends), so this waits a little,
    // then goes on trying in the background until it succeeds or tmm stops.
    await this.declareProducerExchanges();
    this.journey?.start();
    await this.txlog?.start();
    TmmRegistry.register(this);
    if (this.options.relay.enabled) {
      try {
        await this.relay.start();
      } catch (e) {
        TmmRegistry.unregister(this);
        await this.txlog?.stop();
        await this.journey?.stop();
        throw e;
      }
    }
    if (this.options.consumers.enabled) {
      try {
        await this.consumers.start();
      } catch (e) {
        // A consumer misconfiguration (or its topology) fails start-up as a whole.
        await this.relay.stop();
        TmmRegistry.unregister(this);
        await this.txlog?.stop();
        await this.journey?.stop();
        throw e;
      }
    }
    this.started = true;
    const window = this.deadLetterWindow;
    if (window) {
      window.sample();
      this.deadLetterTimer = setInterval(() => window.sample(), window.everyMs);
      this.deadLetterTimer.unref();
    }
    return result;
  }

  private declareTimer: NodeJS.Timeout | undefined;

  private async declareProducerExchanges(): Promise<void> {
    const topology = { exchanges: this.producerExchanges() };
    let settled = false;
    const attempt = this.transport.declare(topology).then(
      () => true,
      (e: unknown) => {
        this.logger.warn('could not declare the producer exchanges yet; retrying in the background', { error: (e as Error).message });
        return false;
      },
    );
    const ok = await Promise.race([attempt, new Promise<boolean>((r) => setTimeout(() => r(false), 3000).unref())]);
    settled = ok;
    if (settled) return;
    const retry = (delayMs: number): void => {
      this.declareTimer = setTimeout(async () => {
        if (!this.started) return;
        try {
          await this.transport.declare(topology);
          this.logger.info('producer exchanges declared', { exchanges: topology.exchanges.map((x) => x.name) });
        } catch {
          retry(Math.min(delayMs * 2, 30_000));
        }
      }, delayMs);
      this.declareTimer.unref();
    };
    void attempt.then((done) => {
      if (!done) retry(1000);
    });
  }

  /** The exchanges this producer may publish to: the default one and those named by loaded @MessageContract classes. */
  private producerExchanges(): ExchangeSpec[] {
    const names = new Set<string>([this.options.producer.defaultExchange]);
    for (const meta of getContractMetadataList()) if (meta.exchange) names.add(meta.exchange);
    return [...names].map((name) => ({ name, type: 'topic' as const }));
  }

  get isStarted(): boolean {
    return this.started;
  }

  /**
   * Stops the consumers (running handlers finish, bounded by consumers.shutdownTimeoutMs), then the relay
   * and the fast path (in-flight publishes finish and are marked, bounded by relay.shutdownTimeoutMs),
   * unregisters, closes the transport. Calling it again while it runs returns the same promise.
   */
  stop(options: { closeTransport?: boolean } = {}): Promise<void> {
    if (!this.started) return this.stopping ?? Promise.resolve();
    this.started = false;
    clearTimeout(this.declareTimer);
    clearInterval(this.deadLetterTimer);
    this.stopping = (async () => {
      // First, while the registry, the dispatcher and the transport still serve the handlers' sends and acks.
      await this.consumers.stop();
      TmmRegistry.unregister(this);
      // relay.shutdownTimeoutMs bounds the relay and the fast path together: a broker that stopped answering
      // must not hold a deploy's SIGTERM. Rows not finished by then are released or left leased for the sweeper.
      const deadline = Date.now() + this.options.relay.shutdownTimeoutMs;
      await this.relay.stop();
      await this.dispatcher.stop(Math.max(0, deadline - Date.now()));
      await this.txlog?.stop();
      // Last: what the consumers, the relay and the fast path recorded until now is written (bounded).
      await this.journey?.stop(Math.max(1000, deadline - Date.now()));
      if (options.closeTransport ?? true) await this.transport.close();
    })();
    return this.stopping;
  }

  /** Counters of this process since start (fresh copies). */
  stats(): TmmStats {
    return {
      dispatcher: { ...this.dispatcher.stats },
      relay: { ...this.relay.stats },
      consumers: this.consumers.statsSnapshot(),
      journey: this.journey ? { ...this.journey.stats, buffered: this.journey.buffered } : undefined,
    };
  }

  /**
   * Checks what a load balancer or an operator needs to know, each bounded by `timeoutMs` (default 2 s):
   * the database answers, the broker is connected, the relay runs (where enabled), the outbox backlog and
   * the age of its oldest due row, the consumers run (where enabled). Never throws.
   */
  async health(options: { timeoutMs?: number } = {}): Promise<TmmHealth> {
    const timeoutMs = options.timeoutMs ?? 2000;
    const bounded = <T>(p: Promise<T>): Promise<T> =>
      Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref())]);
    const database: TmmHealth['checks']['database'] = { ok: false };
    const t0 = Date.now();
    try {
      await bounded(this.dataSource.query('SELECT 1'));
      database.ok = true;
      database.latencyMs = Date.now() - t0;
    } catch (e) {
      database.detail = (e as Error).message;
    }
    const connected = this.transport.isConnected;
    const broker: TmmHealthCheck = connected === false ? { ok: false, detail: 'not connected' } : { ok: true, ...(connected === undefined ? { detail: 'the transport does not report its connection' } : {}) };
    const relayEnabled = this.options.relay.enabled;
    const relay = { ok: !relayEnabled || this.relay.isRunning, enabled: relayEnabled, pendingRows: this.relay.pending, ...(relayEnabled && !this.relay.isRunning ? { detail: 'not running' } : {}) };
    const outbox: TmmHealth['checks']['outbox'] = { ok: true, pending: null, oldestPendingAgeMs: null };
    let failingSinceMs: number | null = null;
    if (database.ok && this.outbox.backlogStats) {
      try {
        const b = await bounded(this.outbox.backlogStats());
        outbox.pending = b.pending;
        outbox.oldestPendingAgeMs = b.oldestDueAt === null ? null : Math.max(0, Date.now() - b.oldestDueAt);
        failingSinceMs = b.oldestFailingCreatedAt === null || b.oldestFailingCreatedAt === undefined ? null : Math.max(0, Date.now() - b.oldestFailingCreatedAt);
      } catch (e) {
        outbox.ok = false;
        outbox.detail = (e as Error).message;
      }
    }
    const consumersEnabled = this.options.consumers.enabled;
    const consumers = {
      ok: !this.started || !consumersEnabled || this.consumers.isRunning,
      enabled: consumersEnabled,
      count: this.consumers.definitions.length,
      runningHandlers: this.consumers.runningHandlers,
    };
    const j = this.journey;
    const journey: TmmHealth['checks']['journey'] = j
      ? {
          // Never fails the instance: the journey is observability, not service.
          ok: true,
          enabled: true,
          buffered: j.buffered,
          written: j.stats.written,
          dropped: j.stats.dropped,
          ...(j.error !== undefined
            ? { detail: `writes fail: ${j.error}` }
            : j.stats.dropped > 0
              ? { detail: `${j.stats.dropped} journey event(s) dropped since start (buffer of ${this.options.journey.maxBuffered} full)` }
              : {}),
        }
      : { ok: true, enabled: false, buffered: 0, written: 0, dropped: 0 };
    const checks = { database, broker, relay: { ...relay, ok: !this.started || relay.ok }, outbox, consumers, journey };
    const backlogAgeMs = outbox.oldestPendingAgeMs === null && failingSinceMs === null ? null : Math.max(outbox.oldestPendingAgeMs ?? 0, failingSinceMs ?? 0);
    const alerts = await this.alerts(backlogAgeMs, database.ok, bounded);
    const alerting = (Object.keys(alerts) as (keyof TmmAlerts)[]).filter((k) => alerts[k].firing);
    const ok = this.started && Object.values(checks).every((c) => c.ok) && !(this.options.alerts.failHealth && alerting.length > 0);
    return { ok, started: this.started, checks, alerts, alerting };
  }

  /** `backlogAgeMs`: how long the oldest undelivered row has waited (since due, or since created once a publish of it failed). */
  private async alerts(backlogAgeMs: number | null, databaseOk: boolean, bounded: <T>(p: Promise<T>) => Promise<T>): Promise<TmmAlerts> {
    const a = this.options.alerts;
    const backlogAge = thresholdAlert(backlogAgeMs ?? 0, a.backlogAgeMs, `the oldest undelivered outbox row has waited ${Math.round((backlogAgeMs ?? 0) / 1000)} s`);
    let dead: number | null = null;
    let deadDetail: string | undefined;
    if (a.outboxDeadRows !== null && databaseOk) {
      try {
        dead = this.outbox.countDead ? await bounded(this.outbox.countDead()) : (await bounded(this.outbox.countByStatus())).DEAD;
      } catch (e) {
        deadDetail = `not counted: ${(e as Error).message}`;
      }
    }
    const outboxDead = { ...thresholdAlert(dead, a.outboxDeadRows, `${dead} outbox rows are DEAD (failed every publish attempt)`), ...(deadDetail ? { detail: deadDetail } : {}) };
    const w = this.deadLetterWindow;
    const increase = w ? w.increase() : null;
    const deadLetterRate = {
      ...thresholdAlert(increase, a.deadLetterRate?.max ?? null, `${increase} messages dead-lettered by this process's consumers in the last ${Math.round((w?.windowMs ?? 0) / 1000)} s`),
      windowMs: w?.windowMs ?? null,
    };
    const expected = this.started && this.options.consumers.enabled ? this.consumers.definitions : [];
    const beats = a.consumerStallMs === null ? [] : consumerHeartbeats(expected, this.consumers.activity(), a.consumerStallMs);
    const bad = beats.filter((b) => !b.ok);
    const consumerHeartbeat = {
      firing: bad.length > 0,
      value: bad.length,
      threshold: a.consumerStallMs,
      ...(bad.length > 0 ? { detail: bad.map((b) => `${b.consumer}: ${b.subscribed ? `holds ${b.inHand} deliveries, none settled for ${Math.round(b.stalledMs / 1000)} s` : 'not subscribed'}`).join('; ') } : {}),
      consumers: beats,
    };
    return { backlogAge, outboxDead, deadLetterRate, consumerHeartbeat };
  }

  /**
   * Stops tmm when the process is told to (SIGTERM / SIGINT): stop consuming and let running handlers
   * finish, drain the relay (bounded by its shutdownTimeoutMs), close the transport, destroy the
   * DataSource, exit. The whole sequence is bounded by `timeoutMs`. Returns a function that removes the
   * hooks again.
   */
  enableShutdownHooks(options: ShutdownHooksOptions = {}): () => void {
    const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
    const timeoutMs = options.timeoutMs ?? 30_000;
    let fired = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (fired) return;
      fired = true;
      this.logger.info('shutting down', { signal, tmm: this.name });
      const timer = setTimeout(() => {
        this.logger.error('shutdown did not finish in time; exiting', { timeoutMs });
        if (options.exit ?? true) process.exit(1);
      }, timeoutMs);
      timer.unref();
      (async () => {
        await this.stop();
        if ((options.destroyDataSource ?? true) && this.dataSource.isInitialized) await this.dataSource.destroy();
      })().then(
        () => {
          clearTimeout(timer);
          if (options.exit ?? true) process.exit(0);
        },
        (e) => {
          clearTimeout(timer);
          this.logger.error('shutdown failed', { error: e });
          if (options.exit ?? true) process.exit(1);
        },
      );
    };
    for (const s of signals) process.on(s, onSignal);
    return () => {
      for (const s of signals) process.off(s, onSignal);
    };
  }
}
