import type { Stage } from '../ConsumerPipeline';

/** Calls the @Consumer method on its instance with (message, context). */
export function handlerStage(): Stage {
  return async (state) => {
    const { instance, method } = state.def;
    const fn = (instance as Record<string, (message: object, context: unknown) => unknown>)[method];
    await fn.call(instance, state.message!, state.context);
  };
}
