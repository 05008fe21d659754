/**
 * Every error tmm throws on purpose is a TmmError: it has a stable `code` (safe to match on and to log)
 * and, where it wraps another failure, that failure as `cause`. Subclasses exist for each failure a caller
 * may want to handle; their messages name the method, message id, option path or constraint involved.
 */
export class TmmError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
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
    code:
      | 'TMM_PUBLISH_UNROUTABLE'
      | 'TMM_PUBLISH_NACKED'
      | 'TMM_PUBLISH_TIMEOUT'
      | 'TMM_PUBLISH_CONNECTION_LOST'
      | 'TMM_PUBLISH_CLOSED'
      | 'TMM_PUBLISH_FAILED'
      | 'TMM_PUBLISH_INVALID',
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
 * Thrown by a consumer's handler (or an interceptor) for a failure that retrying cannot fix (a business
 * rule says no, a referenced entity will never exist): the message is dead-lettered at once, with this
 * error in its headers, instead of going through the retry queues.
 */
export class NonRetryableError extends TmmError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'TMM_NON_RETRYABLE', message, options);
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
