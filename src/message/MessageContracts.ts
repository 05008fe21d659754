import { plainToInstance, instanceToPlain } from 'class-transformer';
import { validate, ValidationError } from 'class-validator';
import { ConstraintViolation, ContractNotRegisteredError, MessageValidationError } from '../errors';
import { ContractMetadata, getContractMetadata } from '../metadata';

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
 * Validates a contract instance with class-validator. Unknown properties are rejected
 * (`forbidNonWhitelisted`) so a typo in a producer is caught at send time, not by a consumer; with
 * `rejectUnknownProperties: false` (the consumer side) they are stripped instead, so a consumer still
 * reads messages of a newer contract version that added fields.
 * Throws MessageValidationError listing every failed constraint, nested ones with a dotted path.
 */
export async function validateContract(message: object, contractName: string, options: { rejectUnknownProperties?: boolean } = {}): Promise<void> {
  const errors = await validate(message, { forbidUnknownValues: true, whitelist: true, forbidNonWhitelisted: options.rejectUnknownProperties ?? true });
  if (errors.length > 0) throw new MessageValidationError(contractName, flatten(errors));
}

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
  return JSON.stringify(instanceToPlain(message));
}

/** JSON text → contract instance (not yet validated). Throws SyntaxError on bad JSON. */
export function deserializeContract<T extends object>(type: ContractClass<T>, body: string): T {
  const plain: unknown = JSON.parse(body);
  return plainToInstance(type as unknown as new () => T, plain as object);
}
