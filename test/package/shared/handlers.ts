import type { ConsumeContext } from 'tmm';
import { Consumer } from 'tmm/decorators';
import { OrderPaid, QUEUE, Ticket } from './model';

/** The consumer: writes a ticket in the handler's transaction; idempotent (inbox claim). */
export class TicketHandler {
  @Consumer({ queue: QUEUE, idempotent: true, retry: { maxAttempts: 2, delays: [200] } })
  async onPaid(event: OrderPaid, ctx: ConsumeContext): Promise<void> {
    await ctx.manager.insert(Ticket, { orderId: event.orderId });
  }
}
