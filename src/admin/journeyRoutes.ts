import type { FastifyInstance } from 'fastify';
import type { AuditEntry } from '../deadletter/AuditTrail';
import type { DeadLetter, DeadLetterSummary } from '../deadletter/DeadLetter';
import { InvalidInputError, NotFoundError } from '../errors/AdminErrors';
import type { JourneyStore } from '../journey/JourneyStore';
import { type MessageJourney, readJourney } from '../journey/timeline';

/** One line of a dead letter's journey as the console lists it. */
export interface JourneyLine {
  step: string;
  at: number | null;
  source: string | null;
  detail?: string;
  /** The message the line is about, when it is a resent copy's (not the dead letter's own message). */
  messageId?: string;
}

const searchProps = {
  messageId: { type: 'string', minLength: 1, maxLength: 255 },
  correlationId: { type: 'string', minLength: 1, maxLength: 128 },
  key: { type: 'string', minLength: 1, maxLength: 255 },
  limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
};

/**
 * The recorded journey (tmm_journey) in the admin API:
 * - GET /api/journey?messageId=|correlationId=|key=   the messages matching (newest first), each with its first step
 * - GET /api/journey/:messageId                       one message's timeline, with the timelines of its resent copies
 */
export function registerJourneyRoutes(app: FastifyInstance, store: JourneyStore): void {
  app.get<{ Querystring: { messageId?: string; correlationId?: string; key?: string; limit: number } }>(
    '/api/journey',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: searchProps } } },
    async (req) => {
      const { messageId, correlationId, key, limit } = req.query;
      if (!messageId && !correlationId && !key) {
        throw new InvalidInputError('give messageId, correlationId or key (a business key)', [{ path: 'querystring', message: 'one of messageId, correlationId, key required' }]);
      }
      return { items: await store.search({ messageId, correlationId, businessKey: key }, limit) };
    },
  );
  app.get<{ Params: { messageId: string } }>(
    '/api/journey/:messageId',
    { schema: { params: { type: 'object', required: ['messageId'], properties: { messageId: { type: 'string', minLength: 1, maxLength: 255 } } } } },
    async (req) => {
      const journey = await readJourney(store, req.params.messageId);
      if (!journey) throw new NotFoundError(`journey of message ${req.params.messageId} (nothing recorded: journey.enabled off, purged, or unknown id)`);
      return journey;
    },
  );
}

/**
 * A dead letter's journey for its detail view, from facts only. With recorded steps: the message's own
 * timeline, then each resent copy's (the copy found through the `resent` step or the letter's
 * resentMessageId). Without (recording off, or purged): what the dead letter row and the audit trail say —
 * the failure (from the consumer's headers), the collection, the operators' actions, and a later dead letter
 * of the resent copy. Never a step nobody saw.
 */
export async function deadLetterJourney(
  store: JourneyStore | undefined,
  letter: DeadLetter,
  audit: readonly AuditEntry[],
  failedAgain: readonly DeadLetterSummary[],
): Promise<{ journey: JourneyLine[]; timeline: MessageJourney | null }> {
  const timeline = store && letter.messageId ? await readJourney(store, letter.messageId).catch(() => null) : null;
  if (timeline) {
    if (letter.resentMessageId && !timeline.copies.some((c) => c.messageId === letter.resentMessageId)) {
      // Resent by a process that records no journey: the copy's own steps may still have been recorded.
      const copy = await readJourney(store!, letter.resentMessageId).catch(() => null);
      if (copy) timeline.copies.push(copy);
    }
    const lines: JourneyLine[] = timeline.steps.map(line);
    const addCopies = (copies: MessageJourney[]) => {
      for (const c of copies) {
        lines.push(...c.steps.map((e) => ({ ...line(e), step: `copy ${e.step}`, messageId: c.messageId })));
        addCopies(c.copies);
      }
    };
    addCopies(timeline.copies);
    return { journey: lines, timeline };
  }
  const lines: JourneyLine[] = [];
  lines.push({ step: 'dead-lettered', at: letter.lastFailureAt, source: letter.consumer ?? letter.queue, detail: `${letter.reason} after ${letter.attempts} attempt(s): ${letter.errorMessage}` });
  lines.push({ step: 'collected', at: letter.receivedAt, source: 'collector', detail: `from ${letter.deadLetterQueue} into tmm_dead_letter` });
  for (const a of [...audit].reverse()) lines.push({ step: a.action, at: a.at, source: a.principal, detail: `by ${a.principal}${a.comment ? ` — ${a.comment}` : ''}` });
  for (const again of failedAgain) {
    lines.push({ step: 'copy dead-lettered', at: again.lastFailureAt, source: again.consumer ?? again.queue, detail: `dead letter ${again.id}: ${again.errorMessage}`, messageId: again.messageId });
  }
  return { journey: lines, timeline: null };
}

function line(e: MessageJourney['steps'][number]): JourneyLine {
  const parts = [
    e.attempt !== null ? `attempt ${e.attempt}` : '',
    e.outcome ?? '',
    e.durationMs !== null ? `${e.durationMs} ms` : '',
    e.detail ?? '',
  ].filter((p) => p !== '');
  return { step: e.step, at: e.at, source: e.source, detail: parts.join(' · ') };
}
