export { NatsTransport } from './NatsTransport';
export { defaultNatsTransportOptions, resolveNatsTransportOptions } from './NatsTransportOptions';
export type { NatsTransportOptions, NatsTransportOptionsInput } from './NatsTransportOptions';
export { NatsWireHeaders } from './natsWire';
