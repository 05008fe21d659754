import { NotConfiguredError } from '../errors';
import { ContextStore, TmmContext } from './ContextStore';

/** The slice of a cls-hooked Namespace this adapter uses. */
export interface ClsNamespace {
  run(fn: (...args: unknown[]) => void): void;
  runAndReturn<T>(fn: (...args: unknown[]) => T): T;
  get(key: string): unknown;
  set<T>(key: string, value: T): T;
  readonly active: unknown;
}

const KEY = 'tmm:context';

/**
 * ContextStore on a cls-hooked namespace, for applications that already keep their request context in
 * cls-hooked. cls-hooked is an optional peer dependency; it is slower than AsyncLocalStorage (see
 * bench/producer), so prefer the default unless you must share a namespace.
 */
export class ClsHookedContextStore implements ContextStore {
  private readonly ns: ClsNamespace;

  /** @param namespace an existing namespace, or the name of one to get or create. */
  constructor(namespace: ClsNamespace | string = 'tmm') {
    if (typeof namespace === 'string') {
      let cls: { getNamespace(n: string): ClsNamespace | undefined; createNamespace(n: string): ClsNamespace };
      try {
        cls = require('cls-hooked');
      } catch (e) {
        throw new NotConfiguredError('context "cls-hooked" needs the cls-hooked package: npm install cls-hooked');
      }
      this.ns = cls.getNamespace(namespace) ?? cls.createNamespace(namespace);
    } else {
      this.ns = namespace;
    }
  }

  run<T>(ctx: TmmContext, fn: () => T): T {
    return this.ns.runAndReturn(() => {
      this.ns.set(KEY, ctx);
      return fn();
    });
  }

  get(): TmmContext | undefined {
    if (!this.ns.active) return undefined;
    return this.ns.get(KEY) as TmmContext | undefined;
  }
}
