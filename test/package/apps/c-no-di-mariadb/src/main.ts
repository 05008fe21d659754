// App (c): no DI container at all — new Tmm(...) and consumers registered by hand; TypeORM 1.x + mysql2
// (MariaDB) + RabbitMQ. Type-checked under moduleResolution bundler too (tsconfig.bundler.json).
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { Tmm } from 'tmm';
import { AmqpTransport } from 'tmm/amqp';
import { TransactionalMessage } from 'tmm/decorators';
import { TicketHandler } from './shared/handlers';
import { OrderPaid, Payment, Ticket } from './shared/model';
import { deleteTopology, runScenario } from './shared/scenario';

/** This app installs neither inversify nor fastify: asking for them must name the package to install. */
function missingPeers(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of ['tmm/inversify', 'tmm/admin']) {
    try {
      require(entry);
      out[entry] = 'loaded';
    } catch (e) {
      out[entry] = `${(e as { code?: string }).code}: ${(e as Error).message}`;
    }
  }
  return out;
}

async function main(): Promise<void> {
  console.log(JSON.stringify({ missingPeers: missingPeers() }));
  const url = process.env.TMM_AMQP_URL!;
  const database = process.env.TMM_PKG_MYSQL_DB!;
  const my = { host: '127.0.0.1', port: 3306, username: 'root', password: '' };
  const admin = new DataSource({ type: 'mariadb', ...my });
  await admin.initialize();
  await admin.query(`CREATE DATABASE ${database}`);
  const dataSource = new DataSource({ type: 'mariadb', ...my, database, entities: [Payment, Ticket], synchronize: true });
  await dataSource.initialize();
  const tmm = new Tmm({ dataSource, logger: 'warn' }, { transport: new AmqpTransport({ url, connectionName: 'tmm-pkg-c' }) });
  tmm.consumers.register(new TicketHandler());

  class PaymentService {
    @TransactionalMessage()
    async pay(orderId: string, amountCents: number, fail = false): Promise<void> {
      await tmm.transactions.getRepository(Payment).insert({ orderId, amountCents });
      await tmm.producer.send(OrderPaid.of(orderId, amountCents));
      if (fail) throw new Error(`card declined for ${orderId}`);
    }
  }
  try {
    await runScenario(tmm, dataSource, new PaymentService(), () => deleteTopology(url));
  } finally {
    await admin.query(`DROP DATABASE ${database}`);
    await admin.destroy();
  }
}

void main();
