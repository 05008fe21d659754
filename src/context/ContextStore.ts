/**
 * The async context of one call: what tmm keeps for the code running inside a transactional method.
 * `slots` is a small bag keyed by symbol so that each tmm component owns its own entry.
 */
export interface TmmContext {
  readonly slots: Map<symbol, unknown>;
}

export function newContext(parent?: TmmContext): TmmContext {
  return { slots: new Map(parent?.slots) };
}

/**
 * The port for async-context propagation.
 *
 * Contract:
 * - Inside `run(ctx, fn)`, `get()` returns `ctx` in `fn` and in everything `fn` starts asynchronously:
 *   after `await`, in timers, `setImmediate`, `process.nextTick`, promise callbacks, event-emitter
 *   listeners registered inside `fn`, and every branch of a `Promise.all` fan-out.
 * - Outside any `run`, `get()` returns undefined.
 * - Concurrent runs never see each other's context; a nested `run` shadows the outer one only for its
 *   own callee and restores it afterwards.
 * - `run` returns what `fn` returns (a promise stays a promise).
 */
export interface ContextStore {
  run<T>(ctx: TmmContext, fn: () => T): T;
  get(): TmmContext | undefined;
}
