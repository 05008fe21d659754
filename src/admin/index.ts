// The `tmm/admin` entry point: TMM-ADMIN (dead-letter store and service, HTTP API and console, metrics).
// Its inversify module is createTmmAdminModule from `tmm/inversify`.
import './requireAdminPeers';

export { TmmAdmin } from './TmmAdmin';
export { AdminServer } from './AdminServer';
export type { AdminContext } from './AdminServer';
export { resolveAdminOptions, defaultAdminOptions } from './AdminOptions';
export type { AdminOptions, ResolvedAdminOptions } from './AdminOptions';
export { AdminAuth } from './AdminAuth';
export type { Principal } from './AdminAuth';
export { MeteredTransport } from './metrics/MeteredTransport';
export { ThroughputSampler } from './metrics/ThroughputSampler';
export type { ThroughputCounters, ThroughputPoint } from './metrics/ThroughputSampler';
export { TmmMetrics } from './metrics/TmmMetrics';
export type { ConsumerCounts, ProcessCounters, SetMetricsSource } from './metrics/TmmMetrics';
export { AmqpQueueInspector, RabbitManagementQueueInspector } from './queues/QueueInspector';
export type { QueueInspector, QueueDepth, RabbitManagementOptions } from './queues/QueueInspector';
export type { LagReport, ConsumerRate, TmmQueueDepth } from './metrics/LagReport';
export type { LatencyPercentiles, RetryingMessage } from './metrics/LagMetrics';
export type { PurgeResult, RetentionPolicy } from '../deadletter/Retention';
export { redactSecrets } from './redactSecrets';
// What an operator's code works with: the stores and the service behind the console.
export type { DeadLetter, DeadLetterStatus, DeadLetterFilter, DeadLetterSummary, DeadLetterGroup, Page, PageRequest } from '../deadletter/DeadLetter';
export type { DeadLetterStore } from '../deadletter/DeadLetterStore';
export type { DeadLetterService, ActionResult, ResendOptions } from '../deadletter/DeadLetterService';
export type { AuditTrail, AuditEntry, AuditFilter } from '../deadletter/AuditTrail';
export { InvalidInputError, NotFoundError, StateConflictError } from '../errors/AdminErrors';
