/**
 * AmqpTransport under failure, against the local RabbitMQ (127.0.0.1:5672, guest/guest; `rabbitmqctl`
 * must work). Connections are cut mid-stream both by the broker (`rabbitmqctl close_connection`) and by
 * the network (a TCP proxy in this file that drops its sockets right after forwarding publishes, so some
 * are on the wire without a confirm); a queue is redeclared with other arguments; an exchange is deleted
 * under a publisher; the broker stops answering; the broker is unreachable.
 * Every name is unique per test and deleted afterwards.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import { promisify } from 'node:util';
import { PublishError, TopologyError } from '../../src/errors';
import { type Logger, silentLogger as silent } from '../../src/logging/Logger';
import { AmqpTransport, type AmqpTransportOptionsInput } from '../../src/transport/amqp';
import type { Delivery, Topology, TransportMessage } from '../../src/transport/Transport';
import { CapturingLogger, connectionPid } from '../support/broker';

const AMQP_URL = process.env.TMM_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const BROKER = { host: new URL(AMQP_URL).hostname, port: Number(new URL(AMQP_URL).port || 5672) };
/** The broker URL with its host and port replaced by a local proxy's. */
const viaProxy = (proxy: TcpProxy): string => {
  const u = new URL(AMQP_URL);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
};
const run = promisify(execFile);

let prefix = '';
let cleanup: Required<Topology> = { exchanges: [], queues: [] };
const opened: AmqpTransport[] = [];
const proxies: TcpProxy[] = [];

beforeEach(() => {
  prefix = `tmm-fail-${randomUUID().slice(0, 8)}`;
  cleanup = { exchanges: [], queues: [] };
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  const admin = new AmqpTransport({ url: AMQP_URL, logger: silent, connectionName: `${prefix}-cleanup` });
  try {
    await admin.remove(cleanup);
  } finally {
    await admin.close();
  }
});

function transport(options: AmqpTransportOptionsInput = {}): AmqpTransport {
  const t = new AmqpTransport({
    url: AMQP_URL,
    logger: silent,
    connectionName: `${prefix}-${opened.length}`,
    confirmTimeoutMs: 5_000,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500, factor: 2, jitter: 0.2 },
    ...options,
  });
  opened.push(t);
  return t;
}

/** Declares exchange `x`, a queue nobody consumes (to count what arrived) and a consumed one, both bound to `#`. */
async function stormTopology(t: AmqpTransport) {
  const exchange = `${prefix}.x`;
  const counted = `${prefix}.counted`;
  const live = `${prefix}.live`;
  cleanup.exchanges.push({ name: exchange });
  cleanup.queues.push({ name: counted }, { name: live });
  await t.declare({
    exchanges: [{ name: exchange }],
    queues: [
      { name: counted, bindings: [{ exchange, routingKey: '#' }] },
      { name: live, bindings: [{ exchange, routingKey: '#' }] },
    ],
  });
  const liveDeliveries: Delivery[] = [];
  await t.subscribe({ queue: { name: live, bindings: [{ exchange, routingKey: '#' }] }, prefetch: 50 }, async (d) => {
    liveDeliveries.push(d);
    await d.ack();
  });
  return { exchange, counted, live, liveDeliveries };
}

interface StormResult {
  resolved: Set<string>;
  rejected: Map<string, unknown>;
  /** Resolved count when the transport logged 'amqp disconnected'. */
  resolvedAtDisconnect: number | undefined;
}

/** `total` publishes from `workers` concurrent loops; onResolved runs after each successful publish. */
async function storm(
  t: AmqpTransport,
  logger: CapturingLogger,
  exchange: string,
  opts: { total: number; workers: number; pauseMs(result: StormResult): number; onResolved(count: number): void },
): Promise<StormResult> {
  const result: StormResult = { resolved: new Set(), rejected: new Map(), resolvedAtDisconnect: undefined };
  logger.onLine = (line) => {
    if (line.message === 'amqp disconnected' && result.resolvedAtDisconnect === undefined) result.resolvedAtDisconnect = result.resolved.size;
  };
  let next = 0;
  const worker = async () => {
    while (next < opts.total) {
      const m = message(exchange, `storm.${next++}`);
      try {
        await t.publish(m);
        result.resolved.add(m.id);
        opts.onResolved(result.resolved.size);
      } catch (err) {
        result.rejected.set(m.id, err);
      }
      const pause = opts.pauseMs(result);
      if (pause > 0) await sleep(pause);
    }
  };
  await Promise.all(Array.from({ length: opts.workers }, worker));
  return result;
}

/**
 * After the storm: publishing works again, the live subscription resumed (once), and every resolved
 * publish is in the counted queue. Returns the numbers for the report.
 */
async function verifyAfterStorm(t: AmqpTransport, topo: Awaited<ReturnType<typeof stormTopology>>, result: StormResult, label: string) {
  const total = result.resolved.size + result.rejected.size;
  for (const err of result.rejected.values()) {
    expect(err).toBeInstanceOf(PublishError);
    expect(['TMM_PUBLISH_CONNECTION_LOST', 'TMM_PUBLISH_TIMEOUT']).toContain((err as PublishError).code);
  }
  // The cut happened mid-stream: publishes resolved both before and after it.
  expect(result.resolvedAtDisconnect).toBeDefined();
  expect(result.resolvedAtDisconnect!).toBeGreaterThan(0);
  expect(result.resolvedAtDisconnect!).toBeLessThan(result.resolved.size);

  const after = message(topo.exchange, 'after.reconnect');
  await t.publish(after);
  await waitUntil(() => topo.liveDeliveries.some((d) => d.message.id === after.id), 'the resumed subscription to receive a new message');
  expect((await t.inspectQueue(topo.live)).consumerCount).toBe(1);

  // Drain the counted queue up to the message published after the reconnect (it is the last one).
  const counts = new Map<string, number>();
  let sawAfter = false;
  await t.subscribe({ queue: { name: topo.counted }, prefetch: 500 }, async (d) => {
    if (d.message.id === after.id) sawAfter = true;
    else counts.set(d.message.id, (counts.get(d.message.id) ?? 0) + 1);
    await d.ack();
  });
  await waitUntil(() => sawAfter, 'the counted queue to be drained');
  await sleep(200);

  const lost = [...result.resolved].filter((id) => !counts.has(id));
  const duplicated = [...counts.values()].filter((n) => n > 1).length;
  const rejectedButEnqueued = [...result.rejected.keys()].filter((id) => counts.has(id)).length;
  const liveRedeliveries = topo.liveDeliveries.filter((d) => d.redelivered).length;
  const codes: Record<string, number> = {};
  for (const err of result.rejected.values()) codes[(err as PublishError).code] = (codes[(err as PublishError).code] ?? 0) + 1;
  process.stdout.write(
    `[amqp-failures] ${label}: published ${total}, resolved ${result.resolved.size}, rejected ${result.rejected.size} ${JSON.stringify(codes)}, ` +
      `cut after ${result.resolvedAtDisconnect} confirms, in queue ${counts.size} distinct, lost ${lost.length}, duplicated ${duplicated}, ` +
      `rejected-but-enqueued ${rejectedButEnqueued}, live-consumer redeliveries ${liveRedeliveries}\n`,
  );
  expect(total).toBe(2_000);
  expect(lost).toEqual([]);
  expect(duplicated).toBe(0);
  // Nothing appears that was never published.
  expect([...counts.keys()].every((id) => result.resolved.has(id) || result.rejected.has(id))).toBe(true);
}

describe('AmqpTransport failure injection', () => {
  it('loses no confirmed publish when the broker closes the connection mid-stream, then reconnects and resumes consuming', async () => {
    const logger = new CapturingLogger();
    const t = transport({ logger });
    const topo = await stormTopology(t);
    const pid = await connectionPid(t.connectionName);

    let kill: Promise<unknown> | undefined;
    const result = await storm(t, logger, topo.exchange, {
      total: 2_000,
      workers: 16,
      // Slowed down between asking rabbitmqctl (≈0.5 s) and the cut, so the cut lands mid-stream.
      pauseMs: (r) => (kill && r.resolvedAtDisconnect === undefined ? 5 : 0),
      onResolved: (n) => {
        if (n === 300) kill = run('rabbitmqctl', ['close_connection', pid, 'tmm failure test']);
      },
    });
    await kill;
    await verifyAfterStorm(t, topo, result, 'rabbitmqctl close_connection');

    const states = logger.lines.map((l) => l.message).filter((m) => /^amqp (connecting|connected|disconnected|reconnecting|closed)$/.test(m));
    expect(states.slice(0, 5)).toEqual(['amqp connecting', 'amqp connected', 'amqp disconnected', 'amqp reconnecting', 'amqp connected']);
    const disconnected = logger.lines.find((l) => l.message === 'amqp disconnected')!;
    expect(String(disconnected.fields?.error)).toContain('CONNECTION_FORCED');
    expect(JSON.stringify(logger.lines)).not.toContain(`:${new URL(AMQP_URL).password}@`);
  });

  it('loses no confirmed publish when the TCP connection drops with publishes on the wire, then reconnects and resumes consuming', async () => {
    const proxy = await TcpProxy.start(BROKER);
    proxies.push(proxy);
    const logger = new CapturingLogger();
    const t = transport({ url: viaProxy(proxy), logger });
    const topo = await stormTopology(t);

    const result = await storm(t, logger, topo.exchange, {
      total: 2_000,
      workers: 32,
      pauseMs: () => 0,
      onResolved: (n) => {
        if (n === 700) proxy.cutAfterNextUpstreamChunk();
      },
    });
    expect(proxy.cuts).toBe(1);
    await verifyAfterStorm(t, topo, result, 'TCP connection dropped');
  });

  it('declares its topology again after reconnecting, so a broker that lost it meanwhile routes and delivers again', async () => {
    const proxy = await TcpProxy.start(BROKER);
    proxies.push(proxy);
    const logger = new CapturingLogger();
    const t = transport({ url: viaProxy(proxy), logger });
    const exchange = `${prefix}.x`;
    const queue = `${prefix}.q`;
    cleanup.exchanges.push({ name: exchange });
    cleanup.queues.push({ name: queue });
    await t.declare({ exchanges: [{ name: exchange }] });
    const got: Delivery[] = [];
    await t.subscribe({ queue: { name: queue, bindings: [{ exchange, routingKey: 'k.#' }] }, prefetch: 5 }, async (d) => {
      got.push(d);
      await d.ack();
    });

    // While the transport cannot reconnect, its exchange and queue disappear from the broker.
    proxy.refuseConnections(true);
    proxy.cut();
    await transport().remove({ exchanges: [{ name: exchange }], queues: [{ name: queue }] });
    await waitUntil(() => logger.lines.filter((l) => l.message === 'amqp reconnecting').length >= 2, 'failed reconnect attempts');
    proxy.refuseConnections(false);

    const m = message(exchange, 'k.after');
    await t.publish(m);
    await waitUntil(() => got.some((d) => d.message.id === m.id), 'the resumed subscription to receive on the re-declared queue');
    expect(await t.inspectQueue(queue)).toEqual({ messageCount: 0, consumerCount: 1 });
  });

  it('reports a queue redeclared with other arguments as a TopologyError naming it, and stays usable', async () => {
    const t = transport();
    const exchange = `${prefix}.x`;
    const queue = `${prefix}.q`;
    const other = `${prefix}.other`;
    cleanup.exchanges.push({ name: exchange });
    cleanup.queues.push({ name: queue }, { name: other });
    await t.declare({ exchanges: [{ name: exchange }], queues: [{ name: queue, messageTtl: 60_000 }] });
    const got: Delivery[] = [];
    await t.subscribe({ queue: { name: other, bindings: [{ exchange, routingKey: 'k' }] }, prefetch: 5 }, async (d) => {
      got.push(d);
      await d.ack();
    });

    const err = await t.declare({ queues: [{ name: queue, messageTtl: 1_000, type: 'classic' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TopologyError);
    expect((err as Error).message).toContain(`queue "${queue}"`);
    expect((err as Error).message).toContain('PRECONDITION_FAILED');
    const quorum = await t.declare({ queues: [{ name: queue, messageTtl: 60_000, type: 'quorum' }] }).catch((e: unknown) => e);
    expect(quorum).toBeInstanceOf(TopologyError);
    expect((quorum as Error).message).toContain(`queue "${queue}"`);

    // The 406 closed only the declaration channel: publishing and the existing consumer are unaffected.
    const m = message(exchange, 'k');
    await t.publish(m);
    await waitUntil(() => got.some((d) => d.message.id === m.id), 'the existing subscription to keep receiving');
    await t.declare({ queues: [{ name: queue, messageTtl: 60_000 }] });
  });

  it('fails a publish to an exchange deleted under it with a PublishError naming the exchange, then publishes on a fresh channel', async () => {
    const t = transport();
    const doomed = `${prefix}.doomed`;
    const healthy = `${prefix}.healthy`;
    const queue = `${prefix}.q`;
    cleanup.exchanges.push({ name: doomed }, { name: healthy });
    cleanup.queues.push({ name: queue });
    const topology: Topology = {
      exchanges: [{ name: doomed }, { name: healthy }],
      queues: [{ name: queue, bindings: [{ exchange: doomed, routingKey: '#' }, { exchange: healthy, routingKey: '#' }] }],
    };
    await t.declare(topology);
    await t.publish(message(doomed, 'before'));

    // Deleted by another connection, so this transport still believes the exchange exists and the
    // broker answers the publish by closing the publish channel (404).
    const other = transport();
    await other.remove({ exchanges: [{ name: doomed }] });

    const err = await t.publish(message(doomed, 'gone')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublishError);
    expect(err).toMatchObject({ code: 'TMM_PUBLISH_UNROUTABLE' });
    expect((err as Error).message).toContain(`exchange "${doomed}" does not exist`);

    await t.publish(message(healthy, 'after'));
    // The next publish to the missing exchange is caught by the passive check, without a channel close.
    await expect(t.publish(message(doomed, 'again'))).rejects.toMatchObject({ code: 'TMM_PUBLISH_UNROUTABLE' });
    await t.declare(topology);
    await t.publish(message(doomed, 'redeclared'));
    expect((await t.inspectQueue(queue)).messageCount).toBe(3);
    expect(t.isConnected).toBe(true);
  });

  it('rejects with TMM_PUBLISH_TIMEOUT within confirmTimeoutMs when the broker stops answering', async () => {
    const proxy = await TcpProxy.start(BROKER);
    proxies.push(proxy);
    const confirmTimeoutMs = 600;
    const t = transport({ url: viaProxy(proxy), confirmTimeoutMs, heartbeat: 30, closeTimeoutMs: 300 });
    const queue = `${prefix}.q`;
    cleanup.queues.push({ name: queue });
    await t.declare({ queues: [{ name: queue }] });
    await t.publish(message('', queue));

    proxy.stallDownstream();
    // Two publishes 300 ms apart: the confirm timeouts share one timer, and each must fail at its own
    // deadline (the second neither with the first nor forgotten once the first is gone).
    const started = Date.now();
    const failedAt = (p: Promise<void>) => p.then(() => ({ err: undefined as unknown, at: Date.now() }), (err: unknown) => ({ err, at: Date.now() }));
    const first = failedAt(t.publish(message('', queue)));
    await new Promise((r) => setTimeout(r, 300));
    const secondSent = Date.now();
    const second = failedAt(t.publish(message('', queue)));
    for (const [{ err, at }, sent] of [[await first, started], [await second, secondSent]] as const) {
      expect(err).toBeInstanceOf(PublishError);
      expect(err).toMatchObject({ code: 'TMM_PUBLISH_TIMEOUT' });
      expect(at - sent).toBeGreaterThanOrEqual(confirmTimeoutMs - 20);
      expect(at - sent).toBeLessThan(confirmTimeoutMs + 1_000);
    }
    expect((await second).at - (await first).at).toBeGreaterThanOrEqual(250);

    // close() cannot get a close-ok from a silent broker; it gives up after closeTimeoutMs per step.
    const closing = Date.now();
    await t.close();
    expect(Date.now() - closing).toBeLessThan(2_000);
  });

  it('holds publishes back while the channel write buffer is full, then confirms every one', async () => {
    const logger = new CapturingLogger();
    // A window wide enough that one burst overfills amqplib's per-channel buffer (1,024 frames).
    const t = transport({ maxInFlight: 5_000, logger });
    const queue = `${prefix}.burst`;
    cleanup.queues.push({ name: queue });
    await t.declare({ queues: [{ name: queue }] });

    await Promise.all(Array.from({ length: 3_000 }, () => t.publish(message('', queue))));
    expect(logger.lines.filter((l) => l.message === 'amqp publish waits for the write buffer to drain').length).toBeGreaterThan(0);
    expect((await t.inspectQueue(queue)).messageCount).toBe(3_000);
  });

  it('never settles a delivery of a dead channel on its successor; the broker redelivers it', async () => {
    const proxy = await TcpProxy.start(BROKER);
    proxies.push(proxy);
    const logger = new CapturingLogger();
    const t = transport({ url: viaProxy(proxy), logger });
    const queue = `${prefix}.q`;
    cleanup.queues.push({ name: queue });
    const got: Delivery[] = [];
    await t.subscribe({ queue: { name: queue }, prefetch: 1 }, (d) => {
      got.push(d);
    });
    const m = message('', queue);
    await t.publish(m);
    await waitUntil(() => got.length === 1, 'the first delivery');

    proxy.cut();
    await waitUntil(() => got.length === 2, 'the redelivery after reconnecting');
    expect(got[1].message.id).toBe(m.id);
    expect(got[1].redelivered).toBe(true);

    // Delivery tags restart per channel: acking the old delivery on the new channel would ack the
    // redelivery instead, and the nack below would then close the channel (406 unknown delivery tag).
    await expect(got[0].ack()).resolves.toBeUndefined();
    await got[1].nack({ requeue: true });
    await waitUntil(() => got.length === 3, 'the message nacked on the new channel to come back');
    expect(got[2].message.id).toBe(m.id);
    await got[2].ack();
    await sleep(100);
    expect(logger.lines.filter((l) => l.message === 'amqp consumer channel closed by the broker')).toEqual([]);
    expect((await t.inspectQueue(queue)).messageCount).toBe(0);
  });

  it('declares the queue again and resumes consuming when the broker cancels the consumer (queue deleted)', async () => {
    const t = transport();
    const queue = `${prefix}.q`;
    cleanup.queues.push({ name: queue });
    const got: Delivery[] = [];
    await t.subscribe({ queue: { name: queue }, prefetch: 5 }, async (d) => {
      got.push(d);
      await d.ack();
    });
    await transport().remove({ queues: [{ name: queue }] });

    const m = message('', queue);
    await waitUntil(async () => (await t.inspectQueue(queue).catch(() => ({ consumerCount: 0 }))).consumerCount === 1, 'the consumer to come back');
    await t.publish(m);
    await waitUntil(() => got.some((d) => d.message.id === m.id), 'a delivery on the resumed consumer');
  });

  it('fails publishes within confirmTimeoutMs while the broker is unreachable, logging reconnect attempts without the password', async () => {
    const closedPort = await unusedPort();
    const logger = new CapturingLogger();
    const t = transport({ url: `amqp://guest:s3cret-pw@127.0.0.1:${closedPort}`, confirmTimeoutMs: 400, logger });
    const started = Date.now();
    await expect(t.publish(message('', 'anything'))).rejects.toMatchObject({ name: 'PublishError', code: 'TMM_PUBLISH_CONNECTION_LOST' });
    expect(Date.now() - started).toBeLessThan(3_000); // confirmTimeoutMs (400) bounds it, not a connect that never ends
    expect(logger.lines.filter((l) => l.message === 'amqp reconnecting').length).toBeGreaterThan(0);
    await t.close();
    expect(logger.lines.at(-1)?.message).toBe('amqp closed');
    const text = JSON.stringify(logger.lines);
    expect(text).not.toContain('s3cret-pw');
    expect(text).toContain('guest:***@');
  });
});

// ---- helpers ----

function message(exchange: string, routingKey: string): TransportMessage {
  return {
    id: randomUUID(),
    exchange,
    routingKey,
    body: Buffer.from(JSON.stringify({ routingKey })),
    headers: { source: 'amqp-failures' },
    contentType: 'application/json',
    timestamp: Date.now(),
  };
}

/** A TCP proxy to the broker that can cut every connection or stop passing the broker's bytes on. */
class TcpProxy {
  cuts = 0;
  private readonly sockets = new Set<net.Socket>();
  private cutArmed = false;
  private refusing = false;
  private stalled = false;

  private constructor(private readonly server: net.Server) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = net.createServer();
    const proxy = new TcpProxy(server);
    server.on('connection', (client) => {
      if (proxy.refusing) client.destroy();
      else proxy.pipe(client, target);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** The next client→broker chunk is forwarded, then every connection is destroyed: those publishes are sent but never confirmed. */
  cutAfterNextUpstreamChunk(): void {
    this.cutArmed = true;
  }

  /** While on, new connections are dropped at once (the broker looks unreachable). */
  refuseConnections(on: boolean): void {
    this.refusing = on;
  }

  /** Destroys every proxied connection now (a network failure). */
  cut(): void {
    this.cuts++;
    for (const s of [...this.sockets]) s.destroy();
  }

  /** Broker→client bytes are no longer passed on (the broker seems to have hung). */
  stallDownstream(): void {
    this.stalled = true;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private pipe(client: net.Socket, target: { host: string; port: number }): void {
    const upstream = net.connect(target);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk) => {
      upstream.write(chunk);
      if (this.cutArmed) {
        this.cutArmed = false;
        this.cuts++;
        for (const s of [...this.sockets]) s.destroy();
      }
    });
    upstream.on('data', (chunk) => {
      if (!this.stalled) client.write(chunk);
    });
  }
}

async function unusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(20);
  }
}
