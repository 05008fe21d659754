import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { DataSource } from 'typeorm';
import { TmmOptions, validateTmmOptions } from '../config/TmmOptions';
import { AsyncLocalContextStore, ClsHookedContextStore, ContextStore } from '../context';
import { ConsumerRunner } from '../consumer/ConsumerRunner';
import { resolveConsumerRunnerOptions } from '../consumer/ConsumerRunnerOptions';
import { TypeOrmInboxStore } from '../consumer/TypeOrmInboxStore';
import { ConsoleLogger, Logger } from '../logging/Logger';
import { MessageProducer, defaultProducerOptions } from '../outbox/MessageProducer';
import { TypeOrmOutboxStore } from '../outbox/TypeOrmOutboxStore';
import { MigrationResult, migrate } from '../outbox/schema';
import { Dispatcher } from '../relay/Dispatcher';
import { Relay, defaultRelayOptions } from '../relay/Relay';
import { RelayLock } from '../relay/RelayLock';
import { defaultBackoffOptions } from '../relay/backoff';
import { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
import { MemoryTransport } from '../transport/memory/MemoryTransport';
import { Transport } from '../transport/Transport';
import { TmmRegistry } from './TmmRegistry';

/**
 * One configured tmm instance: the components wired for one DataSource. Build it with `new Tmm(options)`
 * (or through the inversify module), `await start()` before use, `await stop()` on shutdown.
 */
export class Tmm {
  readonly name: string;
  readonly instanceId: string;
  readonly dataSource: DataSource;
  readonly contextStore: ContextStore;
  readonly transactions: TypeOrmTransactionManager;
  readonly outbox: TypeOrmOutboxStore;
  readonly transport: Transport;
  readonly dispatcher: Dispatcher;
  readonly producer: MessageProducer;
  readonly relay: Relay;
  /** Where idempotent consumers claim messages (`tmm_inbox`). */
  readonly inbox: TypeOrmInboxStore;
  /** Runs the @Consumer handlers: found at start(), stopped (drained) first by stop(). */
  readonly consumers: ConsumerRunner;
  readonly logger: Logger;
  private readonly options: TmmOptions;
  private started = false;

  constructor(options: TmmOptions) {
    this.options = validateTmmOptions(options);
    const o = this.options;
    this.name = o.name ?? 'default';
    this.instanceId = o.instanceId ?? `${hostname().slice(0, 40)}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.logger = typeof o.logger === 'object' ? o.logger : new ConsoleLogger(o.logger ?? 'warn');
    this.dataSource = o.dataSource;
    this.contextStore =
      o.context === undefined || o.context === 'async-local-storage'
        ? new AsyncLocalContextStore()
        : o.context === 'cls-hooked'
          ? new ClsHookedContextStore()
          : o.context;
    this.transactions = new TypeOrmTransactionManager(this.dataSource, { contextStore: this.contextStore, logger: this.logger });
    this.outbox = new TypeOrmOutboxStore(this.transactions);
    this.transport = o.transport === undefined || o.transport === 'memory' ? new MemoryTransport(this.logger) : o.transport;
    this.dispatcher = new Dispatcher(this.transport, this.outbox, {
      ...o.dispatcher,
      backoff: { ...defaultBackoffOptions, ...o.dispatcher?.backoff },
      owner: this.instanceId,
      logger: this.logger,
    } as ConstructorParameters<typeof Dispatcher>[2]);
    const { enabled: _enabled, ...relayOptions } = o.relay ?? {};
    this.relay = new Relay(this.outbox, this.dispatcher, {
      ...relayOptions,
      owner: this.instanceId,
      logger: this.logger,
      lock: this.transactions.dialect === 'sqlite' ? new RelayLock(this.transactions, this.instanceId) : undefined,
      keepDelivered: o.dispatcher?.deleteDelivered === false,
    });
    this.producer = new MessageProducer(this.transactions, this.outbox, this.dispatcher, this.transport, {
      ...o.producer,
      owner: this.instanceId,
    });
    this.inbox = new TypeOrmInboxStore(this.transactions);
    this.consumers = new ConsumerRunner(
      {
        transport: this.transport,
        transactions: this.transactions,
        contextStore: this.contextStore,
        inbox: this.inbox,
        logger: this.logger,
        tmmName: this.name,
        defaultExchange: o.producer?.defaultExchange ?? defaultProducerOptions.defaultExchange,
      },
      resolveConsumerRunnerOptions(o.consumers),
    );
  }

  /**
   * Initializes the DataSource if needed, migrates tmm's tables (unless `migrate: false`), registers for
   * decorators, starts the relay (unless `relay.enabled: false`) and the consumers (unless
   * `consumers.enabled: false`); a failure of either undoes the rest.
   */
  async start(): Promise<MigrationResult | undefined> {
    if (!this.dataSource.isInitialized) await this.dataSource.initialize();
    const result = this.options.migrate === false ? undefined : await migrate(this.dataSource, { sqliteBusyTimeoutMs: this.options.sqlite?.busyTimeoutMs });
    TmmRegistry.register(this);
    if (this.options.relay?.enabled !== false) {
      try {
        await this.relay.start();
      } catch (e) {
        TmmRegistry.unregister(this);
        throw e;
      }
    }
    if (this.options.consumers?.enabled !== false) {
      try {
        await this.consumers.start();
      } catch (e) {
        // A consumer misconfiguration (or its topology) fails start-up as a whole.
        await this.relay.stop();
        TmmRegistry.unregister(this);
        throw e;
      }
    }
    this.started = true;
    return result;
  }

  get isStarted(): boolean {
    return this.started;
  }

  /**
   * Stops the consumers (running handlers finish, bounded by consumers.shutdownTimeoutMs), then the relay
   * and the fast path (in-flight publishes finish and are marked), unregisters, closes the transport.
   */
  async stop(options: { closeTransport?: boolean } = {}): Promise<void> {
    if (!this.started) return;
    this.started = false;
    // First, while the registry, the dispatcher and the transport still serve the handlers' sends and acks.
    await this.consumers.stop();
    TmmRegistry.unregister(this);
    // relay.shutdownTimeoutMs bounds the relay and the fast path together: a broker that stopped answering
    // must not hold a deploy's SIGTERM. Rows not finished by then are released or left leased for the sweeper.
    const deadline = Date.now() + (this.options.relay?.shutdownTimeoutMs ?? defaultRelayOptions.shutdownTimeoutMs);
    await this.relay.stop();
    await this.dispatcher.stop(Math.max(0, deadline - Date.now()));
    if (options.closeTransport ?? true) await this.transport.close();
  }
}
