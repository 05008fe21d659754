import { plainToInstance, instanceToPlain } from 'class-transformer';
import { getFromContainer, getMetadataStorage, validate, ValidationError, Validator } from 'class-validator';
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
  try {
    return checkContract(message, contractName, options) ?? Promise.resolve();
  } catch (e) {
    return Promise.reject(e); // as the async function this was: a rejection, never a synchronous throw
  }
}

/**
 * validateContract without a promise when none is needed: returns undefined when the message is valid
 * and no constraint of it is asynchronous (what class-validator's validate() then resolves with), throws
 * MessageValidationError synchronously when it is not; a promise only when an async constraint (or
 * @ValidatePromise) ran. The same errors, messages and order as class-validator's validate(). `contractName`
 * names the contract in the error: a string, or the class (its name read only when there is an error).
 */
export function checkContract(message: object, contractName: string | ContractClass, options?: { rejectUnknownProperties?: boolean }): Promise<void> | undefined {
  // A message every constraint of which passes synchronously, with no property outside the contract, is valid:
  // checked without the executor (no error objects built). Anything else goes to the executor below, which
  // gives the errors (and strips unknown properties on the consumer side). The contract's name (a class's
  // `name` is a native accessor) is read only for an error.
  if (validatorInternals && passesPlan(message)) return undefined;
  const validatorOptions = options?.rejectUnknownProperties === false ? CONSUMER_VALIDATION : PRODUCER_VALIDATION;
  const throwIfAny = (errors: ValidationError[]) => {
    if (errors.length > 0) throw new MessageValidationError(typeof contractName === 'string' ? contractName : contractName.name, flatten(errors));
  };
  if (!validatorInternals) return validate(message, validatorOptions).then(throwIfAny);
  // What class-validator's Validator.validate() does (a ValidationExecutor, then strip the empty errors),
  // with the class's metadata cached and no promise unless a constraint returned one.
  const executor = new validatorInternals.ValidationExecutor(getFromContainer(Validator), validatorOptions);
  executor.metadataStorage = validatorInternals.storage;
  const errors: ValidationError[] = [];
  executor.execute(message, undefined, errors);
  if (executor.awaitingPromises.length === 0) {
    throwIfAny(executor.stripEmptyErrors(errors));
    return undefined;
  }
  return Promise.all(executor.awaitingPromises).then(() => throwIfAny(executor.stripEmptyErrors(errors)));
}

/** The parts of class-validator's metadata storage the executor uses (class-validator 0.14/0.15 layout). */
interface MetadataStorageLike {
  validationMetadatas: Map<unknown, unknown[]>;
  getTargetValidationMetadatas(target: unknown, schema: unknown, always: boolean, strictGroups: boolean, groups?: string[]): unknown[];
  groupByPropertyName(metadatas: unknown[]): Record<string, unknown[]>;
}
interface ExecutorLike {
  metadataStorage: MetadataStorageLike;
  awaitingPromises: Promise<unknown>[];
  execute(object: object, targetSchema: string | undefined, errors: ValidationError[]): void;
  stripEmptyErrors(errors: ValidationError[]): ValidationError[];
}
interface CachedMetadatas {
  metadatas: unknown[];
  grouped: Record<string, unknown[]>;
  /** The storage's class count, and each of the class chain's own metadata lists with its length, when cached. */
  classes: number;
  lists: [unknown[], number][];
}

/**
 * A view of class-validator's metadata storage that caches, per class, the validation metadatas of the
 * class and its ancestors and their grouping by property. class-validator recomputes both on every
 * validate(): it filters the class's list and scans every registered class for ancestors — work that
 * grows with the number of decorated classes in the process. A cached entry is used while no class was
 * registered since and none of the chain's lists grew (registerDecorator can add to a class later).
 * Only the plain case is cached: no schema, groups, `always` or `strictGroups` (tmm's options).
 */
function cachingStorage(real: MetadataStorageLike): MetadataStorageLike {
  const cache = new Map<unknown, CachedMetadatas>();
  const byList = new WeakMap<unknown[], Record<string, unknown[]>>();
  const fresh = (e: CachedMetadatas) => {
    if (e.classes !== real.validationMetadatas.size) return false;
    for (const [list, length] of e.lists) if (list.length !== length) return false;
    return true;
  };
  const view = Object.create(real) as MetadataStorageLike;
  view.getTargetValidationMetadatas = (target, schema, always, strictGroups, groups) => {
    if (typeof target !== 'function' || schema !== undefined || always || strictGroups || (groups && groups.length > 0)) {
      return real.getTargetValidationMetadatas(target, schema, always, strictGroups, groups);
    }
    let e = cache.get(target);
    if (!e || !fresh(e)) {
      const lists: [unknown[], number][] = [];
      for (let t: unknown = target; typeof t === 'function' && t !== Function.prototype; t = Object.getPrototypeOf(t)) {
        const list = real.validationMetadatas.get(t);
        if (list) lists.push([list, list.length]);
      }
      const metadatas = real.getTargetValidationMetadatas(target, schema, always, strictGroups, groups);
      e = { metadatas, grouped: real.groupByPropertyName(metadatas), classes: real.validationMetadatas.size, lists };
      byList.set(metadatas, e.grouped);
      cache.set(target, e);
    }
    return e.metadatas;
  };
  view.groupByPropertyName = (metadatas) => byList.get(metadatas) ?? real.groupByPropertyName(metadatas);
  return view;
}

/** class-validator's executor and a caching view of its storage, when its layout is the one this module knows (else: validate()). */
const validatorInternals: { ValidationExecutor: new (validator: Validator, options: object) => ExecutorLike; storage: MetadataStorageLike } | undefined = (() => {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ValidationExecutor } = require('class-validator/cjs/validation/ValidationExecutor') as { ValidationExecutor?: new (validator: Validator, options: object) => ExecutorLike };
    const real = getMetadataStorage() as unknown as MetadataStorageLike;
    if (typeof ValidationExecutor !== 'function' || !(real.validationMetadatas instanceof Map)) return undefined;
    if (typeof real.getTargetValidationMetadatas !== 'function' || typeof real.groupByPropertyName !== 'function') return undefined;
    const probe = new ValidationExecutor(getFromContainer(Validator), {});
    if (probe.metadataStorage !== (real as unknown) || !Array.isArray(probe.awaitingPromises) || typeof probe.execute !== 'function' || typeof probe.stripEmptyErrors !== 'function') return undefined;
    return { ValidationExecutor, storage: cachingStorage(real) };
  } catch {
    return undefined;
  }
})();

/** One property's checks in a ValidationPlan, in the executor's order. */
interface PlannedProperty {
  name: string;
  /** CONDITIONAL_VALIDATION constraints (@IsOptional, @ValidateIf): every one must hold for the checks to run. */
  conditions: ((object: object, value: unknown) => boolean)[];
  /** IS_DEFINED, then CUSTOM_VALIDATION metadatas, each with its constraint classes' metadatas. */
  checks: { meta: PlannedMeta; constraints: { instance: { validate(value: unknown, args: object): unknown } }[] }[];
}
interface PlannedMeta {
  propertyName: string;
  constraints: unknown[];
  validateIf?: (object: object, value: unknown) => boolean;
}
interface ValidationPlan {
  /** The class's name, as the executor passes it to constraints (`targetName`). */
  targetName: string;
  /** Properties with any metadata (whitelisted). */
  known: Set<string>;
  properties: PlannedProperty[];
}

/** Plans per metadata list (the caching storage keeps one list per class while it is fresh); null: not plannable. */
const plans = new WeakMap<unknown[], ValidationPlan | null>();

/**
 * What class-validator's executor checks for a class, as a plan that runs the same constraint instances on the
 * same values in the same order, for classes whose metadata is only IS_DEFINED, CUSTOM_VALIDATION (not `each`,
 * not async), CONDITIONAL_VALIDATION and WHITELIST — the decorators of flat contracts. Nested, promise and
 * `each` validation, groups and `always` are left to the executor (null).
 */
function planOf(metadatas: unknown[], targetName: string): ValidationPlan | null {
  if (metadatas.length === 0) return null; // forbidUnknownValues: the executor's "unknown value" error
  const storage = getMetadataStorage() as unknown as { getTargetValidatorConstraints(cls: unknown): { async?: boolean; instance: { validate(value: unknown, args: object): unknown } }[] };
  const byName = new Map<string, { conditions: PlannedProperty['conditions']; defined: PlannedProperty['checks']; custom: PlannedProperty['checks'] }>();
  for (const raw of metadatas) {
    const m = raw as PlannedMeta & { type: string; each?: boolean; always?: boolean; groups?: string[]; constraintCls?: unknown };
    if (m.each || m.always || (m.groups && m.groups.length > 0)) return null;
    let p = byName.get(m.propertyName);
    if (!p) byName.set(m.propertyName, (p = { conditions: [], defined: [], custom: [] }));
    if (m.type === 'whitelistValidation') continue;
    if (m.type === 'conditionalValidation') {
      if (typeof m.constraints?.[0] !== 'function') return null;
      p.conditions.push(m.constraints[0] as PlannedProperty['conditions'][number]);
      continue;
    }
    if (m.type !== 'customValidation' && m.type !== 'isDefined') return null;
    const constraints = storage.getTargetValidatorConstraints(m.constraintCls);
    if (constraints.some((c) => c.async)) return null;
    (m.type === 'isDefined' ? p.defined : p.custom).push({ meta: m, constraints });
  }
  const properties: PlannedProperty[] = [];
  for (const [name, p] of byName) properties.push({ name, conditions: p.conditions, checks: [...p.defined, ...p.custom] });
  return { targetName, known: new Set(byName.keys()), properties };
}

/** True when `message` is valid by its class's plan; false when it has none or anything fails (the executor then decides). */
function passesPlan(message: object): boolean {
  const type = message.constructor;
  if (typeof type !== 'function') return false;
  const metadatas = validatorInternals!.storage.getTargetValidationMetadatas(type, undefined, false, false, undefined);
  let plan = plans.get(metadatas);
  if (plan === undefined) plans.set(metadatas, (plan = planOf(metadatas, type.name)));
  if (!plan) return false;
  for (const k of Object.keys(message)) if (!plan.known.has(k)) return false;
  const targetName = plan.targetName;
  for (const p of plan.properties) {
    const value = (message as Record<string, unknown>)[p.name];
    let run = true;
    for (const c of p.conditions) if (!c(message, value)) run = false; // all evaluated, as the executor does
    if (!run) continue;
    for (const { meta, constraints } of p.checks) {
      if (meta.validateIf && !meta.validateIf(message, value)) continue;
      for (const c of constraints) {
        const ok = c.instance.validate(value, { targetName, property: meta.propertyName, object: message, value, constraints: meta.constraints });
        // Falsy, or a promise (the executor awaits it): the executor decides.
        if (!ok || typeof (ok as { then?: unknown }).then === 'function') return false;
      }
    }
  }
  return true;
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
