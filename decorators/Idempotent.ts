import { ConfigurationError } from '../src/errors/TmmError';
import { type IdempotencyKey, defineIdempotentMetadata } from '../src/metadata/keys';

export interface IdempotentOptions {
  /**
   * Where the deduplication key comes from when a message has no message id (a foreign producer's):
   * `{ header: 'x-order-id' }` or `{ path: 'order.id' }` (a dot path into the JSON payload). A message
   * with an id is deduplicated by its id; one with neither is dead-lettered (`missing-message-id`).
   */
  key?: IdempotencyKey;
}

const NAME = /^[^\s]{1,255}$/;

/**
 * Makes a @Consumer's effect happen once per message id: before the handler runs, a claim (consumer
 * queue, message id) is inserted in the handler's transaction; a message whose claim is already committed
 * is acked without running the handler. Same as `@Consumer({ idempotent: true })`; the order of the two
 * decorators does not matter. `@Idempotent({ key })` also deduplicates messages without an id by a header
 * or a payload field.
 */
export function Idempotent(options?: IdempotentOptions): MethodDecorator {
  if (arguments.length > 1) throw new ConfigurationError('Idempotent', 'takes one options object { key }');
  if (options !== undefined) checkOptions(options);
  return (target, key, descriptor: PropertyDescriptor) => {
    if (typeof descriptor?.value !== 'function') throw new ConfigurationError('Idempotent', `can only decorate methods, not ${String(key)}`);
    defineIdempotentMetadata(target, key, options);
  };
}

function checkOptions(o: IdempotentOptions): void {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new ConfigurationError('Idempotent', 'options must be an object { key }');
  for (const k of Object.keys(o)) if (k !== 'key') throw new ConfigurationError(`Idempotent.${k}`, 'unknown option');
  if (o.key === undefined) return;
  const key = o.key as Record<string, unknown>;
  if (key === null || typeof key !== 'object' || Object.keys(key).length !== 1 || !('header' in key || 'path' in key)) {
    throw new ConfigurationError('Idempotent.key', `must be { header: "<name>" } or { path: "<a.b.c>" }, got ${JSON.stringify(o.key)}`);
  }
  const [kind, value] = Object.entries(key)[0];
  if (typeof value !== 'string' || !NAME.test(value)) throw new ConfigurationError(`Idempotent.key.${kind}`, `must be a non-empty name without spaces, got ${JSON.stringify(value)}`);
  if (kind === 'path' && value.split('.').some((part) => part.length === 0)) {
    throw new ConfigurationError('Idempotent.key.path', `"${value}" has an empty segment; use dots between field names`);
  }
}
