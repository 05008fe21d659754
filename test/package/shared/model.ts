// Shared by the three package-test apps (copied into each app's src/ by test/package/run.js).
import { IsInt, IsPositive, IsString, Length } from 'class-validator';
import { Column, Entity, PrimaryColumn } from 'typeorm';
import { MessageContract } from 'tmm/decorators';

const run = process.env.TMM_PKG_RUN ?? 'local';

/** The contract: published to an exchange of this run only, so runs never see each other's messages. */
@MessageContract({ topic: 'pkgtest.order.paid', version: 1, exchange: `tmm.pkgtest.${run}` })
export class OrderPaid {
  @IsString() @Length(1, 64) orderId!: string;
  @IsInt() @IsPositive() amountCents!: number;
  static of(orderId: string, amountCents: number): OrderPaid {
    return Object.assign(new OrderPaid(), { orderId, amountCents });
  }
}

@Entity({ name: 'pkg_payment' })
export class Payment {
  @PrimaryColumn({ type: 'varchar', length: 64 }) orderId!: string;
  @Column({ type: 'int' }) amountCents!: number;
}

/** What the consumer did: one row per order it handled (written in the handler's transaction). */
@Entity({ name: 'pkg_ticket' })
export class Ticket {
  @PrimaryColumn({ type: 'varchar', length: 64 }) orderId!: string;
}

export const QUEUE = `pkgtest.tickets.${run}`;
export const EXCHANGE = `tmm.pkgtest.${run}`;
