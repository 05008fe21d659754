import { TmmError } from './TmmError';

/** What an operator asked for does not exist: a dead letter, an outbox row. `what` names it with its id. */
export class NotFoundError extends TmmError {
  constructor(readonly what: string) {
    super('TMM_NOT_FOUND', `${what} does not exist`);
  }
}

/**
 * An operator action does not apply to the target in its current state (resending a dead letter that was
 * already resent or discarded, retrying an outbox row that is not DEAD). Nothing was changed.
 */
export class StateConflictError extends TmmError {
  constructor(
    readonly what: string,
    readonly state: string,
    action: string,
  ) {
    super('TMM_STATE_CONFLICT', `${what} is ${state}: cannot ${action} it`);
  }
}

/** One problem with operator input: where (`path`) and what is wrong. */
export interface InputProblem {
  path: string;
  message: string;
}

/** Operator input (an edited payload, a filter, a CLI argument) is not acceptable. Nothing was changed. */
export class InvalidInputError extends TmmError {
  constructor(
    message: string,
    readonly problems: InputProblem[] = [],
  ) {
    super('TMM_INVALID_INPUT', message);
  }
}
