import { TmmError } from '../errors/TmmError';

/** Neither transaction-log directory can take a write: the business transaction is rolled back, nothing is half-committed. */
export class TxLogUnavailableError extends TmmError {
  constructor(detail: string, options?: { cause?: unknown }) {
    super('TMM_TXLOG_UNAVAILABLE', `transaction log unavailable on every directory: ${detail}`, options);
  }
}

/** An admin action named a transaction the log sender does not hold in the state the action needs. */
export class TxLogNotFoundError extends TmmError {
  constructor(uid: string, what: string) {
    super('TMM_TXLOG_NOT_FOUND', `transaction ${uid} is not ${what} in the transaction log`);
  }
}

/** The log sender was used before start() or after stop(). */
export class TxLogNotStartedError extends TmmError {
  constructor(what: string) {
    super('TMM_TXLOG_NOT_STARTED', `transaction log sender is not started: ${what}`);
  }
}
