import { HandlerAbandonedError, MessageValidationError, NonRetryableError, TmmError, UnparseableMessageError, classifyFailure } from '../errors';
import type { Logger } from '../logging/Logger';
import { TmmHeaders } from '../message/OutboxMessage';
import type { Headers, Transport } from '../transport/Transport';
import { retryQueueName } from './ConsumerDefinition';
import { BROKER_DEATH_HEADERS, ConsumerHeaders, DeadLetterReason } from './ConsumerHeaders';
import type { ConsumerDefinition } from './ConsumerDefinition';
import type { DeliveryState } from './DeliveryState';
import type { StopGate } from './StopGate';

export type RecoveryDecision = { action: 'retry'; delayMs: number } | { action: 'dead-letter'; reason: DeadLetterReason };

export interface RecoveryPolicyOptions {
  maxStackLength: number;
  recoveryFailureDelayMs: number;
  logger: Logger;
}

const MAX_ERROR_MESSAGE = 1000;

/**
 * What happens to a delivery whose handling failed, in this order:
 * 1. A handler abandoned at shutdown: nothing (its delivery was given back to the broker unsettled).
 * 2. An unparseable body, a payload that fails validation, a NonRetryableError (or a missing message id on
 *    an idempotent consumer), a failure classifyFailure calls permanent (the database refuses a value of
 *    the message): dead-lettered at once.
 * 3. Attempts left: retried after `delays[attempt-1]` — a copy with `tmm-consume-attempt` + 1 is published
 *    (publisher confirm) to the retry queue for that delay, whose TTL dead-letters it back into the work
 *    queue; ordered consumers instead wait in place and run the pipeline again, so later messages never
 *    overtake it.
 * 4. Otherwise: dead-lettered — a copy is published to the consumer's dead-letter queue with the error,
 *    truncated stack, attempts, consumer, original route and first/last failure times in headers.
 * The original delivery is acked only after the broker confirmed the copy. When the copy cannot be
 * published, the delivery is nacked back to the queue (after `recoveryFailureDelayMs`, so a broker
 * problem does not become a hot loop): redelivered, never lost.
 */
export class RecoveryPolicy {
  constructor(
    private readonly transport: Transport,
    private readonly options: RecoveryPolicyOptions,
  ) {}

  decide(def: ConsumerDefinition, attempt: number, error: unknown): RecoveryDecision {
    if (error instanceof UnparseableMessageError) return { action: 'dead-letter', reason: DeadLetterReason.Unparseable };
    if (error instanceof MessageValidationError) return { action: 'dead-letter', reason: DeadLetterReason.InvalidMessage };
    if (TmmError.isNonRetryable(error)) {
      return { action: 'dead-letter', reason: error.code === 'TMM_MESSAGE_ID_MISSING' ? DeadLetterReason.MissingMessageId : DeadLetterReason.NonRetryable };
    }
    // A failure that will happen again identically (the database refuses a value of this message, e.g. a NUL
    // in its id on the inbox insert) is not retried: classifyFailure decides, as for the relay.
    if (classifyFailure(error) === 'permanent') return { action: 'dead-letter', reason: DeadLetterReason.NonRetryable };
    if (attempt >= def.maxAttempts) return { action: 'dead-letter', reason: DeadLetterReason.MaxAttempts };
    return { action: 'retry', delayMs: def.delays[Math.min(attempt - 1, def.delays.length - 1)] };
  }

  /**
   * Settles a failed delivery per the policy. `rerun` runs the pipeline again (ordered consumers' in-place
   * retries); it throws what the attempt threw.
   */
  async recover(state: DeliveryState, error: unknown, rerun: () => Promise<void>, gate: StopGate): Promise<void> {
    const { def, delivery } = state;
    for (;;) {
      if (gate.abandoned || error instanceof HandlerAbandonedError) {
        state.outcome = 'abandoned';
        return;
      }
      state.trace?.failed(error);
      const now = Date.now();
      state.firstFailureAt ??= now;
      const decision = this.decide(def, state.attempt, error);
      const fields = { consumer: def.name, queue: def.queue, messageId: state.messageId, attempt: state.attempt, error: errorText(error) };

      state.failure = { error: fields.error };
      if (decision.action === 'retry' && def.ordered) {
        this.options.logger.warn('consumer attempt failed; retrying in place (ordered)', { ...fields, delayMs: decision.delayMs });
        if (!(await gate.sleep(decision.delayMs))) {
          // Stopping: give it back at the head of the queue; the next consumer starts again at attempt 1.
          await delivery.nack({ requeue: true });
          state.outcome = 'requeued';
          return;
        }
        state.attempt++;
        try {
          await rerun();
        } catch (e) {
          error = e;
          continue;
        }
        await delivery.ack();
        state.outcome ??= 'handled';
        return;
      }

      const target = decision.action === 'retry' ? retryQueueName(def.queue, decision.delayMs) : def.deadLetterQueue;
      const headers = this.copyHeaders(state, error, now, decision);
      if (decision.action === 'retry') this.options.logger.warn('consumer attempt failed; retrying', { ...fields, delayMs: decision.delayMs });
      else this.options.logger.error('consumer message dead-lettered', { ...fields, reason: decision.reason, deadLetterQueue: target });
      const m = delivery.message;
      try {
        const copy = {
          id: m.id,
          exchange: '',
          routingKey: target,
          body: m.body,
          headers,
          contentType: m.contentType,
          timestamp: m.timestamp,
          // A foreign message's AMQP properties stay on its copies.
          ...(m.type !== undefined ? { type: m.type } : {}),
          ...(m.appId !== undefined ? { appId: m.appId } : {}),
          ...(m.correlationId !== undefined ? { correlationId: m.correlationId } : {}),
        };
        try {
          await this.transport.publish(copy);
        } catch (first) {
          // The copy itself cannot be encoded (the original's headers plus ours are over the client's limit):
          // retrying it never helps, so it goes again with the largest original headers dropped to fit a budget
          // (their names listed in tmm-dropped-headers), and as a last resort with tmm's headers only.
          if (classifyFailure(first) !== 'permanent') throw first;
          this.options.logger.warn('consumer copy too large to encode; sending it within the header budget', { ...fields, error: errorText(first) });
          try {
            await this.transport.publish({ ...copy, headers: fitBudget({ ...headers }) });
          } catch (second) {
            if (classifyFailure(second) !== 'permanent') throw second;
            await this.transport.publish({ ...copy, headers: tmmHeadersOnly(headers) });
          }
        }
      } catch (publishError) {
        this.options.logger.error('consumer could not publish the retry/dead-letter copy; the message goes back to its queue', {
          ...fields,
          target,
          publishError: errorText(publishError),
        });
        await gate.sleep(this.options.recoveryFailureDelayMs);
        if (gate.abandoned) {
          state.outcome = 'abandoned';
          return;
        }
        await delivery.nack({ requeue: true });
        state.outcome = 'requeued';
        return;
      }
      // When the broker confirmed the copy: the time of the retried / dead-lettered step.
      const at = Date.now();
      state.failure = decision.action === 'retry' ? { error: fields.error, at, queue: target, delayMs: decision.delayMs } : { error: fields.error, at, queue: target, reason: decision.reason };
      state.trace?.event(decision.action === 'retry' ? 'tmm.retry' : 'tmm.dead_letter', decision.action === 'retry' ? { 'tmm.queue': target, 'tmm.delay_ms': decision.delayMs } : { 'tmm.queue': target, 'tmm.dead_letter.reason': decision.reason });
      if (decision.action === 'retry') state.retry = { queue: target, delayMs: decision.delayMs, dueAt: Date.now() + decision.delayMs, error: String(headers[ConsumerHeaders.errorMessage]) };
      await delivery.ack();
      state.outcome = decision.action === 'retry' ? 'retried' : 'dead-lettered';
      return;
    }
  }

  private copyHeaders(state: DeliveryState, error: unknown, now: number, decision: RecoveryDecision): Headers {
    const h: Headers = { ...state.delivery.message.headers };
    for (const k of BROKER_DEATH_HEADERS) delete h[k];
    h[ConsumerHeaders.originalExchange] = state.originalExchange;
    h[ConsumerHeaders.originalRoutingKey] = state.originalRoutingKey;
    h[TmmHeaders.topic] ??= state.topic;
    h[ConsumerHeaders.firstFailureAt] = new Date(state.firstFailureAt ?? now).toISOString();
    h[ConsumerHeaders.lastFailureAt] = new Date(now).toISOString();
    h[ConsumerHeaders.errorMessage] = truncate(errorText(error), MAX_ERROR_MESSAGE);
    h[ConsumerHeaders.errorCode] = errorCode(error);
    if (decision.action === 'retry') {
      h[ConsumerHeaders.attempt] = state.attempt + 1;
    } else {
      h[ConsumerHeaders.attempt] = state.attempt;
      h[ConsumerHeaders.errorStack] = truncate(error instanceof Error && error.stack ? error.stack : errorText(error), this.options.maxStackLength);
      h[ConsumerHeaders.consumer] = state.def.name;
      h[ConsumerHeaders.consumerQueue] = state.def.queue;
      h[ConsumerHeaders.deadLetterReason] = decision.reason;
    }
    return h;
  }
}

/**
 * Room for the headers of a retry or dead-letter copy that could not be encoded as it was, as JSON bytes (a close estimate of
 * amqplib's field-table encoding, whose buffer is 64 KiB): what tmm adds (error ≤ 1 KB, stack ≤
 * maxStackLength, names, times) must still fit beside them.
 */
const COPY_HEADER_BUDGET_BYTES = 40 * 1024;

/** Drops the largest non-tmm headers until the rest fit COPY_HEADER_BUDGET_BYTES; lists what was dropped. */
function fitBudget(h: Headers): Headers {
  const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v) ?? '', 'utf8');
  let total = size(h);
  if (total <= COPY_HEADER_BUDGET_BYTES) return h;
  const dropped: string[] = [];
  const candidates = Object.keys(h)
    .filter((k) => !k.startsWith('tmm-'))
    .sort((a, b) => size(h[b]) - size(h[a]));
  for (const k of candidates) {
    if (total <= COPY_HEADER_BUDGET_BYTES) break;
    total -= size(h[k]) + Buffer.byteLength(k) + 4;
    delete h[k];
    dropped.push(k);
  }
  if (dropped.length > 0) h[ConsumerHeaders.droppedHeaders] = truncate(dropped.join(','), 1000);
  return h;
}

/** The copy with only tmm's own headers (the original's dropped and named), the last resort of an unencodable copy. */
function tmmHeadersOnly(h: Headers): Headers {
  const out: Headers = {};
  const dropped: string[] = [];
  for (const k of Object.keys(h)) {
    if (k.startsWith('tmm-')) out[k] = typeof h[k] === 'string' ? truncate(h[k] as string, 8 * 1024) : h[k];
    else dropped.push(k);
  }
  if (dropped.length > 0) out[ConsumerHeaders.droppedHeaders] = truncate(dropped.join(','), 1000);
  return out;
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  try {
    return typeof e === 'string' ? e : JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}

function errorCode(e: unknown): string {
  if (TmmError.is(e)) return e.code;
  if (e instanceof Error) return e.name;
  return typeof e;
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}…`;
}
