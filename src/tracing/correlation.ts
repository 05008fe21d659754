import type { ContextStore } from '../context/ContextStore';
import type { Headers } from '../transport/Transport';
import { MessageTracer, TraceHeaders } from './MessageTracer';

const CORRELATION = Symbol('tmm:correlation-id');

/** The correlation id of the code running now: the one of the message being handled, if any. */
export function currentCorrelationId(store: ContextStore): string | undefined {
  return store.get()?.slots.get(CORRELATION) as string | undefined;
}

/** Makes `id` the current correlation id for the rest of the current context (messages sent there inherit it). */
export function setCorrelationId(store: ContextStore, id: string): void {
  store.get()?.slots.set(CORRELATION, id);
}

/**
 * The producer's hook, per message as it is built: the correlation id (a `tmm-correlation-id` header the
 * sender gave; else the current one, inherited from the message being handled; else the message's own id)
 * and, when tracing is on, the send span whose context goes into the headers.
 */
export function stampOutgoing(
  tracer: MessageTracer,
  store: ContextStore,
  headers: Headers,
  m: { id: string; topic: string; exchange: string; routingKey: string },
): void {
  let correlationId = headers[TraceHeaders.correlationId];
  if (typeof correlationId !== 'string' || correlationId === '') {
    correlationId = currentCorrelationId(store) ?? m.id;
    headers[TraceHeaders.correlationId] = correlationId;
  }
  if (tracer.enabled) tracer.send({ ...m, correlationId }, headers);
}
