export * from './TmmError';
