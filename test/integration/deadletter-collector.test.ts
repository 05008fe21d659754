/**
 * The dead-letter collector on the local RabbitMQ: consumer failures and TTL expiries travel through the
 * real dead-letter queues into tmm_dead_letter; the broker is acked only after the row committed, a
 * redelivered dead letter is stored once, and a failed insert gives the message back instead of losing it.
 */
import { AmqpTransport, ConsumeContext, ConsumerHeaders, Topology, deadLetterQueueSpec, silentLogger } from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import type { AdminOptions } from 'tmm/admin';
import { AdminHarness, startAdminHarness } from '../support/adminHarness';
import { LedgerPosted } from '../support/contracts';
import { AMQP_URL, uniquePrefix, waitUntil, wireMessage } from '../support/consumers';

describe('dead-letter collector on RabbitMQ', () => {
  let h: AdminHarness | undefined;
  const topology: Required<Topology> = { exchanges: [], queues: [] };

  const amqp = () => new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-collector-test', confirmTimeoutMs: 5000 });
  const depth = async (queue: string) => (await (h!.transport as AmqpTransport).inspectQueue(queue)).messageCount;

  afterEach(async () => {
    await h?.dispose();
    h = undefined;
    const admin = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-collector-test-cleanup' });
    try {
      await admin.remove({ queues: topology.queues.splice(0), exchanges: topology.exchanges.splice(0) });
    } finally {
      await admin.close();
    }
  });

  function ledgerConsumer(prefix: string) {
    class Ledger {
      readonly handled: { id: string; amount: number; resendOf: unknown }[] = [];
      readonly broken = new Set<string>(['poison']);
      @Consumer({ queue: `${prefix}.ledger`, exchange: prefix, routingKey: 'ledger.#', retry: { maxAttempts: 2, delays: [50] } })
      async post(entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
        if (this.broken.has(entry.entryId)) throw new Error(`ledger account for ${entry.entryId} is closed`);
        this.handled.push({ id: ctx.messageId, amount: entry.amount, resendOf: ctx.headers['tmm-resend-of'] });
      }
    }
    return new Ledger();
  }

  async function start(prefix: string, consumers: object[], admin: Partial<AdminOptions> = {}) {
    h = await startAdminHarness('sqlite', { consumers, transport: amqp(), admin: { port: 0, auth: { tokens: { ops: 'collector-test-token-1' } }, ...admin } });
    for (const d of h.tmm.consumers.definitions) {
      topology.queues.push({ name: d.queue }, { name: d.deadLetterQueue }, ...d.delays.map((ms) => ({ name: `${d.queue}.retry.${ms}ms` })));
    }
    topology.exchanges.push({ name: prefix });
    return h;
  }

  it('stores a consumer’s dead letter with its error, attempts and route, acks it, and a resend is consumed', async () => {
    const prefix = uniquePrefix('dlc');
    const ledger = ledgerConsumer(prefix);
    await start(prefix, [ledger]);
    const message = wireMessage({ exchange: prefix, routingKey: 'ledger.posted', body: { entryId: 'poison', amount: 70, currency: 'EUR' }, headers: { 'tmm-contract-version': 2, 'tmm-topic': 'ledger.posted' } });
    await h!.transport.publish(message);
    await waitUntil(async () => (await h!.admin.deadLetters.summarize()).byStatus.NEW === 1, 'the dead letter to be stored');
    const [summary] = (await h!.admin.deadLetters.list({}, { limit: 1, offset: 0 })).items;
    const letter = await h!.admin.deadLetters.get(summary.id);
    expect(letter).toMatchObject({
      messageId: message.id,
      deadLetterQueue: `${prefix}.ledger.dlq`,
      queue: `${prefix}.ledger`,
      consumer: 'Ledger.post',
      topic: 'ledger.posted',
      originalExchange: prefix,
      originalRoutingKey: 'ledger.posted',
      reason: 'max-attempts',
      attempts: 2,
      errorCode: 'Error',
      errorMessage: 'ledger account for poison is closed',
      status: 'NEW',
    });
    expect(letter!.errorStack).toContain('ledger account for poison is closed');
    expect(letter!.lastFailureAt).toBeGreaterThanOrEqual(letter!.firstFailureAt);
    expect(letter!.headers[ConsumerHeaders.consumerQueue]).toBe(`${prefix}.ledger`);
    expect(JSON.parse(letter!.payload)).toEqual({ entryId: 'poison', amount: 70, currency: 'EUR' });
    await waitUntil(async () => (await depth(`${prefix}.ledger.dlq`)) === 0, 'the dead-letter queue to be empty (acked)');

    ledger.broken.clear(); // the fix
    const { messageId } = await h!.admin.service.resendOne('test', letter!.id);
    await waitUntil(() => ledger.handled.length === 1, 'the resend to be consumed');
    expect(ledger.handled[0]).toEqual({ id: messageId, amount: 70, resendOf: message.id });
    expect(h!.admin.collector.stats).toMatchObject({ stored: 1, duplicates: 0, failed: 0 });
  });

  it('a dead letter delivered twice (crash after commit, before ack) is stored once and acked both times', async () => {
    const prefix = uniquePrefix('dlc');
    await start(prefix, [ledgerConsumer(prefix)]);
    const dlq = deadLetterQueueSpec(h!.tmm.consumers.definitions[0]).name;
    const copy = wireMessage({ exchange: '', routingKey: dlq, body: { entryId: 'x', amount: 1, currency: 'EUR' }, headers: { [ConsumerHeaders.errorMessage]: 'boom', [ConsumerHeaders.consumer]: 'Ledger.post' } });
    await h!.transport.publish(copy);
    await h!.transport.publish({ ...copy, headers: { ...copy.headers } });
    await waitUntil(() => h!.admin.collector.stats.stored + h!.admin.collector.stats.duplicates === 2, 'both copies to be collected');
    expect(h!.admin.collector.stats).toMatchObject({ stored: 1, duplicates: 1 });
    expect((await h!.admin.deadLetters.list({ messageId: copy.id }, { limit: 5, offset: 0 })).total).toBe(1);
    await waitUntil(async () => (await depth(dlq)) === 0, 'both copies acked');
  });

  it('when storing fails, the dead letter goes back to its queue and is stored on the next try: nothing is lost', async () => {
    const prefix = uniquePrefix('dlc');
    await start(prefix, [ledgerConsumer(prefix)], { collector: { retryDelayMs: 50 } });
    const spy = jest.spyOn(h!.admin.deadLetters, 'add').mockRejectedValueOnce(new Error('database is locked'));
    const dlq = h!.tmm.consumers.definitions[0].deadLetterQueue;
    const copy = wireMessage({ exchange: '', routingKey: dlq, body: { entryId: 'y', amount: 2, currency: 'EUR' }, headers: { [ConsumerHeaders.errorMessage]: 'boom' } });
    await h!.transport.publish(copy);
    await waitUntil(() => h!.admin.collector.stats.stored === 1, 'the dead letter to be stored after the failure');
    spy.mockRestore();
    expect(h!.admin.collector.stats.failed).toBe(1);
    expect((await h!.admin.deadLetters.list({ messageId: copy.id }, { limit: 5, offset: 0 })).total).toBe(1);
  });

  it('collects messages the broker dead-lettered itself: TTL expired with nobody consuming (消息无消费者)', async () => {
    const prefix = uniquePrefix('dlc');
    const work = { name: `${prefix}.nobody`, messageTtl: 100, deadLetterExchange: '', deadLetterRoutingKey: `${prefix}.nobody.dlq` };
    const dlq = { name: `${prefix}.nobody.dlq` };
    topology.queues.push(work, dlq);
    await start(prefix, [], { collector: { queues: [dlq.name] } });
    await h!.transport.declare({ queues: [dlq, work] });
    const message = wireMessage({ exchange: '', routingKey: work.name, body: { hello: 'world' } });
    await h!.transport.publish(message);
    await waitUntil(async () => (await h!.admin.deadLetters.summarize()).byStatus.NEW === 1, 'the expired message to be stored');
    const [letter] = (await h!.admin.deadLetters.list({}, { limit: 1, offset: 0 })).items;
    expect(letter).toMatchObject({ messageId: message.id, deadLetterQueue: dlq.name, queue: work.name, reason: 'expired', errorCode: 'broker:expired', attempts: 0, consumer: null });
    expect(letter.errorMessage).toContain(`not consumed within the message TTL of queue "${work.name}"`);
  });
});
