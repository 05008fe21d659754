export * from './CheckBack';
export * from './DualLog';
export * from './errors';
export * from './frame';
export * from './LogDirectory';
export * from './records';
export * from './TxLogSender';
