import { IsInt, IsPositive, IsString, Length } from 'class-validator';
import { Column, Entity, PrimaryColumn } from 'typeorm';
import { MessageContract } from 'tmm/decorators';

@MessageContract({ topic: 'shop.order-placed', version: 1 })
export class OrderPlaced {
  @IsString() @Length(1, 64) orderId!: string;
  @IsInt() @IsPositive() amountCents!: number;
  static of(orderId: string, amountCents: number): OrderPlaced {
    return Object.assign(new OrderPlaced(), { orderId, amountCents });
  }
}

@Entity({ name: 'sample_order' })
export class ShopOrder {
  @PrimaryColumn({ type: 'varchar', length: 64 }) id!: string;
  @Column({ type: 'int' }) amountCents!: number;
}

@Entity({ name: 'sample_invoice' })
export class Invoice {
  @PrimaryColumn({ type: 'varchar', length: 64 }) id!: string;
  @Column({ type: 'varchar', length: 64 }) orderId!: string;
}
