import type { ContextStore } from '../context/ContextStore';
import type { Stage } from '../consumer/ConsumerPipeline';
import { setCausationId, setCorrelationId } from './correlation';
import { MessageTracer, TraceHeaders } from './MessageTracer';

/**
 * Right after the context stage: makes the delivery's correlation id current (its `tmm-correlation-id`
 * header; for a foreign message without one, its AMQP `correlation_id`, else its message id) and its
 * message id the causation id, so that messages the handler sends carry both on; and, when tracing is on, runs the rest — settle, retry or dead letter included — in the
 * delivery's `process` span. Outcomes are recorded as span events.
 */
export function traceStage(tracer: MessageTracer, store: ContextStore): Stage {
  return (state, next) => {
    const m = state.delivery.message;
    const header = m.headers[TraceHeaders.correlationId];
    const correlationId = typeof header === 'string' && header !== '' ? header : m.correlationId || state.messageId;
    if (correlationId) setCorrelationId(store, correlationId);
    if (state.messageId) setCausationId(store, state.messageId);
    if (!tracer.enabled) return next();
    return tracer.process(
      {
        messageId: state.messageId,
        exchange: state.originalExchange,
        routingKey: state.originalRoutingKey,
        queue: state.def.queue,
        consumer: state.def.name,
        attempt: state.attempt,
        headers: state.delivery.message.headers,
      },
      async (trace) => {
        state.trace = trace;
        await next();
        if (state.outcome === 'duplicate') trace.event('tmm.inbox.duplicate');
        else if (state.outcome === 'requeued' || state.outcome === 'abandoned') trace.event(`tmm.${state.outcome}`);
      },
    );
  };
}

/** Just before the handler (tracing on): the inbox claim succeeded (idempotent consumers), and how long the handler took. */
export function handlerTraceStage(): Stage {
  return async (state, next) => {
    if (state.def.transactional && state.def.idempotent) state.trace?.event('tmm.inbox.claimed');
    const started = performance.now();
    await next();
    state.trace?.event('tmm.handler.completed', { 'tmm.duration_ms': Math.round((performance.now() - started) * 1000) / 1000 });
  };
}
