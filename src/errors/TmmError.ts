/**
 * Every code a TmmError carries. Stable strings: they land in logs, headers and HTTP answers. A user's
 * NonRetryableError may carry a code of its own (any string).
 */
export const TMM_ERROR_CODES = [
  'TMM_MESSAGE_INVALID', 'TMM_CONTRACT_MISSING', 'TMM_PAYLOAD_TOO_LARGE', 'TMM_NO_TRANSACTION', 'TMM_ILLEGAL_TRANSACTION_STATE',
  'TMM_UNEXPECTED_ROLLBACK', 'TMM_COMMIT_IN_DOUBT', 'TMM_CONFIG_INVALID', 'TMM_NOT_CONFIGURED', 'TMM_UNSUPPORTED_DATABASE', 'TMM_MISSING_PEER',
  'TMM_PUBLISH_UNROUTABLE', 'TMM_PUBLISH_NACKED', 'TMM_PUBLISH_TIMEOUT', 'TMM_PUBLISH_CONNECTION_LOST', 'TMM_PUBLISH_CLOSED',
  'TMM_PUBLISH_FAILED', 'TMM_TRANSPORT_CLOSED', 'TMM_TRANSPORT_CONNECT_TIMEOUT', 'TMM_SUBSCRIBE_FAILED', 'TMM_TOPOLOGY',
  'TMM_NON_RETRYABLE', 'TMM_MESSAGE_UNPARSEABLE', 'TMM_MESSAGE_ID_MISSING', 'TMM_INBOX_KEY_INVALID', 'TMM_CONSUMER_INVALID',
  'TMM_CONSUMERS_STARTED', 'TMM_HANDLER_ABANDONED', 'TMM_INTERCEPTOR_NEXT_TWICE', 'TMM_RELAY_STOPPED', 'TMM_RELAY_LOCKED',
  'TMM_NOT_STARTED', 'TMM_COLLECTOR_STARTED', 'TMM_NOT_FOUND', 'TMM_STATE_CONFLICT', 'TMM_INVALID_INPUT', 'TMM_UNAUTHORIZED',
  'TMM_FORBIDDEN', 'TMM_CSRF', 'TMM_HOST_NOT_ALLOWED', 'TMM_BAD_REQUEST', 'TMM_ADMIN_NOT_STARTED', 'TMM_ADMIN_ASSETS', 'TMM_CLI',
  'TMM_INTERNAL', 'TMM_PUBLISH_INVALID', 'TMM_DATABASE_CONNECTION_LOST', 'TMM_DATABASE_VALUE_REJECTED', 'TMM_TXLOG_UNAVAILABLE', 'TMM_TXLOG_NOT_FOUND', 'TMM_TXLOG_NOT_STARTED', 'TMM_TXLOG_ROLLED_BACK_BY_CHECK',
  'TMM_QUEUE_MIGRATION',
] as const;
export type TmmErrorCode = (typeof TMM_ERROR_CODES)[number];

/** Brands shared by every copy of tmm loaded in a process (two installed versions still recognize each other's errors). */
const TMM_ERROR = Symbol.for('tmm.error');
const NON_RETRYABLE = Symbol.for('tmm.error.nonRetryable');

/**
 * Every error tmm throws on purpose is a TmmError: it has a stable `code` (safe to match on and to log)
 * and, where it wraps another failure, that failure as `cause`. Subclasses exist for each failure a caller
 * may want to handle; their messages name the method, message id, option path or constraint involved.
 * Match with `TmmError.is(e, 'TMM_PUBLISH_TIMEOUT')` rather than `instanceof`: it also recognizes errors
 * made by another installed copy of tmm.
 */
export class TmmError extends Error {
  readonly code: string;

  constructor(code: TmmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
    Object.defineProperty(this, TMM_ERROR, { value: true });
  }

  /** True for an error made by any copy of tmm, with this code when one is given. */
  static is(e: unknown, code?: TmmErrorCode | (string & {})): e is TmmError {
    return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[TMM_ERROR] === true && (code === undefined || (e as TmmError).code === code);
  }

  /** True for a NonRetryableError (or a subclass) from any copy of tmm: the consumer dead-letters it at once. */
  static isNonRetryable(e: unknown): e is NonRetryableError {
    return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[NON_RETRYABLE] === true;
  }
}

/**
 * An optional peer dependency is needed for what was asked (a driver, amqplib, cls-hooked, fastify…) and is
 * not installed: the message names the package and the install command.
 */
export class MissingPeerDependencyError extends TmmError {
  constructor(
    readonly packageName: string,
    readonly neededFor: string,
    options?: { cause?: unknown },
  ) {
    super('TMM_MISSING_PEER', `${neededFor} needs the package "${packageName}", which is not installed: npm install ${packageName}`, options);
  }
}

/**
 * Loads an optional peer dependency at the moment it is needed, resolved from the app (as a plain
 * `require` from tmm's own files would be). A missing package becomes a MissingPeerDependencyError naming
 * it; any other load failure (a broken native build) is rethrown as it is.
 */
export function requirePeer<T>(packageName: string, neededFor: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(packageName) as T;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if ((code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && String((e as Error).message).includes(`'${packageName}'`)) {
      throw new MissingPeerDependencyError(packageName, neededFor, { cause: e });
    }
    throw e;
  }
}

/** One failed class-validator constraint, flattened to the property path. */
export interface ConstraintViolation {
  /** Dotted path of the property, e.g. `items.0.sku`. */
  property: string;
  /** The constraint name, e.g. `isPositive`. */
  constraint: string;
  /** The human message class-validator produced. */
  message: string;
}

/** A message failed its contract's class-validator rules. Nothing was stored or published. */
export class MessageValidationError extends TmmError {
  constructor(
    readonly contract: string,
    readonly violations: ConstraintViolation[],
  ) {
    super(
      'TMM_MESSAGE_INVALID',
      `message ${contract} is invalid: ` + violations.map((v) => `${v.property}: ${v.message} (${v.constraint})`).join('; '),
    );
  }
}

/** The value passed to send() is not an instance of a class decorated with @MessageContract. */
export class ContractNotRegisteredError extends TmmError {
  constructor(what: string) {
    super('TMM_CONTRACT_MISSING', `${what} is not a message contract: decorate its class with @MessageContract({ topic })`);
  }
}

/** The serialized payload is larger than `producer.maxPayloadBytes`. */
export class PayloadTooLargeError extends TmmError {
  constructor(
    readonly topic: string,
    readonly size: number,
    readonly limit: number,
  ) {
    super('TMM_PAYLOAD_TOO_LARGE', `message for topic "${topic}" is ${size} bytes, over the limit of ${limit} bytes (producer.maxPayloadBytes)`);
  }
}

/** send() was called with no transaction open while `producer.requireTransaction` is true. */
export class NoActiveTransactionError extends TmmError {
  constructor(topic: string) {
    super(
      'TMM_NO_TRANSACTION',
      `message for topic "${topic}" was sent outside a transaction and producer.requireTransaction is true: ` +
        'call send() inside a @TransactionalMessage method (or TransactionManager.run)',
    );
  }
}

/** Propagation rules were broken: MANDATORY without a transaction, NEVER inside one. */
export class IllegalTransactionStateError extends TmmError {
  constructor(message: string) {
    super('TMM_ILLEGAL_TRANSACTION_STATE', message);
  }
}

/**
 * A participant of the transaction (an inner REQUIRED/SUPPORTS call) failed, the outer code caught the
 * error and tried to commit: the transaction was rolled back instead, and nothing it sent is published.
 */
export class UnexpectedRollbackError extends TmmError {
  constructor(cause: unknown) {
    super('TMM_UNEXPECTED_ROLLBACK', 'transaction rolled back because a participating call failed and was marked rollback-only', { cause });
  }
}

/**
 * COMMIT was answered, but a write pipelined ahead of it (ADR 0078) failed on the client side, so whether
 * the transaction committed is not known: its rows (an outbox row included) may be there. The relay's
 * sweeper publishes an outbox row that did commit; nothing was published yet.
 */
export class CommitInDoubtError extends TmmError {
  constructor(transaction: string, cause: unknown) {
    super(
      'TMM_COMMIT_IN_DOUBT',
      `transaction ${transaction}: a write sent ahead of COMMIT failed on the client side (${cause instanceof Error ? cause.message : String(cause)}), so whether it committed is not known; check its rows`,
      { cause },
    );
  }
}

/** The options given to tmm are wrong; `path` names the offending key, e.g. `producer.maxPayloadBytes`. */
export class ConfigurationError extends TmmError {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super('TMM_CONFIG_INVALID', `invalid tmm option ${path ? `"${path}"` : '(root)'}: ${detail}`);
  }
}

/** A decorated method or tmm service was used before a DataSource / transaction manager was configured. */
export class NotConfiguredError extends TmmError {
  constructor(message: string) {
    super('TMM_NOT_CONFIGURED', message);
  }
}

/** The DataSource's driver is not one tmm supports (sqlite, better-sqlite3, postgres, mysql, mariadb). */
export class UnsupportedDatabaseError extends TmmError {
  constructor(type: string) {
    super('TMM_UNSUPPORTED_DATABASE', `database type "${type}" is not supported: use better-sqlite3, sqlite, postgres, mysql or mariadb`);
  }
}

/**
 * A publish failed: returned as unroutable, nacked, timed out, the connection went away, or (TMM_PUBLISH_INVALID)
 * the client could not encode it at all (e.g. headers over amqplib's 64 KiB field-table buffer). See
 * classifyFailure for which of these spend a message's attempts.
 */
export class PublishError extends TmmError {
  constructor(
    code: Extract<TmmErrorCode, `TMM_PUBLISH_${string}`>,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The transport is closed (or was never started) and cannot take the call. */
export class TransportClosedError extends TmmError {
  constructor(what: string) {
    super('TMM_TRANSPORT_CLOSED', `${what}: the transport is closed`);
  }
}

/** Topology (exchange, queue, binding) could not be declared, e.g. a queue redeclared with other arguments. */
export class TopologyError extends TmmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TMM_TOPOLOGY', message, options);
  }
}

/**
 * A classic-to-quorum queue migration (migrateQueuesToQuorum, `tmm amqp migrate-to-quorum`) cannot go on.
 * `reason`: `consumers-attached` (stop the consumers first), `arguments-differ` (a queue is declared other
 * than the topology given says), `locked` (another migration runs on the virtual host), `unavailable`
 * (no connection to the broker), `failed` (stopped midway: running it again finishes the job).
 */
export class QueueMigrationError extends TmmError {
  constructor(
    readonly reason: 'consumers-attached' | 'arguments-differ' | 'locked' | 'unavailable' | 'failed',
    message: string,
    options?: { cause?: unknown },
  ) {
    super('TMM_QUEUE_MIGRATION', message, options);
  }
}

/**
 * Thrown by a consumer's handler (or an interceptor) for a failure that retrying cannot fix (a business
 * rule says no, a referenced entity will never exist): the message is dead-lettered at once, with this
 * error in its headers, instead of going through the retry queues.
 */
export class NonRetryableError extends TmmError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super((options?.code ?? 'TMM_NON_RETRYABLE') as TmmErrorCode, message, options);
    Object.defineProperty(this, NON_RETRYABLE, { value: true });
  }
}

/** A consumed message's body is not what its contract can be read from (not JSON, or not an object). */
export class UnparseableMessageError extends TmmError {
  constructor(
    readonly messageId: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super('TMM_MESSAGE_UNPARSEABLE', `message ${messageId || '(no id)'} cannot be decoded: ${detail}`, options);
  }
}

/**
 * A @Consumer is wrong in a way only visible at start-up, when consumers are explored: its message
 * parameter is not a contract, two consumers share a queue, its retry horizon outlives the inbox
 * retention… The message names the consumer (`Class.method`) and its queue.
 */
export class ConsumerDefinitionError extends TmmError {
  constructor(
    readonly consumer: string,
    detail: string,
  ) {
    super('TMM_CONSUMER_INVALID', `consumer ${consumer}: ${detail}`);
  }
}

/**
 * A handler was still running when the consumer runner's shutdown timeout passed. Its transaction is
 * rolled back instead of committed (the delivery was given back to the broker, which redelivers it), so
 * no effect is committed for a message that may be handled again.
 */
export class HandlerAbandonedError extends TmmError {
  constructor(consumer: string, messageId: string) {
    super('TMM_HANDLER_ABANDONED', `consumer ${consumer}: message ${messageId || '(no id)'} was still being handled when shutdown timed out; rolled back`);
  }
}
