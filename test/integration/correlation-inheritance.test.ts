/**
 * A message sent from inside a consumer's handler inherits the handled message's correlation id and
 * records it as its cause (`tmm-causation-id` = the handled message's id), with tracing off, through the
 * outbox, the relay and the local RabbitMQ, two hops deep; foreign messages (no `tmm-correlation-id`
 * header) pass on their AMQP `correlation_id`, else their message id. What goes out is read with a raw
 * amqplib client bound to the follow-up routes.
 */
import { randomUUID } from 'node:crypto';
import * as amqp from 'amqplib';
import { type ConsumeContext, type Tmm } from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';
import { AMQP_URL, ConsumerTestEnv, uniquePrefix, waitUntil } from '../support/consumers';

describe('correlation and causation of messages sent by handlers (RabbitMQ, SQLite outbox)', () => {
  let env: ConsumerTestEnv;
  let conn: amqp.ChannelModel;
  let prefix: string;

  beforeAll(async () => {
    env = await ConsumerTestEnv.create('sqlite', 'amqp');
    conn = await amqp.connect(AMQP_URL);
  });
  afterAll(async () => {
    await conn?.close();
    await env?.dispose();
  });
  beforeEach(() => {
    prefix = uniquePrefix('corr');
  });
  afterEach(async () => env.cleanup());

  it('follow-ups carry the correlation id on and name the handled message as their cause, hop after hop', async () => {
    let tmm: Tmm | undefined;
    class Chain {
      @Consumer({ queue: `${prefix}.first`, exchange: prefix, routingKey: 'work' })
      async first(entry: LedgerPosted): Promise<void> {
        await tmm!.producer.send(LedgerPosted.of(`${entry.entryId}>1`, entry.amount), { exchange: prefix, routingKey: 'followup' });
      }

      @Consumer({ queue: `${prefix}.second`, exchange: prefix, routingKey: 'followup' })
      async second(entry: LedgerPosted, _ctx: ConsumeContext): Promise<void> {
        await tmm!.producer.send(LedgerPosted.of(`${entry.entryId}>2`, entry.amount), { exchange: prefix, routingKey: 'final' });
      }
    }
    // The tap: every follow-up as it is on the wire.
    const ch = await conn.createChannel();
    const tap = (await ch.assertQueue('', { exclusive: true })).queue;
    const seen: amqp.ConsumeMessage[] = [];
    tmm = await env.start([new Chain()], { relay: { enabled: true, pollIntervalMs: 50 } });
    await ch.bindQueue(tap, prefix, 'followup');
    await ch.bindQueue(tap, prefix, 'final');
    await ch.consume(tap, (m) => m && seen.push(m), { noAck: true });

    const pub = await conn.createConfirmChannel();
    const send = (entryId: string, props: amqp.Options.Publish) => {
      pub.publish(prefix, 'work', Buffer.from(JSON.stringify({ entryId, amount: 1, currency: 'EUR' })), { contentType: 'application/json', persistent: true, ...props });
    };
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    send('tmm', { messageId: a, correlationId: 'corr-a', headers: { 'tmm-correlation-id': 'corr-a', 'tmm-contract-version': 2 } });
    send('foreign-with-correlation', { messageId: b, correlationId: 'corr-b' });
    send('foreign-bare', { messageId: c });
    await pub.waitForConfirms();
    await pub.close();

    await waitUntil(() => seen.length >= 6, '3 follow-ups and their 3 follow-ups', 60_000);
    const byEntry = new Map(seen.map((m) => [JSON.parse(m.content.toString()).entryId as string, m]));
    const hop = (entryId: string) => {
      const m = byEntry.get(entryId);
      if (!m) throw new Error(`no message for ${entryId}: ${[...byEntry.keys()].join(', ')}`);
      return { id: m.properties.messageId as string, correlation: m.properties.headers!['tmm-correlation-id'], amqpCorrelation: m.properties.correlationId, cause: m.properties.headers!['tmm-causation-id'] };
    };
    for (const [entry, id, correlation] of [['tmm', a, 'corr-a'], ['foreign-with-correlation', b, 'corr-b'], ['foreign-bare', c, c]] as const) {
      const one = hop(`${entry}>1`);
      expect(one).toMatchObject({ correlation, amqpCorrelation: correlation, cause: id });
      expect(hop(`${entry}>1>2`)).toMatchObject({ correlation, amqpCorrelation: correlation, cause: one.id });
    }

    // Sent outside any handler: its own id is its correlation, and it has no cause.
    const outside = await tmm.transactions.run(() => tmm!.producer.send(LedgerPosted.of('outside', 1), { exchange: prefix, routingKey: 'final' }));
    await waitUntil(() => byEntryOf(seen).has('outside'), 'the message sent outside a handler', 30_000);
    const o = byEntryOf(seen).get('outside')!;
    expect(o.properties.headers!['tmm-correlation-id']).toBe(outside);
    expect(o.properties.headers!['tmm-causation-id']).toBeUndefined();
    await ch.close();
  }, 90_000);
});

function byEntryOf(seen: amqp.ConsumeMessage[]): Map<string, amqp.ConsumeMessage> {
  return new Map(seen.map((m) => [JSON.parse(m.content.toString()).entryId as string, m]));
}
