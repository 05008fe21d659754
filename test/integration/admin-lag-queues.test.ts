/**
 * The broker's side of the admin (GET /api/lag and /metrics) against real RabbitMQ: publish and
 * end-to-end latency percentiles per topic, each consumer's throughput and failure rate, the depth of
 * every tmm queue (work, retry, dead-letter) read by AMQP passive declares and compared with a raw
 * amqplib client, and the messages waiting in a retry queue with their due time, gone once they come
 * back. Then the management-API source on a private RabbitMQ node with rabbitmq_management: ready,
 * unacked and consumers of a queue whose only consumer holds one delivery, against rabbitmqctl's own
 * numbers; and wrong credentials reported per queue, not thrown.
 */
import * as amqp from 'amqplib';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AmqpTransport, silentLogger } from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import { type AdminHarness, startAdminHarness } from '../support/adminHarness';
import { LedgerPosted } from '../support/contracts';
import { AMQP_URL, uniquePrefix, waitUntil } from '../support/consumers';
import { PrivateRabbit } from '../support/privateRabbit';

const prefix = uniquePrefix('lagq');

class Ledger {
  readonly handled: string[] = [];
  readonly failedOnce = new Set<string>();
  @Consumer({ queue: `${prefix}.ledger`, exchange: prefix, routingKey: 'ledger.posted', retry: { maxAttempts: 3, delays: [4000] } })
  async post(entry: LedgerPosted): Promise<void> {
    if (entry.entryId.startsWith('flaky-') && !this.failedOnce.has(entry.entryId)) {
      this.failedOnce.add(entry.entryId);
      throw new Error(`ledger for ${entry.entryId} is locked`);
    }
    this.handled.push(entry.entryId);
  }
}

/**
 * Holds the first delivery until released: the rest of its queue stays ready on the broker. Not
 * transactional, so that the held handler keeps no SQLite transaction open that others would wait for.
 */
class Parked {
  release: (() => void) | undefined;
  readonly handled: string[] = [];
  @Consumer({ queue: `${prefix}.parked`, exchange: prefix, routingKey: 'ledger.parked', prefetch: 1, concurrency: 1, retry: false, transactional: false })
  async hold(entry: LedgerPosted): Promise<void> {
    if (this.handled.length === 0) await new Promise<void>((r) => (this.release = r));
    this.handled.push(entry.entryId);
  }
}

const line = (text: string, name: string, labels: string): number | undefined => {
  const l = text.split('\n').find((x) => x.startsWith(`${name}{${labels}}`));
  return l === undefined ? undefined : Number(l.split(' ').pop());
};

describe('lag and queues from the broker (AMQP passive declares)', () => {
  let h: AdminHarness;
  let raw: amqp.ChannelModel;
  const ledger = new Ledger();
  const parked = new Parked();
  const readyOnBroker = async (queue: string) => {
    const ch = await raw.createChannel();
    try {
      return (await ch.checkQueue(queue)).messageCount;
    } finally {
      await ch.close();
    }
  };

  beforeAll(async () => {
    const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-lag-queues-test' });
    h = await startAdminHarness('sqlite', { consumers: [ledger, parked], transport, admin: { port: 0, queues: { cacheMs: 0 } } });
    raw = await amqp.connect(AMQP_URL);
  });
  afterAll(async () => {
    parked.release?.();
    await raw?.close();
    await h?.dispose();
    const admin = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-lag-queues-cleanup' });
    try {
      const queues = [`${prefix}.ledger`, `${prefix}.ledger.dlq`, `${prefix}.ledger.retry.4000ms`, `${prefix}.parked`, `${prefix}.parked.dlq`].map((name) => ({ name }));
      await admin.remove({ queues, exchanges: [{ name: prefix }] });
    } finally {
      await admin.close();
    }
  });

  it('shows latency percentiles, consumer rates, queue depths equal to the broker’s, and what waits in a retry queue until it comes back', async () => {
    const send = (entryId: string, routingKey = 'ledger.posted') => h.tmm.transactions.run(() => h.tmm.producer.send(LedgerPosted.of(entryId, 1), { exchange: prefix, routingKey }));
    for (let i = 0; i < 5; i++) await send(`ok-${i}`);
    for (let i = 0; i < 2; i++) await send(`flaky-${i}`);
    for (let i = 0; i < 4; i++) await send(`parked-${i}`, 'ledger.parked');

    // Both flaky ones failed once and sit in the retry queue; the parked consumer holds one and three wait.
    await waitUntil(() => ledger.handled.length === 5 && ledger.failedOnce.size === 2 && parked.release !== undefined, 'five handled, two retried, one parked');
    await waitUntil(async () => (await readyOnBroker(`${prefix}.parked`)) === 3 && (await readyOnBroker(`${prefix}.ledger.retry.4000ms`)) === 2, 'the broker to hold 3 parked and 2 retrying');

    const lag = (await h.api.get('/api/lag')).body;
    const depth = (queue: string) => lag.queues.items.find((q: { queue: string }) => q.queue === queue);
    expect(lag.queues.source).toBe('amqp');
    expect(depth(`${prefix}.parked`)).toMatchObject({ kind: 'work', consumer: 'Parked.hold', ready: await readyOnBroker(`${prefix}.parked`), unacked: null, consumers: 1 });
    expect(depth(`${prefix}.ledger.retry.4000ms`)).toMatchObject({ kind: 'retry', consumer: 'Ledger.post', messages: 2, consumers: 0 });
    expect(depth(`${prefix}.ledger.dlq`)).toMatchObject({ kind: 'dead-letter', messages: await readyOnBroker(`${prefix}.ledger.dlq`) });
    expect(lag.queues.items.every((q: { error?: string }) => q.error === undefined)).toBe(true);

    const retrying = lag.retrying.filter((r: { consumer: string }) => r.consumer === 'Ledger.post');
    expect(retrying.map((r: { messageId: string }) => r.messageId).length).toBe(2);
    for (const r of retrying) {
      expect(r).toMatchObject({ retryQueue: `${prefix}.ledger.retry.4000ms`, attempt: 1, topic: 'ledger.posted' });
      expect(r.error).toMatch(/ledger for flaky-\d is locked/);
      expect(r.dueAt - r.retriedAt).toBeGreaterThanOrEqual(3900);
      expect(r.dueAt - r.retriedAt).toBeLessThanOrEqual(5000);
    }

    const publish = lag.publishLatency.find((p: { topic: string }) => p.topic === 'ledger.posted');
    expect(publish.count).toBe(11);
    expect(publish.p50).toBeGreaterThan(0);
    expect(publish.p99).toBeGreaterThanOrEqual(publish.p50);
    expect(lag.endToEndLatency.find((p: { topic: string }) => p.topic === 'ledger.posted').count).toBe(5);

    const rate = lag.consumers.find((c: { consumer: string }) => c.consumer === 'Ledger.post');
    expect(rate.total).toEqual({ handled: 5, failed: 2 });
    expect(rate.failureRate).toBeCloseTo(2 / 7, 5);

    const metrics = (await h.api.get('/metrics')).body as string;
    expect(line(metrics, 'tmm_publish_latency_seconds_count', 'topic="ledger.posted"')).toBe(11);
    expect(line(metrics, 'tmm_end_to_end_latency_seconds_count', 'topic="ledger.posted"')).toBe(5);
    expect(line(metrics, 'tmm_queue_messages', `queue="${prefix}.parked",consumer="Parked.hold",kind="work"`)).toBe(3);
    expect(line(metrics, 'tmm_queue_messages', `queue="${prefix}.ledger.retry.4000ms",consumer="Ledger.post",kind="retry"`)).toBe(2);
    expect(line(metrics, 'tmm_retry_waiting', 'consumer="Ledger.post"')).toBe(2);

    // Their TTL passes: they come back, are handled, and leave the record; the end-to-end count grows.
    await waitUntil(() => ledger.handled.length === 7, 'the retried two to be handled', 20_000);
    const after = (await h.api.get('/api/lag')).body;
    expect(after.retrying.filter((r: { consumer: string }) => r.consumer === 'Ledger.post')).toEqual([]);
    expect(after.endToEndLatency.find((p: { topic: string }) => p.topic === 'ledger.posted').count).toBe(7);
    parked.release!();
    await waitUntil(() => parked.handled.length === 4, 'the parked four to be handled');
  });
});

const run = promisify(execFile);

describe('queue depths from the RabbitMQ management API (private node)', () => {
  let rabbit: PrivateRabbit;
  let h: AdminHarness;
  const parked = new Parked();

  beforeAll(async () => {
    rabbit = await PrivateRabbit.create({ startTimeoutMs: 120_000, management: true });
    const transport = new AmqpTransport({ url: rabbit.url, logger: silentLogger, connectionName: 'tmm-lag-mgmt-test' });
    h = await startAdminHarness('sqlite', {
      consumers: [parked],
      transport,
      admin: { port: 0, queues: { management: { url: rabbit.managementUrl, username: 'guest', password: 'guest' }, cacheMs: 0 } },
    });
  }, 180_000);
  afterAll(async () => {
    parked.release?.();
    await h?.dispose();
    await rabbit?.dispose();
  });

  it('reads ready, unacked and consumers per queue, as rabbitmqctl counts them', async () => {
    for (let i = 0; i < 4; i++) await h.tmm.transactions.run(() => h.tmm.producer.send(LedgerPosted.of(`m-${i}`, 1), { exchange: prefix, routingKey: 'ledger.parked' }));
    await waitUntil(() => parked.release !== undefined, 'the consumer to hold one delivery');
    // Ground truth from the node itself, outside tmm and the plugin.
    const { stdout } = await run('rabbitmqctl', ['-n', rabbit.nodeName, '-q', 'list_queues', '--no-table-headers', 'name', 'messages_ready', 'messages_unacknowledged', 'consumers']);
    const truth = stdout.split('\n').map((l) => l.trim().split(/\s+/)).find((c) => c[0] === `${prefix}.parked`);
    expect(truth).toEqual([`${prefix}.parked`, '3', '1', '1']);
    // The plugin refreshes its statistics every few seconds.
    let parkedDepth: Record<string, unknown> | undefined;
    await waitUntil(async () => {
      const lag = (await h.api.get('/api/lag')).body;
      if (!lag.queues) throw new Error(JSON.stringify(lag));
      parkedDepth = lag.queues.items.find((q: { queue: string }) => q.queue === `${prefix}.parked`);
      return lag.queues.source === 'management' && parkedDepth?.ready === 3 && parkedDepth?.unacked === 1;
    }, 'the management API to report 3 ready and 1 unacked', 30_000);
    expect(parkedDepth).toMatchObject({ kind: 'work', messages: 4, ready: 3, unacked: 1, consumers: 1, source: 'management' });
    const metrics = (await h.api.get('/metrics')).body as string;
    expect(line(metrics, 'tmm_queue_unacked', `queue="${prefix}.parked",consumer="Parked.hold",kind="work"`)).toBe(1);
  });

  it('reports wrong credentials on each queue instead of failing the panel', async () => {
    const transport = new AmqpTransport({ url: rabbit.url, logger: silentLogger, connectionName: 'tmm-lag-mgmt-wrong' });
    const other = new Parked();
    const wrong = await startAdminHarness('sqlite', {
      consumers: [other],
      transport,
      tmm: { name: 'wrong-credentials' },
      admin: { port: 0, collector: { enabled: false }, queues: { management: { url: rabbit.managementUrl, username: 'guest', password: 'not-the-password' } } },
    });
    try {
      const lag = (await wrong.api.get('/api/lag')).body;
      expect(lag.queues.items.length).toBeGreaterThan(0);
      for (const q of lag.queues.items) expect(q.error).toMatch(/HTTP 401/);
    } finally {
      other.release?.();
      await wrong.dispose();
    }
  });
});
