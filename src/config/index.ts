export * from './TmmOptions';
