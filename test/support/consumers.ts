import { NatsTransport } from '../../src/transport/nats';
import { randomUUID } from 'node:crypto';
import {
  AmqpTransport,
  type ConsumerDefinition,
  type Delivery,
  type Logger,
  MemoryTransport,
  type QueueSpec,
  Tmm,
  type TmmOptions,
  type Topology,
  type Transport,
  type TransportMessage,
  consumerTopology,
  silentLogger,
} from '../../src/internal';
import { type DbKind, type TestDatabase, createTestDatabase } from './databases';

export const AMQP_URL = process.env.TMM_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export type TransportKind = 'amqp' | 'nats' | 'memory';

/** The local NATS JetStream of the consumer suites. */
export const NATS_URL = process.env.TMM_NATS_URL ?? 'nats://127.0.0.1:4222';

/** A unique name prefix per test, so queues never leak between tests (or test files running in parallel). */
export function uniquePrefix(tag: string): string {
  return `tmm-${tag}-${randomUUID().slice(0, 8)}`;
}

/** A message as a producer would put it on the wire (JSON body, tmm headers). */
export function wireMessage(over: Omit<Partial<TransportMessage>, 'body'> & { body: unknown }): TransportMessage {
  const { body, ...rest } = over;
  return {
    id: randomUUID(),
    exchange: 'tmm.events',
    routingKey: 'ledger.posted',
    headers: { 'tmm-contract-version': 2 },
    contentType: 'application/json',
    timestamp: Date.now(),
    ...rest,
    body: Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Keeps log lines, so a test can assert on what was reported. */
export class RecordingLogger implements Logger {
  readonly lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  debug(message: string, fields?: Record<string, unknown>) {
    this.lines.push({ level: 'debug', message, fields });
  }
  info(message: string, fields?: Record<string, unknown>) {
    this.lines.push({ level: 'info', message, fields });
  }
  warn(message: string, fields?: Record<string, unknown>) {
    this.lines.push({ level: 'warn', message, fields });
  }
  error(message: string, fields?: Record<string, unknown>) {
    this.lines.push({ level: 'error', message, fields });
  }
}

/**
 * Drains a queue into an array (acking each), for reading dead-letter queues. The spec must equal the
 * one tmm declared (AMQP compares queue arguments).
 */
export class QueueReader {
  readonly deliveries: Delivery[] = [];
  private cancel: (() => Promise<void>) | undefined;

  static async start(transport: Transport, queue: QueueSpec): Promise<QueueReader> {
    const reader = new QueueReader();
    const sub = await transport.subscribe({ queue, prefetch: 100 }, async (d) => {
      reader.deliveries.push(d);
      await d.ack();
    });
    reader.cancel = () => sub.cancel();
    return reader;
  }

  async waitFor(count: number, what: string, timeoutMs = 15_000): Promise<Delivery[]> {
    await waitUntil(() => this.deliveries.length >= count, `${count} message(s) in ${what}`, timeoutMs);
    return this.deliveries;
  }

  async stop(): Promise<void> {
    await this.cancel?.();
  }
}

/**
 * One database (per test file) and the transports and tmm instances of the current test; everything a
 * test declared on the broker is deleted in cleanup().
 */
export class ConsumerTestEnv {
  private readonly instances: Tmm[] = [];
  private readonly transports: Transport[] = [];
  private readonly topology: Required<Topology> = { exchanges: [], queues: [] };

  private constructor(
    readonly db: TestDatabase,
    readonly transportKind: TransportKind,
  ) {}

  static async create(dbKind: DbKind, transportKind: TransportKind, entities: Parameters<typeof createTestDatabase>[1] = []): Promise<ConsumerTestEnv> {
    return new ConsumerTestEnv(await createTestDatabase(dbKind, entities), transportKind);
  }

  transport(): Transport {
    const t =
      this.transportKind === 'amqp'
        ? new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-consumer-test', confirmTimeoutMs: 5000 })
        : this.transportKind === 'nats'
          ? new NatsTransport({ servers: NATS_URL, logger: silentLogger, connectionName: 'tmm-consumer-test', publishTimeoutMs: 5000, leaseMs: 1000, ackWaitMs: 5000 })
          : new MemoryTransport();
    this.transports.push(t);
    return t;
  }

  /**
   * A started Tmm on the shared database whose runner consumes `consumers` (registered directly). Its
   * consumers' topology is deleted at cleanup. The transport is shared with readers when given.
   */
  async start(consumers: object[], options: Partial<TmmOptions> = {}, transport: Transport = this.transport()): Promise<Tmm> {
    const tmm = new Tmm({ dataSource: this.db.dataSource, transport, logger: 'silent', relay: { enabled: false }, name: `t${this.instances.length}-${randomUUID().slice(0, 6)}`, ...options });
    tmm.consumers.register(...consumers);
    this.instances.push(tmm);
    try {
      await tmm.start();
    } finally {
      for (const d of tmm.consumers.definitions) this.forget(d);
    }
    return tmm;
  }

  /** Marks a consumer's queues, and its exchange unless it is the shared default one, for deletion at cleanup. */
  forget(def: ConsumerDefinition): void {
    const { queues, exchanges } = consumerTopology(def);
    this.topology.queues.push(...queues);
    for (const ex of exchanges) if (ex.name !== 'tmm.events' && !this.topology.exchanges.some((e) => e.name === ex.name)) this.topology.exchanges.push(ex);
  }

  /** Marks extra queues/exchanges for deletion at cleanup. */
  track(topology: Topology): void {
    this.topology.queues.push(...(topology.queues ?? []));
    this.topology.exchanges.push(...(topology.exchanges ?? []));
  }

  async cleanup(): Promise<void> {
    for (const tmm of this.instances.splice(0)) await tmm.stop({ closeTransport: false }).catch(() => undefined);
    if (this.transportKind !== 'memory' && (this.topology.queues.length > 0 || this.topology.exchanges.length > 0)) {
      const admin =
        this.transportKind === 'amqp'
          ? new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-consumer-test-cleanup' })
          : new NatsTransport({ servers: NATS_URL, logger: silentLogger, connectionName: 'tmm-consumer-test-cleanup' });
      try {
        await admin.remove({ queues: this.topology.queues.splice(0), exchanges: this.topology.exchanges.splice(0) });
      } finally {
        await admin.close();
      }
    }
    this.topology.queues.splice(0);
    this.topology.exchanges.splice(0);
    await Promise.all(this.transports.splice(0).map((t) => t.close().catch(() => undefined)));
  }

  async dispose(): Promise<void> {
    await this.cleanup();
    await this.db.dispose();
  }

  /** Messages waiting in a queue (not counting unsettled ones). */
  async depth(transport: Transport, queue: string): Promise<number> {
    if (transport instanceof MemoryTransport) return transport.depth(queue);
    return (await (transport as AmqpTransport).inspectQueue(queue)).messageCount;
  }
}
