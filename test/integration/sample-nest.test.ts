/**
 * The NestJS sample (samples/nest) end to end on the local PostgreSQL and RabbitMQ: HTTP POST /orders →
 * @TransactionalMessage → RabbitMQ → @Consumer on a discovered provider. commit ⇒ published and consumed,
 * rollback ⇒ neither row nor message, duplicate ⇒ once, failure ⇒ retries ⇒ dead letter. Ground truth: SQL
 * rows and a raw amqplib channel.
 */
import { randomUUID } from 'node:crypto';
import { Test } from '@nestjs/testing';
import * as amqp from 'amqplib';
import { AmqpTransport, ConsumerHeaders, silentLogger } from '../../src/internal';
import { HttpEndpoint, sampleAppModule } from '../../samples/nest/app.module';
import { Invoice, ShopOrder } from '../../samples/nest/contracts';
import { AMQP_URL, sleep, waitUntil } from '../support/consumers';
import { type TestDatabase, createTestDatabase } from '../support/databases';

const QUEUE = 'sample-nest.billing.order-placed';

describe('samples/nest: HTTP → @TransactionalMessage → RabbitMQ → @Consumer', () => {
  let db: TestDatabase;
  let conn: amqp.ChannelModel;
  let ch: amqp.Channel;

  beforeAll(async () => {
    db = await createTestDatabase('postgres', [ShopOrder, Invoice]);
    conn = await amqp.connect(AMQP_URL);
    ch = await conn.createChannel();
    for (const q of [QUEUE, `${QUEUE}.retry.200ms`, `${QUEUE}.dlq`]) await ch.deleteQueue(q).catch(() => undefined);
  });
  afterAll(async () => {
    for (const q of [QUEUE, `${QUEUE}.retry.200ms`, `${QUEUE}.dlq`]) await ch.deleteQueue(q).catch(() => undefined);
    await conn.close();
    await db.dispose();
  });

  it('runs the shared behaviour through the HTTP endpoint', async () => {
    const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-sample-nest-test', appId: 'sample-nest' });
    const app = await Test.createTestingModule({ imports: [sampleAppModule({ dataSource: db.dataSource, transport, logger: 'silent' })] }).compile();
    await app.init();
    try {
      const port = app.get(HttpEndpoint).port;
      const post = (body: object) => fetch(`http://127.0.0.1:${port}/orders`, { method: 'POST', body: JSON.stringify(body) });
      const count = async (table: string, column: string, value: string) => Number((await db.dataSource.query(`SELECT COUNT(*) AS n FROM ${table} WHERE "${column}" = $1`, [value]))[0].n);

      // rollback ⇒ no row, no message; commit ⇒ row, message, invoice.
      expect((await post({ id: 'big-1', amountCents: 2_000_000 })).status).toBe(500);
      expect((await post({ id: 'o-1', amountCents: 500 })).status).toBe(201);
      await waitUntil(async () => (await count('sample_invoice', 'orderId', 'o-1')) === 1, 'the invoice of o-1');
      await sleep(300);
      expect(await count('sample_order', 'id', 'big-1')).toBe(0);
      expect(await count('sample_invoice', 'orderId', 'big-1')).toBe(0);
      expect(Number((await db.dataSource.query("SELECT COUNT(*) AS n FROM tmm_outbox WHERE payload LIKE '%big-1%'"))[0].n)).toBe(0);

      // duplicate ⇒ once: one message id twice, by a raw client.
      const id = randomUUID();
      for (let i = 0; i < 2; i++) {
        ch.publish('tmm.events', 'shop.order-placed', Buffer.from(JSON.stringify({ orderId: 'dup-1', amountCents: 5 })), { messageId: id, contentType: 'application/json', persistent: true });
      }
      await waitUntil(async () => (await count('sample_invoice', 'orderId', 'dup-1')) === 1, 'the invoice of dup-1');
      await sleep(500);
      expect(await count('sample_invoice', 'orderId', 'dup-1')).toBe(1);

      // failure ⇒ 3 attempts ⇒ dead letter.
      expect((await post({ id: 'poison-1', amountCents: 7 })).status).toBe(201);
      let letter: amqp.GetMessage | false = false;
      await waitUntil(async () => (letter = await ch.get(`${QUEUE}.dlq`, { noAck: true })) !== false, 'the dead letter', 20_000);
      const h = (letter as unknown as amqp.GetMessage).properties.headers ?? {};
      expect(h[ConsumerHeaders.attempt]).toBe(3);
      expect(h[ConsumerHeaders.deadLetterReason]).toBe('max-attempts');
      expect(await count('sample_invoice', 'orderId', 'poison-1')).toBe(0);
    } finally {
      await app.close();
    }
  });
});
