import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { type NatsConnection, connect, nanos } from '@nats-io/transport-node';
import { PublishError, TopologyError, TransportClosedError } from '../../errors';
import { type Logger, redactUrl } from '../../logging/Logger';
import type { ExchangeSpec, QueueSpec, SubscribeOptions, Subscription, Topology, Transport, TransportFeatures, TransportMessage, DeliveryHandler } from '../Transport';
import { InFlightWindow } from '../InFlightWindow';
import { NatsLease } from './NatsLease';
import { NatsPubAcks, type PubAckOutcome } from './NatsPubAcks';
import { NatsRouteTable, ensureStream, isNotFound } from './NatsRouteTable';
import { NatsSubscription, type NatsSubscriptionHost, storedAt } from './NatsSubscription';
import { type NatsTransportOptions, type NatsTransportOptionsInput, resolveNatsTransportOptions } from './NatsTransportOptions';
import { NatsNames, type QueueIdentity, decodeMessage, encodeHeaders, identityDiff, publishMsgId, queueIdentity } from './natsWire';

interface Conn {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  routes: NatsRouteTable;
  acks: NatsPubAcks;
}

interface InFlight {
  reject(err: Error): void;
}

/**
 * The Transport port on NATS JetStream (`@nats-io/transport-node` + `@nats-io/jetstream`), with the AMQP
 * model of the port kept on top of it:
 *
 * - Each queue is a JetStream stream (`<P>_Q_<queue>`, work-queue retention, file storage, subject
 *   `<prefix>.q.<queue>`) with one durable pull consumer (`tmm`, explicit acks) that every subscriber
 *   shares. Its options are kept in the stream's description; a declaration with other options is a
 *   TopologyError naming the queue.
 * - Exchanges and bindings live in a topology stream that every transport follows (NatsRouteTable); a
 *   publish is routed by the publisher to each matching queue's stream, so topic bindings, the default
 *   exchange and "unroutable" behave as on RabbitMQ.
 * - publish() awaits every PubAck (the confirm). Each publish carries `Nats-Msg-Id` (the message id, plus
 *   the consume attempt or a dead-letter mark for the copies consumers publish), so a second publish of
 *   the same message inside the stream's duplicate window (`duplicateWindowMs`) is acknowledged but not
 *   stored twice: a relay that republishes after a lost confirm does not duplicate. At most maxInFlight
 *   publishes wait for their PubAck; each fails with a PublishError — TMM_PUBLISH_UNROUTABLE (no queue
 *   bound), TMM_PUBLISH_NACKED (the server refused it), TMM_PUBLISH_TIMEOUT (no PubAck within
 *   publishTimeoutMs), TMM_PUBLISH_CONNECTION_LOST (the connection dropped while it waited, or none came
 *   back in time), TMM_PUBLISH_CLOSED (close() overtook it).
 * - nack({ requeue: false }) and an expired TTL dead-letter a message the way RabbitMQ does: re-routed
 *   through the queue's dead-letter exchange and routing key with `x-first-death-queue` and
 *   `x-first-death-reason`, then acked. A queue with a TTL is expired by every transport that declared it
 *   without consuming it (and by its subscribers, for what arrives expired): a delay queue (no bindings,
 *   like tmm's retry queues) has each message held with `nak(remaining)` until its TTL passed — a
 *   server-side delay — then dead-lettered; a bound queue has only its already expired messages taken.
 * - Single active consumer: a lease per queue (NatsLease), since JetStream 2.9 has no pinned consumers.
 * - The connection reconnects forever (reconnectTimeWaitMs) until close(); each state change is one log
 *   line. Pending publishes fail at a disconnect instead of hanging; subscriptions pull again after it.
 * - close() fails in-flight publishes with TMM_PUBLISH_CLOSED, stops every subscription and gives its
 *   unsettled deliveries back (nak) for immediate redelivery, then closes the connection.
 */
export class NatsTransport implements Transport {
  readonly features: TransportFeatures;
  private readonly options: Readonly<NatsTransportOptions>;
  private readonly logger: Logger;
  private readonly names: NatsNames;
  private readonly window: InFlightWindow;
  private conn: Conn | undefined;
  private opening: Promise<Conn> | undefined;
  private connected = false;
  private connectWaiters = new Set<() => void>();
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly inFlight = new Set<InFlight>();
  private readonly subscriptions = new Set<NatsSubscription>();
  private readonly expirers = new Map<string, NatsExpirer>();
  private readonly declared = new Map<string, QueueSpec>();
  private readonly consumers = new Map<string, Consumer>();
  private readonly host: NatsSubscriptionHost;

  constructor(options: NatsTransportOptionsInput = {}) {
    this.options = resolveNatsTransportOptions(options);
    this.logger = this.options.logger;
    this.names = new NatsNames(this.options.prefix);
    this.window = new InFlightWindow(this.options.maxInFlight);
    this.features = { durable: true, confirms: true, deduplicationWindowMs: this.options.duplicateWindowMs };
    this.host = {
      logger: this.logger,
      ackWaitMs: this.options.ackWaitMs,
      consumer: (queue) => this.consumerOf(queue),
      pruneWaitingPulls: (queue) => this.pruneWaitingPulls(queue),
      ackPending: async (queue) => (await (await this.consumerOf(queue)).info(false)).num_ack_pending,
      deadLetter: (spec, m, message, reason) => this.deadLetter(spec, m, message, reason),
      forget: (sub) => this.subscriptions.delete(sub),
    };
  }

  /** Connects now (otherwise the first call does); resolves once connected and following the topology. */
  async connect(): Promise<void> {
    await this.ready(Date.now() + this.options.connectTimeoutMs, () => new TopologyError(`no NATS connection within ${this.options.connectTimeoutMs}ms`), 'connect');
  }

  get isConnected(): boolean {
    return this.connected && !this.closed;
  }

  async declare(topology: Topology): Promise<void> {
    this.assertOpen('declare');
    const deadline = Date.now() + this.options.connectTimeoutMs;
    const conn = await this.ready(deadline, () => new TopologyError(`topology not declared: no NATS connection within ${this.options.connectTimeoutMs}ms`), 'declare');
    await conn.routes.sync(deadline);
    for (const ex of topology.exchanges ?? []) await this.declareExchange(conn, ex);
    for (const q of topology.queues ?? []) await this.declareQueue(conn, q);
  }

  private async declareExchange(conn: Conn, ex: ExchangeSpec): Promise<void> {
    if (ex.name === '') throw new TopologyError('exchange "": the default exchange cannot be declared');
    const existing = conn.routes.exchange(ex.name);
    const type = ex.type ?? 'topic';
    if (existing && (existing.type ?? 'topic') !== type) {
      throw new TopologyError(`exchange "${ex.name}" already exists with type ${existing.type ?? 'topic'}, not ${type}`);
    }
    if (!existing) await conn.routes.putExchange({ name: ex.name, type });
  }

  private async declareQueue(conn: Conn, spec: QueueSpec): Promise<void> {
    if (!spec.name) throw new TopologyError('a queue needs a name');
    const identity = queueIdentity(spec);
    const stream = this.names.queueStream(spec.name);
    const description = JSON.stringify({ tmmQueue: spec.name, ...identity });
    let existing: QueueIdentity | undefined;
    try {
      const info = await conn.jsm.streams.info(stream);
      existing = parseIdentity(info.config.description, spec.name);
    } catch (e) {
      if (e instanceof TopologyError) throw e;
      if (!isNotFound(e)) throw new TopologyError(`queue "${spec.name}" could not be checked: ${(e as Error).message}`, { cause: e });
    }
    if (existing) {
      const diffs = identityDiff(existing, identity);
      if (diffs.length > 0) throw new TopologyError(`queue "${spec.name}" already exists with different ${diffs.join(', ')}`);
    } else {
      try {
        await conn.jsm.streams.add({
          name: stream,
          subjects: [this.names.queueSubject(spec.name)],
          description,
          retention: RetentionPolicy.Workqueue,
          storage: StorageType.File,
          discard: DiscardPolicy.Old,
          duplicate_window: nanos(this.options.duplicateWindowMs),
          num_replicas: 1,
        });
      } catch (e) {
        // Declared by another process at the same moment: same options or a conflict.
        const info = await conn.jsm.streams.info(stream).catch(() => undefined);
        if (!info) throw new TopologyError(`queue "${spec.name}" could not be declared: ${(e as Error).message}`, { cause: e });
        const diffs = identityDiff(parseIdentity(info.config.description, spec.name), identity);
        if (diffs.length > 0) throw new TopologyError(`queue "${spec.name}" already exists with different ${diffs.join(', ')}`);
      }
    }
    try {
      await conn.jsm.consumers.info(stream, this.names.durable);
    } catch (e) {
      if (!isNotFound(e)) throw new TopologyError(`queue "${spec.name}": its consumer could not be checked: ${(e as Error).message}`, { cause: e });
      await conn.jsm.consumers
        .add(stream, {
          durable_name: this.names.durable,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(this.options.ackWaitMs),
          max_deliver: -1,
          max_ack_pending: -1,
        })
        .catch(async (err: unknown) => {
          if (!(await conn.jsm.consumers.info(stream, this.names.durable).then(() => true, () => false))) {
            throw new TopologyError(`queue "${spec.name}": its consumer could not be created: ${(err as Error).message}`, { cause: err });
          }
        });
    }
    const known = conn.routes.queue(spec.name);
    if (!known || identityDiff(known.identity, identity).length > 0) await conn.routes.putQueue({ name: spec.name, identity });
    for (const b of spec.bindings ?? []) {
      if (b.exchange === '') throw new TopologyError(`queue "${spec.name}": cannot bind to the default exchange`);
      if (!conn.routes.exchange(b.exchange)) await conn.routes.putExchange({ name: b.exchange, type: 'topic' });
      const record = { exchange: b.exchange, routingKey: b.routingKey, queue: spec.name };
      if (!conn.routes.hasBinding(record)) await conn.routes.putBinding(record);
    }
    const merged = this.declared.get(spec.name);
    this.declared.set(spec.name, { ...spec, bindings: [...(merged?.bindings ?? []), ...(spec.bindings ?? [])] });
    if (spec.messageTtl !== undefined && !this.expirers.has(spec.name) && !this.isSubscribed(spec.name)) {
      const expirer = new NatsExpirer(this.host, spec);
      this.expirers.set(spec.name, expirer);
      expirer.start();
    }
  }

  publish(message: TransportMessage): Promise<void> {
    // Fast path (the relay's steady state): connected, a free slot, the route known and one queue. One
    // promise per message instead of the awaits of the general path below (the AMQP transport does the same).
    if (!this.closed && this.connected && this.conn) {
      const targets = this.conn.routes.route(message.exchange, message.routingKey);
      if (targets.length === 1) {
        const release = this.window.tryAcquire();
        if (release) {
          return this.publishTo(this.conn, targets[0], message, publishMsgId(message), undefined, release);
        }
      }
    }
    return this.publishSlow(message);
  }

  private async publishSlow(message: TransportMessage): Promise<void> {
    this.assertOpen(`publish ${message.id}`);
    const timeout = this.options.publishTimeoutMs;
    const deadline = Date.now() + timeout;
    const release = await this.window.acquire(deadline, () => new PublishError('TMM_PUBLISH_TIMEOUT', `message ${message.id}: no in-flight slot within ${timeout}ms`));
    try {
      const conn = await this.ready(
        deadline,
        () => new PublishError('TMM_PUBLISH_CONNECTION_LOST', `message ${message.id} not published: no NATS connection within ${timeout}ms`),
        `publish ${message.id}`,
      );
      let targets = conn.routes.route(message.exchange, message.routingKey);
      if (targets.length === 0) {
        await conn.routes.sync(deadline).catch(() => undefined);
        targets = conn.routes.route(message.exchange, message.routingKey);
      }
      if (targets.length === 0) {
        throw new PublishError(
          'TMM_PUBLISH_UNROUTABLE',
          `message ${message.id} to exchange "${message.exchange}" with routing key "${message.routingKey}" was not routed to any queue`,
        );
      }
      const msgId = publishMsgId(message);
      await Promise.all(targets.map((q) => this.publishTo(conn, q, message, msgId, deadline)));
    } finally {
      release();
    }
  }

  /**
   * Stores a message in one queue's stream and resolves on its PubAck (by `deadline`; undefined:
   * publishTimeoutMs from now). `release` (an in-flight slot) is called once it settled, either way.
   */
  private publishTo(conn: Conn, queue: string, message: TransportMessage, msgId: string, deadline: number | undefined, release?: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closed || !this.connected) {
        release?.();
        return reject(
          this.closed
            ? new PublishError('TMM_PUBLISH_CLOSED', `message ${message.id}: the transport closed before it was published`)
            : new PublishError('TMM_PUBLISH_CONNECTION_LOST', `message ${message.id}: the NATS connection is down`),
        );
      }
      let done = false;
      const entry: InFlight = {
        reject: (err) => {
          if (done) return;
          done = true;
          this.inFlight.delete(entry);
          release?.();
          reject(err);
        },
      };
      this.inFlight.add(entry);
      const timeout = deadline === undefined ? this.options.publishTimeoutMs : Math.max(1, deadline - Date.now());
      // A JetStream publish is a core publish to the stream's subject answered by a PubAck on the reply
      // subject; NatsPubAcks waits for all of them on one subscription (see there for why not a request each).
      const settle = (outcome: PubAckOutcome) => {
        if (done) return;
        const failure = this.pubAckFailure(outcome, message, queue, timeout);
        if (failure) return entry.reject(failure);
        done = true;
        this.inFlight.delete(entry);
        release?.();
        resolve();
      };
      try {
        conn.acks.publish(this.names.queueSubject(queue), message.body, encodeHeaders(message, msgId), timeout, settle);
      } catch (e) {
        // Refused by the client before anything was sent (closed, a header value with CR/LF, too large).
        entry.reject(this.publishError(e, message, queue));
      }
    });
  }

  /** The PublishError of a PubAck outcome that is not an acknowledgement, or undefined for one. */
  private pubAckFailure(outcome: PubAckOutcome, message: TransportMessage, queue: string, timeout: number): PublishError | undefined {
    if (outcome.kind === 'reply') {
      const refused = pubAckRefusal(outcome.data);
      if (refused === undefined) return undefined;
      return new PublishError('TMM_PUBLISH_NACKED', `message ${message.id} to queue "${queue}": refused by the server (${refused})`);
    }
    const what = `message ${message.id} to queue "${queue}"`;
    if (this.closed) return new PublishError('TMM_PUBLISH_CLOSED', `${what}: the transport closed before its PubAck`);
    if (outcome.kind === 'no-responders') return new PublishError('TMM_PUBLISH_UNROUTABLE', `${what}: the queue's stream does not exist (deleted?)`);
    return new PublishError('TMM_PUBLISH_TIMEOUT', `${what}: no PubAck within ${timeout}ms`);
  }

  /** A publish the client refused before sending it (see publishTo). */
  private publishError(e: unknown, message: TransportMessage, queue: string): PublishError {
    const err = e as Error;
    const what = `message ${message.id} to queue "${queue}"`;
    if (this.closed) return new PublishError('TMM_PUBLISH_CLOSED', `${what}: the transport closed before it was published`, { cause: e });
    if (err?.name === 'ClosedConnectionError' || err?.name === 'ConnectionError' || err?.name === 'DrainingConnectionError') {
      return new PublishError('TMM_PUBLISH_CONNECTION_LOST', `${what}: the NATS connection went away`, { cause: e });
    }
    return new PublishError('TMM_PUBLISH_FAILED', `${what}: ${err?.message ?? String(e)}`, { cause: e });
  }

  async subscribe(options: SubscribeOptions, handler: DeliveryHandler): Promise<Subscription> {
    this.assertOpen(`subscribe ${options.queue.name}`);
    if (!Number.isInteger(options.prefetch) || options.prefetch < 1) {
      throw new TopologyError(`subscription to queue "${options.queue.name}": prefetch must be an integer ≥ 1, got ${options.prefetch}`);
    }
    const deadline = Date.now() + this.options.connectTimeoutMs;
    const conn = await this.ready(deadline, () => new TopologyError(`queue "${options.queue.name}" not subscribed: no NATS connection within ${this.options.connectTimeoutMs}ms`), 'subscribe');
    await conn.routes.sync(deadline);
    await this.declareQueue(conn, options.queue);
    this.assertOpen(`subscribe ${options.queue.name}`);
    const expirer = this.expirers.get(options.queue.name);
    if (expirer) {
      this.expirers.delete(options.queue.name);
      await expirer.stop();
    }
    const lease = options.queue.singleActiveConsumer
      ? new NatsLease(conn.js, conn.jsm, this.names.leasesStream, this.names.leaseSubject(options.queue.name), this.options.leaseMs)
      : undefined;
    const sub = new NatsSubscription(this.host, options.queue, options.prefetch, handler, lease);
    this.subscriptions.add(sub);
    sub.start();
    return sub;
  }

  /** Deletes queues (their streams) and exchanges with their bindings. Not part of the port: for tests and tooling. */
  async remove(topology: Topology): Promise<void> {
    this.assertOpen('remove');
    const conn = await this.ready(Date.now() + this.options.connectTimeoutMs, () => new TopologyError('topology not removed: no NATS connection'), 'remove');
    for (const q of topology.queues ?? []) {
      await this.expirers.get(q.name)?.stop();
      this.expirers.delete(q.name);
      this.declared.delete(q.name);
      this.consumers.delete(q.name);
      await conn.jsm.streams.delete(this.names.queueStream(q.name)).catch((e: unknown) => {
        if (!isNotFound(e)) throw new TopologyError(`queue "${q.name}" could not be deleted (${(e as Error).message})`, { cause: e });
      });
      await conn.routes.removeQueue(q.name);
    }
    for (const ex of topology.exchanges ?? []) await conn.routes.removeExchange(ex.name);
  }

  /** Messages stored in a queue (waiting or unsettled) and those not yet delivered. Not part of the port: for tests and health checks. */
  async inspectQueue(name: string): Promise<{ messageCount: number; pending: number; unsettled: number }> {
    this.assertOpen('inspectQueue');
    const conn = await this.ready(Date.now() + this.options.connectTimeoutMs, () => new TopologyError(`queue "${name}" not inspected: no NATS connection`), 'inspectQueue');
    const stream = this.names.queueStream(name);
    try {
      const [si, ci] = await Promise.all([conn.jsm.streams.info(stream), conn.jsm.consumers.info(stream, this.names.durable)]);
      return { messageCount: si.state.messages, pending: ci.num_pending, unsettled: ci.num_ack_pending };
    } catch (e) {
      throw new TopologyError(`queue "${name}" could not be inspected (${(e as Error).message})`, { cause: e });
    }
  }

  /** The stream and subject a queue is stored in (for raw clients in tests and operations). */
  queueStream(name: string): { stream: string; subject: string } {
    return { stream: this.names.queueStream(name), subject: this.names.queueSubject(name) };
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    const closedError = () => new PublishError('TMM_PUBLISH_CLOSED', 'the transport was closed before the publish was confirmed');
    this.window.rejectAll(closedError);
    for (const f of [...this.inFlight]) f.reject(closedError());
    for (const w of this.connectWaiters) w();
    await Promise.all([...this.subscriptions].map((s) => s.shutdown().catch(() => undefined)));
    await Promise.all([...this.expirers.values()].map((e) => e.stop().catch(() => undefined)));
    this.expirers.clear();
    const conn = this.conn ?? (await Promise.race([this.opening?.catch(() => undefined), sleep(100).then(() => undefined)]));
    if (conn) {
      conn.acks.close();
      await conn.routes.stop();
      await Promise.race([conn.nc.flush().catch(() => undefined), sleep(1_000)]);
      await conn.nc.close().catch(() => undefined);
    } else if (this.opening) {
      // Still connecting: close that connection as soon as it is there.
      void this.opening.then((c) => c.nc.close()).catch(() => undefined);
    }
    this.connected = false;
    this.logger.info('nats closed', { servers: this.safeServers() });
  }

  // ---- connection ----

  private ready(deadline: number, onTimeout: () => Error, what: string): Promise<Conn> {
    if (this.closed) return Promise.reject(new TransportClosedError(what));
    if (this.conn && this.connected) return Promise.resolve(this.conn);
    this.opening ??= this.open().catch((e: unknown) => {
      this.opening = undefined;
      throw e;
    });
    const opening = this.opening;
    return new Promise<Conn>((resolve, reject) => {
      const timer = setTimeout(() => finish(() => reject(onTimeout())), Math.max(0, deadline - Date.now()));
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.connectWaiters.delete(check);
        fn();
      };
      const check = () => {
        if (this.closed) finish(() => reject(new TransportClosedError(what)));
        else if (this.conn && this.connected) {
          const c = this.conn;
          finish(() => resolve(c));
        }
      };
      this.connectWaiters.add(check);
      opening.then(check, (e: unknown) => finish(() => reject(e instanceof Error ? e : new Error(String(e)))));
      check();
    });
  }

  private async open(): Promise<Conn> {
    const servers = this.options.servers.split(',').map((s) => s.trim());
    this.logger.info('nats connecting', { servers: this.safeServers() });
    const nc = await connect({
      servers,
      name: this.options.connectionName,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: this.options.reconnectTimeWaitMs,
      waitOnFirstConnect: true,
      timeout: this.options.connectTimeoutMs,
      pingInterval: this.options.pingIntervalMs,
      maxPingOut: this.options.maxPingOut,
      // Without this the client builds two Errors (stack traces) per request, i.e. per publish, only to
      // say where a failed one began; tmm wraps every failure in a PublishError naming the message and queue.
      noAsyncTraces: true,
    });
    if (this.closed) {
      await nc.close();
      throw new TransportClosedError('connect');
    }
    const js = jetstream(nc, { timeout: this.options.publishTimeoutMs });
    const jsm = await jetstreamManager(nc, { timeout: this.options.connectTimeoutMs });
    await ensureStream(jsm, {
      name: this.names.leasesStream,
      subjects: [`${this.options.prefix}.leases.>`],
      description: 'tmm single-active-consumer leases (latest per queue)',
    });
    const routes = new NatsRouteTable(js, jsm, this.names, this.logger);
    await routes.start();
    const conn: Conn = { nc, js, jsm, routes, acks: new NatsPubAcks(nc) };
    this.conn = conn;
    this.connected = true;
    this.logger.info('nats connected', { servers: this.safeServers() });
    void this.watchStatus(conn);
    for (const w of [...this.connectWaiters]) w();
    return conn;
  }

  private async watchStatus(conn: Conn): Promise<void> {
    for await (const s of conn.nc.status()) {
      if (s.type === 'disconnect') {
        this.connected = false;
        this.logger.warn('nats disconnected', { servers: this.safeServers() });
        const err = () => new PublishError('TMM_PUBLISH_CONNECTION_LOST', 'the NATS connection was lost before the PubAck came');
        for (const f of [...this.inFlight]) f.reject(err());
      } else if (s.type === 'reconnecting') {
        this.logger.info('nats reconnecting', { servers: this.safeServers() });
      } else if (s.type === 'reconnect') {
        this.consumers.clear();
        this.connected = true;
        this.logger.info('nats connected', { servers: this.safeServers(), reconnected: true });
        for (const w of [...this.connectWaiters]) w();
      }
    }
  }

  private async consumerOf(queue: string): Promise<Consumer> {
    const cached = this.consumers.get(queue);
    if (cached) return cached;
    const conn = await this.ready(Date.now() + this.options.connectTimeoutMs, () => new TopologyError(`queue "${queue}": no NATS connection`), `consume ${queue}`);
    const c = await conn.js.consumers.get(this.names.queueStream(queue), this.names.durable);
    this.consumers.set(queue, c);
    return c;
  }

  /**
   * A consumer-info request, which makes the server drop the queue's pull requests that lost their
   * interest (NatsSubscription.cancel() needs that before giving anything back). At most 2 s: a server
   * that does not answer leaves them to expire (PULL_EXPIRES_MS).
   */
  private async pruneWaitingPulls(queue: string): Promise<void> {
    const consumer = this.consumers.get(queue);
    if (!consumer) return;
    await Promise.race([consumer.info(false).then(() => undefined), sleep(2_000)]);
  }

  /** Re-routes a message through its queue's dead-letter exchange, as RabbitMQ dead-lettering does. */
  private async deadLetter(spec: QueueSpec, m: JsMsg, message: TransportMessage, reason: 'rejected' | 'expired'): Promise<void> {
    const dlx = spec.deadLetterExchange;
    if (dlx === undefined) return;
    const routingKey = spec.deadLetterRoutingKey ?? message.routingKey;
    const dead: TransportMessage = {
      ...message,
      exchange: dlx,
      routingKey,
      headers: { ...message.headers, 'x-first-death-queue': spec.name, 'x-first-death-reason': reason },
    };
    const deadline = Date.now() + this.options.publishTimeoutMs;
    const conn = await this.ready(deadline, () => new PublishError('TMM_PUBLISH_CONNECTION_LOST', 'no NATS connection for dead-lettering'), 'dead-letter');
    let targets = conn.routes.route(dlx, routingKey);
    if (targets.length === 0) {
      await conn.routes.sync(deadline).catch(() => undefined);
      targets = conn.routes.route(dlx, routingKey);
    }
    if (targets.length === 0) {
      // As on RabbitMQ, a dead letter that routes nowhere is dropped.
      this.logger.warn('nats dead letter routed to no queue; dropped', { queue: spec.name, id: message.id, deadLetterExchange: dlx, routingKey });
      return;
    }
    // One id per source message and hop, so a repeated dead-lettering (crash before the ack) is deduplicated.
    const msgId = `${m.headers?.get('Nats-Msg-Id') || message.id}|${spec.name}#${m.seq}`;
    await Promise.all(targets.map((q) => this.publishTo(conn, q, dead, msgId, deadline)));
  }

  private isSubscribed(queue: string): boolean {
    for (const s of this.subscriptions) if (s.spec.name === queue) return true;
    return false;
  }

  private safeServers(): string {
    return this.options.servers
      .split(',')
      .map((s) => redactUrl(s.trim()))
      .join(',');
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new TransportClosedError(what);
  }
}

/**
 * Expires a delay queue (TTL, no bindings, no subscriber here): holds each message on the server with
 * nak(remaining TTL) and dead-letters it once the TTL passed.
 */
class NatsExpirer {
  private active = true;
  private wake: (() => void) | undefined;
  private done: Promise<void> = Promise.resolve();
  private batch: { stop(): void } | undefined;
  /** What arrived after stop() began: given back once the server pruned the stopped pull (see NatsSubscription). */
  private readonly late: JsMsg[] = [];

  constructor(
    private readonly host: NatsSubscriptionHost,
    private readonly spec: QueueSpec,
  ) {}

  start(): void {
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.active = false;
    try {
      this.batch?.stop();
    } catch {
      // stopping anyway
    }
    this.wake?.();
    await this.done;
    await this.host.pruneWaitingPulls(this.spec.name).catch(() => undefined);
    for (const m of this.late.splice(0)) safe(() => m.nak());
  }

  private async loop(): Promise<void> {
    const ttl = this.spec.messageTtl ?? 0;
    // A delay queue (no bindings, like tmm's retry queues) is only ever expired: each message is held on the
    // server with nak(remaining). A bound queue with a TTL may be consumed elsewhere: only what is already
    // expired is taken; the rest goes straight back.
    const holdOnServer = (this.spec.bindings ?? []).length === 0;
    let failures = 0;
    while (this.active) {
      try {
        const consumer = await this.host.consumer(this.spec.name);
        if (!this.active) return;
        const batch = await consumer.fetch({ max_messages: holdOnServer ? 256 : 16, expires: holdOnServer ? 5_000 : 1_000 });
        this.batch = batch;
        if (!this.active) safe(() => batch.stop());
        failures = 0;
        let dueIn = Infinity;
        for await (const m of batch) {
          if (!this.active) {
            this.late.push(m);
            continue;
          }
          const left = ttl - (Date.now() - storedAt(m));
          if (left > 0 && holdOnServer) {
            safe(() => m.nak(left));
            continue;
          }
          if (left > 0) {
            // A bound queue may have subscribers elsewhere: give it back at once and look again when it is due.
            safe(() => m.nak());
            dueIn = Math.min(dueIn, left);
            continue;
          }
          const message = decodeFor(m);
          this.host.deadLetter(this.spec, m, message, 'expired').then(
            () => safe(() => m.ack()),
            (e: unknown) => {
              this.host.logger.warn('nats could not dead-letter an expired message; retrying', { queue: this.spec.name, error: (e as Error).message });
              safe(() => m.nak(1_000));
            },
          );
        }
        if (!holdOnServer && this.active) await this.pause(Number.isFinite(dueIn) ? Math.max(50, dueIn) : 250);
      } catch (e) {
        failures++;
        if (this.active) this.host.logger.debug('nats expirer pull failed; retrying', { queue: this.spec.name, error: (e as Error).message });
        await this.pause(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, Math.min(ms, 1_000));
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}


const PUB_ACK_TEXT = new TextDecoder();

/**
 * Why a PubAck refuses the message (`{"error":{"code":…,"err_code":…,"description":…}}`, or no stream
 * in it), or undefined for an acknowledgement (`{"stream":…,"seq":…}`, `"duplicate":true` included).
 */
function pubAckRefusal(data: Uint8Array): string | undefined {
  let ack: { stream?: unknown; error?: { description?: unknown; err_code?: unknown; code?: unknown } };
  try {
    ack = JSON.parse(PUB_ACK_TEXT.decode(data)) as typeof ack;
  } catch {
    return `not a PubAck: ${JSON.stringify(PUB_ACK_TEXT.decode(data).slice(0, 200))}`;
  }
  if (ack && typeof ack === 'object' && ack.error) {
    return `${String(ack.error.description ?? 'error')} (err_code ${String(ack.error.err_code ?? ack.error.code ?? '?')})`;
  }
  if (!ack || typeof ack !== 'object' || typeof ack.stream !== 'string' || ack.stream === '') return 'a PubAck without a stream';
  return undefined;
}

function decodeFor(m: JsMsg): TransportMessage {
  return decodeMessage(m.data, m.headers, storedAt(m));
}

function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    // connection gone: redelivered after ackWait
  }
}

function parseIdentity(description: string | undefined, queue: string): QueueIdentity {
  try {
    const v = JSON.parse(description ?? '') as Partial<QueueIdentity> & { tmmQueue?: string };
    if (v.tmmQueue !== queue) throw new Error('not this queue');
    return {
      type: v.type ?? 'classic',
      deadLetterExchange: v.deadLetterExchange ?? null,
      deadLetterRoutingKey: v.deadLetterRoutingKey ?? null,
      messageTtl: v.messageTtl ?? null,
      singleActiveConsumer: v.singleActiveConsumer ?? false,
    };
  } catch {
    throw new TopologyError(`queue "${queue}": its stream exists but was not created by tmm (no tmm description); refusing to use it`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
