import 'reflect-metadata';

/**
 * Every reflect-metadata key tmm uses, each with its typed define/get pair. A key string is written
 * only here.
 */
const KEYS = {
  contract: 'tmm:contract',
  transactional: 'tmm:transactional',
  consumer: 'tmm:consumer',
  consumerMethods: 'tmm:consumer:methods',
  idempotent: 'tmm:idempotent',
  interceptors: 'tmm:interceptors',
  paramTypes: 'design:paramtypes',
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

/**
 * What @Consumer records on a method (the options as given, checked at decoration time). Defaults are
 * applied at start-up, where the consumer registry merges them with the `consumers` options.
 */
export interface ConsumerMetadata {
  topic?: string;
  exchange?: string;
  routingKey?: string;
  queue: string;
  prefetch?: number;
  concurrency?: number;
  /** `false`: no retry (first failure dead-letters). */
  retry?: false | { maxAttempts?: number; delays?: number[]; backoff?: { initialDelayMs?: number; factor?: number; maxDelayMs?: number } };
  /** Name of the dead-letter queue (default `<queue>.dlq`). */
  deadLetter?: string;
  /** Per-queue message TTL in ms: a message not consumed in time is dead-lettered. */
  ttl?: number;
  ordered?: boolean;
  idempotent?: boolean;
  transactional?: boolean;
  /** Deliveries handled in one transaction (1: a transaction per message). */
  messagesPerTransaction?: number;
  queueType?: 'classic' | 'quorum';
  /** The tmm instance (DataSource name) whose runner starts this consumer; `default` when omitted. */
  dataSource?: string;
}

/** Classes with at least one @Consumer method, in decoration order; what the explorer looks for. */
const consumerClasses = new Set<Function>();

export function defineConsumerMetadata(prototype: object, method: string | symbol, meta: ConsumerMetadata): void {
  Reflect.defineMetadata(KEYS.consumer, meta, prototype, method);
  const ctor = (prototype as { constructor: Function }).constructor;
  const own = (Reflect.getOwnMetadata(KEYS.consumerMethods, ctor) as (string | symbol)[] | undefined) ?? [];
  if (!own.includes(method)) Reflect.defineMetadata(KEYS.consumerMethods, [...own, method], ctor);
  consumerClasses.add(ctor);
}

/** True when this very class (not a base class) has @Consumer on `method`. */
export function hasOwnConsumerMetadata(prototype: object, method: string | symbol): boolean {
  return Reflect.hasOwnMetadata(KEYS.consumer, prototype, method);
}

export function getConsumerMetadata(prototype: object, method: string | symbol): ConsumerMetadata | undefined {
  return Reflect.getMetadata(KEYS.consumer, prototype, method) as ConsumerMetadata | undefined;
}

/** The @Consumer methods of a class and its base classes. */
export function getConsumerMethods(type: Function): (string | symbol)[] {
  const out: (string | symbol)[] = [];
  for (let t: Function | null = type; t && t !== Function.prototype; t = Object.getPrototypeOf(t) as Function | null) {
    for (const m of (Reflect.getOwnMetadata(KEYS.consumerMethods, t) as (string | symbol)[] | undefined) ?? []) if (!out.includes(m)) out.push(m);
  }
  return out;
}

/** Every class decorated with @Consumer so far in this process. */
export function getConsumerClasses(): readonly Function[] {
  return [...consumerClasses];
}

/** What @Idempotent records on a method. */
export function defineIdempotentMetadata(prototype: object, method: string | symbol): void {
  Reflect.defineMetadata(KEYS.idempotent, true, prototype, method);
}

export function getIdempotentMetadata(prototype: object, method: string | symbol): boolean {
  return Reflect.getMetadata(KEYS.idempotent, prototype, method) === true;
}

/**
 * What @UseInterceptors records on a class (no method) or a method: interceptor instances or classes, in
 * the order given; repeated decorators append.
 */
export function defineInterceptorsMetadata(target: object, method: string | symbol | undefined, interceptors: readonly unknown[]): void {
  const existing = getOwnInterceptors(target, method);
  if (method === undefined) Reflect.defineMetadata(KEYS.interceptors, [...interceptors, ...existing], target);
  else Reflect.defineMetadata(KEYS.interceptors, [...interceptors, ...existing], target, method);
}

function getOwnInterceptors(target: object, method: string | symbol | undefined): unknown[] {
  const v = method === undefined ? Reflect.getOwnMetadata(KEYS.interceptors, target) : Reflect.getOwnMetadata(KEYS.interceptors, target, method);
  return (v as unknown[] | undefined) ?? [];
}

/** Interceptors of a class (`target` is the constructor) or of a method (`target` is the prototype). */
export function getInterceptorsMetadata(target: object, method?: string | symbol): readonly unknown[] {
  const v = method === undefined ? Reflect.getMetadata(KEYS.interceptors, target) : Reflect.getMetadata(KEYS.interceptors, target, method);
  return (v as unknown[] | undefined) ?? [];
}

/** The parameter types TypeScript emitted for a method (`emitDecoratorMetadata`), if any. */
export function getParamTypes(prototype: object, method: string | symbol): unknown[] | undefined {
  return Reflect.getMetadata(KEYS.paramTypes, prototype, method) as unknown[] | undefined;
}
