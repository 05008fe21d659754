/**
 * The NestJS module against the local RabbitMQ and PostgreSQL: the DataSource comes from the Nest
 * container under the `DataSource` class token (what @nestjs/typeorm's TypeOrmModule registers; here a
 * global module that provides it the same way), consumers are ordinary providers found through
 * DiscoveryService, tmm starts on bootstrap and drains on app.close(). The behaviour shared with the
 * inversify path: commit ⇒ published and consumed, rollback ⇒ not, duplicate ⇒ once, failure ⇒ retries
 * ⇒ dead letter. Ground truth is read outside tmm: SQL rows and a raw amqplib channel.
 */
import { randomUUID } from 'node:crypto';
import { Global, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import * as amqp from 'amqplib';
import { AmqpTransport, type ConsumeContext, ConsumerHeaders, MessageProducer, Tmm, TypeOrmTransactionManager, deadLetterQueueSpec, silentLogger } from '../../src/internal';
import { Consumer, Idempotent, TransactionalMessage } from 'tmm/decorators';
import { DataSource } from 'typeorm';
import { TmmHealthIndicator, TmmModule } from '../../src/nestjs';
import { LedgerPosted } from '../support/contracts';
import { AMQP_URL, QueueReader, sleep, uniquePrefix, waitUntil, wireMessage } from '../support/consumers';
import { type TestDatabase, createTestDatabase } from '../support/databases';
import { LedgerEntry } from '../support/entities';

const P = uniquePrefix('nest');
const QUEUE = `${P}.ledger`;

@Injectable()
class LedgerHandlers {
  runs = 0;
  @Consumer({ queue: QUEUE, retry: { maxAttempts: 2, delays: [200] } })
  @Idempotent()
  async onPosted(event: LedgerPosted, ctx: ConsumeContext): Promise<void> {
    this.runs++;
    if (event.entryId.startsWith('fail-')) throw new Error(`ledger ${event.entryId} refused`);
    await ctx.manager.insert(LedgerEntry, { id: randomUUID(), account: event.entryId, amount: event.amount });
  }
}

@Injectable()
class Orders {
  constructor(private readonly producer: MessageProducer) {}

  @TransactionalMessage()
  async post(entryId: string, rollback: boolean): Promise<void> {
    await this.producer.send(LedgerPosted.of(entryId, 5));
    if (rollback) throw new Error('rolled back on purpose');
  }
}

describe('TmmModule (NestJS) on RabbitMQ and PostgreSQL', () => {
  let db: TestDatabase;
  let raw: amqp.ChannelModel;
  let channel: amqp.Channel;

  beforeAll(async () => {
    db = await createTestDatabase('postgres', [LedgerEntry]);
    raw = await amqp.connect(AMQP_URL);
    channel = await raw.createChannel();
  });
  afterAll(async () => {
    for (const q of [QUEUE, `${QUEUE}.retry.200ms`, `${QUEUE}.dlq`]) await channel.deleteQueue(q).catch(() => undefined);
    await channel.deleteExchange(P).catch(() => undefined);
    await raw.close();
    await db.dispose();
  });

  async function boot() {
    @Global()
    @Module({ providers: [{ provide: DataSource, useValue: db.dataSource }], exports: [DataSource] })
    class DatabaseModule {}
    const moduleRef = await Test.createTestingModule({
      imports: [
        DatabaseModule,
        TmmModule.forRootAsync({
          inject: [DataSource],
          useFactory: (dataSource: DataSource) => ({
            dataSource,
            transport: new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-nest-test', appId: 'nest-test' }),
            logger: 'silent',
            producer: { defaultExchange: P },
            relay: { pollIntervalMs: 50 },
          }),
        }),
      ],
      providers: [LedgerHandlers, Orders],
    }).compile();
    await moduleRef.init();
    return moduleRef;
  }

  const ledgerRows = async (account: string): Promise<number> =>
    Number((await db.dataSource.query('SELECT COUNT(*) AS n FROM test_ledger WHERE account = $1', [account]))[0].n);

  it('wires the producer, transaction manager and health indicator by class and runs the shared behaviour', async () => {
    const app = await boot();
    try {
      const tmm = app.get(Tmm);
      expect(tmm.isStarted).toBe(true);
      expect(app.get(MessageProducer)).toBe(tmm.producer);
      expect(app.get(TypeOrmTransactionManager)).toBe(tmm.transactions);
      expect(tmm.dataSource).toBe(db.dataSource);
      expect(await app.get(TmmHealthIndicator).isHealthy('tmm')).toMatchObject({ tmm: { status: 'up', database: 'up', transportConnected: true } });
      expect(tmm.consumers.definitions.map((d) => d.name)).toEqual(['LedgerHandlers.onPosted']);

      const orders = app.get(Orders);
      const handlers = app.get(LedgerHandlers);
      // rollback ⇒ not published; commit ⇒ published and consumed.
      await expect(orders.post('rolled-back', true)).rejects.toThrow('rolled back on purpose');
      await orders.post('committed', false);
      await waitUntil(async () => (await ledgerRows('committed')) === 1, 'the committed message consumed');
      await sleep(300);
      expect(await ledgerRows('rolled-back')).toBe(0);
      expect(Number((await db.dataSource.query('SELECT COUNT(*) AS n FROM tmm_outbox WHERE payload LIKE $1', ['%rolled-back%']))[0].n)).toBe(0);

      // duplicate ⇒ once: the same message id published twice, straight to the exchange.
      const publisher = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-nest-test-publisher' });
      const dup = wireMessage({ exchange: P, body: { entryId: 'dup-1', amount: 3, currency: 'EUR' } });
      await publisher.publish(dup);
      await publisher.publish(dup);
      await waitUntil(() => tmm.consumers.stats.duplicates >= 1, 'the duplicate skipped');
      expect(await ledgerRows('dup-1')).toBe(1);

      // failure ⇒ retries ⇒ dead letter (2 attempts), read from the dead-letter queue.
      const reader = await QueueReader.start(publisher, deadLetterQueueSpec(tmm.consumers.definitions[0]));
      const runsBefore = handlers.runs;
      await orders.post('fail-7', false);
      const [letter] = await reader.waitFor(1, 'the dead-letter queue');
      expect(handlers.runs - runsBefore).toBe(2);
      expect(letter.message.headers).toMatchObject({ [ConsumerHeaders.attempt]: 2, [ConsumerHeaders.deadLetterReason]: 'max-attempts', 'tmm-topic': 'ledger.posted' });
      expect(letter.message.appId).toBe('nest-test');
      expect(letter.message.type).toBe('ledger.posted');
      await reader.stop();
      await publisher.close();
    } finally {
      await app.close();
    }
  });

  it('drains on shutdown: consumers stop, nothing is acked unhandled, the next app handles what was left', async () => {
    const app = await boot();
    const tmm = app.get(Tmm);
    await app.close();
    expect(tmm.isStarted).toBe(false);
    // After close, a message waits in the queue (no consumer took it) …
    channel.publish(P, 'ledger.posted', Buffer.from(JSON.stringify({ entryId: 'after-close', amount: 1, currency: 'EUR' })), { messageId: randomUUID(), contentType: 'application/json', headers: { 'tmm-contract-version': 2 } });
    await waitUntil(async () => (await channel.checkQueue(QUEUE)).messageCount === 1, 'the message in the queue');
    expect((await channel.checkQueue(QUEUE)).consumerCount).toBe(0);
    // … and the next app consumes it.
    const next = await boot();
    try {
      await waitUntil(async () => (await ledgerRows('after-close')) === 1, 'the left message consumed by the next app');
    } finally {
      await next.close();
    }
  });
});
