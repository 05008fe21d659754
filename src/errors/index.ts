export * from './TmmError';
export * from './AdminErrors';
export * from './failureKind';
