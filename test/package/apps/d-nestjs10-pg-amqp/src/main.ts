// App (d): NestJS 10 (@nestjs/common + @nestjs/core 10, the oldest major tmm/nestjs declares) + TypeORM 1.x +
// pg + RabbitMQ; moduleResolution node16. TmmModule.forRoot takes the app's DataSource from the container
// (a global provider, as TypeOrmModule would give), the consumer is found on an ordinary provider by Nest's
// DiscoveryService, tmm starts on bootstrap and drains on app.close().
import 'reflect-metadata';
import { Global, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { MessageProducer, Tmm } from 'tmm';
import { AmqpTransport } from 'tmm/amqp';
import { TransactionalMessage } from 'tmm/decorators';
import { TmmModule, TypeOrmTransactionManager } from 'tmm/nestjs';
import { TicketHandler } from './shared/handlers';
import { OrderPaid, Payment, Ticket } from './shared/model';
import { deleteTopology, runScenario } from './shared/scenario';

@Injectable()
class PaymentService {
  constructor(
    private readonly tx: TypeOrmTransactionManager,
    private readonly producer: MessageProducer,
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

  @Global()
  @Module({ providers: [{ provide: DataSource, useValue: dataSource }], exports: [DataSource] })
  class DatabaseModule {}

  @Module({
    imports: [DatabaseModule, TmmModule.forRoot({ transport: new AmqpTransport({ url, connectionName: 'tmm-pkg-d' }), logger: 'warn' })],
    providers: [PaymentService, TicketHandler],
  })
  class AppModule {}

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  console.log(JSON.stringify({ nestVersion: require('@nestjs/core/package.json').version, nestCommonVersion: require('@nestjs/common/package.json').version }));
  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  try {
    // tmm was started by the app's bootstrap; the scenario's start() is then a no-op, its stop() the drain.
    await runScenario(app.get(Tmm), dataSource, app.get(PaymentService), async () => {
      await app.close();
      await deleteTopology(url);
    });
  } finally {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.destroy();
  }
}

void main();
