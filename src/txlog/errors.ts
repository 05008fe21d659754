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

/**
 * The business transaction's barrier row was refused on its key: a check-back had already decided rollback for
 * it (the transaction stayed in doubt longer than txlog.inDoubtAfterMs before its COMMIT, e.g. behind a slow log
 * write). The verdict is final: the transaction is rolled back and nothing is published.
 */
export class TxLogRolledBackByCheckError extends TmmError {
  constructor(key: string, options?: { cause?: unknown }) {
    super(
      'TMM_TXLOG_ROLLED_BACK_BY_CHECK',
      `log-mode transaction ${key} was rolled back: a check-back decided rollback before its COMMIT (it was in doubt longer than txlog.inDoubtAfterMs); nothing was published`,
      options,
    );
  }
}
