export * from './OutboxMessage';
export * from './MessageContracts';
export * from './WireHeaders';
export * from './messageId';
