import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container } from 'inversify';
import { DataSource } from 'typeorm';
import { MessageProducer } from 'tmm';
import { TMM, createTmmModule } from 'tmm/inversify';
import { adminDemo } from './adminDemo';
import { InvoiceHandler } from './InvoiceHandler';
import { Payment } from './Payment';
import { PaymentService } from './PaymentService';
import { TicketingHandler } from './TicketingHandler';

/**
 * The zero-setup demo: the payment flow of the QMQ design on SQLite and the in-process transport.
 * Pays a few orders, makes one fail after sending (rolled back: no message), and prints what was
 * committed, stored and delivered.
 */
async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tmm-demo-'));
  const dataSource = new DataSource({ type: 'better-sqlite3', database: join(dir, 'demo.sqlite'), entities: [Payment], synchronize: true });

  const container = new Container();
  // Delivered rows are kept here (the default deletes them) so that the summary can show them.
  await container.load(
    createTmmModule({
      dataSource,
      transport: 'memory',
      logger: 'warn',
      dispatcher: { deleteDelivered: false },
      // The recorded journey of every message (the console's timeline), searchable by order id.
      journey: { enabled: true, businessKeys: ['orderId'] },
    }),
  );
  container.bind(PaymentService).toSelf();
  container.bind(TicketingHandler).toSelf().inSingletonScope(); // its @Consumer is found by tmm.start()
  container.bind(InvoiceHandler).toSelf().inSingletonScope(); // the admin part: fails until its cause is fixed
  const tmm = container.get(TMM.Tmm);
  await tmm.start(); // initializes the DataSource, migrates tmm's tables, starts the consumers

  const ticketing = container.get(TicketingHandler);
  const payments = container.get(PaymentService);

  console.log('tmm demo: payment → ticketing, on SQLite + the in-process transport\n');
  const orders: [string, number, boolean][] = [
    ['order-1001', 4999, false],
    ['order-1002', 1250, false],
    ['order-1003', 8900, true], // fails after sending: rolled back, its message must never be published
    ['order-1004', 300, false],
  ];
  for (const [orderId, cents, fail] of orders) {
    try {
      await payments.pay(orderId, cents, fail);
      console.log(`pay(${orderId}): committed`);
    } catch (e) {
      console.log(`pay(${orderId}): rolled back — ${(e as Error).message}`);
    }
  }
  await tmm.dispatcher.idle();
  // Consuming is asynchronous: wait (bounded) until every published message was handled.
  for (let waited = 0; tmm.consumers.stats.handled < tmm.dispatcher.stats.published && waited < 2000; waited += 10) {
    await new Promise((r) => setTimeout(r, 10));
  }

  const paid = (await dataSource.getRepository(Payment).find({ order: { orderId: 'ASC' } })).map((p) => p.orderId);
  const rows: { id: string; status: string; payload: string }[] = await dataSource.query('SELECT id, status, payload FROM tmm_outbox ORDER BY id');
  console.log('\nsummary');
  console.log(`  payments committed : ${paid.join(', ')}`);
  console.log(`  outbox rows stored : ${rows.map((r) => `${JSON.parse(r.payload).orderId} (${r.status})`).join(', ')}`);
  console.log(`  tickets delivered  : ${ticketing.tickets.sort().join(', ')}`);
  const ok =
    JSON.stringify(paid) === JSON.stringify(ticketing.tickets) &&
    rows.length === paid.length &&
    !ticketing.tickets.includes('order-1003') &&
    rows.every((r) => r.status === 'DELIVERED');
  console.log(ok ? '\nevery committed payment was published exactly once; the rolled-back one was not.' : '\nMISMATCH between committed, stored and delivered!');

  // The operator's side: fail → dead letter → fix → resend → consumed (`--serve`: you resend in the console).
  const serve = process.argv.includes('--serve') || process.env.TMM_DEMO_SERVE === '1';
  const looped = await adminDemo(tmm, container.get<MessageProducer>(TMM.MessageProducer), container.get(InvoiceHandler), {
    serve,
    port: Number(process.env.TMM_ADMIN_PORT ?? (serve ? 8089 : 0)),
  });

  await tmm.stop();
  await dataSource.destroy();
  rmSync(dir, { recursive: true, force: true });
  if (!ok || !looped) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
