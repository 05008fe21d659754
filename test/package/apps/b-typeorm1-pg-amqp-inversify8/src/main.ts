// App (b): TypeORM 1.x + pg + RabbitMQ + inversify 8; moduleResolution nodenext.
import 'reflect-metadata';
import { Container, inject, injectable } from 'inversify';
import { DataSource } from 'typeorm';
import type { MessageProducer, TransactionManager } from 'tmm';
import { AmqpTransport } from 'tmm/amqp';
import { TransactionalMessage } from 'tmm/decorators';
import { TMM, createTmmModule } from 'tmm/inversify';
import { TicketHandler } from './shared/handlers.js';
import { OrderPaid, Payment, Ticket } from './shared/model.js';
import { deleteTopology, runScenario } from './shared/scenario.js';

@injectable()
class PaymentService {
  constructor(
    @inject(TMM.TransactionManager) private readonly tx: TransactionManager,
    @inject(TMM.MessageProducer) private readonly producer: MessageProducer,
  ) {}

  @TransactionalMessage()
  async pay(orderId: string, amountCents: number, fail = false): Promise<void> {
    await this.tx.getRepository(Payment).insert({ orderId, amountCents });
    await this.producer.send(OrderPaid.of(orderId, amountCents));
    if (fail) throw new Error(`card declined for ${orderId}`);
  }
}

async function main(): Promise<void> {
  const url = process.env.TMM_AMQP_URL!;
  const schema = process.env.TMM_PKG_PG_SCHEMA!;
  const pg = { host: '127.0.0.1', port: 5432, username: 'postgres', database: 'test' };
  const admin = new DataSource({ type: 'postgres', ...pg });
  await admin.initialize();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const dataSource = new DataSource({ type: 'postgres', ...pg, schema, extra: { options: `-c search_path=${schema}` }, entities: [Payment, Ticket], synchronize: true });
  await dataSource.initialize();
  const container = new Container();
  await container.load(createTmmModule({ dataSource, logger: 'warn' }));
  // The transport chosen by the container, not by the options: a rebind before the Tmm is first resolved.
  container.rebind(TMM.Transport).toConstantValue(new AmqpTransport({ url, connectionName: 'tmm-pkg-b' }));
  container.bind(PaymentService).toSelf();
  container.bind(TicketHandler).toConstantValue(new TicketHandler());
  const tmm = container.get(TMM.Tmm);
  try {
    await runScenario(tmm, dataSource, container.get(PaymentService), () => deleteTopology(url));
  } finally {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.destroy();
  }
}

void main();
