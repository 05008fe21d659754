export * from './MessageContract';
export * from './Transactional';
export * from './Consumer';
export * from './Idempotent';
export * from './UseInterceptors';
