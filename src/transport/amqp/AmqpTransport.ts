import * as amqp from 'amqplib';
import { PublishError, TmmError, TopologyError, TransportClosedError } from '../../errors';
import { type Logger, redactUrl } from '../../logging/Logger';
import type {
  DeliveryHandler,
  SubscribeOptions,
  Subscription,
  Topology,
  Transport,
  TransportFeatures,
  TransportMessage,
} from '../Transport';
import { errorText, replyCode } from './amqpErrors';
import { type DeclareStep, declareSteps, topologyError, validateTopology } from './amqpTopology';
import { AmqpTopologyRegistry } from './AmqpTopologyRegistry';
import { AmqpPublishChannel, ChannelGoneSignal } from './AmqpPublishChannel';
import { AmqpSubscription, type AmqpSubscriptionHost } from './AmqpSubscription';
import { type AmqpTransportOptions, type AmqpTransportOptionsInput, resolveAmqpTransportOptions } from './AmqpTransportOptions';
import { InFlightWindow } from '../InFlightWindow';
import { closeQuietly, closedPublish, raceTimeout, withDeadline, withHeartbeat } from './amqpAsync';

export type { AmqpReconnectOptions, AmqpTransportOptions, AmqpTransportOptionsInput } from './AmqpTransportOptions';
export { defaultAmqpTransportOptions } from './AmqpTransportOptions';

type State = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';

/** Rounds of "get a connection and a channel, then send" one publish may go through before it gives up. */
const MAX_SEND_ATTEMPTS = 10;

interface ReadyWaiter {
  resolve(model: amqp.ChannelModel): void;
  reject(err: Error): void;
  closedError(): Error;
}

/**
 * The Transport port on RabbitMQ (amqplib's promise API), over one managed connection.
 *
 * Connection: opened lazily by the first call (or connect()), with heartbeats, and re-opened by amqplib's
 * recovery (exponential backoff with jitter, capped at reconnect.maxDelayMs) until close(). Each state
 * change is one log line: `amqp connecting|connected|disconnected|reconnecting|closed`, URL password
 * masked. After a reconnect every exchange, queue and binding declared so far is declared again, then
 * every live subscription consumes again; only then do waiting publishes proceed.
 *
 * Publishing: on one confirm channel, persistent and mandatory, with messageId, contentType, timestamp
 * (AMQP seconds) and headers. publish() resolves on the broker's ack and rejects with a PublishError:
 * TMM_PUBLISH_UNROUTABLE when returned (no queue bound) or when the exchange does not exist,
 * TMM_PUBLISH_NACKED on a nack, TMM_PUBLISH_TIMEOUT when no confirm came within confirmTimeoutMs (or it
 * could not even be sent in that time), TMM_PUBLISH_CONNECTION_LOST when the channel or connection went
 * away first (or none came back within confirmTimeoutMs), TMM_PUBLISH_CLOSED when close() overtook it.
 * At most maxInFlight publishes await confirms; the rest wait for a slot, and all wait while the socket's
 * write buffer is full. An exchange is checked (passively, on a throw-away channel) before the first
 * publish to it, so a typo fails that publish alone instead of closing the shared channel; if an exchange
 * is deleted later, the broker closes the publish channel, the publish naming it fails and a new channel
 * is opened transparently for the next one.
 *
 * declare() runs on a short-lived channel, so a 406 cannot hurt publishing or consuming.
 *
 * Consuming: each subscription has its own channel, per-consumer prefetch and manual acks; its handler
 * runs for up to `prefetch` deliveries at once. A handler that throws or rejects has its unsettled
 * delivery nacked with requeue (and an error logged). A delivery is settled on the channel it arrived on;
 * if that channel is gone, ack()/nack() do nothing and the broker redelivers it (never an ack on the new
 * channel, whose delivery tags mean other messages). A consumer the broker cancels (queue deleted) is
 * declared and started again.
 *
 * close() fails every unconfirmed publish at once with TMM_PUBLISH_CLOSED (it does not wait for confirms;
 * such a message may still be delivered), closes consumer channels (the broker requeues unsettled
 * deliveries), the publish channel and the connection, each bounded by closeTimeoutMs.
 */
export class AmqpTransport implements Transport {
  readonly features: TransportFeatures = { durable: true, confirms: true };
  /** Resolved options; private because the URL carries the password. */
  private readonly options: Readonly<AmqpTransportOptions>;

  private readonly logger: Logger;
  private readonly safeUrl: string;
  private state: State = 'idle';
  private recovering: amqp.RecoveringChannelModel | undefined;
  private starting: Promise<void> | undefined;
  /** The current connection, from 'connect' to 'disconnect'. */
  private live: amqp.ChannelModel | undefined;
  /** The current connection once topology and subscriptions are restored; what calls wait for. */
  private ready: amqp.ChannelModel | undefined;
  /** Incremented on every connect, disconnect and close; a restore of an older generation stops. */
  private generation = 0;
  private readonly readyWaiters = new Set<ReadyWaiter>();
  private publishChannel: AmqpPublishChannel | undefined;
  private openingPublishChannel: Promise<AmqpPublishChannel> | undefined;
  private readonly window: InFlightWindow;
  /** Everything declared so far, re-declared after a reconnect. */
  private readonly topology = new AmqpTopologyRegistry();
  private readonly checkingExchanges = new Map<string, Promise<boolean>>();
  private readonly subscriptions = new Set<AmqpSubscription>();
  private readonly subscriptionHost: AmqpSubscriptionHost;
  private closing: Promise<void> | undefined;

  constructor(options: AmqpTransportOptionsInput = {}) {
    this.options = resolveAmqpTransportOptions(options);
    this.logger = this.options.logger;
    this.safeUrl = redactUrl(this.options.url);
    this.window = new InFlightWindow(this.options.maxInFlight);
    this.subscriptionHost = {
      logger: this.logger,
      currentConnection: () => this.ready,
      redeclareQueue: (sub) => this.declare({ queues: [sub.options.queue] }),
      resubscribeDelayMs: Math.max(100, this.options.reconnect.initialDelayMs),
      maxResubscribeDelayMs: Math.max(100, this.options.reconnect.maxDelayMs),
      forget: (sub) => this.subscriptions.delete(sub),
    };
  }

  /** The name this transport's connection shows on the broker. */
  get connectionName(): string {
    return this.options.connectionName;
  }

  /** True while connected with topology and subscriptions restored. */
  get isConnected(): boolean {
    return this.ready !== undefined;
  }

  /**
   * Starts connecting (if not yet) and resolves once connected and restored. Optional: every other call
   * connects on demand. Rejects with TmmError TMM_TRANSPORT_CONNECT_TIMEOUT after timeoutMs (the transport
   * keeps trying in the background).
   */
  async connect(timeoutMs: number = this.options.connectTimeoutMs): Promise<void> {
    this.assertOpen('connect');
    await this.waitReady(
      Date.now() + timeoutMs,
      () => new TmmError('TMM_TRANSPORT_CONNECT_TIMEOUT', `AmqpTransport.connect: not connected to ${this.safeUrl} within ${timeoutMs}ms`),
      () => new TransportClosedError('AmqpTransport.connect'),
    );
  }

  async declare(topology: Topology): Promise<void> {
    this.assertOpen('declare');
    validateTopology(topology);
    const steps = declareSteps(topology);
    if (steps.length === 0) return;
    const model = await this.waitReady(
      Date.now() + this.options.connectTimeoutMs,
      () => new TopologyError(`topology not declared: no connection to the broker within ${this.options.connectTimeoutMs}ms`),
      () => new TransportClosedError('AmqpTransport.declare'),
    );
    const declareDeadline = Date.now() + this.options.connectTimeoutMs;
    const unanswered = () => new TopologyError(`topology not declared: the broker did not answer within ${this.options.connectTimeoutMs}ms`);
    let channel: amqp.Channel;
    try {
      channel = await withDeadline(this.openChannel(model, 'declaration'), declareDeadline, unanswered);
    } catch (err) {
      if (err instanceof TopologyError) throw err;
      throw new TopologyError(`topology not declared: could not open a channel (${errorText(err)})`, { cause: err });
    }
    try {
      for (const step of steps) {
        let ran: Promise<unknown>;
        try {
          ran = step.run(channel);
        } catch (err) {
          throw topologyError(step, err);
        }
        await withDeadline(
          ran.catch((err: unknown) => {
            throw topologyError(step, err);
          }),
          declareDeadline,
          unanswered,
        );
      }
    } finally {
      closeQuietly(channel);
    }
    this.topology.record(topology);
  }

  publish(message: TransportMessage): Promise<void> {
    // Fast path, taken by nearly every publish: connected, the exchange known, the confirm channel open and
    // writable, a free slot. No await before the write, so a publish costs one promise and no timer.
    const channel = this.publishChannel;
    if (
      channel !== undefined &&
      this.state === 'connected' &&
      this.ready !== undefined &&
      channel.model === this.ready &&
      channel.isOpen &&
      channel.isWritable &&
      this.topology.isKnown(message.exchange)
    ) {
      const release = this.window.tryAcquire();
      if (release !== undefined) {
        return channel.send(message, release).catch((err: unknown) => {
          // Nothing was written (the channel closed in between): the full path gets a new channel.
          if (err instanceof ChannelGoneSignal) return this.publishSlowly(message);
          throw err;
        });
      }
    }
    return this.publishSlowly(message);
  }

  /** publish() when something is not in place yet: waits (bounded by confirmTimeoutMs) for a slot, the connection, the exchange check, the channel, the drain. */
  private async publishSlowly(message: TransportMessage): Promise<void> {
    this.assertOpen(`publish ${message.id}`);
    const timeoutMs = this.options.confirmTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    const release = await this.window.acquire(
      deadline,
      () =>
        new PublishError(
          'TMM_PUBLISH_TIMEOUT',
          `message ${message.id} was not sent within ${timeoutMs}ms: all ${this.options.maxInFlight} in-flight slots stayed busy (it was not published)`,
        ),
    );
    try {
      for (let attempt = 1; ; attempt++) {
        if (this.state === 'closed') throw closedPublish(message);
        if (attempt > MAX_SEND_ATTEMPTS) {
          throw new PublishError(
            'TMM_PUBLISH_CONNECTION_LOST',
            `message ${message.id} was not sent: the connection or publish channel failed ${MAX_SEND_ATTEMPTS} times in a row (it was not published)`,
          );
        }
        const model = await this.waitReady(
          deadline,
          () =>
            new PublishError(
              'TMM_PUBLISH_CONNECTION_LOST',
              `message ${message.id} was not sent: no connection to the broker within ${timeoutMs}ms (it was not published)`,
            ),
          () => closedPublish(message),
        );
        // Neither the exchange check nor the channel opening may outlive the publish's deadline: a broker that
        // stopped answering (its process frozen, a silent partition with heartbeats off) never replies to them.
        const stalled = (what: string) => () =>
          new PublishError('TMM_PUBLISH_TIMEOUT', `message ${message.id} was not sent within ${timeoutMs}ms: the broker did not answer ${what} (it was not published)`);
        if (!(await withDeadline(this.ensureExchange(model, message), deadline, stalled(`the check of exchange "${message.exchange}"`)))) continue;
        const channel = await withDeadline(this.acquirePublishChannel(model, message), deadline, stalled('the opening of a confirm channel'));
        if (!channel) continue;
        // An earlier publish filled the channel's write buffer: wait for 'drain' (or the channel to close).
        if (!channel.isWritable) this.logger.debug('amqp publish waits for the write buffer to drain', { messageId: message.id });
        while (!channel.isWritable && channel.isOpen) {
          await channel.whenWritable(
            deadline,
            () => new PublishError('TMM_PUBLISH_TIMEOUT', `message ${message.id} was not sent within ${timeoutMs}ms: the write buffer did not drain`),
          );
        }
        try {
          // The slot is released in `finally`, not by send(): after a ChannelGoneSignal the loop sends again under the same slot.
          return await channel.send(message);
        } catch (err) {
          // Nothing was written (the channel closed in between): safe to send on the next channel.
          if (err instanceof ChannelGoneSignal) continue;
          throw err;
        }
      }
    } finally {
      release();
    }
  }

  async subscribe(options: SubscribeOptions, handler: DeliveryHandler): Promise<Subscription> {
    const name = options.queue.name;
    this.assertOpen(`subscribe ${name}`);
    if (!Number.isInteger(options.prefetch) || options.prefetch < 1) {
      throw new TopologyError(`subscription to queue "${name}": prefetch must be an integer ≥ 1, got ${options.prefetch}`);
    }
    await this.declare({ queues: [options.queue] });
    const sub = new AmqpSubscription(this.subscriptionHost, options, handler);
    this.subscriptions.add(sub);
    let model: amqp.ChannelModel | undefined;
    try {
      model = await this.waitReady(
        Date.now() + this.options.connectTimeoutMs,
        () => new TmmError('TMM_SUBSCRIBE_FAILED', `subscription to queue "${name}": no connection within ${this.options.connectTimeoutMs}ms`),
        () => new TransportClosedError(`AmqpTransport.subscribe ${name}`),
      );
      await sub.attach(model);
    } catch (err) {
      // Lost the connection half-way: the subscription is resumed with the others after the reconnect.
      if (model !== undefined && this.ready !== model && this.state !== 'closed') return sub;
      this.subscriptions.delete(sub);
      await sub.cancel().catch(() => undefined);
      if (TmmError.is(err)) throw err;
      throw new TmmError('TMM_SUBSCRIBE_FAILED', `subscription to queue "${name}" could not start: ${errorText(err)}`, { cause: err });
    }
    return sub;
  }

  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutdown();
    return this.closing;
  }

  /**
   * Deletes queues (with their messages) and exchanges, and forgets them so a reconnect does not declare
   * them again. Not part of the Transport port: for tests and tooling. A name that does not exist is fine.
   */
  async remove(topology: Topology): Promise<void> {
    this.assertOpen('remove');
    const model = await this.waitReady(
      Date.now() + this.options.connectTimeoutMs,
      () => new TopologyError(`topology not removed: no connection within ${this.options.connectTimeoutMs}ms`),
      () => new TransportClosedError('AmqpTransport.remove'),
    );
    const steps: DeclareStep[] = [
      ...(topology.queues ?? []).map((q) => ({ what: `queue "${q.name}"`, run: (ch: amqp.Channel) => ch.deleteQueue(q.name) })),
      ...(topology.exchanges ?? []).map((e) => ({ what: `exchange "${e.name}"`, run: (ch: amqp.Channel) => ch.deleteExchange(e.name) })),
    ];
    this.topology.forget(topology);
    for (const step of steps) {
      const ch = await this.openChannel(model, 'removal');
      try {
        await step.run(ch);
      } catch (err) {
        throw new TopologyError(`${step.what} could not be deleted (${errorText(err)})`, { cause: err });
      } finally {
        closeQuietly(ch);
      }
    }
  }

  /** Message and consumer counts of a queue (passive declare). Not part of the port: for tests and health checks. */
  async inspectQueue(name: string): Promise<{ messageCount: number; consumerCount: number }> {
    this.assertOpen('inspectQueue');
    const model = await this.waitReady(
      Date.now() + this.options.connectTimeoutMs,
      () => new TopologyError(`queue "${name}" not inspected: no connection within ${this.options.connectTimeoutMs}ms`),
      () => new TransportClosedError('AmqpTransport.inspectQueue'),
    );
    const ch = await this.openChannel(model, 'inspection');
    try {
      const { messageCount, consumerCount } = await ch.checkQueue(name);
      return { messageCount, consumerCount };
    } catch (err) {
      throw new TopologyError(`queue "${name}" could not be inspected (${errorText(err)})`, { cause: err });
    } finally {
      closeQuietly(ch);
    }
  }

  // ---- connection lifecycle ----

  private start(): void {
    if (this.state !== 'idle') return;
    this.state = 'connecting';
    const { url, heartbeat, connectTimeoutMs, connectionName, reconnect } = this.options;
    this.logger.info('amqp connecting', { url: this.safeUrl, connectionName });
    this.starting = amqp
      .connect(withHeartbeat(url, heartbeat), {
        timeout: connectTimeoutMs,
        clientProperties: { connection_name: connectionName },
        recovery: {
          initialDelay: reconnect.initialDelayMs,
          maxDelay: reconnect.maxDelayMs,
          factor: reconnect.factor,
          jitter: reconnect.jitter,
          waitForConnect: false,
        },
      })
      .then((recovering) => {
        // Listeners go on before the first attempt, which amqplib defers with setImmediate.
        recovering.on('connect', (model: amqp.ChannelModel) => this.onConnect(model));
        recovering.on('disconnect', (err: Error) => this.onDisconnect(err));
        recovering.on('reconnect-scheduled', (info: { attempt: number; delay: number; error: Error }) => {
          if (this.state === 'closed') return;
          this.state = 'disconnected';
          this.logger.warn('amqp reconnecting', {
            url: this.safeUrl,
            connectionName,
            attempt: info.attempt,
            delayMs: info.delay,
            error: errorText(info.error),
          });
        });
        recovering.on('connect-failed', (err: Error) => this.logger.debug('amqp connection attempt failed', { error: errorText(err) }));
        // A connection 'error' precedes its 'close'; the disconnect line reports it.
        recovering.on('error', (err: Error) => this.logger.debug('amqp connection error', { error: errorText(err) }));
        recovering.on('blocked', (reason: string) => this.logger.warn('amqp connection blocked by the broker', { reason }));
        recovering.on('unblocked', () => this.logger.info('amqp connection unblocked'));
        recovering.on('reconnect-failed', (err: Error) => this.logger.error('amqp gave up reconnecting', { error: errorText(err) }));
        this.recovering = recovering;
        if (this.state === 'closed') return recovering.close();
      })
      .catch((err: unknown) => {
        this.logger.error('amqp connection could not be set up', { url: this.safeUrl, error: errorText(err) });
      });
  }

  private onConnect(model: amqp.ChannelModel): void {
    if (this.state === 'closed') return;
    const generation = ++this.generation;
    this.live = model;
    this.state = 'connected';
    this.logger.info('amqp connected', {
      url: this.safeUrl,
      connectionName: this.options.connectionName,
      server: model.connection.serverProperties?.version,
    });
    this.restore(model, generation)
      .then(() => {
        if (generation !== this.generation || this.state === 'closed') return;
        this.ready = model;
        for (const w of [...this.readyWaiters]) w.resolve(model);
        this.readyWaiters.clear();
      })
      .catch((err: unknown) => this.logger.error('amqp restore after connecting failed', { error: errorText(err) }));
  }

  private onDisconnect(err: Error): void {
    this.generation++;
    this.live = undefined;
    this.ready = undefined;
    if (this.state === 'closed') return;
    this.state = 'disconnected';
    // amqplib has already closed every channel of the connection: unconfirmed publishes failed with
    // TMM_PUBLISH_CONNECTION_LOST and consumers' unsettled deliveries went back to their queues.
    this.publishChannel = undefined;
    this.logger.warn('amqp disconnected', { url: this.safeUrl, connectionName: this.options.connectionName, error: errorText(err) });
  }

  /** Declares recorded topology again, then resumes subscriptions. Failures are logged, never thrown. */
  private async restore(model: amqp.ChannelModel, generation: number): Promise<void> {
    const steps = declareSteps(this.topology.restoreTopology());
    let channel: amqp.Channel | undefined;
    for (const step of steps) {
      if (generation !== this.generation) return;
      try {
        channel ??= await this.openChannel(model, 'declaration');
        await step.run(channel);
      } catch (err) {
        this.logger.error('amqp could not restore topology after reconnecting', { error: topologyError(step, err).message });
        if (channel) closeQuietly(channel);
        channel = undefined;
      }
    }
    if (channel) closeQuietly(channel);
    if (generation !== this.generation) return;
    await Promise.all([...this.subscriptions].map((sub) => sub.resume(model)));
    this.logger.debug('amqp topology and subscriptions restored', {
      ...this.topology.size,
      subscriptions: this.subscriptions.size,
    });
  }

  /** Resolves with the ready connection; rejects with onTimeout() at the deadline or closedError() on close. */
  private waitReady(deadline: number, onTimeout: () => Error, closedError: () => Error): Promise<amqp.ChannelModel> {
    if (this.state === 'closed') return Promise.reject(closedError());
    this.start();
    if (this.ready) return Promise.resolve(this.ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readyWaiters.delete(waiter);
        reject(onTimeout());
      }, Math.max(0, deadline - Date.now()));
      const waiter: ReadyWaiter = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        closedError,
      };
      this.readyWaiters.add(waiter);
    });
  }

  private async openChannel(model: amqp.ChannelModel, purpose: string): Promise<amqp.Channel> {
    const channel = await model.createChannel();
    // Without an 'error' listener amqplib rethrows a server channel close and takes the connection down.
    channel.on('error', (err: Error) => this.logger.debug(`amqp ${purpose} channel closed by the broker`, { error: errorText(err) }));
    return channel;
  }

  // ---- publishing ----

  /**
   * False when the connection changed under the check (the caller loops). Rejects with
   * TMM_PUBLISH_UNROUTABLE when the exchange does not exist.
   */
  private async ensureExchange(model: amqp.ChannelModel, message: TransportMessage): Promise<boolean> {
    const name = message.exchange;
    if (this.topology.isKnown(name)) return true;
    let check = this.checkingExchanges.get(name);
    if (!check) {
      check = this.checkExchange(model, name).finally(() => this.checkingExchanges.delete(name));
      this.checkingExchanges.set(name, check);
    }
    let exists: boolean;
    try {
      exists = await check;
    } catch (err) {
      if (this.ready !== model || this.state === 'closed') return false;
      throw new PublishError('TMM_PUBLISH_FAILED', `message ${message.id}: could not check exchange "${name}" (${errorText(err)})`, { cause: err });
    }
    if (!exists) {
      throw new PublishError('TMM_PUBLISH_UNROUTABLE', `message ${message.id} was not published: exchange "${name}" does not exist`);
    }
    return true;
  }

  private async checkExchange(model: amqp.ChannelModel, name: string): Promise<boolean> {
    // A passive declare of a missing exchange closes its channel (404), hence a throw-away channel.
    const channel = await this.openChannel(model, 'exchange check');
    try {
      await channel.checkExchange(name);
      this.topology.markKnown(name);
      return true;
    } catch (err) {
      if (replyCode(err) === 404) return false;
      throw err;
    } finally {
      closeQuietly(channel);
    }
  }

  /** The open confirm channel of `model`, opened if needed; undefined when the connection changed meanwhile. */
  private async acquirePublishChannel(model: amqp.ChannelModel, message: TransportMessage): Promise<AmqpPublishChannel | undefined> {
    const current = this.publishChannel;
    if (current && current.isOpen && current.model === model) return current;
    if (!this.openingPublishChannel) {
      this.openingPublishChannel = AmqpPublishChannel.open(model, {
        confirmTimeoutMs: this.options.confirmTimeoutMs,
        logger: this.logger,
        wire: { appId: this.options.appId ?? this.options.connectionName, cloudEvents: this.options.cloudEvents },
        onMissingExchange: (exchange) => this.topology.markUnknown(exchange),
      })
        .then((channel) => {
          if (this.state === 'closed') {
            void channel.close(this.options.closeTimeoutMs);
          } else {
            this.publishChannel = channel;
          }
          return channel;
        })
        .finally(() => {
          this.openingPublishChannel = undefined;
        });
    }
    try {
      const channel = await this.openingPublishChannel;
      return channel.model === model && channel.isOpen ? channel : undefined;
    } catch (err) {
      if (this.ready !== model || this.state === 'closed') return undefined;
      throw new PublishError('TMM_PUBLISH_FAILED', `message ${message.id} was not sent: could not open a confirm channel (${errorText(err)})`, {
        cause: err,
      });
    }
  }

  // ---- bookkeeping ----

  private assertOpen(method: string): void {
    if (this.state === 'closed') throw new TransportClosedError(`AmqpTransport.${method}`);
  }

  private async shutdown(): Promise<void> {
    const wasStarted = this.state !== 'idle';
    this.state = 'closed';
    this.generation++;
    const timeoutMs = this.options.closeTimeoutMs;
    for (const w of [...this.readyWaiters]) w.reject(w.closedError());
    this.readyWaiters.clear();
    this.window.rejectAll(() => new PublishError('TMM_PUBLISH_CLOSED', 'publish was waiting for an in-flight slot when the transport closed (it was not published)'));
    this.publishChannel?.failAll(
      (m) => new PublishError('TMM_PUBLISH_CLOSED', `message ${m.id} was not confirmed before the transport closed; it may still be delivered`),
    );
    const subs = [...this.subscriptions];
    this.subscriptions.clear();
    await Promise.all(subs.map((s) => s.shutdown(timeoutMs)));
    await this.publishChannel?.close(timeoutMs);
    this.publishChannel = undefined;
    await this.starting;
    const live = this.live;
    this.live = undefined;
    this.ready = undefined;
    if (this.recovering) {
      const closed = await raceTimeout(
        this.recovering.close().catch(() => undefined),
        timeoutMs,
      );
      if (!closed && live) {
        // The broker did not answer connection.close (e.g. the network is gone): drop the socket so
        // amqplib tears the connection down and stops its heartbeat timers.
        this.logger.warn('amqp connection did not close within closeTimeoutMs; dropping the socket', { timeoutMs });
        const stream = (live.connection as unknown as { stream?: { destroy(err?: Error): void } }).stream;
        stream?.destroy(new Error('closed by AmqpTransport.close() after closeTimeoutMs'));
      }
    }
    if (wasStarted) this.logger.info('amqp closed', { url: this.safeUrl, connectionName: this.options.connectionName });
  }
}
