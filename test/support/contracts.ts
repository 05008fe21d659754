import { IsInt, IsPositive, IsString, Length, Matches } from 'class-validator';
import { MessageContract } from 'tmm/decorators';

@MessageContract({ topic: 'ledger.posted', version: 2 })
export class LedgerPosted {
  @IsString()
  @Length(1, 64)
  entryId!: string;

  @IsInt()
  @IsPositive()
  amount!: number;

  @Matches(/^[A-Z]{3}$/)
  currency!: string;

  static of(entryId: string, amount: number, currency = 'EUR'): LedgerPosted {
    return Object.assign(new LedgerPosted(), { entryId, amount, currency });
  }
}
