/**
 * The arithmetic behind the lag panel and the alerts: percentiles estimated from histogram buckets, the
 * trailing-window counter of the dead-letter rate, and which consumer has no heartbeat.
 */
import { Registry } from 'prom-client';
import { LagMetrics } from '../../src/admin/metrics/LagMetrics';
import { CounterWindow, consumerHeartbeats } from '../../src/runtime/HealthAlerts';
import { resolveAdminOptions } from '../../src/admin/AdminOptions';
import { resolveTmmOptions } from '../../src/config/TmmOptions';

const settle = (lag: LagMetrics, topic: string, seconds: number) =>
  lag.consumerObserver.onSettled!({ consumer: 'C.m', queue: 'q', topic, messageId: 'm', outcome: 'handled', attempt: 1, createdAt: 0, settledAt: seconds * 1000 });

describe('latency percentiles from histogram buckets', () => {
  it('interpolates within the bucket as histogram_quantile does, per topic', async () => {
    const lag = new LagMetrics(new Registry());
    // 100 observations: 50 at 7 ms (bucket 5–10 ms), 45 at 40 ms (25–50 ms), 5 at 2 s (1–2.5 s).
    for (let i = 0; i < 50; i++) settle(lag, 'a', 0.007);
    for (let i = 0; i < 45; i++) settle(lag, 'a', 0.04);
    for (let i = 0; i < 5; i++) settle(lag, 'a', 2);
    settle(lag, 'b', 4000); // beyond the largest bucket (1 h)
    const { endToEnd } = await lag.percentiles();
    const a = endToEnd.find((p) => p.topic === 'a')!;
    expect(a.count).toBe(100);
    expect(a.p50).toBeCloseTo(0.01, 6); // the 50th lies at the top of the 5–10 ms bucket
    expect(a.p95).toBeCloseTo(0.05, 6); // the 95th at the top of 25–50 ms
    expect(a.p99).toBeCloseTo(1 + 1.5 * (4 / 5), 6); // 4 of the 5 in 1–2.5 s
    expect(endToEnd.find((p) => p.topic === 'b')).toMatchObject({ count: 1, p50: 3600, p99: 3600 });
  });

  it('only handled deliveries count end to end; a retry is recorded until the message comes back', async () => {
    const lag = new LagMetrics(new Registry());
    lag.consumerObserver.onSettled!({ consumer: 'C.m', queue: 'q', topic: 't', messageId: 'm1', outcome: 'retried', attempt: 1, createdAt: 0, settledAt: 10, retry: { queue: 'q.retry.5000ms', delayMs: 5000, dueAt: 5010, error: 'boom' } });
    expect((await lag.percentiles()).endToEnd).toEqual([]);
    expect(lag.retries.list(20)).toEqual([expect.objectContaining({ messageId: 'm1', retryQueue: 'q.retry.5000ms', dueAt: 5010, attempt: 1, error: 'boom' })]);
    lag.consumerObserver.onDelivery!('Other.m', 'm1', 5020); // another consumer's copy: not this one
    expect(lag.retries.list(5020)).toHaveLength(1);
    lag.consumerObserver.onDelivery!('C.m', 'm1', 5020);
    expect(lag.retries.list(5020)).toEqual([]);
  });
});

describe('CounterWindow', () => {
  it('gives the increase over the trailing window from its samples', () => {
    let value = 0;
    const w = new CounterWindow(3000, () => value);
    expect(w.everyMs).toBe(600);
    w.sample(0);
    value = 2;
    w.sample(1000);
    value = 5;
    expect(w.increase(2000)).toBe(5); // younger than the window: since the first sample
    w.sample(3000);
    w.sample(4000);
    expect(w.increase(4000)).toBe(3); // since the sample at 1000 (4000 − 3000)
    w.sample(7000);
    expect(w.increase(7000)).toBe(0);
  });
});

describe('consumer heartbeats', () => {
  const expected = [{ name: 'A.m', queue: 'a' }, { name: 'B.m', queue: 'b' }, { name: 'C.m', queue: 'c' }];
  it('flags a consumer that is not subscribed, or holds deliveries without settling one for longer than the stall limit', () => {
    const beats = consumerHeartbeats(
      expected,
      [
        { consumer: 'A.m', queue: 'a', subscribed: true, inHand: 0, lastDeliveryAt: 100, lastSettledAt: 200, busySince: null },
        { consumer: 'B.m', queue: 'b', subscribed: true, inHand: 2, lastDeliveryAt: 1000, lastSettledAt: 3000, busySince: 1000 },
      ],
      5000,
      9000,
    );
    // B settled last at 3000 and has held deliveries since: stalled 6000 ms > 5000. C is not subscribed at all.
    expect(beats.map((b) => [b.consumer, b.ok, b.stalledMs])).toEqual([['A.m', true, 0], ['B.m', false, 6000], ['C.m', false, 0]]);
    expect(beats[0].lastActivityAt).toBe(200);
    expect(consumerHeartbeats(expected.slice(1, 2), [{ consumer: 'B.m', queue: 'b', subscribed: true, inHand: 2, lastDeliveryAt: 1000, lastSettledAt: 3000, busySince: 1000 }], 7000, 9000)[0].ok).toBe(true);
  });
});

describe('options', () => {
  it('alerts default on except failHealth; null switches one off; bad values name their path', () => {
    const ds = { options: {}, createQueryRunner: () => undefined } as never;
    expect(resolveTmmOptions({ dataSource: ds }).alerts).toEqual({ backlogAgeMs: 300_000, outboxDeadRows: 0, deadLetterRate: { max: 10, windowMs: 60_000 }, consumerStallMs: 60_000, failHealth: false });
    expect(resolveTmmOptions({ dataSource: ds, alerts: { backlogAgeMs: null } }).alerts.backlogAgeMs).toBeNull();
    expect(() => resolveTmmOptions({ dataSource: ds, alerts: { deadLetterRate: { max: 1, windowMs: 10 } } })).toThrow(/alerts\.deadLetterRate\.windowMs/);
  });

  it('admin queues: management needs its credentials; a URL must be http(s)', () => {
    const auth = { tokens: { ops: '0123456789abcdef' } };
    expect(resolveAdminOptions({ auth }).queues).toEqual({ source: 'amqp', cacheMs: 5000 });
    expect(resolveAdminOptions({ auth, queues: { management: { url: 'http://rabbit:15672', username: 'mon', password: 'pw' } } }).queues).toMatchObject({ source: 'management', management: { vhost: '/', timeoutMs: 3000 } });
    expect(() => resolveAdminOptions({ auth, queues: { source: 'management' } })).toThrow(/admin\.queues\.management/);
    expect(() => resolveAdminOptions({ auth, queues: { management: { url: 'rabbit:15672', username: 'mon', password: 'pw' } } })).toThrow(/admin\.queues\.management\.url/);
    expect(resolveAdminOptions({ auth, retention: { deadLettersMs: null } }).retention).toEqual({ deadLettersMs: null, auditMs: 365 * 86_400_000, purgeIntervalMs: 0 });
  });
});
