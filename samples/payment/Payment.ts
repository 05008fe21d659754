import { Column, Entity, PrimaryColumn } from 'typeorm';

/** The business row of the payment flow (QMQ's example): written in the same transaction as the message. */
@Entity({ name: 'payment' })
export class Payment {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  orderId!: string;

  @Column({ type: 'int' })
  amountCents!: number;

  @Column({ type: 'varchar', length: 16 })
  status!: string;
}
