import { TmmError } from '../../errors';
import type { ConsumeInterceptor } from '../ConsumeContext';
import type { Stage } from '../ConsumerPipeline';

/** A user interceptor as a pipeline stage; `next()` may be called once. */
export function interceptorStage(interceptor: ConsumeInterceptor): Stage {
  const name = interceptor.constructor?.name ?? 'interceptor';
  return async (state, next) => {
    let called = false;
    await interceptor.intercept(state.context, () => {
      if (called) return Promise.reject(new TmmError('TMM_INTERCEPTOR_NEXT_TWICE', `${name} called next() twice for message ${state.messageId} in ${state.def.name}`));
      called = true;
      return next();
    });
  };
}
