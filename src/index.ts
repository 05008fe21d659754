import 'reflect-metadata';

export * from './errors';
export * from './logging/Logger';
export * from './metadata';
export * from './message';
export * from './context';
export * from './transaction';
export * from './transport';
export * from './outbox';
export * from './relay';
export * from './consumer';
export * from './deadletter';
export * from './config';
export * from './runtime';
export * from './di';
