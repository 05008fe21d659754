export * from './tokens';
export * from './createTmmModule';
