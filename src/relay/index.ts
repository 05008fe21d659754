export * from './backoff';
export * from './Dispatcher';
export * from './Relay';
export * from './RelayLock';
export * from './RelayObserver';
