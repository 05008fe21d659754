// The public surface of the log-mode sender; DualLog, LogDirectory and the framing are internals.
export { TxLogSender } from './TxLogSender';
export type { TxLogOptions, TxLogWindow, TxLogProblem, TxLogHealth, CheckAttempt } from './TxLogSender';
export { TypeOrmCheckBarrier, BARRIER_TABLE } from './CheckBack';
export type { CheckVerdict, TransactionChecker } from './CheckBack';
export { TxLogUnavailableError, TxLogNotFoundError, TxLogNotStartedError, TxLogRolledBackByCheckError } from './errors';
