import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { type DynamicModule, Global, Inject, Injectable, Module, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Consumer, Idempotent, TransactionalMessage } from 'tmm/decorators';
import { type ConsumeContext, MessageProducer, type Transport } from 'tmm';
import { TmmModule, TypeOrmTransactionManager } from 'tmm/nestjs';
import { Invoice, OrderPlaced, ShopOrder } from './contracts';

/** POST /orders → one transaction: the order row and the OrderPlaced message (published iff it commits). */
@Injectable()
export class OrdersService {
  constructor(
    private readonly tx: TypeOrmTransactionManager,
    private readonly producer: MessageProducer,
  ) {}

  @TransactionalMessage()
  async place(id: string, amountCents: number): Promise<void> {
    await this.tx.getRepository(ShopOrder).insert({ id, amountCents });
    await this.producer.send(OrderPlaced.of(id, amountCents));
    if (amountCents > 1_000_000) throw new Error(`order ${id} is above the limit`); // rolled back: no row, no message
  }
}

/** An ordinary provider: Nest's DiscoveryService finds its consumer. */
@Injectable()
export class BillingHandler {
  @Consumer({ queue: 'sample-nest.billing.order-placed', retry: { maxAttempts: 3, delays: [200] } })
  @Idempotent()
  async onOrderPlaced(event: OrderPlaced, ctx: ConsumeContext): Promise<void> {
    if (event.orderId.startsWith('poison-')) throw new Error(`cannot bill ${event.orderId}`);
    await ctx.manager.insert(Invoice, { id: randomUUID(), orderId: event.orderId });
  }
}

export const HTTP_OPTIONS = Symbol('sample-nest.http');

/**
 * The HTTP endpoint on node:http (the sample has no @nestjs/platform-* adapter): POST /orders with
 * `{ "id": "...", "amountCents": 123 }` → 201, or 500 with the error when the transaction rolled back.
 */
@Injectable()
export class HttpEndpoint implements OnApplicationBootstrap, OnApplicationShutdown {
  private server: Server | undefined;
  port = 0;

  constructor(
    private readonly orders: OrdersService,
    @Inject(HTTP_OPTIONS) private readonly options: { port: number },
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.method !== 'POST' || req.url !== '/orders') return void res.writeHead(404).end();
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        void (async () => {
          try {
            const { id, amountCents } = JSON.parse(body) as { id: string; amountCents: number };
            await this.orders.place(id, amountCents);
            res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id }));
          } catch (e) {
            res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (e as Error).message }));
          }
        })();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.options.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async onApplicationShutdown(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/**
 * The sample's root module. `dataSource` stands in for `TypeOrmModule.forRoot()` (not installed here): a
 * global provider under the `DataSource` token, which is where TmmModule looks by default.
 */
export function sampleAppModule(options: { dataSource: DataSource; transport: Transport; port?: number; logger?: 'warn' | 'silent' }): DynamicModule {
  @Global()
  @Module({ providers: [{ provide: DataSource, useValue: options.dataSource }], exports: [DataSource] })
  class DatabaseModule {}

  @Module({})
  class AppModule {}

  return {
    module: AppModule,
    imports: [DatabaseModule, TmmModule.forRoot({ transport: options.transport, logger: options.logger ?? 'warn', relay: { pollIntervalMs: 100 } })],
    providers: [OrdersService, BillingHandler, HttpEndpoint, { provide: HTTP_OPTIONS, useValue: { port: options.port ?? 0 } }],
  };
}
