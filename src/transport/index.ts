export * from './Transport';
export * from './memory';
export * from './amqp';
