import 'reflect-metadata';
import { processWide } from './processWide';

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

/**
 * Every class decorated with @MessageContract so far in this process, by topic, then by version, each list
 * in decoration order. Read it through findContracts (src/message/MessageContracts.ts).
 */
const contractClasses = processWide('contractClasses', () => new Map<string, Map<number, Function[]>>());

export function defineContractMetadata(target: Function, meta: ContractMetadata): void {
  const previous = getContractMetadata(target);
  if (previous) unregisterContractClass(target, previous);
  Reflect.defineMetadata(KEYS.contract, meta, target);
  contractMetas.set(target, meta);
  let versions = contractClasses.get(meta.topic);
  if (!versions) contractClasses.set(meta.topic, (versions = new Map()));
  const classes = versions.get(meta.version) ?? [];
  if (!classes.includes(target)) versions.set(meta.version, [...classes, target]);
}

function unregisterContractClass(target: Function, meta: ContractMetadata): void {
  const versions = contractClasses.get(meta.topic);
  const classes = versions?.get(meta.version);
  if (!versions || !classes) return;
  const rest = classes.filter((c) => c !== target);
  if (rest.length > 0) versions.set(meta.version, rest);
  else versions.delete(meta.version);
  if (versions.size === 0) contractClasses.delete(meta.topic);
}

/**
 * The classes registered by @MessageContract for `topic`: with `version`, those of that version; without,
 * those of every version (ascending version, then decoration order). Empty when none.
 */
/** The metadata of every @MessageContract class loaded in this process. */
export function getContractMetadataList(): ContractMetadata[] {
  const out: ContractMetadata[] = [];
  for (const versions of contractClasses.values()) for (const classes of versions.values()) for (const c of classes) {
    const meta = getContractMetadata(c);
    if (meta) out.push(meta);
  }
  return out;
}

export function getContractClasses(topic: string, version?: number): Function[] {
  const versions = contractClasses.get(topic);
  if (!versions) return [];
  if (version !== undefined) return [...(versions.get(version) ?? [])];
  return [...versions.keys()].sort((a, b) => a - b).flatMap((v) => versions.get(v)!);
}

/**
 * The contract metadata by class, beside reflect-metadata's copy: read on every send, where the polyfill's
 * lookup (a provider search, then two maps) costs more than this one WeakMap. Process-wide like the registry,
 * so a class decorated by another copy of tmm is found too; a class only reflect-metadata knows (its
 * metadata defined by hand) is read from there.
 */
const contractMetas = processWide('contractMetas', () => new WeakMap<Function, ContractMetadata>());

export function getContractMetadata(target: Function): ContractMetadata | undefined {
  return contractMetas.get(target) ?? (Reflect.getOwnMetadata(KEYS.contract, target) as ContractMetadata | undefined);
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
  /**
   * The queue this handler consumes; required, so that it survives renames of the class or method. tmm
   * also declares `<queue>.retry.<ms>ms` retry queues and the `<queue>.dlq` dead-letter queue.
   */
  queue: string;
  /** Routing key (pattern) to bind the queue with on the contract's exchange. Default: the contract's topic. */
  topic?: string;
  /** Exchange to bind on (a topic exchange, declared if missing). Default: the contract's, else producer.defaultExchange. */
  exchange?: string;
  /** Binding key on `exchange`; give either this or `topic`. */
  routingKey?: string;
  /** Unsettled deliveries at once (AMQP prefetch); default consumers.prefetch (16). */
  prefetch?: number;
  /** Handlers running at once (≤ prefetch); default: prefetch. */
  concurrency?: number;
  /**
   * `maxAttempts` (the first included; default 5) with either `delays` (ms after the 1st, 2nd… failure; the
   * last repeats) or `backoff` (initialDelayMs · factor^(n-1), capped); `false`: dead-letter on the first
   * failure.
   */
  retry?: false | { maxAttempts?: number; delays?: number[]; backoff?: { initialDelayMs?: number; factor?: number; maxDelayMs?: number } };
  /** Name of the dead-letter queue; default `<queue>.dlq`. */
  deadLetter?: string;
  /** Message TTL of the queue in ms: a message nobody consumes within it is moved to the dead-letter queue. */
  ttl?: number;
  /** One message at a time, in queue order: single active consumer, prefetch 1, retries wait in place. */
  ordered?: boolean;
  /** Same as @Idempotent(): the handler's effect happens once per message id (inbox claim). */
  idempotent?: boolean;
  /**
   * Header that names a foreign message's topic (say `eventType`), read when the message has no
   * `tmm-topic` header; default consumers.topicHeader. Without either: the AMQP `type`, else the routing
   * key (unless it came through the default exchange, whose routing key is the queue name), else the
   * contract's topic.
   */
  topicHeader?: string;
  /** Run the handler in a transaction (default true; required by idempotent). */
  transactional?: boolean;
  /**
   * Deliveries handled in one transaction (≤ concurrency; default consumers.messagesPerTransaction, 1).
   * Above 1 the deliveries in hand are run one after another in one transaction (one multi-row inbox
   * claim, one commit, then their acks); when one fails, all are rolled back and each runs again alone.
   * Much faster on databases where a commit costs (see docs/consumers.md), at the price of holding locks
   * until the group commits and re-running the others' handlers when one fails.
   */
  messagesPerTransaction?: number;
  /** `classic` or `quorum`; default consumers.queueType. */
  queueType?: 'classic' | 'quorum';
  /** The tmm instance (DataSource name) that runs this consumer; default `default`. */
  dataSource?: string;
}

/** Classes with at least one @Consumer method, in decoration order; what the explorer looks for. */
const consumerClasses = processWide('consumerClasses', () => new Set<Function>());

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

/**
 * Where an idempotent consumer takes the deduplication key from when a message has no message id (a
 * foreign producer's): a header (`{ header: 'x-order-id' }`) or a dot path into the JSON payload
 * (`{ path: 'order.id' }`). The value must be a non-empty string or a number, at most 255 characters.
 */
export type IdempotencyKey = { header: string } | { path: string };

/** What @Idempotent records on a method: true, or the key of messages without an id. */
export function defineIdempotentMetadata(prototype: object, method: string | symbol, options?: { key?: IdempotencyKey }): void {
  Reflect.defineMetadata(KEYS.idempotent, options?.key ? { key: options.key } : true, prototype, method);
}

export function getIdempotentMetadata(prototype: object, method: string | symbol): boolean {
  return Reflect.getMetadata(KEYS.idempotent, prototype, method) !== undefined;
}

/** The key @Idempotent({ key }) names, if any. */
export function getIdempotencyKeyMetadata(prototype: object, method: string | symbol): IdempotencyKey | undefined {
  const v = Reflect.getMetadata(KEYS.idempotent, prototype, method) as true | { key: IdempotencyKey } | undefined;
  return typeof v === 'object' ? v.key : undefined;
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
