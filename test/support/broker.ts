import { execFile } from 'node:child_process';
import * as net from 'node:net';
import { promisify } from 'node:util';
import * as amqp from 'amqplib';
import { AmqpTransport, Delivery, Logger, Subscription, Topology, Transport, TransportMessage, silentLogger } from '../../src/internal';

/** The local RabbitMQ the integration tests use (`rabbitmqctl` must work too). */
export const AMQP_URL = process.env.TMM_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

const run = promisify(execFile);

/** The broker-side pid of the connection with this client-provided name. */
export async function connectionPid(connectionName: string): Promise<string> {
  const { stdout } = await run('rabbitmqctl', ['-q', 'list_connections', '--no-table-headers', 'pid', 'client_properties']);
  const line = stdout.split('\n').find((l) => l.includes(`{"connection_name","${connectionName}"}`));
  if (!line) throw new Error(`no broker connection named ${connectionName}:\n${stdout}`);
  return line.split('\t')[0].trim();
}

/** Has the broker close a connection (CONNECTION_FORCED), as an operator or a node shutdown would. */
export async function closeConnection(pid: string): Promise<void> {
  await run('rabbitmqctl', ['close_connection', pid, 'tmm failure test']);
}

/**
 * A TCP server that accepts connections and never answers: an AMQP client connected to it never completes
 * its handshake, so its publishes can never be sent, let alone confirmed.
 */
export class BlackHoleBroker {
  private readonly sockets = new Set<net.Socket>();
  accepted = 0;

  private constructor(private readonly server: net.Server) {
    server.on('connection', (s) => {
      this.accepted++;
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(): Promise<BlackHoleBroker> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new BlackHoleBroker(server);
  }

  get url(): string {
    const u = new URL(AMQP_URL);
    u.hostname = '127.0.0.1';
    u.port = String((this.server.address() as net.AddressInfo).port);
    return u.toString();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface Arrival {
  id: string;
  /** Epoch ms when the consumer got it. */
  at: number;
  body: string;
  headers: TransportMessage['headers'];
  redelivered: boolean;
}

/**
 * Consumes a queue and counts what arrives, per message id, in arrival order (one channel, so arrival
 * order is the queue's order). Acks after recording.
 */
export class QueueTally {
  readonly arrivals: Arrival[] = [];
  readonly counts = new Map<string, number>();
  private subscription: Subscription | undefined;

  static async start(transport: Transport, queue: Parameters<Transport['subscribe']>[0]['queue'], prefetch = 500): Promise<QueueTally> {
    const tally = new QueueTally();
    tally.subscription = await transport.subscribe({ queue, prefetch }, async (d: Delivery) => {
      tally.arrivals.push({ id: d.message.id, at: Date.now(), body: d.message.body.toString('utf8'), headers: d.message.headers, redelivered: d.redelivered });
      tally.counts.set(d.message.id, (tally.counts.get(d.message.id) ?? 0) + 1);
      await d.ack();
    });
    return tally;
  }

  get distinct(): number {
    return this.counts.size;
  }

  /** Arrivals beyond the first of each id. */
  get duplicates(): number {
    return this.arrivals.length - this.counts.size;
  }

  /** Ids in `expected` that never arrived. */
  missing(expected: Iterable<string>): string[] {
    return [...expected].filter((id) => !this.counts.has(id));
  }

  async stop(): Promise<void> {
    await this.subscription?.cancel();
  }
}

interface LogLine {
  at: number;
  level: string;
  message: string;
  fields?: Record<string, unknown>;
}

/** Keeps every log line (with its time) and lets a test react to one as it is written. */
export class CapturingLogger implements Logger {
  readonly lines: LogLine[] = [];
  onLine: (line: LogLine) => void = () => undefined;
  private add(level: string, message: string, fields?: Record<string, unknown>) {
    const line = { at: Date.now(), level, message, fields };
    this.lines.push(line);
    this.onLine(line);
  }
  debug(m: string, f?: Record<string, unknown>) {
    this.add('debug', m, f);
  }
  info(m: string, f?: Record<string, unknown>) {
    this.add('info', m, f);
  }
  warn(m: string, f?: Record<string, unknown>) {
    this.add('warn', m, f);
  }
  error(m: string, f?: Record<string, unknown>) {
    this.add('error', m, f);
  }
}

/** Deletes queues and exchanges through a short-lived connection (afterEach cleanup). */
export async function removeTopology(topology: Topology, connectionName: string): Promise<void> {
  const admin = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName });
  try {
    await admin.remove(topology);
  } finally {
    await admin.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(20);
  }
}

/** One broker operation on a channel of its own (a 404 or 406 closes only that channel): the migration's own helper. */
export { onChannel } from '../../src/transport/amqp/quorumMigration';

/**
 * Ground truth outside tmm for the txlog suites: a raw amqplib consumer on `<exchange>.q`, bound to the topic
 * exchange `exchange` with '#', counting arrivals per `entryId` of the JSON body (LedgerPosted) into
 * `received` and acking each. `ch` stays usable for a test's own declarations; `close()` deletes both.
 */
export class EntryTally {
  private constructor(
    readonly conn: amqp.ChannelModel,
    readonly ch: amqp.Channel,
    private readonly exchange: string,
    readonly received: Map<string, number>,
  ) {}

  static async open(exchange: string, received = new Map<string, number>()): Promise<EntryTally> {
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.assertExchange(exchange, 'topic', { durable: true });
    const q = await ch.assertQueue(`${exchange}.q`, { durable: true });
    await ch.bindQueue(q.queue, exchange, '#');
    await ch.consume(q.queue, (msg) => {
      if (!msg) return;
      const id = (JSON.parse(msg.content.toString()) as { entryId: string }).entryId;
      received.set(id, (received.get(id) ?? 0) + 1);
      ch.ack(msg);
    });
    return new EntryTally(conn, ch, exchange, received);
  }

  async close(): Promise<void> {
    await this.ch.deleteQueue(`${this.exchange}.q`).catch(() => undefined);
    await this.ch.deleteExchange(this.exchange).catch(() => undefined);
    await this.conn.close();
  }
}
