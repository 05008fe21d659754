/**
 * A consumer process killed with SIGKILL in the middle of handling a message, on RabbitMQ and on NATS
 * JetStream (the fixture's ackWaitMs is 2 s: that is when JetStream redelivers a dead process's
 * deliveries), with the inbox on PostgreSQL. Two crash points: inside the handler (its transaction open: the broker redelivers, the
 * database rolled back, so the next run does the work), and after COMMIT but before the ack (the broker
 * redelivers a message whose effect is already committed: the inbox claim makes the next run skip it).
 * Either way every message's effect happens exactly once.
 */
import { AmqpTransport, type Topology, silentLogger } from '../../src/internal';
import { NatsTransport } from '../../src/transport/nats';
import { FixtureProcess, killFixtures } from '../support/fixtureProcess';
import { AMQP_URL, uniquePrefix, waitUntil, wireMessage } from '../support/consumers';
import { type TestDatabase, createTestDatabase } from '../support/databases';
import { LedgerEntry } from '../support/entities';

describe.each(['amqp', 'nats'] as const)('on %s', (kind) => {
  let db: TestDatabase;
  let admin: AmqpTransport | NatsTransport;
  let prefix: string;
  let schema: string;

  beforeAll(async () => {
    db = await createTestDatabase('postgres', [LedgerEntry]);
    schema = (db.dataSource.options as { schema: string }).schema;
    admin =
      kind === 'amqp'
        ? new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-consumer-crash-test' })
        : new NatsTransport({ servers: process.env.TMM_NATS_URL ?? 'nats://127.0.0.1:4222', logger: silentLogger, connectionName: 'tmm-consumer-crash-test' });
  });

  afterEach(async () => {
    await killFixtures();
    // Each test counts its effects in the whole table.
    await db.dataSource.getRepository(LedgerEntry).clear();
    const topology: Topology = {
      queues: [{ name: `${prefix}.crash` }, { name: `${prefix}.crash.dlq` }, ...[1000, 2000, 4000, 8000].map((ms) => ({ name: `${prefix}.crash.retry.${ms}ms` }))],
      exchanges: [{ name: prefix }],
    };
    await admin.remove(topology);
  });

  afterAll(async () => {
    await admin?.close();
    await db?.dispose();
  });

  function consumerProcess(crashAt: 'handler' | 'after-commit' | 'none', crashOn = '', ordered = false): FixtureProcess {
    return FixtureProcess.spawn('consumer-crash.ts', {
      TMM_FIXTURE_SCHEMA: schema,
      TMM_FIXTURE_PREFIX: prefix,
      TMM_FIXTURE_CRASH_AT: crashAt,
      TMM_FIXTURE_CRASH_ON: crashOn,
      TMM_FIXTURE_TRANSPORT: kind,
      TMM_FIXTURE_ORDERED: ordered ? '1' : '0',
    });
  }

  it('ordered: SIGKILL of the active instance mid-message; the standby takes over from that message, in order', async () => {
    prefix = uniquePrefix('crash');
    const total = 10;
    const messages = Array.from({ length: total }, (_, i) => wireMessage({ exchange: prefix, routingKey: 'work', body: { entryId: `o-${i}`, amount: i + 1, currency: 'EUR' } }));
    const active = consumerProcess('handler', 'o-3', true);
    await active.waitFor((e) => e.event === 'ready', 'the active consumer to start', 30_000);
    await admin.publish(messages[0]);
    await active.waitFor((e) => e.event === 'handled' && e.entryId === 'o-0', 'the first instance to be the active one');
    const standby = consumerProcess('none', '', true);
    await standby.waitFor((e) => e.event === 'ready', 'the standby consumer to start', 30_000);
    for (const m of messages.slice(1)) await admin.publish(m);
    await active.waitFor((e) => e.event === 'hanging', 'the handler of o-3 to hang');
    await active.kill('SIGKILL');
    await waitUntil(
      async () => (await db.dataSource.getRepository(LedgerEntry).count()) >= total && (await admin.inspectQueue(`${prefix}.crash`)).messageCount === 0,
      'every message to have its effect and the queue to be empty',
      30_000,
    );
    const order = (p: FixtureProcess) => p.events.filter((e) => e.event === 'handled').map((e) => e.entryId as string);
    const rows: { account: string; n: string }[] = await db.dataSource.query('SELECT account, COUNT(*)::text AS n FROM test_ledger GROUP BY account');
    const counts = new Map(rows.map((r) => [r.account, Number(r.n)]));
    console.log(`[consumer-crash ${kind}] ordered, SIGKILL of the active instance in o-3: active handled ${order(active).join(',')}; standby handled ${order(standby).join(',')}`);
    expect(order(active)).toEqual(['o-0', 'o-1', 'o-2', 'o-3']);
    // The standby starts with the message the dead instance held (its effect was rolled back), then the rest in order.
    expect(order(standby)).toEqual(['o-3', 'o-4', 'o-5', 'o-6', 'o-7', 'o-8', 'o-9']);
    expect(messages.filter((m) => counts.get(m.id) !== 1)).toEqual([]);
    await standby.kill('SIGTERM');
  });

  it('SIGKILL inside a handler and between commit and ack: every message is redelivered until handled, each effect happens once', async () => {
    prefix = uniquePrefix('crash');
    const total = 20;
    const messages = Array.from({ length: total }, (_, i) => wireMessage({ exchange: prefix, routingKey: 'work', body: { entryId: `e-${i}`, amount: i + 1, currency: 'EUR' } }));
    const idOf = (entryId: string) => messages[Number(entryId.slice(2))].id;

    // 1. Killed while the handler of e-7 holds its transaction open. Only e-0…e-11 are published yet: the
    // other deliveries go on around the hanging one until the kill lands, and e-12 must not be among them.
    const first = consumerProcess('handler', 'e-7');
    await first.waitFor((e) => e.event === 'ready', 'the first consumer to start', 30_000);
    for (const m of messages.slice(0, 12)) await admin.publish(m);
    await first.waitFor((e) => e.event === 'hanging', 'the handler of e-7 to hang');
    await first.kill('SIGKILL');
    for (const m of messages.slice(12)) await admin.publish(m);

    // 2. Killed after e-12's transaction committed, before its ack.
    const second = consumerProcess('after-commit', 'e-12');
    await second.waitFor((e) => e.event === 'hanging', 'e-12 to commit and hang before its ack', 30_000);
    await second.kill('SIGKILL');

    // 3. A consumer that does not crash finishes the queue.
    const third = consumerProcess('none');
    await waitUntil(
      async () => (await db.dataSource.getRepository(LedgerEntry).count()) >= total && (await admin.inspectQueue(`${prefix}.crash`)).messageCount === 0,
      'every message to have its effect and the queue to be empty',
      30_000,
    );
    const skipped = await third.waitFor((e) => e.event === 'duplicate' && e.messageId === idOf('e-12'), 'the third consumer to skip the redelivered e-12');

    const rows: { account: string; n: string }[] = await db.dataSource.query('SELECT account, COUNT(*)::text AS n FROM test_ledger GROUP BY account');
    const counts = new Map(rows.map((r) => [r.account, Number(r.n)]));
    const lost = messages.filter((m) => !counts.has(m.id)).length;
    const duplicated = messages.filter((m) => (counts.get(m.id) ?? 0) > 1).length;
    const handledBy = (p: FixtureProcess, entryId: string) => p.events.filter((e) => e.event === 'handled' && e.entryId === entryId);
    const e7 = [...handledBy(second, 'e-7'), ...handledBy(third, 'e-7')];
    const e12Committed = handledBy(second, 'e-12');
    console.log(
      `[consumer-crash ${kind}] ${total} messages, SIGKILL in a handler (e-7) and between commit and ack (e-12): lost ${lost}, duplicated ${duplicated}; ` +
        `e-7 handled again ${e7.length}× (redelivered: ${e7.map((e) => e.redelivered).join(',')}), e-12 handled again by the third process ${handledBy(third, 'e-12').length}×`,
    );
    expect(lost).toBe(0);
    expect(duplicated).toBe(0);
    expect(counts.get(idOf('e-7'))).toBe(1);
    expect(counts.get(idOf('e-12'))).toBe(1);
    // e-7's work was rolled back by the kill and redone by a later process, from a redelivery.
    expect(e7).toHaveLength(1);
    expect(e7[0].redelivered).toBe(true);
    // e-12 committed in the second process; the third got it again and skipped it (the claim was there).
    expect(e12Committed).toHaveLength(1);
    expect(handledBy(third, 'e-12')).toHaveLength(0);
    expect(skipped.redelivered).toBe(true);
    await third.kill('SIGTERM');
  });
});
