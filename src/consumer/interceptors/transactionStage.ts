import { HandlerAbandonedError } from '../../errors';
import type { TypeOrmTransactionManager } from '../../transaction/TypeOrmTransactionManager';
import type { Stage } from '../ConsumerPipeline';
import type { StopGate } from '../StopGate';

/**
 * Runs the rest (inbox claim, interceptors, handler) in one transaction, committed when they return.
 * Messages the handler sends join it through the outbox. A handler that returns after the runner gave up
 * waiting for it (shutdown timeout) is rolled back: its delivery went back to the broker.
 */
export function transactionStage(transactions: TypeOrmTransactionManager, gate: () => StopGate): Stage {
  return (state, next) =>
    transactions.run(
      async () => {
        state.scope = transactions.current();
        await next();
        if (gate().abandoned) throw new HandlerAbandonedError(state.def.name, state.messageId);
      },
      { name: state.def.name },
    );
}
