// The `tmm/nestjs` entry point: TmmModule for NestJS 10 and 11 (the only code that loads @nestjs/*, optional peers).
import { requirePeer } from '../errors/TmmError';

requirePeer('@nestjs/common', 'tmm/nestjs');
requirePeer('@nestjs/core', 'tmm/nestjs');

export { TmmModule, TmmLifecycle } from './TmmModule';
export { TmmHealthIndicator, TmmHealthCheckError, type TmmHealthResult } from './TmmHealthIndicator';
export { TMM_MODULE_OPTIONS, type TmmModuleOptions, type TmmModuleAsyncOptions, type NestToken } from './tokens';
export { nestConsumerSource } from './nestConsumerSource';
// Injection tokens by class (Nest injects by class): the transaction manager tmm wires for the DataSource.
export { TypeOrmTransactionManager } from '../transaction/TypeOrmTransactionManager';
