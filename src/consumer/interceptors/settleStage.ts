import type { Stage } from '../ConsumerPipeline';
import type { RecoveryPolicy } from '../RecoveryPolicy';
import type { StopGate } from '../StopGate';

/**
 * The outermost stage after the context: acks the delivery once everything inside (decode … commit)
 * succeeded, and hands any failure to the RecoveryPolicy, which settles it (retry copy, dead letter, or
 * back to the queue). Nothing is acked before the transaction committed.
 */
export function settleStage(recovery: RecoveryPolicy, gate: () => StopGate): Stage {
  return async (state, next) => {
    try {
      await next();
    } catch (error) {
      await recovery.recover(state, error, next, gate());
      return;
    }
    // Also after a shutdown timeout: the work is done (committed), so an ack is right if the channel still takes it.
    await state.delivery.ack();
    state.outcome ??= 'handled';
  };
}
