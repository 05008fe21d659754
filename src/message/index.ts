export * from './OutboxMessage';
export * from './MessageContracts';
