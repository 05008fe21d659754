// App (a): TypeORM 0.3 + sqlite3 + inversify 6, RabbitMQ through tmm/amqp; moduleResolution node16.
import 'reflect-metadata';
import { Container, inject, injectable } from 'inversify';
import { DataSource } from 'typeorm';
import type { MessageProducer, TransactionManager } from 'tmm';
import { AmqpTransport } from 'tmm/amqp';
import { TransactionalMessage } from 'tmm/decorators';
import { TMM, createTmmModule } from 'tmm/inversify';
import { TicketHandler } from './shared/handlers';
import { OrderPaid, Payment, Ticket } from './shared/model';
import { deleteTopology, runScenario } from './shared/scenario';

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
  const dataSource = new DataSource({ type: 'sqlite', database: process.env.TMM_PKG_SQLITE_FILE!, entities: [Payment, Ticket], synchronize: true });
  await dataSource.initialize();
  const container = new Container();
  container.load(createTmmModule({ dataSource, logger: 'warn', transport: new AmqpTransport({ url, connectionName: 'tmm-pkg-a' }) }));
  container.bind(PaymentService).toSelf();
  container.bind(TicketHandler).toConstantValue(new TicketHandler());
  const tmm = container.get(TMM.Tmm);
  await runScenario(tmm, dataSource, container.get(PaymentService), () => deleteTopology(url));
}

void main();
