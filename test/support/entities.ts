import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A business row written next to messages in the tests. */
@Entity({ name: 'test_ledger' })
export class LedgerEntry {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  id!: string;

  @Column({ type: 'varchar', length: 64 })
  account!: string;

  @Column({ type: 'int' })
  amount!: number;
}
