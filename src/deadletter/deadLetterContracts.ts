import { ContractClass, findContracts } from '../message/MessageContracts';
import { TmmHeaders } from '../message/OutboxMessage';
import type { DeadLetter } from './DeadLetter';

/** What contractsForDeadLetter needs of a consumer definition (ConsumerDefinition fits). */
export interface ConsumerContractSource {
  /** `Class.method`. */
  readonly name: string;
  readonly queue: string;
  readonly contract: ContractClass;
}

/**
 * The @MessageContract classes an edited payload of `letter` is validated against (edit + resend):
 *
 * 1. The consumer of this process that gave up on it (same `Class.method`, else same work queue): its
 *    contract alone, since it is what reads the resent message. It wins over the registry.
 * 2. Otherwise the contract registry (findContracts): every class loaded in this process for the letter's
 *    topic and the version in its stored `tmm-contract-version` header; the payload must satisfy each of
 *    them. A letter without a readable version header (not sent by tmm) counts as version 1, the
 *    @MessageContract default: requiring every version at once could make every edit impossible.
 * 3. Nothing found: empty; the payload then only has to be a JSON object.
 *
 * Topic and version come from the stored dead letter (its `topic` column and the headers it was collected
 * with), never from the resent copy, whose failure headers (`tmm-topic` among them) are stripped.
 */
export function contractsForDeadLetter(letter: DeadLetter, consumers: readonly ConsumerContractSource[]): ContractClass[] {
  const consumer =
    (letter.consumer !== null ? consumers.find((d) => d.name === letter.consumer) : undefined) ??
    (letter.queue !== null ? consumers.find((d) => d.queue === letter.queue) : undefined);
  if (consumer) return [consumer.contract];
  return findContracts(letter.topic, contractVersionOf(letter) ?? 1);
}

/** The `tmm-contract-version` header of a dead letter as a positive integer, if it has a readable one. */
export function contractVersionOf(letter: Pick<DeadLetter, 'headers'>): number | undefined {
  const v = letter.headers?.[TmmHeaders.contractVersion];
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 1 ? n : undefined;
}
