import type { DeliveryState } from '../consumer/DeliveryState';
import { TmmHeaders } from '../message/OutboxMessage';
import { LegacyHeaders, WireHeaders } from '../message/WireHeaders';
import { ConsumerHeaders } from '../consumer/ConsumerHeaders';
import { TraceHeaders } from '../tracing/MessageTracer';
import { businessKeyOf } from './businessKey';
import { JourneyStep, type JourneyRecorder } from './JourneyEvent';

const OUTCOME: Record<string, string> = {
  handled: 'consumed',
  duplicate: 'duplicate',
  retried: 'failed',
  'dead-lettered': 'failed',
  requeued: 'requeued',
  abandoned: 'abandoned',
};

/** True when a tmm relay (or fast path) published the message: it carries the publish attempt header. */
function publishedByTmm(state: DeliveryState): boolean {
  const h = state.delivery.message.headers;
  return h[WireHeaders.publishAttempt] !== undefined || h[LegacyHeaders.publishAttempt] !== undefined || h[TmmHeaders.contractVersion] !== undefined;
}

/**
 * The consumer's journey steps for one settled delivery: `received` first for a message tmm did not produce
 * (its first delivery only), then `delivered` (time: when handling started; attempt, outcome, duration), then
 * `retried` or `dead-lettered` when the attempt failed and a copy went to a retry or dead-letter queue.
 * Messages without an id are not recorded (there is nothing to find them by).
 */
export function recordDelivery(recorder: JourneyRecorder, instance: string, businessKeys: readonly (readonly string[])[], state: DeliveryState, startedAt: number): void {
  const messageId = state.messageId;
  if (!messageId) return;
  const now = Date.now();
  const source = `${state.def.name}@${instance}`;
  const attempt = state.attempt;
  if (attempt === 1 && !state.delivery.redelivered && state.delivery.message.headers[ConsumerHeaders.attempt] === undefined && !publishedByTmm(state)) {
    const m = state.delivery.message;
    const correlation = m.headers[TraceHeaders.correlationId] ?? m.correlationId;
    recorder.record({
      messageId,
      step: JourneyStep.Received,
      at: startedAt,
      source,
      detail: `not produced by tmm${m.appId ? ` (app ${m.appId})` : ''}: ${m.exchange || '(default exchange)'} / ${m.routingKey}`,
      correlationId: typeof correlation === 'string' && correlation !== '' ? correlation : null,
      businessKey: businessKeys.length > 0 ? businessKeyOf(state.message, businessKeys) : null,
    });
  }
  const outcome = OUTCOME[state.outcome ?? 'handled'] ?? state.outcome ?? 'consumed';
  const f = state.failure;
  recorder.record({
    messageId,
    step: JourneyStep.Delivered,
    at: startedAt,
    source,
    attempt,
    outcome,
    durationMs: now - startedAt,
    detail: outcome === 'failed' && f ? f.error : `queue ${state.def.queue}`,
  });
  if (state.outcome === 'retried' && f) {
    recorder.record({ messageId, step: JourneyStep.Retried, at: f.at ?? now, source, attempt, detail: `to ${f.queue} for ${f.delayMs} ms: ${f.error}` });
  } else if (state.outcome === 'dead-lettered' && f) {
    recorder.record({ messageId, step: JourneyStep.DeadLettered, at: f.at ?? now, source, attempt, outcome: f.reason ?? null, detail: `to ${f.queue}: ${f.error}` });
  }
}
