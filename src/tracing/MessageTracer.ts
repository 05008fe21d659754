import type { Headers, TransportMessage } from '../transport/Transport';

/** The headers tmm's tracing reads and writes. `traceparent`/`tracestate` are W3C Trace Context (lower case on the wire). */
export const TraceHeaders = {
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  /** The conversation a message belongs to: given by the sender, inherited from the message being handled, else the message's own id. */
  correlationId: 'tmm-correlation-id',
  /** The id of the message whose handler sent this one (absent on a message sent outside a handler). */
  causationId: 'tmm-causation-id',
} as const;

/** What the producer knows of a message when it is built (before it is stored). */
export interface SendInfo {
  id: string;
  topic: string;
  exchange: string;
  routingKey: string;
  correlationId: string;
}

/** What the consumer knows of a delivery when its handling starts. */
export interface ProcessInfo {
  messageId: string;
  exchange: string;
  routingKey: string;
  queue: string;
  consumer: string;
  attempt: number;
  headers: Readonly<Headers>;
}

/** The `process` span of one delivery, as the consumer pipeline sees it. */
export interface ProcessTrace {
  /** Adds an event (inbox claimed, handler done, retry, dead letter …) to the span. */
  event(name: string, attributes?: Record<string, string | number | boolean>): void;
  /** Records a failed attempt: an exception event, `error.type`, status ERROR. */
  failed(error: unknown): void;
}

/**
 * The port between tmm and a tracing library.
 *
 * Contract:
 * - `enabled` is false for the no-op tracer: then tmm skips every hook (no span, no header, no allocation).
 * - `send()` runs in the business transaction, once per message as it is built: it starts and ends a
 *   PRODUCER span (`send <exchange>`, a child of the active span) and writes that span's context into
 *   `headers` (`traceparent`, `tracestate` when there is one). The headers are stored with the outbox row,
 *   so the context survives until the relay publishes, in this process or another, minutes later. It writes
 *   nothing when there is no context to propagate (no SDK registered, or an invalid span context).
 * - `publish()` wraps one publish of a stored message: a PRODUCER span (`publish <exchange>`) whose parent
 *   is the context in the message's headers (the send span) and which also links to it; the message goes on
 *   the wire with the publish span's context in its headers. It resolves/rejects exactly as `fn` does.
 * - `process()` runs the handling of one delivery in a CONSUMER span (`process <queue>`) that continues the
 *   trace found in the delivery's headers (no headers: a new trace), active while `fn` runs, so spans the
 *   handler starts are its children. It resolves/rejects exactly as `fn` does, and always ends the span.
 * - No method throws because of tracing: a failing tracing library costs its spans, never a message.
 */
export interface MessageTracer {
  readonly enabled: boolean;
  send(info: SendInfo, headers: Headers): void;
  publish(message: TransportMessage, fn: (message: TransportMessage) => Promise<void>): Promise<void>;
  process(info: ProcessInfo, fn: (trace: ProcessTrace) => Promise<void>): Promise<void>;
}

/** Tracing off: every hook is skipped (tmm checks `enabled` before calling), so this is what it costs. */
export const noopMessageTracer: MessageTracer = {
  enabled: false,
  send() {},
  publish: (message, fn) => fn(message),
  process: (_info, fn) => fn(noopProcessTrace),
};

const noopProcessTrace: ProcessTrace = { event() {}, failed() {} };
