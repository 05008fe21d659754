export * from './OutboxStore';
export * from './TypeOrmOutboxStore';
export * from './MessageProducer';
export * from './schema';
