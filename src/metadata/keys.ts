import 'reflect-metadata';

/**
 * Every reflect-metadata key tmm uses, each with its typed define/get pair. A key string is written
 * only here.
 */
const KEYS = {
  contract: 'tmm:contract',
  transactional: 'tmm:transactional',
} as const;

/** What @MessageContract records on a message class. */
export interface ContractMetadata {
  /** Logical topic; also the default routing key. */
  topic: string;
  /** Schema version of the payload, carried in the `tmm-contract-version` header. */
  version: number;
  /** Exchange override; defaults to the producer's `defaultExchange`. */
  exchange?: string;
}

export function defineContractMetadata(target: Function, meta: ContractMetadata): void {
  Reflect.defineMetadata(KEYS.contract, meta, target);
}

export function getContractMetadata(target: Function): ContractMetadata | undefined {
  return Reflect.getOwnMetadata(KEYS.contract, target) as ContractMetadata | undefined;
}

/** What @Transactional / @TransactionalMessage record on the method they wrap (for tools and tests). */
export interface TransactionalMetadata {
  propagation: string;
  isolation?: string;
  messages: boolean;
}

export function defineTransactionalMetadata(target: object, method: string | symbol, meta: TransactionalMetadata): void {
  Reflect.defineMetadata(KEYS.transactional, meta, target, method);
}

export function getTransactionalMetadata(target: object, method: string | symbol): TransactionalMetadata | undefined {
  return Reflect.getMetadata(KEYS.transactional, target, method) as TransactionalMetadata | undefined;
}

/** Copies all metadata of `from` (a method) onto `to` (its wrapper), so other decorators still see it. */
export function copyMethodMetadata(from: Function, to: Function): void {
  for (const key of Reflect.getOwnMetadataKeys(from)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, from), to);
  }
}
