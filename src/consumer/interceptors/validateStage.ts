import { validateContract } from '../../message/MessageContracts';
import { getContractMetadata } from '../../metadata';
import type { ConsumerDefinition } from '../ConsumerDefinition';
import type { Stage } from '../ConsumerPipeline';

/**
 * class-validator rules of the contract. Properties the contract does not declare are stripped, not
 * refused: a producer on a newer contract version may add fields (tolerant reader). Failure:
 * MessageValidationError (dead-lettered at once).
 */
export function validateStage(def: ConsumerDefinition): Stage {
  const topic = getContractMetadata(def.contract)?.topic;
  const name = topic ? `${def.contract.name} (${topic})` : def.contract.name;
  return async (state, next) => {
    await validateContract(state.message!, name, { rejectUnknownProperties: false });
    await next();
  };
}
