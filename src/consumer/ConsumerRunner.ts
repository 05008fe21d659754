import { type ContextStore, newContext } from '../context/ContextStore';
import { TmmError } from '../errors';
import type { Logger } from '../logging/Logger';
import type { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import type { Delivery, Subscription, Topology, Transport } from '../transport/Transport';
import { type ConsumerDefinition, consumerTopology, workQueueSpec } from './ConsumerDefinition';
import { exploreConsumers } from './ConsumerExplorer';
import { type Pipeline, type Stage, composeStages } from './ConsumerPipeline';
import { ConsumerRegistry } from './ConsumerRegistry';
import type { ConsumerRunnerOptions } from './ConsumerRunnerOptions';
import type { ConsumerSource } from './ConsumerSource';
import type { ConsumerObserver } from './ConsumerObserver';
import { DeliveryState, type DeliveryOutcome } from './DeliveryState';
import type { InboxStore } from './InboxStore';
import { contextStage } from './interceptors/contextStage';
import { decodeStage } from './interceptors/decodeStage';
import { handlerStage } from './interceptors/handlerStage';
import { inboxStage } from './interceptors/inboxStage';
import { interceptorStage } from './interceptors/interceptorStage';
import { settleStage } from './interceptors/settleStage';
import { transactionStage } from './interceptors/transactionStage';
import { validateStage } from './interceptors/validateStage';
import { handlerTraceStage, traceStage } from '../tracing/stages';
import { type MessageTracer, noopMessageTracer } from '../tracing/MessageTracer';
import { RecoveryPolicy } from './RecoveryPolicy';
import { type JourneyRecorder, noopJourneyRecorder } from '../journey/JourneyEvent';
import { recordDelivery } from '../journey/deliveryJourney';
import { StopGate } from './StopGate';
import { TransactionBatcher } from './TransactionBatcher';

export interface ConsumerRunnerDeps {
  transport: Transport;
  transactions: TypeOrmTransactionManager;
  contextStore: ContextStore;
  inbox: InboxStore;
  logger: Logger;
  /** The tmm instance's name: consumers with another `dataSource` are not this runner's. */
  tmmName: string;
  /** Exchange of contracts that name none (`producer.defaultExchange`). */
  defaultExchange: string;
  /** Traces each delivery in a `process` span (default: none). */
  tracer?: MessageTracer;
  /** Records each settled delivery's journey steps (default: none), with this process's id and the business-key paths. */
  journey?: { recorder: JourneyRecorder; instance: string; businessKeys: readonly (readonly string[])[] };
}

export interface ConsumerStats {
  handled: number;
  duplicates: number;
  retried: number;
  deadLettered: number;
  /** Given back to the queue unhandled: at shutdown, or when a retry/dead-letter copy could not be published. */
  requeued: number;
  /** Still running when the shutdown timeout passed; rolled back (transactional) and left to the broker. */
  abandoned: number;
}

const OUTCOME_STAT: Record<DeliveryOutcome, keyof ConsumerStats> = {
  handled: 'handled',
  duplicate: 'duplicates',
  retried: 'retried',
  'dead-lettered': 'deadLettered',
  requeued: 'requeued',
  abandoned: 'abandoned',
};

const newStats = (): ConsumerStats => ({ handled: 0, duplicates: 0, retried: 0, deadLettered: 0, requeued: 0, abandoned: 0 });

/**
 * What a consumer of this process is doing now, for health checks: whether its subscription is up and
 * when it last received or settled a delivery.
 */
export interface ConsumerActivity {
  consumer: string;
  queue: string;
  /**
   * The subscription is up: subscribed by this runner, not cancelled, and (where the transport tells,
   * as AMQP does) consuming on a live channel right now.
   */
  subscribed: boolean;
  /** Deliveries in hand: running handlers plus those waiting for a handler slot. */
  inHand: number;
  /** Last delivery received (epoch ms), null when none since start. */
  lastDeliveryAt: number | null;
  /** Last delivery settled (epoch ms), null when none since start. */
  lastSettledAt: number | null;
  /** Since when it has held deliveries without a moment of holding none (epoch ms); null when it holds none. */
  busySince: number | null;
}

/** One started consumer: its subscription, its pipeline, and the deliveries in hand. */
class ActiveConsumer {
  subscription: Subscription | undefined;
  running = 0;
  busySince: number | null = null;
  lastDeliveryAt: number | null = null;
  lastSettledAt: number | null = null;
  /** Delivered (within prefetch) but waiting for a free handler slot (concurrency). */
  readonly waiting: Delivery[] = [];
  constructor(
    readonly def: ConsumerDefinition,
    readonly pipeline: Pipeline,
    /** This consumer's counters (kept across restarts of the runner). */
    readonly stats: ConsumerStats,
  ) {}
}

/**
 * Runs the @Consumer handlers of one tmm instance.
 *
 * start(): explores the sources once (ConsumerDefinitionError for a wrong consumer, before anything is
 * declared), declares every consumer's topology (exchange, work queue with its binding, retry queues,
 * dead-letter queue; a TopologyError names what conflicts), composes each consumer's pipeline once —
 * context → settle (ack | recovery) → decode → validate → transaction → inbox claim → interceptors →
 * handler — and subscribes with the consumer's prefetch; at most `concurrency` handlers of a consumer run
 * at once, the other deliveries in hand wait in arrival order.
 *
 * stop(): cancels the subscriptions (no new deliveries), gives the waiting ones back to the broker
 * (nack + requeue: nothing is acked that was not handled), lets running handlers finish and settle for up
 * to `shutdownTimeoutMs`, then gives up on the rest: their transactions roll back instead of committing
 * and their deliveries stay unsettled, so the broker redelivers them when the transport closes. The
 * transport itself is not closed here.
 */
function topologyOf(definitions: readonly ConsumerDefinition[]): Required<Topology> {
  const topology: Required<Topology> = { exchanges: [], queues: [] };
  for (const d of definitions) {
    const t = consumerTopology(d);
    for (const ex of t.exchanges) if (!topology.exchanges.some((e) => e.name === ex.name)) topology.exchanges.push(ex);
    topology.queues.push(...t.queues);
  }
  return topology;
}

export class ConsumerRunner {
  /** Counters of every consumer of this runner together. */
  readonly stats: ConsumerStats = newStats();
  private readonly byConsumer = new Map<string, ConsumerStats>();
  private readonly sources: ConsumerSource[] = [];
  private readonly registered: object[] = [];
  private readonly recovery: RecoveryPolicy;
  private gate = new StopGate();
  private state: 'idle' | 'starting' | 'running' | 'stopping' = 'idle';
  private active: ActiveConsumer[] = [];
  private registry: ConsumerRegistry | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private drainWaiters: Array<() => void> = [];
  private purgeTimer: NodeJS.Timeout | undefined;
  private readonly journey: NonNullable<ConsumerRunnerDeps['journey']>;
  private observers: ConsumerObserver[] = [];

  constructor(
    private readonly deps: ConsumerRunnerDeps,
    readonly options: ConsumerRunnerOptions,
  ) {
    this.journey = deps.journey ?? { recorder: noopJourneyRecorder, instance: '', businessKeys: [] };
    this.sources.push({ instances: () => this.registered, explicit: true });
    this.recovery = new RecoveryPolicy(deps.transport, {
      maxStackLength: options.maxStackLength,
      recoveryFailureDelayMs: options.recoveryFailureDelayMs,
      logger: deps.logger,
    });
  }

  /** Adds a place to find consumer instances (the DI module adds the container). Takes effect on the next start(). */
  addSource(source: ConsumerSource): void {
    this.sources.push(source);
  }

  /** Adds consumer instances directly (without DI). Takes effect on the next start(). */
  register(...instances: object[]): void {
    this.registered.push(...instances);
  }

  get isRunning(): boolean {
    return this.state === 'running';
  }

  /** The consumers of the last start()/declare(). */
  get definitions(): readonly ConsumerDefinition[] {
    return this.registry?.definitions ?? [];
  }

  /**
   * The same counters per consumer, keyed by the consumer's name (`Class.method`, the `consumer` of its dead
   * letters): every consumer started since this runner was created, cumulative across restarts.
   */
  /** Fresh copies of the totals and of each consumer's counters. */
  statsSnapshot(): { total: ConsumerStats; byConsumer: Record<string, ConsumerStats> } {
    return { total: { ...this.stats }, byConsumer: Object.fromEntries([...this.byConsumer].map(([k, v]) => [k, { ...v }])) };
  }

  get statsByConsumer(): ReadonlyMap<string, Readonly<ConsumerStats>> {
    return this.byConsumer;
  }

  /**
   * Attaches an observer of the deliveries (see ConsumerObserver for the contract); the returned function
   * detaches it. Several may be attached.
   */
  observe(observer: ConsumerObserver): () => void {
    this.observers = [...this.observers, observer];
    return () => {
      this.observers = this.observers.filter((o) => o !== observer);
    };
  }

  /** Each started consumer's subscription and last activity (empty while not running). */
  activity(): ConsumerActivity[] {
    return this.active.map((ac) => {
      const sub = ac.subscription as (Subscription & { readonly isActive?: boolean }) | undefined;
      return {
        consumer: ac.def.name,
        queue: ac.def.queue,
        subscribed: this.state === 'running' && sub !== undefined && sub.isActive !== false,
        inHand: ac.running + ac.waiting.length,
        lastDeliveryAt: ac.lastDeliveryAt,
        lastSettledAt: ac.lastSettledAt,
        busySince: ac.running + ac.waiting.length > 0 ? ac.busySince : null,
      };
    });
  }

  /** Handlers running now, across consumers. */
  get runningHandlers(): number {
    return this.inFlight.size;
  }

  /**
   * Explores the sources and declares every consumer's topology, without consuming. start() does this
   * first; call it alone in a process that must make sure the queues exist (so that messages wait for
   * their consumers, and expire into the dead-letter queues when they have a TTL) without handling them.
   */
  async declare(): Promise<readonly ConsumerDefinition[]> {
    const definitions = this.explore();
    const registry = new ConsumerRegistry(definitions, this.options.inbox.retentionMs);
    if (definitions.length > 0) await this.deps.transport.declare(topologyOf(definitions));
    this.registry = registry;
    return definitions;
  }

  /**
   * What declare() would declare, without touching the broker: every consumer's exchange, work queue with
   * its binding, retry queues and dead-letter queue (each queue once). The input of a classic-to-quorum
   * migration (`tmm amqp migrate-to-quorum --topology`, docs/operations.md).
   */
  topology(): Required<Topology> {
    // The registry checks the consumers as start() would (one queue, one consumer).
    return topologyOf(new ConsumerRegistry(this.explore(), this.options.inbox.retentionMs).definitions);
  }

  private explore(): ConsumerDefinition[] {
    return exploreConsumers(this.sources, {
      tmmName: this.deps.tmmName,
      defaults: this.options,
      defaultExchange: this.deps.defaultExchange,
    });
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') {
      throw new TmmError('TMM_CONSUMERS_STARTED', `the consumer runner is already ${this.state}`);
    }
    this.state = 'starting';
    this.gate = new StopGate();
    const gate = this.gate;
    try {
      const definitions = await this.declare();
      this.active = definitions.map((d) => new ActiveConsumer(d, this.buildPipeline(d), this.statsOf(d.name)));
      for (const ac of this.active) {
        ac.subscription = await this.deps.transport.subscribe({ queue: workQueueSpec(ac.def), prefetch: ac.def.prefetch }, (delivery) =>
          this.onDelivery(ac, delivery, gate),
        );
        this.deps.logger.info('consumer started', {
          consumer: ac.def.name,
          queue: ac.def.queue,
          prefetch: ac.def.prefetch,
          concurrency: ac.def.concurrency,
          idempotent: ac.def.idempotent,
          ordered: ac.def.ordered,
        });
      }
    } catch (e) {
      this.state = 'stopping';
      gate.stop();
      await Promise.all(this.active.map((ac) => ac.subscription?.cancel().catch(() => undefined)));
      await this.releaseWaiting();
      // Consumers subscribed before the failure may be handling messages: let them settle.
      if (!(await this.drain(this.options.shutdownTimeoutMs))) gate.abandon();
      this.active = [];
      this.state = 'idle';
      throw e;
    }
    if (this.active.some((ac) => ac.def.idempotent) && this.options.inbox.purgeIntervalMs > 0) {
      this.purgeTimer = setInterval(() => void this.purgeInbox(), this.options.inbox.purgeIntervalMs);
      this.purgeTimer.unref();
    }
    this.state = 'running';
  }

  async stop(): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'stopping';
    const gate = this.gate;
    gate.stop();
    clearInterval(this.purgeTimer);
    this.purgeTimer = undefined;
    await Promise.all(
      this.active.map((ac) =>
        ac.subscription?.cancel().catch((e: unknown) => this.deps.logger.warn('consumer cancel failed', { consumer: ac.def.name, error: (e as Error).message })),
      ),
    );
    await this.releaseWaiting();
    const drained = await this.drain(this.options.shutdownTimeoutMs);
    if (!drained) {
      gate.abandon();
      this.deps.logger.warn('consumer shutdown timed out; handlers still running will be rolled back and their messages redelivered', {
        running: this.inFlight.size,
        timeoutMs: this.options.shutdownTimeoutMs,
      });
    }
    this.active = [];
    this.state = 'idle';
  }

  /** Deletes inbox claims older than the retention; also run every `inbox.purgeIntervalMs` while consuming. */
  async purgeInbox(): Promise<number> {
    try {
      return await this.deps.contextStore.run(newContext(), () => this.deps.inbox.purge(Date.now() - this.options.inbox.retentionMs));
    } catch (e) {
      this.deps.logger.warn('inbox purge failed', { error: (e as Error).message });
      return 0;
    }
  }

  private buildPipeline(def: ConsumerDefinition): Pipeline {
    const gate = () => this.gate;
    const tracer = this.deps.tracer ?? noopMessageTracer;
    const stages: Stage[] = [contextStage(this.deps.contextStore), traceStage(tracer, this.deps.contextStore), settleStage(this.recovery, gate), decodeStage(), validateStage(def)];
    if (def.transactional) {
      const tx = transactionStage(this.deps.transactions, gate);
      const claim = def.idempotent ? inboxStage(this.deps.inbox) : undefined;
      // One delivery: transaction → claim → the rest. Also the fallback of a failed group.
      const single = (state: DeliveryState, rest: () => Promise<void>) => tx(state, () => (claim ? claim(state, rest) : rest()));
      if (def.messagesPerTransaction > 1) {
        stages.push(new TransactionBatcher(def, this.deps.transactions, this.deps.inbox, single, gate).stage());
      } else {
        stages.push(single);
      }
    }
    for (const interceptor of def.interceptors) stages.push(interceptorStage(interceptor));
    if (tracer.enabled) stages.push(handlerTraceStage());
    stages.push(handlerStage());
    return composeStages(stages);
  }

  private statsOf(name: string): ConsumerStats {
    let stats = this.byConsumer.get(name);
    if (!stats) this.byConsumer.set(name, (stats = newStats()));
    return stats;
  }

  /** Counts a settled delivery, for the runner and for its consumer. */
  private count(ac: ActiveConsumer, stat: keyof ConsumerStats, n = 1): void {
    this.stats[stat] += n;
    ac.stats[stat] += n;
  }

  private onDelivery(ac: ActiveConsumer, delivery: Delivery, gate: StopGate): void {
    ac.lastDeliveryAt = Date.now();
    if (ac.running + ac.waiting.length === 0) ac.busySince = ac.lastDeliveryAt;
    for (const o of this.observers) {
      try {
        o.onDelivery?.(ac.def.name, delivery.message.id, ac.lastDeliveryAt);
      } catch {
        // An observer must not break consuming (see ConsumerObserver).
      }
    }
    if (gate.stopping || gate !== this.gate) {
      this.count(ac, 'requeued');
      void delivery.nack({ requeue: true });
      return;
    }
    if (ac.running >= ac.def.concurrency) {
      ac.waiting.push(delivery);
      return;
    }
    this.launch(ac, delivery, gate);
  }

  private launch(ac: ActiveConsumer, delivery: Delivery, gate: StopGate): void {
    ac.running++;
    const state = new DeliveryState(delivery, ac.def, () => this.deps.transactions.manager);
    const journey = this.journey;
    const startedAt = journey.recorder.enabled ? Date.now() : 0;
    const run: Promise<void> = ac
      .pipeline(state)
      .then(() => {
        this.count(ac, OUTCOME_STAT[state.outcome ?? 'handled']);
        if (journey.recorder.enabled) recordDelivery(journey.recorder, journey.instance, journey.businessKeys, state, startedAt);
        ac.lastSettledAt = Date.now();
        if (this.observers.length > 0) this.notifySettled(ac, state, ac.lastSettledAt);
        if (state.outcome === 'duplicate') {
          this.deps.logger.debug('consumer skipped a duplicate', { consumer: ac.def.name, queue: ac.def.queue, messageId: state.messageId, redelivered: delivery.redelivered });
        }
      })
      .catch(async (e: unknown) => {
        // The pipeline settles every failure itself; reaching here is a bug in a stage. Give the message back.
        this.deps.logger.error('consumer pipeline failed unexpectedly; the message goes back to its queue', {
          consumer: ac.def.name,
          messageId: delivery.message.id,
          error: (e as Error)?.message ?? String(e),
        });
        if (!gate.abandoned) await delivery.nack({ requeue: true });
        this.count(ac, 'requeued');
      })
      .finally(() => {
        ac.running--;
        this.inFlight.delete(run);
        const next = ac.waiting.shift();
        if (next) {
          if (gate.stopping) {
            this.count(ac, 'requeued');
            void next.nack({ requeue: true });
          } else {
            this.launch(ac, next, gate);
          }
        }
        if (this.inFlight.size === 0) for (const w of this.drainWaiters.splice(0)) w();
      });
    this.inFlight.add(run);
  }

  private notifySettled(ac: ActiveConsumer, state: DeliveryState, at: number): void {
    const m = state.delivery.message;
    const settled = {
      consumer: ac.def.name,
      queue: ac.def.queue,
      topic: state.topic,
      messageId: state.messageId,
      outcome: state.outcome ?? 'handled',
      attempt: state.attempt,
      createdAt: m.timestamp,
      settledAt: at,
      ...(state.retry ? { retry: state.retry } : {}),
    };
    for (const o of this.observers) {
      try {
        o.onSettled?.(settled);
      } catch {
        // An observer must not break consuming (see ConsumerObserver).
      }
    }
  }

  private async releaseWaiting(): Promise<void> {
    const waiting = this.active.flatMap((ac) => {
      const given = ac.waiting.splice(0);
      this.count(ac, 'requeued', given.length);
      return given;
    });
    await Promise.all(waiting.map((d) => d.nack({ requeue: true })));
  }

  /** True when every running handler settled within `timeoutMs`. */
  private drain(timeoutMs: number): Promise<boolean> {
    if (this.inFlight.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.drainWaiters = this.drainWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.drainWaiters.push(done);
    });
  }
}
