import { ConfigurationError } from '../src/errors/TmmError';
import type { InterceptorRef } from '../src/consumer/ConsumeContext';
import { defineInterceptorsMetadata } from '../src/metadata/keys';

/**
 * Adds interceptors around @Consumer handlers: on a class, around each of its consumers; on a method,
 * around that one (inside the class-level ones). Each is a ConsumeInterceptor instance or class; a class
 * is taken from the DI container when bound there, else constructed without arguments, once per start.
 */
export function UseInterceptors(...interceptors: InterceptorRef[]): ClassDecorator & MethodDecorator {
  if (interceptors.length === 0) throw new ConfigurationError('UseInterceptors', 'give at least one interceptor');
  interceptors.forEach((ref, i) => {
    const ok =
      (typeof ref === 'function' && typeof (ref.prototype as { intercept?: unknown })?.intercept === 'function') ||
      (ref !== null && typeof ref === 'object' && typeof (ref as { intercept?: unknown }).intercept === 'function');
    if (!ok) {
      throw new ConfigurationError(`UseInterceptors.${i}`, `must be a ConsumeInterceptor instance or class (with an intercept(context, next) method), got ${describe(ref)}`);
    }
  });
  return ((target: object, key?: string | symbol, descriptor?: PropertyDescriptor) => {
    if (key === undefined) {
      defineInterceptorsMetadata(target, undefined, interceptors);
      return;
    }
    if (typeof descriptor?.value !== 'function') throw new ConfigurationError('UseInterceptors', `can only decorate classes and methods, not ${String(key)}`);
    defineInterceptorsMetadata(target, key, interceptors);
  }) as ClassDecorator & MethodDecorator;
}

function describe(v: unknown): string {
  if (typeof v === 'function') return `class ${v.name} without intercept()`;
  if (v === null) return 'null';
  return typeof v === 'object' ? `an object without intercept()` : JSON.stringify(v);
}
