export * from './TmmError';
export * from './AdminErrors';
