// The `tmm/amqp` entry point: the RabbitMQ transport (the only code that loads amqplib, an optional peer).
import { requirePeer } from '../../errors/TmmError';

requirePeer('amqplib', 'tmm/amqp (the RabbitMQ transport)');

export * from './AmqpTransport';
export { AmqpDelivery, AmqpSubscription, fromAmqpMessage } from './AmqpSubscription';
export { queueArguments } from './amqpTopology';
export { resolveAmqpTransportOptions } from './AmqpTransportOptions';
export { amqpPublishOptions, type AmqpWireOptions, type CloudEventsBinding } from './amqpProperties';
export {
  migrateQueuesToQuorum,
  holdingQueueName,
  type QuorumMigrationOptions,
  type QuorumMigrationReport,
  type QueueMigrationReport,
  type QueueKind,
  type QueueRole,
} from './quorumMigration';
