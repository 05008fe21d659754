import { injectable } from 'inversify';
import { ConsumeContext } from 'tmm';
import { Consumer } from 'tmm/decorators';
import { OrderPaid } from './OrderPaid';

/**
 * The downstream system: issues a ticket for each paid order. Found in the container when tmm starts; its
 * queue is bound to the contract's topic (`order.paid`); idempotent, so a message delivered twice issues one
 * ticket.
 */
@injectable()
export class TicketingHandler {
  readonly tickets: string[] = [];

  @Consumer({ queue: 'ticketing.order-paid', idempotent: true })
  async onOrderPaid(paid: OrderPaid, ctx: ConsumeContext): Promise<void> {
    this.tickets.push(paid.orderId);
    console.log(`  ticketing: issued ticket for ${paid.orderId} (${(paid.amountCents / 100).toFixed(2)} EUR), message ${ctx.messageId}`);
  }
}
