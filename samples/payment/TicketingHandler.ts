import { Delivery, Transport } from 'tmm';
import { OrderPaid } from './OrderPaid';

/** The downstream system: issues a ticket for each paid order. */
export class TicketingHandler {
  readonly tickets: string[] = [];

  async start(transport: Transport): Promise<void> {
    await transport.subscribe(
      { queue: { name: 'ticketing.order-paid', bindings: [{ exchange: 'tmm.events', routingKey: 'order.paid' }] }, prefetch: 16 },
      (delivery) => this.handle(delivery),
    );
  }

  private async handle(delivery: Delivery): Promise<void> {
    const paid = JSON.parse(delivery.message.body.toString()) as OrderPaid;
    this.tickets.push(paid.orderId);
    console.log(`  ticketing: issued ticket for ${paid.orderId} (${(paid.amountCents / 100).toFixed(2)} EUR), message ${delivery.message.id}`);
    await delivery.ack();
  }
}
