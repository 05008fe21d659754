export * from './Transport';
export * from './memory';

