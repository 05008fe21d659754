import { requirePeer } from '../errors/TmmError';

/**
 * The slice of inversify tmm uses, written once for the three majors it supports. The module API changed
 * between them: inversify 6 calls a ContainerModule's callback with positional functions `(bind, unbind,
 * isBound, rebind, unbindAsync, onActivation, …)` and its dynamic values get a `Context` whose container
 * does the lookups; inversify 7 and 8 call it with one options object `{ bind, onActivation, … }` and
 * hand dynamic values a `ResolutionContext` with `get(id, { optional, autobind })`. inversify itself is
 * resolved from the app (a peer dependency), at the moment a module is made.
 */
export type Id = string | symbol | Function;

/** What a binding callback may look up, the same on every major. */
export interface Lookup {
  get<T>(id: Id): T;
  /** undefined when nothing is bound under `id` (never autobinds a class). */
  getOptional<T>(id: Id): T | undefined;
}

interface BindSyntax {
  toConstantValue(v: unknown): unknown;
  toDynamicValue(f: (context: unknown) => unknown): { inSingletonScope(): unknown };
}

export interface ModuleRegistry {
  bind(id: Id): BindSyntax;
  onActivation<T>(id: Id, handler: (lookup: Lookup, instance: T) => T): void;
  /** Dynamic value (singleton) computed from the container when first resolved. */
  bindDynamic(id: Id, factory: (lookup: Lookup) => unknown): void;
}

function lookupFor(context: unknown): Lookup {
  const c = context as {
    get?: (id: Id, options?: object) => unknown;
    container?: { get(id: Id): unknown; isBound(id: Id): boolean };
  };
  if (c.container && typeof c.container.isBound === 'function') {
    // inversify 6: interfaces.Context
    const container = c.container;
    return {
      get: <T>(id: Id) => container.get(id) as T,
      getOptional: <T>(id: Id) => (container.isBound(id) ? (container.get(id) as T) : undefined),
    };
  }
  // inversify 7/8: ResolutionContext
  const get = c.get!.bind(c);
  return { get: <T>(id: Id) => get(id) as T, getOptional: <T>(id: Id) => get(id, { optional: true, autobind: false }) as T | undefined };
}

/** inversify's ContainerModule, made with a callback that works on 6, 7 and 8. */
export function makeContainerModule(what: string, load: (registry: ModuleRegistry) => void): unknown {
  const inversify = requirePeer<{ ContainerModule: new (cb: (...args: unknown[]) => void) => unknown }>('inversify', what);
  return new inversify.ContainerModule((...args: unknown[]) => {
    let bind: (id: Id) => BindSyntax;
    let onActivation: (id: Id, h: (context: unknown, instance: unknown) => unknown) => void;
    if (typeof args[0] === 'function') {
      // inversify 6: (bind, unbind, isBound, rebind, unbindAsync, onActivation, onDeactivation)
      bind = args[0] as typeof bind;
      onActivation = args[5] as typeof onActivation;
    } else {
      const o = args[0] as { bind: typeof bind; onActivation: typeof onActivation };
      bind = o.bind;
      onActivation = o.onActivation;
    }
    load({
      bind,
      onActivation: (id, handler) => onActivation(id, (context, instance) => handler(lookupFor(context), instance as never)),
      bindDynamic: (id, factory) => {
        bind(id)
          .toDynamicValue((context) => factory(lookupFor(context)))
          .inSingletonScope();
      },
    });
  });
}
