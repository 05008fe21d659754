export * from './OutboxStore';
export * from './TypeOrmOutboxStore';
export * from './MessageProducer';
export * from './schema';
export * from './SenderStore';
