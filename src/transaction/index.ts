export * from './Propagation';
export * from './TransactionScope';
export * from './TransactionManager';
export * from './TypeOrmTransactionManager';
export * from './WriterLock';
export * from './dialect';
