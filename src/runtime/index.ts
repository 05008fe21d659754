export * from './Tmm';
export * from './TmmRegistry';
export * from './wrapInTransaction';
export * from './migrate';
