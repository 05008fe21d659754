import { IsString, Length } from 'class-validator';
import { MessageContract } from 'tmm/decorators';

/** Billing asks invoicing for an invoice (the admin part of the demo: this one fails first). */
@MessageContract({ topic: 'invoice.requested', version: 1 })
export class InvoiceRequested {
  @IsString()
  @Length(1, 64)
  orderId!: string;

  @IsString()
  @Length(1, 64)
  customerId!: string;

  static of(orderId: string, customerId: string): InvoiceRequested {
    return Object.assign(new InvoiceRequested(), { orderId, customerId });
  }
}
