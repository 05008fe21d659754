/**
 * Issue 10, case 2 and the 1 MB error: messages whose retry or dead-letter copies are hard to publish,
 * on the local RabbitMQ with the inbox on PostgreSQL. Each test counts handler runs and reads the queues
 * (the dead-letter queue through a reader, the work queue's depth from the broker).
 */
import { ConsumerHeaders, DeadLetterReason, type ConsumeContext, type Delivery, type Tmm, type Transport, deadLetterQueueSpec } from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';
import { ConsumerTestEnv, QueueReader, sleep, uniquePrefix, wireMessage } from '../support/consumers';

describe('poison copies (RabbitMQ, inbox on PostgreSQL)', () => {
  let env: ConsumerTestEnv;
  let prefix: string;
  beforeAll(async () => {
    env = await ConsumerTestEnv.create('postgres', 'amqp');
  });
  afterAll(async () => env?.dispose());
  beforeEach(() => {
    prefix = uniquePrefix('poison');
  });
  afterEach(async () => env.cleanup());

  async function deadLetters(tmm: Tmm, t: Transport, count: number): Promise<Delivery[]> {
    const reader = await QueueReader.start(t, deadLetterQueueSpec(tmm.consumers.definitions[0]));
    try {
      return await reader.waitFor(count, 'the dead-letter queue');
    } finally {
      await reader.stop();
    }
  }
  const valid = (entryId: string) => ({ entryId, amount: 10, currency: 'EUR' });

  it('headers close to the 64 KiB field-table limit: the dead-letter copy is trimmed to fit and the handler runs maxAttempts times, not forever', async () => {
    class AlwaysFails {
      calls = 0;
      @Consumer({ queue: `${prefix}.big`, exchange: prefix, routingKey: 'work', retry: { maxAttempts: 3, delays: [100, 100] } })
      async handle(_entry: LedgerPosted, _ctx: ConsumeContext): Promise<void> {
        this.calls++;
        throw new Error('always broken');
      }
    }
    const handler = new AlwaysFails();
    const t = env.transport();
    const tmm = await env.start([handler], {}, t);
    // The original (and its retry copies) fit the encoder's 65,536-byte buffer; original + error + 4 KB stack + consumer headers do not.
    const big = 'h'.repeat(64_700);
    const m = wireMessage({ exchange: prefix, routingKey: 'work', body: valid('e-big'), headers: { 'tmm-contract-version': 2, 'x-big': big, 'x-small': 'kept' } });
    await t.publish(m);
    const [dead] = await deadLetters(tmm, t, 1);
    await sleep(1_500); // a redelivery loop would run the handler again meanwhile
    expect(handler.calls).toBe(3);
    expect(dead.message.id).toBe(m.id);
    expect(JSON.parse(dead.message.body.toString())).toEqual(valid('e-big'));
    expect(dead.message.headers).toMatchObject({
      [ConsumerHeaders.deadLetterReason]: DeadLetterReason.MaxAttempts,
      [ConsumerHeaders.errorMessage]: 'always broken',
      [ConsumerHeaders.attempt]: 3,
      [ConsumerHeaders.droppedHeaders]: 'x-big',
      'x-small': 'kept',
    });
    expect(dead.message.headers['x-big']).toBeUndefined();
    expect(await env.depth(t, `${prefix}.big`)).toBe(0);
    expect(tmm.consumers.stats).toMatchObject({ retried: 2, deadLettered: 1 });
  });

  it('a handler that always throws a 1 MB error message is dead-lettered after maxAttempts with the error truncated', async () => {
    class HugeError {
      calls = 0;
      @Consumer({ queue: `${prefix}.huge`, exchange: prefix, routingKey: 'work', retry: { maxAttempts: 3, delays: [100, 100] } })
      async handle(_entry: LedgerPosted, _ctx: ConsumeContext): Promise<void> {
        this.calls++;
        throw new Error('E'.repeat(1_000_000));
      }
    }
    const handler = new HugeError();
    const t = env.transport();
    const tmm = await env.start([handler], {}, t);
    const m = wireMessage({ exchange: prefix, routingKey: 'work', body: valid('e-huge') });
    await t.publish(m);
    const [dead] = await deadLetters(tmm, t, 1);
    await sleep(1_500);
    expect(handler.calls).toBe(3);
    const h = dead.message.headers;
    expect(h[ConsumerHeaders.deadLetterReason]).toBe(DeadLetterReason.MaxAttempts);
    expect(String(h[ConsumerHeaders.errorMessage]).length).toBeLessThanOrEqual(1000);
    expect(String(h[ConsumerHeaders.errorMessage])).toMatch(/^E+…$/);
    expect(await env.depth(t, `${prefix}.huge`)).toBe(0);
  });

  it('an idempotent consumer given a message id with a NUL (the PostgreSQL inbox refuses it) dead-letters it at once instead of retrying', async () => {
    class Ledger {
      calls = 0;
      @Consumer({ queue: `${prefix}.nulid`, exchange: prefix, routingKey: 'work', idempotent: true, retry: { maxAttempts: 5, delays: [100] } })
      async handle(_entry: LedgerPosted, _ctx: ConsumeContext): Promise<void> {
        this.calls++;
      }
    }
    const handler = new Ledger();
    const t = env.transport();
    const tmm = await env.start([handler], {}, t);
    const m = wireMessage({ id: `nul-\u0000-id-${prefix}`, exchange: prefix, routingKey: 'work', body: valid('e-nul') });
    await t.publish(m);
    const [dead] = await deadLetters(tmm, t, 1);
    await sleep(1_000);
    expect(dead.message.id).toBe(m.id);
    expect(dead.message.headers[ConsumerHeaders.deadLetterReason]).toBe(DeadLetterReason.NonRetryable);
    expect(handler.calls).toBe(0); // the inbox claim failed before the handler
    expect(tmm.consumers.stats).toMatchObject({ retried: 0, deadLettered: 1 });
    expect(await env.depth(t, `${prefix}.nulid`)).toBe(0);
  });
});
