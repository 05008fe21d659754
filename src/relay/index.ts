export * from './backoff';
export * from './Dispatcher';
