import { createHash } from 'node:crypto';
import { MsgHdrsImpl, headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { ConsumerHeaders } from '../../consumer/ConsumerHeaders';
import type { Headers, QueueSpec, TransportMessage } from '../Transport';

/** NATS headers tmm writes; the message's own headers travel JSON-encoded in one of them (exact types, any characters). */
export const NatsWireHeaders = {
  id: 'Tmm-Message-Id',
  exchange: 'Tmm-Exchange',
  routingKey: 'Tmm-Routing-Key',
  contentType: 'Tmm-Content-Type',
  timestamp: 'Tmm-Timestamp',
  headers: 'Tmm-Headers',
} as const;

/** Names of everything tmm keeps on the server for one prefix. */
export class NatsNames {
  readonly routesStream: string;
  readonly routesSubject: string;
  readonly leasesStream: string;
  readonly durable = 'tmm';
  /** queueSubject() per queue: it hashes the name, and every publish asks for it. */
  private readonly subjects = new Map<string, string>();
  constructor(readonly prefix: string) {
    const P = prefix.toUpperCase().replace(/-/g, '_');
    this.routesStream = `${P}_ROUTES`;
    this.routesSubject = `${prefix}.routes`;
    this.leasesStream = `${P}_LEASES`;
  }
  /** Readable part of a queue name plus a hash of all of it: stream names allow no dots, subjects no wildcards. */
  queueToken(queue: string): string {
    const readable = queue.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48);
    return `${readable}_${hash(queue).slice(0, 12)}`;
  }
  queueStream(queue: string): string {
    return `${this.prefix.toUpperCase().replace(/-/g, '_')}_Q_${this.queueToken(queue)}`;
  }
  queueSubject(queue: string): string {
    let subject = this.subjects.get(queue);
    if (subject === undefined) {
      subject = `${this.prefix}.q.${this.queueToken(queue)}`;
      if (this.subjects.size >= 10_000) this.subjects.clear();
      this.subjects.set(queue, subject);
    }
    return subject;
  }
  bindingSubject(exchange: string, routingKey: string, queue: string): string {
    return `${this.routesSubject}.b.${hash(`${exchange}\u0000${routingKey}\u0000${queue}`).slice(0, 32)}`;
  }
  exchangeSubject(exchange: string): string {
    return `${this.routesSubject}.x.${hash(exchange).slice(0, 32)}`;
  }
  queueSpecSubject(queue: string): string {
    return `${this.routesSubject}.q.${hash(queue).slice(0, 32)}`;
  }
  leaseSubject(queue: string): string {
    return `${this.prefix}.leases.${hash(queue).slice(0, 32)}`;
  }
}

export function hash(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** What decides whether two declarations of a queue are the same queue (bindings only add up). */
export interface QueueIdentity {
  type: 'classic' | 'quorum';
  deadLetterExchange: string | null;
  deadLetterRoutingKey: string | null;
  messageTtl: number | null;
  singleActiveConsumer: boolean;
}

export function queueIdentity(spec: QueueSpec): QueueIdentity {
  return {
    type: spec.type ?? 'classic',
    deadLetterExchange: spec.deadLetterExchange ?? null,
    deadLetterRoutingKey: spec.deadLetterRoutingKey ?? null,
    messageTtl: spec.messageTtl ?? null,
    singleActiveConsumer: spec.singleActiveConsumer ?? false,
  };
}

export function identityDiff(a: QueueIdentity, b: QueueIdentity): string[] {
  return (Object.keys(a) as Array<keyof QueueIdentity>).filter((k) => a[k] !== b[k]);
}

/**
 * The JetStream message id of a publish: the tmm message id, plus the consume attempt of a retry copy and a
 * mark for a dead-letter copy, so that each hop of one message is its own publish to the duplicate window
 * (a retry copy is not taken for a duplicate of the original) while a repeated publish of the same hop is.
 */
export function publishMsgId(message: TransportMessage): string {
  const h = message.headers;
  let id = message.id;
  if (h[ConsumerHeaders.attempt] !== undefined && h[ConsumerHeaders.attempt] !== null) id += `.a${String(h[ConsumerHeaders.attempt])}`;
  if (h[ConsumerHeaders.deadLetterReason] !== undefined && h[ConsumerHeaders.deadLetterReason] !== null) id += '.dl';
  return id;
}

/** A header value the NATS client would store unchanged: no CR/LF (it refuses those) and nothing to trim. */
const PLAIN_VALUE = /^(?:[^\s]|[^\s][^\r\n]*[^\s])$/;

/**
 * The NATS headers of a publish. The client's `headers().set()` looks up, validates and trims every value
 * it is given (a regular expression, two key scans and an array per call); this runs once per published
 * message, so the headers are built in one step from a record (`MsgHdrsImpl.fromRecord`, no checks) when
 * every value is known to be plain: the URI-encoded exchange and routing key, the JSON of the headers (JSON
 * escapes CR/LF) and the number are; the ids and the content type are tested. Anything else takes the
 * client's checked path, which rejects a CR or LF with its own error.
 */
export function encodeHeaders(message: TransportMessage, msgId: string): MsgHdrs {
  if (PLAIN_VALUE.test(msgId) && PLAIN_VALUE.test(message.id) && PLAIN_VALUE.test(message.contentType)) {
    return MsgHdrsImpl.fromRecord({
      'Nats-Msg-Id': [msgId],
      [NatsWireHeaders.id]: [message.id],
      [NatsWireHeaders.exchange]: [encodeURIComponent(message.exchange)],
      [NatsWireHeaders.routingKey]: [encodeURIComponent(message.routingKey)],
      [NatsWireHeaders.contentType]: [message.contentType],
      [NatsWireHeaders.timestamp]: [String(message.timestamp)],
      [NatsWireHeaders.headers]: [JSON.stringify(message.headers)],
    });
  }
  const h = natsHeaders();
  h.set('Nats-Msg-Id', msgId);
  h.set(NatsWireHeaders.id, message.id);
  h.set(NatsWireHeaders.exchange, encodeURIComponent(message.exchange));
  h.set(NatsWireHeaders.routingKey, encodeURIComponent(message.routingKey));
  h.set(NatsWireHeaders.contentType, message.contentType);
  h.set(NatsWireHeaders.timestamp, String(message.timestamp));
  h.set(NatsWireHeaders.headers, JSON.stringify(message.headers));
  return h;
}

/** The TransportMessage of a stored NATS message (foreign messages without tmm headers get defaults). */
export function decodeMessage(data: Uint8Array, h: MsgHdrs | undefined, fallbackTime: number): TransportMessage {
  const get = (k: string): string | undefined => (h?.has(k) ? h.get(k) : undefined);
  let headers: Headers = {};
  const raw = get(NatsWireHeaders.headers);
  if (raw) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) headers = parsed as Headers;
    } catch {
      headers = {};
    }
  }
  const ts = Number(get(NatsWireHeaders.timestamp));
  return {
    id: get(NatsWireHeaders.id) ?? get('Nats-Msg-Id') ?? '',
    exchange: decodeURIComponent(get(NatsWireHeaders.exchange) ?? ''),
    routingKey: decodeURIComponent(get(NatsWireHeaders.routingKey) ?? ''),
    body: Buffer.from(data),
    headers,
    contentType: get(NatsWireHeaders.contentType) ?? 'application/octet-stream',
    timestamp: Number.isFinite(ts) ? ts : fallbackTime,
  };
}
