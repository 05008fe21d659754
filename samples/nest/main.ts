/**
 * The NestJS sample: `node dist/samples/nest/main.js` with PostgreSQL and RabbitMQ on loopback.
 * POST http://127.0.0.1:3000/orders {"id":"o-1","amountCents":500} → order row + OrderPlaced (iff commit)
 * → RabbitMQ → BillingHandler writes an invoice once.
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { AmqpTransport } from 'tmm/amqp';
import { sampleAppModule } from './app.module';
import { Invoice, ShopOrder } from './contracts';

async function main(): Promise<void> {
  const dataSource = new DataSource({
    type: 'postgres',
    host: '127.0.0.1',
    port: Number(process.env.PGPORT ?? 5432),
    username: process.env.PGUSER ?? 'postgres',
    database: process.env.PGDATABASE ?? 'test',
    entities: [ShopOrder, Invoice],
    synchronize: true,
  });
  const transport = new AmqpTransport({ url: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672', appId: 'sample-nest' });
  const app = await NestFactory.createApplicationContext(sampleAppModule({ dataSource, transport, port: Number(process.env.PORT ?? 3000) }));
  app.enableShutdownHooks();
  process.stdout.write('sample-nest listening on 127.0.0.1:' + (process.env.PORT ?? 3000) + '\n');
}

void main();
