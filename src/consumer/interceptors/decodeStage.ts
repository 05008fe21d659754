import { UnparseableMessageError } from '../../errors';
import { deserializeContract } from '../../message/MessageContracts';
import type { Stage } from '../ConsumerPipeline';

/** Body (JSON text) → an instance of the consumer's contract class. Failure: UnparseableMessageError (dead-lettered at once). */
export function decodeStage(): Stage {
  return async (state, next) => {
    const { contract } = state.def;
    let message: unknown;
    try {
      message = deserializeContract(contract, state.delivery.message.body.toString('utf8'));
    } catch (e) {
      throw new UnparseableMessageError(state.messageId, `body is not valid JSON (${(e as Error).message})`, { cause: e });
    }
    if (message === null || typeof message !== 'object' || Array.isArray(message) || !(message instanceof contract)) {
      throw new UnparseableMessageError(state.messageId, `body is not a JSON object that can be read as ${contract.name}`);
    }
    state.message = message;
    await next();
  };
}
