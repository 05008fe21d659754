// The `tmm/nats` entry point: the NATS JetStream transport (the only code that loads the NATS client modules,
// optional peers).
import { requirePeer } from '../../errors/TmmError';

requirePeer('@nats-io/transport-node', 'tmm/nats (the NATS JetStream transport)');
requirePeer('@nats-io/jetstream', 'tmm/nats (the NATS JetStream transport)');

export { NatsTransport } from './NatsTransport';
export { defaultNatsTransportOptions, resolveNatsTransportOptions } from './NatsTransportOptions';
export type { NatsTransportOptions, NatsTransportOptionsInput } from './NatsTransportOptions';
export { NatsWireHeaders } from './natsWire';
