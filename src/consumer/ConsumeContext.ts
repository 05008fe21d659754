import type { EntityManager } from 'typeorm';
import type { Headers } from '../transport/Transport';

/**
 * What a consumer's handler gets as its second parameter: the delivery as tmm sees it. Valid for the
 * duration of the handler call.
 */
export interface ConsumeContext {
  /** The message id (the AMQP `messageId`; the outbox row id for messages sent through tmm). */
  readonly messageId: string;
  /** `Class.method` of the handler. */
  readonly consumer: string;
  /** The queue the message was consumed from (also the consumer's key in the inbox). */
  readonly queue: string;
  /** Where the message was first published (retries keep the original route). */
  readonly exchange: string;
  readonly routingKey: string;
  /** The message's topic (for a foreign message: its topic header, AMQP `type` or routing key; docs/interop.md). */
  readonly topic: string;
  /** The message's headers as they arrived (tmm's own included). */
  readonly headers: Readonly<Headers>;
  /** 1 for the first handling, n for the n-th (retries count; a broker redelivery does not). */
  readonly attempt: number;
  /** The consumer's maximum: after this many failed attempts the message is dead-lettered. */
  readonly maxAttempts: number;
  /** The broker delivered this message before (to a consumer that died or gave it back unsettled). */
  readonly redelivered: boolean;
  /** When the message was created (epoch ms; whole seconds over AMQP). */
  readonly timestamp: number;
  /**
   * The EntityManager bound to the handler's transaction: write through it (or through
   * TransactionManager.manager / @Transactional methods, which join the same transaction). For a consumer
   * declared `transactional: false`, the DataSource's manager.
   */
  readonly manager: EntityManager;
}

/** What an interceptor sees: the context plus the decoded, validated message and the handler it wraps. */
export interface InterceptionContext extends ConsumeContext {
  readonly message: object;
  /** The consumer class and method name. */
  readonly type: Function;
  readonly method: string;
}

/**
 * A user interceptor around a consumer's handler (`@UseInterceptors`). It runs inside the handler's
 * transaction, after the inbox claim, for each message that reaches the handler (duplicates and messages
 * that fail decoding or validation do not). Call `next()` exactly once to go on (to the next interceptor
 * or the handler) and return or await its result; throw to fail the attempt (it is then retried or
 * dead-lettered like a handler error; throw NonRetryableError to dead-letter at once). Interceptors are
 * instantiated once per consumer at start-up and shared by concurrent deliveries: keep per-message state
 * in locals, not in fields.
 */
export interface ConsumeInterceptor {
  intercept(context: InterceptionContext, next: () => Promise<unknown>): Promise<unknown>;
}

/** An interceptor instance, or a class tmm obtains from the DI container (or constructs without arguments). */
export type InterceptorRef = ConsumeInterceptor | (new (...args: never[]) => ConsumeInterceptor);
