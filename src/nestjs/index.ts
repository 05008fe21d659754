export { TmmModule, TmmLifecycle } from './TmmModule';
export { TmmHealthIndicator, TmmHealthCheckError, type TmmHealthResult } from './TmmHealthIndicator';
export { TMM_MODULE_OPTIONS, type TmmModuleOptions, type TmmModuleAsyncOptions, type NestToken } from './tokens';
export { nestConsumerSource } from './nestConsumerSource';
