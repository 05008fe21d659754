export * from './AdminOptions';
export * from './AdminAuth';
export * from './AdminServer';
export * from './TmmAdmin';
export * from './redactSecrets';
export * from './metrics/MeteredTransport';
export * from './metrics/ThroughputSampler';
export * from './metrics/TmmMetrics';
export { createTmmAdminModule } from '../di/createTmmAdminModule';
