/**
 * Consumers end to end: redelivery, retries through the retry queues, dead letters with their headers,
 * TTL expiry, graceful shutdown under load and consume → write → produce — on the local RabbitMQ
 * (127.0.0.1:5672) with the inbox on SQLite and on PostgreSQL, and on the in-memory transport (which users
 * run their own tests on). Every test declares its own exchange and queues (unique prefix), deleted after.
 *
 * Effects are rows in test_ledger whose `account` is the message id and whose primary key is fresh per
 * handler run, so a handler whose effect happened twice shows up as two rows (a unique key would hide it).
 */
import { randomUUID } from 'node:crypto';
import {
  type ConsumeContext,
  ConsumerHeaders,
  DeadLetterReason,
  type Delivery,
  NonRetryableError,
  type Tmm,
  type Transport,
  deadLetterQueueSpec,
} from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';
import { ConsumerTestEnv, QueueReader, type TransportKind, sleep, uniquePrefix, waitUntil, wireMessage } from '../support/consumers';
import type { DbKind } from '../support/databases';
import { LedgerEntry } from '../support/entities';

const lanes: { name: string; transport: TransportKind; db: DbKind }[] = [
  { name: 'RabbitMQ, inbox on SQLite', transport: 'amqp', db: 'sqlite' },
  { name: 'RabbitMQ, inbox on PostgreSQL', transport: 'amqp', db: 'postgres' },
  { name: 'NATS JetStream, inbox on PostgreSQL', transport: 'nats', db: 'postgres' },
  { name: 'the in-memory transport, inbox on SQLite', transport: 'memory', db: 'sqlite' },
];

describe.each(lanes)('consumers on $name', ({ transport: transportKind, db: dbKind }) => {
  let env: ConsumerTestEnv;
  let prefix: string;

  beforeAll(async () => {
    env = await ConsumerTestEnv.create(dbKind, transportKind, [LedgerEntry]);
  });
  afterAll(async () => env?.dispose());
  beforeEach(() => {
    prefix = uniquePrefix('cb');
  });
  afterEach(async () => env.cleanup());

  /** Rows written for a message id (one per effect). */
  const effects = async (messageId: string) => env.db.dataSource.getRepository(LedgerEntry).countBy({ account: messageId });
  const writeEffect = (ctx: ConsumeContext, amount: number) => ctx.manager.insert(LedgerEntry, { id: randomUUID(), account: ctx.messageId, amount });
  const valid = (entryId: string, amount = 10) => ({ entryId, amount, currency: 'EUR' });

  /**
   * A second copy of a message that reaches the consumer. Feature flag: a broker that deduplicates publishes
   * by message id (JetStream's duplicate window) would drop an identical republish, so there the copy says
   * `tmm-consume-attempt: 1` — what a first delivery means anyway — which makes it another publish to the
   * broker while the consumer sees the same message id (as after a lost ack).
   */
  function duplicateOf(t: Transport, m: ReturnType<typeof wireMessage>): ReturnType<typeof wireMessage> {
    if ((t.features.deduplicationWindowMs ?? 0) === 0) return { ...m, headers: { ...m.headers } };
    return { ...m, headers: { ...m.headers, [ConsumerHeaders.attempt]: 1 } };
  }

  async function deadLetters(tmm: Tmm, t: Transport, count: number): Promise<Delivery[]> {
    const reader = await QueueReader.start(t, deadLetterQueueSpec(tmm.consumers.definitions[0]));
    try {
      return await reader.waitFor(count, 'the dead-letter queue');
    } finally {
      await reader.stop();
    }
  }

  it('the same message delivered twice has its effect once: the second copy is acked and skipped', async () => {
    class Ledger {
      calls = 0;
      @Consumer({ queue: `${prefix}.ledger`, exchange: prefix, routingKey: 'work', idempotent: true })
      async post(entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        this.calls++;
        await writeEffect(ctx, entry.amount);
      }
    }
    const handler = new Ledger();
    const t = env.transport();
    const tmm = await env.start([handler], {}, t);
    const twice = wireMessage({ exchange: prefix, routingKey: 'work', body: valid('e-1') });
    await t.publish(twice);
    await t.publish({ ...twice, headers: { ...twice.headers } });
    // Feature flag: JetStream drops the second publish of the same message id inside its duplicate window
    // (Nats-Msg-Id), so only one copy ever reaches the consumer there; RabbitMQ and memory deliver both and
    // the inbox skips the second.
    const brokerDedups = (t.features.deduplicationWindowMs ?? 0) > 0;
    const copies = brokerDedups ? 1 : 2;
    await waitUntil(() => tmm.consumers.stats.handled + tmm.consumers.stats.duplicates >= copies, 'both copies settled');
    if (brokerDedups) await sleep(300);
    expect(handler.calls).toBe(1);
    expect(tmm.consumers.stats).toMatchObject({ handled: 1, duplicates: copies - 1, retried: 0, deadLettered: 0 });
    expect(await effects(twice.id)).toBe(1);
    expect(await env.depth(t, `${prefix}.ledger`)).toBe(0);
  });

  it('a handler that fails twice then succeeds is called three times, after growing delays', async () => {
    class Flaky {
      readonly calls: { at: number; attempt: number; redelivered: boolean }[] = [];
      @Consumer({ queue: `${prefix}.flaky`, exchange: prefix, routingKey: 'work', idempotent: true, retry: { maxAttempts: 5, delays: [150, 600] } })
      async handle(entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        this.calls.push({ at: Date.now(), attempt: ctx.attempt, redelivered: ctx.redelivered });
        await writeEffect(ctx, entry.amount);
        // The write above is rolled back with each failed attempt.
        if (this.calls.length < 3) throw new Error(`transient failure ${this.calls.length}`);
      }
    }
    const handler = new Flaky();
    const t = env.transport();
    const tmm = await env.start([handler], {}, t);
    const m = wireMessage({ exchange: prefix, routingKey: 'work', body: valid('e-2') });
    await t.publish(m);
    await waitUntil(() => tmm.consumers.stats.handled === 1, 'the third attempt to succeed');
    expect(handler.calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
    const gaps = [handler.calls[1].at - handler.calls[0].at, handler.calls[2].at - handler.calls[1].at];
    expect(gaps[0]).toBeGreaterThanOrEqual(140);
    expect(gaps[1]).toBeGreaterThanOrEqual(590);
    expect(gaps[1]).toBeGreaterThan(gaps[0]);
    expect(tmm.consumers.stats).toMatchObject({ handled: 1, retried: 2, deadLettered: 0 });
    expect(await effects(m.id)).toBe(1);
    await sleep(200);
    expect(handler.calls).toHaveLength(3);
  });

  it('a handler that always fails is dead-lettered after exactly maxAttempts, with every documented header', async () => {
    class AlwaysFails {
      calls = 0;
      @Consumer({ queue: `${prefix}.broken`, exchange: prefix, routingKey: 'work', retry: { maxAttempts: 3, delays: [100, 200] } })
      async handle(_entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        this.calls++;
        await writeEffect(ctx, 1);
        throw new Error(`always broken (attempt ${ctx.attempt})`);
      }
    }
    const handler = new AlwaysFails();
    const t = env.transport();
    const tmm = await env.start([handler], { consumers: { maxStackLength: 200 } }, t);
    const m = wireMessage({ exchange: prefix, routingKey: 'work', body: valid('e-3'), headers: { 'tmm-contract-version': 2, 'x-trace': 'abc' } });
    const before = Date.now();
    await t.publish(m);
    const [dead] = await deadLetters(tmm, t, 1);
    expect(handler.calls).toBe(3);
    expect(dead.message.id).toBe(m.id);
    expect(JSON.parse(dead.message.body.toString())).toEqual(valid('e-3'));
    const h = dead.message.headers;
    expect(h).toMatchObject({
      [ConsumerHeaders.deadLetterReason]: DeadLetterReason.MaxAttempts,
      [ConsumerHeaders.errorMessage]: 'always broken (attempt 3)',
      [ConsumerHeaders.errorCode]: 'Error',
      [ConsumerHeaders.attempt]: 3,
      [ConsumerHeaders.consumer]: 'AlwaysFails.handle',
      [ConsumerHeaders.consumerQueue]: `${prefix}.broken`,
      [ConsumerHeaders.originalExchange]: prefix,
      [ConsumerHeaders.originalRoutingKey]: 'work',
      'x-trace': 'abc',
    });
    const stack = String(h[ConsumerHeaders.errorStack]);
    expect(stack).toMatch(/^Error: always broken \(attempt 3\)/);
    expect(stack.length).toBeLessThanOrEqual(200);
    const first = Date.parse(String(h[ConsumerHeaders.firstFailureAt]));
    const last = Date.parse(String(h[ConsumerHeaders.lastFailureAt]));
    expect(first).toBeGreaterThanOrEqual(before - 1000);
    // Two retry delays (100 + 200 ms) lie between the first and the last failure.
    expect(last - first).toBeGreaterThanOrEqual(290);
    expect(await effects(m.id)).toBe(0);
    expect(tmm.consumers.stats).toMatchObject({ retried: 2, deadLettered: 1, handled: 0 });
    await sleep(300);
    expect(handler.calls).toBe(3);
    expect(await env.depth(t, `${prefix}.broken`)).toBe(0);
  });

  it('an invalid payload, an unparseable body and a NonRetryableError are dead-lettered on the first attempt', async () => {
    class Strict {
      readonly seen: string[] = [];
      @Consumer({ queue: `${prefix}.strict`, exchange: prefix, routingKey: 'work', retry: { maxAttempts: 5, delays: [50] } })
      async handle(entry: LedgerPosted): Promise<void> {
        this.seen.push(entry.entryId);
        throw new NonRetryableError(`ledger entry ${entry.entryId} refers to a closed account`);
      }
    }
    const handler = new Strict();
    const t = env.transport();
    const tmm = await env.start([handler], {}, t);
    const invalid = wireMessage({ exchange: prefix, routingKey: 'work', body: { entryId: 'e-4', amount: -5, currency: 'EUR' } });
    const garbage = wireMessage({ exchange: prefix, routingKey: 'work', body: 'this is not JSON {' });
    const refused = wireMessage({ exchange: prefix, routingKey: 'work', body: valid('e-5') });
    for (const m of [invalid, garbage, refused]) await t.publish(m);
    const dead = await deadLetters(tmm, t, 3);
    const byId = new Map(dead.map((d) => [d.message.id, d.message.headers]));
    expect(byId.get(invalid.id)).toMatchObject({ [ConsumerHeaders.deadLetterReason]: 'invalid-message', [ConsumerHeaders.attempt]: 1, [ConsumerHeaders.errorCode]: 'TMM_MESSAGE_INVALID' });
    expect(String(byId.get(invalid.id)?.[ConsumerHeaders.errorMessage])).toMatch(/amount/);
    expect(byId.get(garbage.id)).toMatchObject({ [ConsumerHeaders.deadLetterReason]: 'unparseable', [ConsumerHeaders.attempt]: 1, [ConsumerHeaders.errorCode]: 'TMM_MESSAGE_UNPARSEABLE' });
    expect(byId.get(refused.id)).toMatchObject({ [ConsumerHeaders.deadLetterReason]: 'non-retryable', [ConsumerHeaders.attempt]: 1, [ConsumerHeaders.errorCode]: 'TMM_NON_RETRYABLE' });
    // The handler never saw the two bad payloads, and saw the refused one once.
    expect(handler.seen).toEqual(['e-5']);
    expect(tmm.consumers.stats).toMatchObject({ retried: 0, deadLettered: 3 });
  });

  it('messages with a TTL that nobody consumes are moved to the dead-letter queue', async () => {
    class Unattended {
      @Consumer({ queue: `${prefix}.unattended`, exchange: prefix, routingKey: 'work', ttl: 300 })
      async handle(_entry: LedgerPosted): Promise<void> {
        throw new Error('never consumed in this test');
      }
    }
    const t = env.transport();
    // A process that declares the consumers' queues without consuming them (consumers.enabled: false).
    const tmm = await env.start([new Unattended()], { consumers: { enabled: false } }, t);
    const defs = await tmm.consumers.declare();
    defs.forEach((d) => env.forget(d));
    const sent = [];
    for (let i = 0; i < 5; i++) {
      const m = wireMessage({ exchange: prefix, routingKey: 'work', body: valid(`ttl-${i}`) });
      sent.push(m.id);
      await t.publish(m);
    }
    const dead = await deadLetters(tmm, t, 5);
    expect(dead.map((d) => d.message.id).sort()).toEqual([...sent].sort());
    for (const d of dead) expect(d.message.headers['x-first-death-reason']).toBe('expired');
    expect(await env.depth(t, `${prefix}.unattended`)).toBe(0);
  });

  it('consume → write → produce takes effect exactly once, with duplicates and a failure after sending', async () => {
    const holder: { tmm?: Tmm } = {};
    class Forwarder {
      readonly attempts = new Map<string, number>();
      @Consumer({ queue: `${prefix}.forward`, exchange: prefix, routingKey: 'work', idempotent: true, retry: { delays: [100] } })
      async handle(entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        const n = (this.attempts.get(entry.entryId) ?? 0) + 1;
        this.attempts.set(entry.entryId, n);
        await writeEffect(ctx, entry.amount);
        await holder.tmm!.producer.send(LedgerPosted.of(`fwd-${entry.entryId}`, entry.amount), { exchange: prefix, routingKey: 'downstream' });
        // Fails after writing and sending: both must be rolled back, and come once from the retry.
        if (entry.entryId === 'e-fail-once' && n === 1) throw new Error('failed after sending');
      }
    }
    const handler = new Forwarder();
    const t = env.transport();
    const downstream = { name: `${prefix}.downstream`, bindings: [{ exchange: prefix, routingKey: 'downstream' }] };
    env.track({ queues: [downstream] });
    const tmm = await env.start([handler], {}, t);
    holder.tmm = tmm;
    const reader = await QueueReader.start(t, downstream);
    const dup = wireMessage({ exchange: prefix, routingKey: 'work', body: valid('e-dup') });
    const failOnce = wireMessage({ exchange: prefix, routingKey: 'work', body: valid('e-fail-once') });
    await t.publish(dup);
    await t.publish(failOnce);
    await t.publish(duplicateOf(t, dup));
    await reader.waitFor(2, 'the forwarded messages');
    await waitUntil(() => tmm.consumers.stats.handled + tmm.consumers.stats.duplicates >= 3, 'all three settled');
    await tmm.dispatcher.idle();
    await sleep(200);
    await reader.stop();
    const forwarded = reader.deliveries.map((d) => (JSON.parse(d.message.body.toString()) as LedgerPosted).entryId).sort();
    expect(forwarded).toEqual(['fwd-e-dup', 'fwd-e-fail-once']);
    expect(await effects(dup.id)).toBe(1);
    expect(await effects(failOnce.id)).toBe(1);
    expect(handler.attempts.get('e-fail-once')).toBe(2);
    expect(handler.attempts.get('e-dup')).toBe(1);
    expect(tmm.consumers.stats).toMatchObject({ handled: 2, duplicates: 1, retried: 1 });
  });

  it('graceful stop under load loses nothing and handles nothing twice, then a restart finishes the queue', async () => {
    const total = 300;
    class Busy {
      handled = 0;
      // Not idempotent: a message handled twice because of the shutdown would show as two rows.
      @Consumer({ queue: `${prefix}.busy`, exchange: prefix, routingKey: 'work', prefetch: 16, concurrency: 8 })
      async handle(entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        await sleep(Math.random() * 8);
        await writeEffect(ctx, entry.amount);
        this.handled++;
      }
    }
    const handler = new Busy();
    const t = env.transport();
    const tmm = await env.start([handler], {}, t);
    // The queue is full before consuming starts, so the stop finds handlers running and deliveries waiting.
    await tmm.consumers.stop();
    const messages = Array.from({ length: total }, (_, i) => wireMessage({ exchange: prefix, routingKey: 'work', body: valid(`load-${i}`) }));
    const ids = messages.map((m) => m.id);
    await Promise.all(messages.map((m) => t.publish(m)));
    await tmm.consumers.start();
    await waitUntil(() => handler.handled >= total / 3, 'a third handled');
    await tmm.consumers.stop();
    const atStop = { handled: tmm.consumers.stats.handled, requeued: tmm.consumers.stats.requeued, abandoned: tmm.consumers.stats.abandoned };
    expect(atStop.abandoned).toBe(0);
    expect(tmm.consumers.runningHandlers).toBe(0);
    expect(atStop.handled).toBeLessThan(total);
    await tmm.consumers.start();
    await waitUntil(() => tmm.consumers.stats.handled >= total, 'the rest handled after the restart', 30_000);
    await sleep(100);
    const effectRows = async (): Promise<{ account: string; n: number | string }[]> =>
      env.db.dataSource.query(
        'SELECT account, COUNT(*) AS n FROM test_ledger WHERE account IN (' + ids.map((_, i) => (dbKind === 'postgres' ? `$${i + 1}` : '?')).join(', ') + ') GROUP BY account',
        ids,
      );
    let rows = await effectRows();
    // A duplicate makes `handled` reach the total early: then a message still missing may only be late (a
    // broker's redelivery after its ack timeout, 5 s on the NATS lane). It counts as lost only if still missing.
    for (const until = Date.now() + 8_000; rows.length < total && Date.now() < until; rows = await effectRows()) await sleep(200);
    const lost = total - rows.length;
    const duplicated = rows.filter((r) => Number(r.n) > 1).length;
    console.log(
      `[consumer-stop ${transportKind}/${dbKind}] ${total} messages: handled ${atStop.handled} before stop, gave back ${atStop.requeued} unhandled, ` +
        `lost ${lost}, duplicated ${duplicated}`,
    );
    expect(lost).toBe(0);
    expect(duplicated).toBe(0);
    expect(tmm.consumers.stats.handled).toBe(total);
  });

  it('ordered: a single active consumer among two instances; retries wait in place, later messages never overtake', async () => {
    class Sequence {
      readonly order: string[] = [];
      failures = 0;
      @Consumer({ queue: `${prefix}.ordered`, exchange: prefix, routingKey: 'work', ordered: true, retry: { delays: [30, 60] } })
      async handle(m: LedgerPosted): Promise<void> {
        if (m.entryId === 's-1' && this.failures < 2) {
          this.failures++;
          throw new Error('not yet');
        }
        this.order.push(m.entryId);
      }
    }
    const one = new Sequence();
    const two = new Sequence();
    const t = env.transport();
    const first = await env.start([one], {}, t);
    const second = await env.start([two], {}, env.transport());
    const ids = ['s-0', 's-1', 's-2', 's-3', 's-4', 's-5'];
    for (const id of ids) await t.publish(wireMessage({ exchange: prefix, routingKey: 'work', body: valid(id) }));
    await waitUntil(() => one.order.length + two.order.length === ids.length, 'all six handled');
    await sleep(200);
    // One instance consumed everything, in publish order, the failing one retried in place.
    const [active, idle] = one.order.length > 0 ? [one, two] : [two, one];
    expect(active.order).toEqual(ids);
    expect(idle.order).toEqual([]);
    expect(active.failures).toBe(2);
    expect(first.consumers.stats.retried + second.consumers.stats.retried).toBe(0);
  });

  it('ordered: the active instance stopping mid-message hands over in order; the next one never starts ahead of it', async () => {
    const log: { who: string; id: string; start: number; end: number }[] = [];
    let slowStarted = false;
    class Sequence {
      constructor(readonly who: string) {}
      @Consumer({ queue: `${prefix}.handover`, exchange: prefix, routingKey: 'work', ordered: true })
      async handle(m: LedgerPosted): Promise<void> {
        const entry = { who: this.who, id: m.entryId, start: performance.now(), end: Infinity };
        log.push(entry);
        if (m.entryId === 'h-1') {
          slowStarted = true;
          await sleep(400); // the active instance is stopped while it runs this one
        }
        entry.end = performance.now();
      }
    }
    const t = env.transport();
    const first = await env.start([new Sequence('first')], {}, t);
    // Two connections to a broker; the in-memory transport is one process's broker, so both share it.
    const second = await env.start([new Sequence('second')], {}, transportKind === 'memory' ? t : env.transport());
    const ids = ['h-0', 'h-1', 'h-2', 'h-3', 'h-4', 'h-5'];
    for (const id of ids) await t.publish(wireMessage({ exchange: prefix, routingKey: 'work', body: valid(id) }));
    await waitUntil(() => slowStarted, 'the slow message started');
    const active = log.find((e) => e.id === 'h-1')!.who === 'first' ? first : second;
    await active.consumers.stop();
    await waitUntil(() => log.filter((e) => e.end !== Infinity).length >= ids.length, 'all six handled', 30_000);
    await sleep(300);
    const done = log.filter((e) => e.end !== Infinity);
    expect(done.map((e) => e.id)).toEqual(ids);
    // Each message starts after the one before it ended: nothing ran ahead of the message in progress at the stop.
    const overlaps = done.slice(1).filter((e, i) => e.start < done[i].end).map((e) => `${e.id}@${e.who}`);
    expect(overlaps).toEqual([]);
    expect(new Set(done.slice(2).map((e) => e.who)).size).toBe(1);
  });

  it('messagesPerTransaction: a group commits together; a failing member rolls it back and runs alone, the others once', async () => {
    class Grouped {
      readonly runs = new Map<string, number>();
      @Consumer({ queue: `${prefix}.grouped`, exchange: prefix, routingKey: 'work', idempotent: true, prefetch: 8, messagesPerTransaction: 8, retry: false })
      async handle(entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        this.runs.set(entry.entryId, (this.runs.get(entry.entryId) ?? 0) + 1);
        await writeEffect(ctx, entry.amount);
        if (entry.entryId === 'poison') throw new Error('poison');
      }
    }
    const handler = new Grouped();
    const t = env.transport();
    const tmm = await env.start([handler], { consumers: { prefetch: 8 } }, t);
    // Publish while stopped, so the consumer gets a full prefetch at once and groups it.
    await tmm.consumers.stop();
    const good = Array.from({ length: 10 }, (_, i) => wireMessage({ exchange: prefix, routingKey: 'work', body: valid(`g-${i}`) }));
    const poison = wireMessage({ exchange: prefix, routingKey: 'work', body: valid('poison') });
    for (const m of [...good.slice(0, 5), poison, duplicateOf(t, good[2]), ...good.slice(5)]) await t.publish(m);
    await tmm.consumers.start();
    const [dead] = await deadLetters(tmm, t, 1);
    await waitUntil(() => tmm.consumers.stats.handled + tmm.consumers.stats.duplicates >= 11, 'every good copy settled');
    expect(dead.message.id).toBe(poison.id);
    for (const m of good) expect(await effects(m.id)).toBe(1);
    expect(await effects(poison.id)).toBe(0);
    expect(tmm.consumers.stats).toMatchObject({ handled: 10, duplicates: 1, deadLettered: 1 });
    // The poison's group-mates ran twice (once rolled back); the poison itself once in the group, once alone.
    expect(handler.runs.get('poison')).toBe(2);
    expect([...handler.runs.values()].some((n) => n === 2)).toBe(true);
  });
});
