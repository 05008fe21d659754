import { AsyncLocalStorage } from 'node:async_hooks';
import { ContextStore, TmmContext } from './ContextStore';

/** The default ContextStore, on Node's AsyncLocalStorage. */
export class AsyncLocalContextStore implements ContextStore {
  private readonly als = new AsyncLocalStorage<TmmContext>();

  run<T>(ctx: TmmContext, fn: () => T): T {
    return this.als.run(ctx, fn);
  }

  get(): TmmContext | undefined {
    return this.als.getStore();
  }
}
