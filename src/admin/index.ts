// The `tmm/admin` entry point: TMM-ADMIN (dead-letter store and service, HTTP API and console, metrics).
// Its inversify module is createTmmAdminModule from `tmm/inversify`.
import './requireAdminPeers';
export * from './AdminOptions';
export * from './AdminAuth';
export * from './AdminServer';
export * from './TmmAdmin';
export * from './redactSecrets';
export * from './metrics/MeteredTransport';
export * from './metrics/ThroughputSampler';
export * from './metrics/TmmMetrics';
