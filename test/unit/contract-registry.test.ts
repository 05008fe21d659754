import { IsInt, IsPositive, IsString, Length } from 'class-validator';
import { ContractClass, DeadLetter, DeadLetterService, DeadLetterServiceDeps, InvalidInputError, contractsForDeadLetter, findContracts } from '../../src/internal';
import { MessageContract } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';
import { newDeadLetter } from '../support/deadLetters';

// Two copies of one contract (the producer's and the consumer's), which disagree on a rule.
@MessageContract({ topic: 'registry.invoice-issued', version: 1 })
class InvoiceIssuedProducerCopy {
  @IsString()
  @Length(1, 32)
  invoiceId!: string;

  @IsInt()
  amount!: number;
}

@MessageContract({ topic: 'registry.invoice-issued', version: 1 })
class InvoiceIssuedConsumerCopy {
  @IsString()
  invoiceId!: string;

  @IsInt()
  @IsPositive()
  amount!: number;
}

@MessageContract({ topic: 'registry.invoice-issued', version: 2 })
class InvoiceIssuedV2 {
  @IsString()
  invoiceId!: string;

  @IsString()
  customerId!: string;
}

const letter = (over: Partial<DeadLetter> = {}): DeadLetter => ({
  ...newDeadLetter({ consumer: 'Billing.onInvoice', queue: 'billing.invoices', topic: 'registry.invoice-issued', headers: { 'tmm-contract-version': 1 } }),
  id: 'dl-1',
  status: 'NEW',
  statusAt: null,
  statusBy: null,
  resentMessageId: null,
  set: null,
  ...over,
});

describe('contract registry (findContracts)', () => {
  it('finds the @MessageContract classes loaded in this process by topic and version', () => {
    expect(findContracts('ledger.posted', 2)).toEqual([LedgerPosted]);
    expect(findContracts('registry.invoice-issued', 2)).toEqual([InvoiceIssuedV2]);
  });

  it('returns every class registered for one topic and version, in decoration order, never just one', () => {
    expect(findContracts('registry.invoice-issued', 1)).toEqual([InvoiceIssuedProducerCopy, InvoiceIssuedConsumerCopy]);
  });

  it('without a version, returns the classes of every version of the topic, ascending', () => {
    expect(findContracts('registry.invoice-issued')).toEqual([InvoiceIssuedProducerCopy, InvoiceIssuedConsumerCopy, InvoiceIssuedV2]);
  });

  it('finds nothing for an unknown topic or version', () => {
    expect(findContracts('registry.unknown', 1)).toEqual([]);
    expect(findContracts('registry.unknown')).toEqual([]);
    expect(findContracts('ledger.posted', 1)).toEqual([]);
  });

  it('hands out copies: changing a result does not change the registry', () => {
    findContracts('ledger.posted', 2).push(InvoiceIssuedV2 as ContractClass);
    expect(findContracts('ledger.posted', 2)).toEqual([LedgerPosted]);
  });
});

describe('contractsForDeadLetter', () => {
  const consumer = { name: 'Billing.onInvoice', queue: 'billing.invoices', contract: LedgerPosted as ContractClass };

  it('prefers the local consumer that gave up on the letter (by name, else by queue)', () => {
    expect(contractsForDeadLetter(letter(), [consumer])).toEqual([LedgerPosted]);
    expect(contractsForDeadLetter(letter({ consumer: null }), [consumer])).toEqual([LedgerPosted]);
  });

  it('falls back to the registry by the stored letter’s topic and tmm-contract-version header', () => {
    expect(contractsForDeadLetter(letter(), [])).toEqual([InvoiceIssuedProducerCopy, InvoiceIssuedConsumerCopy]);
    expect(contractsForDeadLetter(letter({ headers: { 'tmm-contract-version': '2' } }), [])).toEqual([InvoiceIssuedV2]);
    expect(contractsForDeadLetter(letter(), [{ ...consumer, name: 'Other.handler', queue: 'other' }])).toEqual([InvoiceIssuedProducerCopy, InvoiceIssuedConsumerCopy]);
  });

  it('without a readable version header, takes version 1 (the @MessageContract default); an unknown topic gives none', () => {
    expect(contractsForDeadLetter(letter({ headers: {} }), [])).toEqual([InvoiceIssuedProducerCopy, InvoiceIssuedConsumerCopy]);
    expect(contractsForDeadLetter(letter({ headers: { 'tmm-contract-version': 'two' } }), [])).toEqual([InvoiceIssuedProducerCopy, InvoiceIssuedConsumerCopy]);
    expect(contractsForDeadLetter(letter({ topic: 'registry.unknown' }), [])).toEqual([]);
    expect(contractsForDeadLetter(letter({ headers: { 'tmm-contract-version': 9 } }), [])).toEqual([]);
  });
});

describe('DeadLetterService.checkPayload with several contract classes', () => {
  const service = new DeadLetterService({ contractFor: (l: DeadLetter) => contractsForDeadLetter(l, []) } as unknown as DeadLetterServiceDeps);

  it('accepts only a payload that satisfies every class registered for the topic and version', async () => {
    await expect(service.checkPayload(letter(), JSON.stringify({ invoiceId: 'i-1', amount: 5 }))).resolves.toBeUndefined();
  });

  it('reports a violation of any one of them, naming the class and the field', async () => {
    // Fine for the producer's copy, but the consumer's copy wants a positive amount.
    const negative = service.checkPayload(letter(), JSON.stringify({ invoiceId: 'i-1', amount: -5 }));
    await expect(negative).rejects.toThrow(InvalidInputError);
    await expect(negative).rejects.toThrow(/InvoiceIssuedConsumerCopy: amount/);
    await expect(negative).rejects.not.toThrow(/InvoiceIssuedProducerCopy/);
    // Fine for the consumer's copy, but the producer's copy limits the id to 32 characters.
    const long = service.checkPayload(letter(), JSON.stringify({ invoiceId: 'i'.repeat(40), amount: 5 }));
    await expect(long).rejects.toMatchObject({ problems: [{ path: 'payload.invoiceId', message: expect.any(String) }] });
    await expect(long).rejects.toThrow(/InvoiceIssuedProducerCopy/);
  });

  it('lists a field both classes reject once', async () => {
    const missing = service.checkPayload(letter(), JSON.stringify({ amount: 5 }));
    await expect(missing).rejects.toThrow(/InvoiceIssuedProducerCopy: invoiceId.*InvoiceIssuedConsumerCopy: invoiceId/);
    const problems = ((await missing.catch((e: unknown) => e)) as InvalidInputError).problems;
    expect(problems.every((p) => p.path === 'payload.invoiceId')).toBe(true);
    expect(new Set(problems.map((p) => p.message)).size).toBe(problems.length);
  });

  it('checks nothing beyond a JSON object when no contract is known', async () => {
    await expect(service.checkPayload(letter({ topic: 'registry.unknown' }), JSON.stringify({ anything: true }))).resolves.toBeUndefined();
    await expect(service.checkPayload(letter({ topic: 'registry.unknown' }), '[1]')).rejects.toThrow('must be a JSON object');
  });
});
