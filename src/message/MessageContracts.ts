import { plainToInstance, instanceToPlain } from 'class-transformer';
import { validate, ValidationError } from 'class-validator';
import { ConstraintViolation, ContractNotRegisteredError, MessageValidationError } from '../errors';
import { ContractMetadata, getContractClasses, getContractMetadata } from '../metadata';

export type ContractClass<T = object> = new (...args: never[]) => T;

/** Reads the @MessageContract metadata of a message instance or throws ContractNotRegisteredError. */
export function contractOf(message: unknown): { type: ContractClass; meta: ContractMetadata } {
  if (message === null || typeof message !== 'object') {
    throw new ContractNotRegisteredError(`a value of type ${message === null ? 'null' : typeof message}`);
  }
  const type = (message as object).constructor as ContractClass;
  const meta = type ? getContractMetadata(type) : undefined;
  if (!meta) throw new ContractNotRegisteredError(`an instance of ${type?.name ?? 'Object'}`);
  return { type, meta };
}

/**
 * The @MessageContract classes loaded in this process for `topic` and `version` (the process-wide
 * registry the decorator fills, whether or not any producer or consumer uses the class).
 *
 * Several classes for one topic and version is legitimate (a producer's and a consumer's copy of one
 * contract, or two services' copies loaded in one admin process), so this never picks one: it returns
 * all of them, in decoration (module load) order. A caller validating a payload must validate against
 * every one and report a violation of any (what the admin's edit + resend does). Without `version`,
 * the classes of every version of the topic, ascending by version. Empty for an unknown topic or version.
 */
export function findContracts(topic: string, version?: number): ContractClass[] {
  return getContractClasses(topic, version) as ContractClass[];
}

/**
 * Validates a contract instance with class-validator. Unknown properties are rejected
 * (`forbidNonWhitelisted`) so a typo in a producer is caught at send time, not by a consumer; with
 * `rejectUnknownProperties: false` (the consumer side) they are stripped instead, so a consumer still
 * reads messages of a newer contract version that added fields.
 * Throws MessageValidationError listing every failed constraint, nested ones with a dotted path.
 */
export function validateContract(message: object, contractName: string, options: { rejectUnknownProperties?: boolean } = {}): Promise<void> {
  const validatorOptions = options.rejectUnknownProperties === false ? CONSUMER_VALIDATION : PRODUCER_VALIDATION;
  // A plain .then, not an async function: one promise fewer per message on the producer's path.
  let validating: Promise<ValidationError[]>;
  try {
    validating = validate(message, validatorOptions);
  } catch (e) {
    return Promise.reject(e); // as the async function this was: a rejection, never a synchronous throw
  }
  return validating.then((errors) => {
    if (errors.length > 0) throw new MessageValidationError(contractName, flatten(errors));
  });
}

const PRODUCER_VALIDATION = Object.freeze({ forbidUnknownValues: true, whitelist: true, forbidNonWhitelisted: true });
const CONSUMER_VALIDATION = Object.freeze({ forbidUnknownValues: true, whitelist: true, forbidNonWhitelisted: false });

function flatten(errors: ValidationError[], prefix = ''): ConstraintViolation[] {
  const out: ConstraintViolation[] = [];
  for (const e of errors) {
    const path = prefix ? `${prefix}.${e.property}` : e.property;
    for (const [constraint, message] of Object.entries(e.constraints ?? {})) out.push({ property: path, constraint, message });
    if (e.children && e.children.length > 0) out.push(...flatten(e.children, path));
  }
  return out;
}

/** Contract instance → JSON text. */
export function serializeContract(message: object): string {
  // A class class-transformer has nothing to do for, holding only primitives: instanceToPlain would copy
  // the same own keys in the same order, so JSON.stringify gives the same text without the copy.
  if (transformerFree(message.constructor) && flatPrimitive(message)) return JSON.stringify(message);
  return JSON.stringify(instanceToPlain(message));
}

interface TransformerStorage {
  _typeMetadatas: Map<unknown, unknown>;
  _transformMetadatas: Map<unknown, unknown>;
  _exposeMetadatas: Map<unknown, unknown>;
  _excludeMetadatas: Map<unknown, unknown>;
}

/** class-transformer's metadata storage, when its layout is the one this module knows (else: no fast path). */
const transformerStorage: TransformerStorage | undefined = (() => {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const s = (require('class-transformer/cjs/storage') as { defaultMetadataStorage?: TransformerStorage }).defaultMetadataStorage;
    const maps = s && [s._typeMetadatas, s._transformMetadatas, s._exposeMetadatas, s._excludeMetadatas];
    return maps && maps.every((m) => m instanceof Map) ? s : undefined;
  } catch {
    return undefined;
  }
})();

const transformerFreeCache = new WeakMap<object, boolean>();

/** True when no class-transformer decorator (@Type, @Transform, @Expose, @Exclude) is on the class or an ancestor. */
export function transformerFree(type: unknown): boolean {
  if (!transformerStorage || typeof type !== 'function') return false;
  let free = transformerFreeCache.get(type);
  if (free === undefined) {
    free = true;
    const s = transformerStorage;
    for (let t: unknown = type; typeof t === 'function' && t !== Function.prototype; t = Object.getPrototypeOf(t)) {
      if (s._typeMetadatas.has(t) || s._transformMetadatas.has(t) || s._exposeMetadatas.has(t) || s._excludeMetadatas.has(t)) free = false;
    }
    // Decorators run when a class is defined, before any instance is sent: the answer does not change.
    transformerFreeCache.set(type, free);
  }
  return free;
}

function flatPrimitive(message: object): boolean {
  if (typeof (message as { toJSON?: unknown }).toJSON === 'function') return false; // JSON.stringify would call it; instanceToPlain does not
  for (const k in message) {
    if (!Object.prototype.hasOwnProperty.call(message, k)) return false; // inherited enumerable: let class-transformer decide
    const v = (message as Record<string, unknown>)[k];
    const t = typeof v;
    if (v !== null && t !== 'string' && t !== 'number' && t !== 'boolean' && t !== 'undefined') return false;
  }
  return true;
}

/** JSON text → contract instance (not yet validated). Throws SyntaxError on bad JSON. */
export function deserializeContract<T extends object>(type: ContractClass<T>, body: string): T {
  const plain: unknown = JSON.parse(body);
  return plainToInstance(type as unknown as new () => T, plain as object);
}
