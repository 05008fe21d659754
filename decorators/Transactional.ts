import { ConfigurationError } from '../src/errors/TmmError';
import { copyMethodMetadata, defineTransactionalMetadata } from '../src/metadata/keys';
import { Propagation } from '../src/transaction/Propagation';
import { wrapInTransaction, type WrapOptions } from '../src/runtime/wrapInTransaction';

export type TransactionalOptions = WrapOptions;

const PROPAGATIONS = new Set<string>(Object.values(Propagation));
const ISOLATIONS = new Set(['READ UNCOMMITTED', 'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE']);
const KEYS = new Set(['propagation', 'isolation', 'name', 'dataSource', 'sender']);

function decorate(kind: string, options: TransactionalOptions, messages: boolean): MethodDecorator {
  for (const key of Object.keys(options)) if (!KEYS.has(key)) throw new ConfigurationError(`${kind}.${key}`, 'unknown option');
  if (options.propagation !== undefined && !PROPAGATIONS.has(options.propagation)) {
    throw new ConfigurationError(`${kind}.propagation`, `must be one of ${[...PROPAGATIONS].join(', ')}, got ${JSON.stringify(options.propagation)}`);
  }
  if (options.isolation !== undefined && !ISOLATIONS.has(options.isolation)) {
    throw new ConfigurationError(`${kind}.isolation`, `must be one of ${[...ISOLATIONS].join(', ')}, got ${JSON.stringify(options.isolation)}`);
  }
  if (options.sender !== undefined && (!messages || (options.sender !== 'outbox' && options.sender !== 'log'))) {
    throw new ConfigurationError(`${kind}.sender`, messages ? `must be "outbox" or "log", got ${JSON.stringify(options.sender)}` : 'only @TransactionalMessage takes a sender');
  }
  return (target, key, descriptor: PropertyDescriptor) => {
    const original = descriptor.value as unknown;
    if (typeof original !== 'function') throw new ConfigurationError(kind, `can only decorate methods, not ${String(key)}`);
    const name = options.name ?? `${(target as { constructor: { name: string } }).constructor.name}.${String(key)}`;
    const wrapped = wrapInTransaction(original as (...a: unknown[]) => unknown, { ...options, name });
    copyMethodMetadata(original, wrapped);
    Object.defineProperty(wrapped, 'name', { value: (original as { name: string }).name });
    descriptor.value = wrapped;
    defineTransactionalMetadata(target, key, { propagation: options.propagation ?? Propagation.Required, isolation: options.isolation, messages });
  };
}

/** Runs the method in a database transaction (propagation REQUIRED unless told otherwise). */
export function Transactional(options: TransactionalOptions = {}): MethodDecorator {
  return decorate('Transactional', options, false);
}

/**
 * Runs the method in a database transaction whose sent messages are published if and only if it commits:
 * every `producer.send()` inside is appended to the outbox in the same transaction, just before COMMIT.
 */
export function TransactionalMessage(options: TransactionalOptions = {}): MethodDecorator {
  return decorate('TransactionalMessage', options, true);
}
