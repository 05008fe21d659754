import type { ContextStore } from '../context/ContextStore';
import type { Headers } from '../transport/Transport';
import { MessageTracer, TraceHeaders } from './MessageTracer';

const CORRELATION = Symbol('tmm:correlation-id');
const CAUSATION = Symbol('tmm:causation-id');

/** The correlation id of the code running now: the one of the message being handled, if any. */
export function currentCorrelationId(store: ContextStore): string | undefined {
  return store.get()?.slots.get(CORRELATION) as string | undefined;
}

/** Makes `id` the current correlation id for the rest of the current context (messages sent there inherit it). */
export function setCorrelationId(store: ContextStore, id: string): void {
  store.get()?.slots.set(CORRELATION, id);
}

/** The id of the message being handled by the code running now, if any. */
export function currentCausationId(store: ContextStore): string | undefined {
  return store.get()?.slots.get(CAUSATION) as string | undefined;
}

/** Makes `id` the current causation id (the message being handled) for the rest of the current context. */
export function setCausationId(store: ContextStore, id: string): void {
  store.get()?.slots.set(CAUSATION, id);
}

/**
 * The producer's hook, per message as it is built: the correlation id (a `tmm-correlation-id` header the
 * sender gave; else the current one, inherited from the message being handled; else the message's own id),
 * the causation id (a `tmm-causation-id` header the sender gave; else the id of the message being handled,
 * if any) and, when tracing is on, the send span whose context goes into the headers.
 */
export function stampOutgoing(
  tracer: MessageTracer,
  store: ContextStore,
  headers: Headers,
  m: { id: string; topic: string; exchange: string; routingKey: string },
): void {
  const slots = store.get()?.slots; // read once: both ids come from the same context
  let correlationId = headers[TraceHeaders.correlationId];
  if (typeof correlationId !== 'string' || correlationId === '') {
    correlationId = (slots?.get(CORRELATION) as string | undefined) ?? m.id;
    headers[TraceHeaders.correlationId] = correlationId;
  }
  const causationId = headers[TraceHeaders.causationId];
  if (typeof causationId !== 'string' || causationId === '') {
    const current = slots?.get(CAUSATION) as string | undefined;
    if (current !== undefined) headers[TraceHeaders.causationId] = current;
  }
  if (tracer.enabled) tracer.send({ ...m, correlationId }, headers);
}
