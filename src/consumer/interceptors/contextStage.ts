import { type ContextStore, newContext } from '../../context/ContextStore';
import type { Stage } from '../ConsumerPipeline';

/**
 * Runs the rest of the pipeline in a fresh, empty async context. A delivery callback inherits whatever
 * context the broker connection was opened in (possibly some caller's transaction); without this the
 * handler could join a transaction that is not its own.
 */
export function contextStage(store: ContextStore): Stage {
  return (_state, next) => store.run(newContext(), next);
}
