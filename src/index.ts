// The `tmm` entry point: the core. Every name here is exported on purpose (docs/api.md lists and defends
// each); it loads TypeORM's types only, and no broker client, DI container or HTTP server. RabbitMQ is
// `tmm/amqp`, inversify `tmm/inversify`, the in-process transport `tmm/testing`, the admin `tmm/admin`.
import 'reflect-metadata';

// The instance and its options
export { Tmm } from './runtime/Tmm';
export type { TmmComponents, TmmHealth, TmmHealthCheck, TmmStats, ShutdownHooksOptions, TmmAlert, TmmAlerts, ConsumerHeartbeat } from './runtime/Tmm';
export type { AlertOptions } from './runtime/HealthAlerts';
export type { TmmOptions, ResolvedTmmOptions } from './config/TmmOptions';
export { resolveTmmOptions } from './config/TmmOptions';

// Sending
export { MessageProducer } from './outbox/MessageProducer';
export type { SendMode, SendOptions } from './outbox/MessageProducer';
export type { OutboxMessage, TmmHeaders } from './message/OutboxMessage';
export { OutboxStatus } from './message/OutboxMessage';

// Transactions and the async context
export type { TransactionManager } from './transaction/TransactionManager';
export type { TransactionScope, Hook } from './transaction/TransactionScope';
export { Propagation } from './transaction/Propagation';
export type { IsolationLevel, TransactionOptions } from './transaction/Propagation';
export type { ContextStore, TmmContext } from './context/ContextStore';
export { AsyncLocalContextStore } from './context/AsyncLocalContextStore';
export { ClsHookedContextStore } from './context/ClsHookedContextStore';
export type { ClsNamespace } from './context/ClsHookedContextStore';

// Ports (implement these to replace an adapter; each has its contract in its doc comment)
export type { OutboxStore, OutboxRecord, Lease } from './outbox/OutboxStore';
export type { InboxStore } from './consumer/InboxStore';
export type {
  Transport,
  TransportMessage,
  TransportFeatures,
  Headers,
  HeaderValue,
  Topology,
  ExchangeSpec,
  QueueSpec,
  BindingSpec,
  Delivery,
  DeliveryHandler,
  SubscribeOptions,
  Subscription,
} from './transport/Transport';
export type { Logger, LogLevel } from './logging/Logger';
export { ConsoleLogger, silentLogger } from './logging/Logger';
export type { SqlDialect, DialectName } from './sql/SqlDialect';

// SET routing: a Transport over named transports (no broker client of its own)
export { SetRoutingTransport, SetHeaders } from './transport/sets/SetRoutingTransport';
export type { SetFlowStats, SetRoutingOptions } from './transport/sets/SetRoutingTransport';
export { validateSetRules } from './transport/sets/SetRules';
export type { SetKeySource, SetRules } from './transport/sets/SetRules';

// The transaction-log sender mode (sender: 'log'; docs/guarantees.md)
export { TxLogSender, TypeOrmCheckBarrier } from './txlog';
export type { TxLogOptions, TxLogWindow, TxLogProblem, TxLogHealth, CheckAttempt, CheckVerdict, TransactionChecker } from './txlog';
export { TxLogUnavailableError, TxLogNotFoundError, TxLogNotStartedError, TxLogRolledBackByCheckError } from './txlog';
export type { SenderStore, SenderKind } from './outbox/SenderStore';

// The recorded message journey (`journey` option; tmm_journey)
export { JourneyStep } from './journey/JourneyEvent';
export type { JourneyEvent, RecordedJourneyEvent } from './journey/JourneyEvent';
export type { JourneyWriterStats } from './journey/BufferedJourneyRecorder';
export type { MessageJourney } from './journey/timeline';
// Tracing (OpenTelemetry API, optional peer; `tracing` option)
export { TraceHeaders, noopMessageTracer } from './tracing/MessageTracer';
export type { MessageTracer, ProcessTrace, SendInfo, ProcessInfo } from './tracing/MessageTracer';

// Consuming
export type { ConsumeContext, ConsumeInterceptor, InterceptionContext, InterceptorRef } from './consumer/ConsumeContext';
export type { ConsumerRunner, ConsumerStats } from './consumer/ConsumerRunner';
export type { ConsumerSource } from './consumer/ConsumerSource';
export { ConsumerHeaders, DeadLetterReason } from './consumer/ConsumerHeaders';

// Schema
export { migrate, migrationStatements, TmmSchemaMigration } from './runtime/migrate';
export type { MigrationResult, MigrateOptions } from './runtime/migrate';

// Errors (match on `TmmError.is(e, code)`: it works across two installed copies of tmm)
export {
  TmmError,
  MessageValidationError,
  ContractNotRegisteredError,
  PayloadTooLargeError,
  NoActiveTransactionError,
  IllegalTransactionStateError,
  UnexpectedRollbackError,
  CommitInDoubtError,
  ConfigurationError,
  NotConfiguredError,
  UnsupportedDatabaseError,
  MissingPeerDependencyError,
  PublishError,
  TransportClosedError,
  TopologyError,
  NonRetryableError,
  UnparseableMessageError,
  ConsumerDefinitionError,
  HandlerAbandonedError,
  QueueMigrationError,
} from './errors/TmmError';
export type { ConstraintViolation, TmmErrorCode } from './errors/TmmError';
