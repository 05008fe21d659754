import { IsInt, IsPositive, IsString, Length } from 'class-validator';
import { MessageContract } from 'tmm/decorators';

/** The message contract: a class whose fields carry class-validator rules, checked on every send. */
@MessageContract({ topic: 'order.paid', version: 1 })
export class OrderPaid {
  @IsString()
  @Length(1, 64)
  orderId!: string;

  @IsInt()
  @IsPositive()
  amountCents!: number;

  static of(orderId: string, amountCents: number): OrderPaid {
    return Object.assign(new OrderPaid(), { orderId, amountCents });
  }
}
