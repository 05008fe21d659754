import { injectable } from 'inversify';
import { ConsumeContext } from 'tmm';
import { Consumer } from 'tmm/decorators';
import { InvoiceRequested } from './InvoiceRequested';

/**
 * Invoicing: needs the customer's billing address. For a customer without one the handler fails, is
 * retried once, and then the message is dead-lettered (`invoicing.invoice-requested.dlq`) — where the admin
 * console shows it until an operator resends it.
 */
@injectable()
export class InvoiceHandler {
  readonly invoices: string[] = [];
  private readonly addresses = new Map<string, string>([['c-1', 'Rue de la Paix 1, Paris']]);

  /** The "fix" of the demo: the missing billing address is added. */
  addBillingAddress(customerId: string, address: string): void {
    this.addresses.set(customerId, address);
  }

  @Consumer({ queue: 'invoicing.invoice-requested', retry: { maxAttempts: 2, delays: [200] } })
  async onInvoiceRequested(request: InvoiceRequested, ctx: ConsumeContext): Promise<void> {
    const address = this.addresses.get(request.customerId);
    if (!address) throw new Error(`no billing address for customer ${request.customerId} (order ${request.orderId})`);
    this.invoices.push(request.orderId);
    console.log(`  invoicing: invoice for ${request.orderId} sent to ${address} (attempt ${ctx.attempt}, message ${ctx.messageId})`);
  }
}
