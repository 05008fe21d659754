/**
 * Alerts as data (tmm.health().alerts, the admin's /health and /api/health, tmm_alert_firing): each
 * condition is made real and the alert is seen to fire and to clear. On a private RabbitMQ node: the node
 * is stopped, so the relay's rows age in the outbox (backlogAge) and the consumer loses its subscription
 * (consumerHeartbeat), and both clear once it is back; a handler that hangs holds its delivery past
 * consumerStallMs; poison messages are dead-lettered faster than the allowed rate (deadLetterRate) and the
 * alert clears when the window has passed; an unroutable message spends its only attempt (outboxDead).
 */
import { Consumer, MessageContract } from 'tmm/decorators';
import { IsString } from 'class-validator';
import { AmqpTransport, NonRetryableError, silentLogger } from '../../src/internal';
import { type AdminHarness, startAdminHarness } from '../support/adminHarness';
import { uniquePrefix, waitUntil } from '../support/consumers';
import { PrivateRabbit } from '../support/privateRabbit';

const prefix = uniquePrefix('alerts');

@MessageContract({ topic: 'alerts.job', exchange: prefix })
class Job {
  @IsString() kind!: string;
  static of(kind: string): Job {
    return Object.assign(new Job(), { kind });
  }
}

class Worker {
  release: (() => void) | undefined;
  readonly done: string[] = [];
  @Consumer({ queue: `${prefix}.jobs`, routingKey: 'alerts.job', retry: false, transactional: false })
  async work(job: Job): Promise<void> {
    if (job.kind === 'poison') throw new NonRetryableError('poison job');
    if (job.kind === 'hang') await new Promise<void>((r) => (this.release = r));
    this.done.push(job.kind);
  }
}

describe('health alerts, each made real', () => {
  let rabbit: PrivateRabbit;
  let h: AdminHarness;
  const worker = new Worker();
  const alerts = async () => (await h.tmm.health()).alerts;
  const send = (kind: string, options?: { exchange?: string; routingKey?: string }) => h.tmm.transactions.run(() => h.tmm.producer.send(Job.of(kind), options));
  const firing = async (name: string) => ((await h.api.get('/metrics')).body as string).split('\n').find((l) => l.startsWith(`tmm_alert_firing{alert="${name}"}`))?.split(' ').pop();

  beforeAll(async () => {
    rabbit = await PrivateRabbit.create({ startTimeoutMs: 120_000 });
    const transport = new AmqpTransport({ url: rabbit.url, logger: silentLogger, connectionName: 'tmm-alerts-test', connectTimeoutMs: 2000, confirmTimeoutMs: 2000 });
    h = await startAdminHarness('sqlite', {
      consumers: [worker],
      transport,
      tmm: {
        dispatcher: { maxAttempts: 1, backoff: { initialDelayMs: 200, maxDelayMs: 500 } },
        relay: { pollIntervalMs: 100 },
        alerts: { backlogAgeMs: 2000, outboxDeadRows: 0, deadLetterRate: { max: 1, windowMs: 3000 }, consumerStallMs: 1500 },
      },
      admin: { port: 0, collector: { enabled: false } },
    });
  }, 180_000);
  afterAll(async () => {
    worker.release?.();
    await h?.dispose();
    await rabbit?.dispose();
  });

  it('starts with no alert firing', async () => {
    const a = await alerts();
    expect(Object.values(a).map((x) => x.firing)).toEqual([false, false, false, false]);
    expect(a.consumerHeartbeat.consumers).toEqual([expect.objectContaining({ consumer: 'Worker.work', subscribed: true, ok: true })]);
    expect((await h.api.get('/health')).body).toMatchObject({ ok: true, alerting: [] });
  });

  it('consumerHeartbeat: a handler that hangs holds its delivery past consumerStallMs, and clears when it finishes', async () => {
    await send('hang');
    await waitUntil(() => worker.release !== undefined, 'the handler to hang');
    const hungAt = Date.now();
    expect((await alerts()).consumerHeartbeat.firing).toBe(false); // not yet: 1.5 s
    await waitUntil(async () => (await alerts()).consumerHeartbeat.firing, 'the stall to be seen', 10_000);
    expect(Date.now() - hungAt).toBeGreaterThanOrEqual(1400);
    const a = await alerts();
    expect(a.consumerHeartbeat.detail).toMatch(/Worker\.work: holds 1 deliveries, none settled for \d+ s/);
    expect(a.consumerHeartbeat.consumers[0]).toMatchObject({ subscribed: true, inHand: 1, ok: false });
    await waitUntil(async () => (await firing('consumerHeartbeat')) === '1', 'tmm_alert_firing{alert="consumerHeartbeat"} 1 (the metrics cache health for 2 s)');
    worker.release!();
    await waitUntil(async () => !(await alerts()).consumerHeartbeat.firing, 'the heartbeat to be back');
    expect(worker.done).toContain('hang');
  });

  it('deadLetterRate: more dead letters within the window than allowed, clearing once the window has passed', async () => {
    await send('poison');
    await send('poison');
    await waitUntil(() => h.tmm.consumers.stats.deadLettered === 2, 'two dead-lettered');
    await waitUntil(async () => (await alerts()).deadLetterRate.firing, 'the rate alert');
    expect((await alerts()).deadLetterRate).toMatchObject({ value: 2, threshold: 1, windowMs: 3000 });
    expect((await h.api.get('/health')).body.alerting).toContain('deadLetterRate');
    await waitUntil(async () => !(await alerts()).deadLetterRate.firing, 'the window to pass', 15_000);
  });

  it('outboxDead: a message nobody can route spends its only attempt and is DEAD', async () => {
    expect((await alerts()).outboxDead.firing).toBe(false);
    await send('lost', { routingKey: 'no.queue.is.bound.here' });
    await waitUntil(async () => (await alerts()).outboxDead.firing, 'the DEAD row to be counted');
    const [{ n }] = await h.db.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_outbox WHERE status = 'DEAD'`);
    expect((await alerts()).outboxDead).toMatchObject({ value: Number(n), threshold: 0 });
    expect(Number(n)).toBe(1);
    await h.db.dataSource.query(`DELETE FROM tmm_outbox WHERE status = 'DEAD'`);
    await waitUntil(async () => !(await alerts()).outboxDead.firing, 'no DEAD row');
  });

  it('backlogAge and consumerHeartbeat: the broker goes away; rows age in the outbox and the consumer is not subscribed; both clear when it is back', async () => {
    await rabbit.stop();
    await send('during-outage');
    await waitUntil(async () => (await alerts()).consumerHeartbeat.firing, 'the subscription to be down', 15_000);
    expect((await alerts()).consumerHeartbeat.consumers[0]).toMatchObject({ subscribed: false, ok: false });
    // Each failed publish moves the row's due time on (backoff): the alert counts from its creation then, and stays firing.
    await waitUntil(async () => (await alerts()).backlogAge.firing, 'the backlog to age past 2 s', 15_000);
    const health = await h.api.get('/api/health');
    expect(health.body.alerting).toEqual(expect.arrayContaining(['backlogAge', 'consumerHeartbeat']));
    expect(health.body.alerts.backlogAge.value).toBeGreaterThan(2000);
    await waitUntil(async () => (await firing('backlogAge')) === '1', 'tmm_alert_firing{alert="backlogAge"} 1 (the metrics cache health for 2 s)');

    await rabbit.start();
    await waitUntil(() => worker.done.includes('during-outage'), 'the row to be published and consumed after the outage', 60_000);
    await waitUntil(async () => {
      const a = await alerts();
      return !a.backlogAge.firing && !a.consumerHeartbeat.firing;
    }, 'both alerts to clear', 30_000);
    await waitUntil(async () => (await firing('backlogAge')) === '0', 'tmm_alert_firing{alert="backlogAge"} 0 (the metrics cache health for 2 s)');
  });
});

describe('alerts.failHealth', () => {
  let h: AdminHarness;
  afterAll(async () => h?.dispose());

  it('makes a firing alert fail /health with 503 (off by default: alerts are data)', async () => {
    h = await startAdminHarness('sqlite', { tmm: { relay: { enabled: false }, alerts: { backlogAgeMs: 500, failHealth: true } } });
    await h.tmm.dispatcher.stop(); // nothing publishes: what is sent stays in the outbox and ages
    expect((await h.api.get('/health')).status).toBe(200);
    await h.tmm.transactions.run(() => h.tmm.producer.send(Job.of('waits')));
    await waitUntil(async () => (await h.api.get('/health')).status === 503, '/health to answer 503');
    expect((await h.api.get('/health')).body).toMatchObject({ ok: false, failing: [], alerting: ['backlogAge'] });
  });
});
