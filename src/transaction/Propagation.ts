/** Spring's propagation rules. Values are stable strings (they appear in errors and metadata). */
export const Propagation = {
  /** Join the current transaction, or start one. The default. */
  Required: 'REQUIRED',
  /** Suspend the current transaction (if any) and run in a new, independent one. */
  RequiresNew: 'REQUIRES_NEW',
  /** Run in a savepoint of the current transaction (or start one): a failure rolls back only the savepoint. */
  Nested: 'NESTED',
  /** Join the current transaction if there is one, else run without. */
  Supports: 'SUPPORTS',
  /** Join the current transaction; throw IllegalTransactionStateError if there is none. */
  Mandatory: 'MANDATORY',
  /** Run without a transaction; throw IllegalTransactionStateError if there is one. */
  Never: 'NEVER',
  /** Suspend the current transaction (if any) and run without one. */
  NotSupported: 'NOT_SUPPORTED',
} as const;
export type Propagation = (typeof Propagation)[keyof typeof Propagation];

export type IsolationLevel = 'READ UNCOMMITTED' | 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE';

export interface TransactionOptions {
  propagation?: Propagation;
  /** Only applies when a new physical transaction starts. */
  isolation?: IsolationLevel;
  /** Names the transaction in errors and logs, e.g. `PaymentService.pay`. */
  name?: string;
}
