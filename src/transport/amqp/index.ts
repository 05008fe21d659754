export * from './AmqpTransport';
export { AmqpDelivery, AmqpSubscription, fromAmqpMessage } from './AmqpSubscription';
export { queueArguments } from './amqpTopology';
export { resolveAmqpTransportOptions } from './AmqpTransportOptions';
export { amqpPublishOptions, type AmqpWireOptions, type CloudEventsBinding } from './amqpProperties';
