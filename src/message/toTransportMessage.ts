import type { Headers, TransportMessage } from '../transport/Transport';
import { OutboxMessage, TmmHeaders } from './OutboxMessage';

/** Turns an outbox message into what goes on the wire. */
export function toTransportMessage(m: OutboxMessage, attempt = 1): TransportMessage {
  // A plain copy loop: a spread with computed keys is several times slower, and this runs per message.
  const headers: Headers = {};
  for (const k in m.headers) headers[k] = m.headers[k];
  let body: Buffer;
  if (headers[TmmHeaders.payloadEncoding] === 'base64') {
    delete headers[TmmHeaders.payloadEncoding];
    body = Buffer.from(m.payload, 'base64');
  } else {
    body = Buffer.from(m.payload, 'utf8');
  }
  headers[TmmHeaders.topic] = m.topic;
  headers[TmmHeaders.attempt] = attempt;
  if (m.orderingKey) headers[TmmHeaders.orderingKey] = m.orderingKey;
  return {
    id: m.id,
    exchange: m.exchange,
    routingKey: m.routingKey,
    body,
    headers,
    contentType: 'application/json',
    timestamp: m.createdAt,
  };
}
