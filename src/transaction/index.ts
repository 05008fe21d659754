export * from './Propagation';
export * from './TransactionScope';
export * from './TransactionManager';
export * from './TypeOrmTransactionManager';
export * from './WriterLock';
export * from './dialect';
export { CommitPipeline, PendingWrite, PgCommitPipeline, commitPipelineFor, writesAheadOfCommit } from './CommitPipeline';
