/**
 * The recorded journey (tmm_journey) on SQLite and PostgreSQL with a real RabbitMQ: a tmm message's whole
 * timeline in order (sent → stored → published → delivered), a message retried, dead-lettered and resent whose
 * copy's consumption shows in the original letter's view, a foreign message (raw amqplib) starting at
 * "received", search by correlation id and business key, the retention purge, and writer overflow counted.
 * Ground truth for what was written: SQL on tmm_journey; for what happened: the handler's own record.
 */
import * as amqp from 'amqplib';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IsBoolean, IsString } from 'class-validator';
import { Consumer, MessageContract, TransactionalMessage } from 'tmm/decorators';
import { AmqpTransport, type ConsumeContext, MemoryTransport, Tmm, consumerTopology, silentLogger } from '../../src/internal';
import { journeyMetricsRegistry } from '../../src/admin/metrics/journeyMetrics';
import { type AdminHarness, ApiClient, startAdminHarness } from '../support/adminHarness';
import { AMQP_URL, uniquePrefix, waitUntil } from '../support/consumers';
import { type DbKind, createTestDatabase } from '../support/databases';

@MessageContract({ topic: 'journey.order.placed' })
class OrderPlaced {
  @IsString() orderId!: string;
  @IsBoolean() fail!: boolean;
}

interface Step {
  step: string;
  at: number;
  source: string;
  attempt: number | null;
  outcome: string | null;
  durationMs: number | null;
  detail: string | null;
  linkedId: string | null;
}

describe.each<DbKind>(['sqlite', 'postgres'])('recorded journey on %s with RabbitMQ', (kind) => {
  const P = uniquePrefix(`journey-${kind}`);
  const QUEUE = `${P}.orders`;
  /** Order ids whose handling fails (until removed). */
  const failing = new Set<string>();
  const handled: { messageId: string; orderId: string }[] = [];

  class Orders {
    @Consumer({ queue: QUEUE, exchange: P, routingKey: 'order.#', retry: { maxAttempts: 2, delays: [200] } })
    async onPlaced(order: OrderPlaced, ctx: ConsumeContext): Promise<void> {
      if (failing.has(order.orderId)) throw new Error(`order ${order.orderId} refused`);
      handled.push({ messageId: ctx.messageId, orderId: order.orderId });
    }
  }

  let h: AdminHarness;
  let transport: AmqpTransport;
  const logDirs = mkdtempSync(join(tmpdir(), 'tmm-journey-txlog-'));
  beforeAll(async () => {
    transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: `${P}-tmm` });
    h = await startAdminHarness(kind, {
      transport,
      consumers: [new Orders()],
      tmm: {
        journey: { enabled: true, businessKeys: ['orderId'], flushIntervalMs: 50 },
        // For the log-mode sender's steps; the check URL is never asked (no transaction stays in doubt here).
        txlog: { directories: [join(logDirs, 'a'), join(logDirs, 'b')], barrier: false, checkUrl: 'http://127.0.0.1:9/never-asked' },
      },
    });
  });
  afterAll(async () => {
    rmSync(logDirs, { recursive: true, force: true });
    const queues = h ? h.tmm.consumers.definitions.flatMap((d) => consumerTopology(d).queues ?? []) : [];
    await h?.dispose();
    const c = await amqp.connect(AMQP_URL);
    const ch = await c.createChannel();
    for (const q of queues) await ch.deleteQueue(q.name);
    await ch.deleteExchange(P);
    await c.close();
  });

  const send = (orderId: string, fail = false, headers?: Record<string, string>) =>
    h.tmm.transactions.run(() => h.tmm.producer.send(Object.assign(new OrderPlaced(), { orderId, fail }), { exchange: P, routingKey: 'order.placed', headers }), { name: 'placeOrder' });
  const journey = async (id: string): Promise<{ status: number; body: { foreign: boolean; steps: Step[]; copies: { messageId: string; steps: Step[] }[] } }> => h.api.get(`/api/journey/${id}`);
  const stepsOf = async (id: string) => ((await journey(id)).body.steps ?? []).map((s) => s.step);
  const hasSteps = async (id: string, ...wanted: string[]) => {
    const steps = await stepsOf(id);
    return wanted.every((s) => steps.includes(s));
  };
  /** Rows written for a message, read with SQL (not through tmm). */
  const rowsOf = async (id: string): Promise<{ step: string }[]> =>
    h.db.dataSource.query(`SELECT step FROM tmm_journey WHERE message_id = ${kind === 'postgres' ? '$1' : '?'} ORDER BY id`, [id]);

  it('records a tmm message’s whole timeline in order, each step with its time and source', async () => {
    const id = await send('ord-1', false, { 'tmm-correlation-id': `${P}-req-1` });
    await waitUntil(() => handled.some((x) => x.messageId === id), 'the message to be consumed');
    // The broker may hand the message to the consumer before the confirm reaches the relay: wait for both.
    await waitUntil(() => hasSteps(id, 'published', 'delivered'), 'the publish and the delivery to be recorded', 30_000);
    const { status, body } = await journey(id);
    expect(status).toBe(200);
    expect(body.foreign).toBe(false);
    expect(body.steps.map((s) => s.step)).toEqual(['sent', 'stored', 'published', 'delivered']);
    const [sent, stored, published, delivered] = body.steps;
    expect(sent).toMatchObject({ source: h.tmm.instanceId, detail: expect.stringContaining('placeOrder') });
    expect(stored).toMatchObject({ source: h.tmm.instanceId, detail: 'committed to tmm_outbox' });
    expect(published).toMatchObject({ source: h.tmm.instanceId, attempt: 1, detail: expect.stringContaining(`${P} / order.placed`) });
    expect(delivered).toMatchObject({ source: `Orders.onPlaced@${h.tmm.instanceId}`, attempt: 1, outcome: 'consumed' });
    expect(delivered.durationMs).toBeGreaterThanOrEqual(0);
    expect(sent.at).toBeLessThanOrEqual(stored.at);
    expect(stored.at).toBeLessThanOrEqual(published.at);
    // sent and stored are one row (stored, carrying the send time): three rows for the whole journey.
    expect((await rowsOf(id)).map((r) => r.step).sort()).toEqual(['delivered', 'published', 'stored']);

    const byCorrelation = await h.api.get(`/api/journey?correlationId=${P}-req-1`);
    expect(byCorrelation.body.items.map((x: { messageId: string }) => x.messageId)).toEqual([id]);
    const byKey = await h.api.get('/api/journey?key=ord-1');
    expect(byKey.body.items).toEqual([expect.objectContaining({ messageId: id, firstStep: 'sent', businessKey: 'ord-1' })]);
    expect((await h.api.get('/api/journey?key=ord-unknown')).body.items).toEqual([]);
    expect((await h.api.get('/api/journey')).status).toBe(400);
    expect((await new ApiClient(h.url, undefined).get(`/api/journey/${id}`)).status).toBe(401);
    expect((await h.api.get(`/api/journey/${P}-no-such-message`)).status).toBe(404);
  });

  it('records the steps of a message sent through the local transaction log: stored in the log, published from it', async () => {
    class Checkout {
      constructor(private readonly tmm: Tmm) {}
      @TransactionalMessage({ sender: 'log' })
      async place(orderId: string): Promise<string> {
        return this.tmm.producer.send(Object.assign(new OrderPlaced(), { orderId, fail: false }), { exchange: P, routingKey: 'order.placed' });
      }
    }
    const id = await new Checkout(h.tmm).place('ord-log-1');
    await waitUntil(() => handled.some((x) => x.messageId === id), 'the log-mode message to be consumed');
    await waitUntil(() => hasSteps(id, 'published', 'delivered'), 'its publish and delivery to be recorded', 30_000);
    const { body } = await journey(id);
    expect(body.steps.map((s) => s.step)).toEqual(['sent', 'stored', 'published', 'delivered']);
    const [, stored, published] = body.steps;
    expect(stored).toMatchObject({ source: h.tmm.instanceId, detail: 'committed to the local transaction log' });
    expect(published).toMatchObject({ source: h.tmm.instanceId, attempt: 1, detail: expect.stringContaining('sent from the local transaction log') });
    expect((await rowsOf(id)).map((r) => r.step).sort()).toEqual(['delivered', 'published', 'stored']);
  });

  it('records retries and the dead letter; after a resend the letter shows the copy consumed', async () => {
    failing.add('ord-2');
    const id = await send('ord-2', true);
    await waitUntil(async () => (await h.admin.deadLetters.list({ messageId: id }, { limit: 5, offset: 0 })).items.length === 1, 'the dead letter to be collected', 30_000);
    await waitUntil(() => hasSteps(id, 'dead-lettered', 'collected'), 'the dead-lettering and the collection to be recorded', 30_000);
    const before = (await journey(id)).body.steps;
    expect(before.map((s) => s.step)).toEqual(['sent', 'stored', 'published', 'delivered', 'retried', 'delivered', 'dead-lettered', 'collected']);
    expect(before.filter((s) => s.step === 'delivered').map((s) => [s.attempt, s.outcome])).toEqual([[1, 'failed'], [2, 'failed']]);
    expect(before.find((s) => s.step === 'retried')!.detail).toContain('order ord-2 refused');
    expect(before.find((s) => s.step === 'dead-lettered')).toMatchObject({ attempt: 2, outcome: 'max-attempts' });
    // The deliveries and retries are listed in the order of their times (the publish before them, and the
    // collection after them, whatever their clocks say: those race with the consumer's).
    const afterPublish = before.slice(3, 7).map((s) => s.at);
    expect(afterPublish).toEqual([...afterPublish].sort((a, b) => a - b));

    const letter = (await h.admin.deadLetters.list({ messageId: id }, { limit: 5, offset: 0 })).items[0];
    failing.delete('ord-2');
    const resend = await h.api.post(`/api/dead-letters/${letter.id}/resend`, { comment: 'fixed' });
    expect(resend.status).toBe(200);
    const copyId: string = resend.body.messageId;
    await waitUntil(() => handled.some((x) => x.messageId === copyId), 'the resent copy to be consumed', 30_000);
    await waitUntil(() => hasSteps(copyId, 'published', 'delivered'), 'the copy’s publish and delivery to be recorded', 30_000);

    const detail = (await h.api.get(`/api/dead-letters/${letter.id}`)).body;
    const lines = detail.journey.map((j: { step: string }) => j.step);
    expect(lines).toEqual([...before.map((s) => s.step), 'resent', 'copy stored', 'copy published', 'copy delivered']);
    expect(detail.journey.find((j: { step: string }) => j.step === 'resent')).toMatchObject({ source: 'admin:token:ops', detail: expect.stringContaining(copyId) });
    expect(detail.journey.find((j: { step: string }) => j.step === 'copy delivered')).toMatchObject({ messageId: copyId, detail: expect.stringContaining('consumed') });
    expect(detail.timeline.copies).toEqual([expect.objectContaining({ messageId: copyId })]);
    expect(detail.timeline.copies[0].steps.find((s: Step) => s.step === 'stored')).toMatchObject({ linkedId: id });
    expect((await rowsOf(copyId)).map((r) => r.step).sort()).toEqual(['delivered', 'published', 'stored']);
  });

  it('starts a foreign message’s journey at "received" (published by a raw amqplib client)', async () => {
    const id = `${P}-foreign-1`;
    const c = await amqp.connect(AMQP_URL);
    try {
      const ch = await c.createConfirmChannel();
      ch.publish(P, 'order.placed', Buffer.from(JSON.stringify({ orderId: 'ord-3', fail: false })), { messageId: id, contentType: 'application/json', persistent: true, appId: 'raw-amqplib' });
      await ch.waitForConfirms();
    } finally {
      await c.close();
    }
    await waitUntil(() => handled.some((x) => x.messageId === id), 'the foreign message to be consumed', 30_000);
    await waitUntil(() => hasSteps(id, 'received', 'delivered'), 'the delivery to be recorded', 30_000);
    const { body } = await journey(id);
    expect(body.foreign).toBe(true);
    expect(body.steps.map((s) => s.step)).toEqual(['received', 'delivered']);
    expect(body.steps[0]).toMatchObject({ source: `Orders.onPlaced@${h.tmm.instanceId}`, detail: expect.stringContaining('not produced by tmm (app raw-amqplib)') });
    expect((await h.api.get('/api/journey?key=ord-3')).body.items).toEqual([expect.objectContaining({ messageId: id, firstStep: 'received' })]);
  });

  it('purges events older than the retention, and only those', async () => {
    const old = `${P}-old`;
    const recent = `${P}-recent`;
    const recorder = h.tmm.journey!;
    recorder.record({ messageId: old, step: 'sent', at: Date.now() - 10 * 86_400_000, source: 'test' });
    recorder.record({ messageId: recent, step: 'sent', at: Date.now() - 3600_000, source: 'test' });
    await recorder.flush();
    expect(await rowsOf(old)).toHaveLength(1);
    const purged = await recorder.purge(); // default retention: 7 days
    expect(purged).toBeGreaterThanOrEqual(1);
    expect(await rowsOf(old)).toHaveLength(0);
    expect(await rowsOf(recent)).toHaveLength(1);
  });
});

describe.each<DbKind>(['sqlite', 'postgres'])('journey writer overflow on %s', (kind) => {
  it('drops what does not fit its buffer without blocking the producer, and counts it (stats, health, metrics)', async () => {
    const db = await createTestDatabase(kind);
    // The writer never writes on its own here (one flush a minute), so the 5-event buffer fills.
    const tmm = new Tmm({ dataSource: db.dataSource, transport: new MemoryTransport(), logger: 'silent', consumers: { enabled: false }, relay: { enabled: false }, journey: { enabled: true, maxBuffered: 5, flushIntervalMs: 60_000 } });
    try {
      await tmm.start();
      await tmm.dispatcher.stop(); // nothing is published: each message records one event (stored, with its send)
      const ids = await tmm.transactions.run(() => tmm.producer.sendAll(Array.from({ length: 10 }, (_, i) => Object.assign(new OrderPlaced(), { orderId: `o-${i}`, fail: false })), { exchange: 'journey.overflow' }));
      expect(ids).toHaveLength(10);
      const stats = tmm.stats().journey!;
      // 10 events, 5 kept.
      expect(stats.recorded).toBe(5);
      expect(stats.dropped).toBe(5);
      const health = await tmm.health();
      expect(health.checks.journey).toMatchObject({ ok: true, enabled: true, dropped: 5, buffered: 5, detail: expect.stringContaining('5 journey event(s) dropped') });
      expect(await journeyMetricsRegistry(tmm.journey!).metrics()).toContain('tmm_journey_events_total{result="dropped"} 5');
      await tmm.stop();
      const rows: { n: number | string }[] = await db.dataSource.query('SELECT COUNT(*) AS n FROM tmm_journey');
      expect(Number(rows[0].n)).toBe(5);
    } finally {
      await tmm.stop();
      await db.dispose();
    }
  });
});
