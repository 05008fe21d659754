// Everything under src/, for tmm's own tests and benchmarks. NOT a package entry point (package.json "exports"
// does not list it): apps use the public entry points (src/index.ts, src/entry/*).
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
export * from './tracing';
export * from './journey';

export * from './transport/amqp';
export * from './di';
export * from './sql/SqlDialect';
export * from './transport/sets';
export * from './transport/nats';
export * from './txlog';
