/**
 * One value per process, shared by every copy of tmm loaded in it (an app may end up with two installed
 * versions, e.g. one nested under a library): kept on `globalThis` under `Symbol.for('tmm.' + name)`.
 * Used for what decorators record at class-definition time (contract and consumer classes) and for the
 * started instances the decorators look up at call time. A value's shape must stay compatible across
 * versions: add fields, never change one.
 */
export function processWide<T>(name: string, create: () => T): T {
  const g = globalThis as unknown as Record<symbol, unknown>;
  const key = Symbol.for(`tmm.${name}`);
  if (g[key] === undefined) g[key] = create();
  return g[key] as T;
}
