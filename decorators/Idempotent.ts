import { ConfigurationError } from '../src/errors/TmmError';
import { defineIdempotentMetadata } from '../src/metadata/keys';

/**
 * Makes a @Consumer's effect happen once per message id: before the handler runs, a claim (consumer
 * queue, message id) is inserted in the handler's transaction; a message whose claim is already committed
 * is acked without running the handler. Same as `@Consumer({ idempotent: true })`; the order of the two
 * decorators does not matter.
 */
export function Idempotent(): MethodDecorator {
  if (arguments.length > 0) throw new ConfigurationError('Idempotent', 'takes no options');
  return (target, key, descriptor: PropertyDescriptor) => {
    if (typeof descriptor?.value !== 'function') throw new ConfigurationError('Idempotent', `can only decorate methods, not ${String(key)}`);
    defineIdempotentMetadata(target, key);
  };
}
