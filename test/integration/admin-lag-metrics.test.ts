/**
 * The relay's lag per topic on /metrics (tmm_outbox_pending_by_topic, tmm_outbox_oldest_pending_age_seconds_by_topic),
 * on SQLite and PostgreSQL: messages committed while no relay runs are the backlog of their topic, and a
 * topic whose backlog is gone disappears from the gauges.
 */
import { IsInt } from 'class-validator';
import { MessageContract } from 'tmm/decorators';
import { type AdminHarness, startAdminHarness } from '../support/adminHarness';
import { sleep } from '../support/consumers';

@MessageContract({ topic: 'lag.orders' })
class OrderPlaced {
  @IsInt() n!: number;
}

@MessageContract({ topic: 'lag.refunds' })
class RefundIssued {
  @IsInt() n!: number;
}

const gauge = (text: string, name: string, topic: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{topic="${topic}"}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
};

describe.each(['sqlite', 'postgres'] as const)('outbox lag per topic on %s', (kind) => {
  let h: AdminHarness;
  beforeAll(async () => {
    h = await startAdminHarness(kind, { tmm: { relay: { enabled: false } } });
    await h.tmm.dispatcher.stop(); // nothing publishes: what is sent stays in the outbox
  });
  afterAll(async () => h?.dispose());

  it('shows each topic’s backlog and the age of its oldest row, and drops a topic once its backlog is gone', async () => {
    const send = (m: object) => h.tmm.transactions.run(() => h.tmm.producer.send(m));
    for (let n = 0; n < 3; n++) await send(Object.assign(new OrderPlaced(), { n }));
    await send(Object.assign(new RefundIssued(), { n: 1 }));
    await sleep(1100);
    let text = (await h.api.get('/metrics')).body as string;
    expect(gauge(text, 'tmm_outbox_pending_by_topic', 'lag.orders')).toBe(3);
    expect(gauge(text, 'tmm_outbox_pending_by_topic', 'lag.refunds')).toBe(1);
    const age = gauge(text, 'tmm_outbox_oldest_pending_age_seconds_by_topic', 'lag.orders')!;
    expect(age).toBeGreaterThanOrEqual(1);
    expect(age).toBeLessThan(60);
    const backlog = (await h.api.get('/api/lag')).body.backlog as { topic: string; due: number; oldestAgeMs: number }[];
    expect(backlog.map((b) => [b.topic, b.due]).sort()).toEqual([['lag.orders', 3], ['lag.refunds', 1]]);
    expect(backlog.every((b) => b.oldestAgeMs >= 1000 && b.oldestAgeMs < 60_000)).toBe(true);

    await h.db.dataSource.query(`DELETE FROM tmm_outbox WHERE topic = 'lag.refunds'`);
    await sleep(2100); // past the metrics' snapshot cache
    text = (await h.api.get('/metrics')).body as string;
    expect(gauge(text, 'tmm_outbox_pending_by_topic', 'lag.refunds')).toBeUndefined();
    expect(gauge(text, 'tmm_outbox_oldest_pending_age_seconds_by_topic', 'lag.refunds')).toBeUndefined();
    expect(gauge(text, 'tmm_outbox_pending_by_topic', 'lag.orders')).toBe(3);
  });
});
