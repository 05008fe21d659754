import type * as amqp from 'amqplib';
import { ConfigurationError } from '../../errors';
import { TmmHeaders } from '../../message/OutboxMessage';
import { WireHeaders } from '../../message/WireHeaders';
import type { HeaderValue, Headers, TransportMessage } from '../Transport';

/**
 * The opt-in CloudEvents 1.0 binding, binary content mode: the event attributes travel as application
 * properties (AMQP headers) next to the unchanged JSON body; `datacontenttype` is the AMQP content-type.
 * The AMQP protocol binding names them `cloudEvents_<attr>` (the default); `cloudEvents:` (the binding's
 * older prefix) and `ce-` (the HTTP/Kafka spelling some AMQP stacks use) can be chosen.
 */
export interface CloudEventsBinding {
  /** The event `source` (a URI reference naming this service, e.g. `/orders-service`). */
  source: string;
  /** Header prefix; default `cloudEvents_`. */
  prefix?: 'cloudEvents_' | 'cloudEvents:' | 'ce-';
}

/** What the AMQP mapping adds on publish beyond the message itself. */
export interface AmqpWireOptions {
  /** The AMQP `app_id` of messages that carry none: the service name. */
  appId: string;
  cloudEvents?: CloudEventsBinding;
}

/** Checks the wire options (ConfigurationError naming the key, relative to the transport options). */
export function validateAmqpWireOptions(appId: unknown, cloudEvents: unknown): void {
  if (appId !== undefined && (typeof appId !== 'string' || appId.length === 0 || appId.length > 255)) {
    throw new ConfigurationError('appId', 'must be a non-empty string of at most 255 characters');
  }
  if (cloudEvents === undefined) return;
  if (cloudEvents === null || typeof cloudEvents !== 'object') throw new ConfigurationError('cloudEvents', 'must be an object { source, prefix? }');
  const c = cloudEvents as Record<string, unknown>;
  for (const k of Object.keys(c)) if (k !== 'source' && k !== 'prefix') throw new ConfigurationError(`cloudEvents.${k}`, 'unknown option');
  if (typeof c.source !== 'string' || c.source.length === 0) throw new ConfigurationError('cloudEvents.source', 'must be a non-empty URI reference naming this service');
  if (c.prefix !== undefined && !['cloudEvents_', 'cloudEvents:', 'ce-'].includes(c.prefix as string)) {
    throw new ConfigurationError('cloudEvents.prefix', `must be "cloudEvents_", "cloudEvents:" or "ce-", got ${String(c.prefix)}`);
  }
}

/**
 * TransportMessage → amqplib publish options (docs/wire-format.md): persistent, mandatory, `message_id`,
 * `content_type`, `timestamp` (POSIX seconds; the milliseconds in `tmm-timestamp-ms`), `type` (the topic),
 * `app_id`, `correlation_id` (the `tmm-correlation-id` header, else the message id) and the headers.
 * Properties a message already carries (retry and dead-letter copies of a foreign message) are kept.
 */
export function amqpPublishOptions(message: TransportMessage, wire: AmqpWireOptions): amqp.Options.Publish {
  const h = message.headers;
  const topic = message.type ?? (typeof h[TmmHeaders.topic] === 'string' ? (h[TmmHeaders.topic] as string) : undefined);
  const correlationId = message.correlationId ?? (typeof h[WireHeaders.correlationId] === 'string' ? (h[WireHeaders.correlationId] as string) : undefined) ?? (message.id || undefined);
  const appId = message.appId ?? wire.appId;
  // A copy loop and plain assignments, not spreads with computed keys: this runs for every publish.
  const headers: Headers = {};
  for (const k in h) headers[k] = h[k];
  headers[WireHeaders.timestampMs] = message.timestamp;
  if (wire.cloudEvents) Object.assign(headers, cloudEventHeaders(message, topic, wire.cloudEvents, h));
  const options: amqp.Options.Publish = {
    persistent: true,
    mandatory: true,
    messageId: message.id || undefined,
    contentType: message.contentType,
    timestamp: Math.floor(message.timestamp / 1000),
    appId,
    headers,
  };
  if (topic !== undefined) options.type = topic;
  if (correlationId !== undefined) options.correlationId = correlationId;
  return options;
}

function cloudEventHeaders(message: TransportMessage, topic: string | undefined, ce: CloudEventsBinding, existing: Headers): Headers {
  const p = ce.prefix ?? 'cloudEvents_';
  // A copy (retry, dead letter) of an event keeps its attributes.
  if (typeof existing[`${p}id`] === 'string') return {};
  return {
    [`${p}specversion`]: '1.0',
    [`${p}id`]: message.id,
    [`${p}source`]: ce.source,
    [`${p}type`]: topic ?? message.routingKey,
    [`${p}time`]: new Date(message.timestamp).toISOString(),
  };
}

/**
 * An AMQP message → TransportMessage. Non-scalar headers (x-death tables, arrays) arrive as JSON text. The
 * time is `tmm-timestamp-ms` when present (removed from the headers), else the `timestamp` property
 * (seconds), else now; the message
 * id is `message_id`, else a CloudEvents `id` attribute, else empty (a foreign message without either).
 */
export function fromAmqpMessage(msg: amqp.Message): TransportMessage {
  const p = msg.properties;
  const headers: Headers = {};
  for (const [k, v] of Object.entries(p.headers ?? {})) headers[k] = toHeaderValue(v);
  const ms = headers[WireHeaders.timestampMs];
  // A detail of this mapping: it becomes `timestamp`, so headers arrive as they were published.
  delete headers[WireHeaders.timestampMs];
  const ceId = headers['cloudEvents_id'] ?? headers['cloudEvents:id'] ?? headers['ce-id'] ?? headers['ce_id'];
  const out: TransportMessage = {
    id: typeof p.messageId === 'string' && p.messageId ? p.messageId : typeof ceId === 'string' ? ceId : '',
    exchange: msg.fields.exchange,
    routingKey: msg.fields.routingKey,
    body: msg.content,
    headers,
    contentType: typeof p.contentType === 'string' ? p.contentType : 'application/octet-stream',
    timestamp: typeof ms === 'number' && Number.isFinite(ms) ? ms : typeof p.timestamp === 'number' ? p.timestamp * 1000 : Date.now(),
  };
  if (typeof p.type === 'string' && p.type) out.type = p.type;
  if (typeof p.appId === 'string' && p.appId) out.appId = p.appId;
  if (typeof p.correlationId === 'string' && p.correlationId) out.correlationId = p.correlationId;
  return out;
}

function toHeaderValue(v: unknown): HeaderValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof Date) return v.getTime();
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}
