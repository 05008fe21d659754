import type { RecordedJourneyEvent } from './JourneyEvent';
import type { JourneyStore } from './JourneyStore';

/**
 * Display order. Within one message, steps are causal in stages — sent; stored; its publishes; its
 * deliveries with their retries and dead-lettering; the collection of the dead letter; the operators'
 * actions on it — and each stage's steps are in the order of their own times. Stages come first because
 * their times come from different clocks that race: the broker can hand a message to a consumer before the
 * confirm reaches the publisher, the collector can store a dead letter before the consumer's confirm of the
 * copy returns, another host's clock may run behind. A delivery is never listed before the publish it came
 * from, nor a collection before its dead-lettering.
 */
const STAGE: Record<string, number> = { sent: 0, stored: 1, 'publish-failed': 2, published: 2, collected: 4, resent: 5, discarded: 5 };
const RANK: Record<string, number> = { sent: 0, stored: 1, 'publish-failed': 2, published: 3, received: 4, delivered: 5, retried: 6, 'dead-lettered': 7, collected: 8, resent: 9, discarded: 10 };

/**
 * The steps as recorded, with the producer's `stored` row (which carries the send: durationMs = send → commit)
 * shown as two steps: `sent` at the send's time (topic, transaction, correlation id, business key) and
 * `stored` at the commit's (where).
 */
export function expandSteps(events: readonly RecordedJourneyEvent[]): RecordedJourneyEvent[] {
  const out: RecordedJourneyEvent[] = [];
  for (const e of events) {
    if (e.step !== 'stored' || e.durationMs === null || e.linkedId !== null) {
      out.push(e);
      continue;
    }
    out.push({ ...e, step: 'sent', at: e.at - e.durationMs, durationMs: null, outcome: null });
    out.push({ ...e, detail: `committed to ${e.outcome ?? 'the outbox'}`, outcome: null, durationMs: null, correlationId: null, businessKey: null });
  }
  return out;
}

/** The display order of one message's (expanded) steps. */
export function orderSteps(events: RecordedJourneyEvent[]): RecordedJourneyEvent[] {
  return [...events].sort((a, b) => (STAGE[a.step] ?? 3) - (STAGE[b.step] ?? 3) || a.at - b.at || (RANK[a.step] ?? 99) - (RANK[b.step] ?? 99) || a.id - b.id);
}

/** One message's recorded journey, with the journeys of the copies resent from it. */
export interface MessageJourney {
  messageId: string;
  /** True when tmm did not produce it (no `sent`/`stored`/`published`: its journey starts at `received`). */
  foreign: boolean;
  correlationId: string | null;
  businessKey: string | null;
  steps: RecordedJourneyEvent[];
  /** Copies an operator resent (`resent` steps' linked ids), each with its own journey: consumed, or failed again. */
  copies: MessageJourney[];
}

const MAX_DEPTH = 5;

/** Reads one message's journey and its resent copies' (to a depth of 5); null when nothing was recorded for it. */
export async function readJourney(store: JourneyStore, messageId: string): Promise<MessageJourney | null> {
  return read(store, messageId, 0, new Set());
}

async function read(store: JourneyStore, messageId: string, depth: number, seen: Set<string>): Promise<MessageJourney | null> {
  seen.add(messageId);
  const events = await store.events([messageId]);
  if (events.length === 0) return null;
  const steps = orderSteps(expandSteps(events));
  const copies: MessageJourney[] = [];
  if (depth < MAX_DEPTH) {
    for (const e of steps) {
      if (e.step !== 'resent' || !e.linkedId || seen.has(e.linkedId)) continue;
      const copy = await read(store, e.linkedId, depth + 1, seen);
      copies.push(copy ?? { messageId: e.linkedId, foreign: false, correlationId: null, businessKey: null, steps: [], copies: [] });
    }
  }
  return {
    messageId,
    foreign: !steps.some((e) => e.step === 'sent' || e.step === 'stored' || e.step === 'published'),
    correlationId: steps.find((e) => e.correlationId)?.correlationId ?? null,
    businessKey: steps.find((e) => e.businessKey)?.businessKey ?? null,
    steps,
    copies,
  };
}
