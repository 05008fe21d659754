/**
 * The metrics fed by hooks in the core: the relay's statement histograms (RelayObserver) and the
 * per-consumer delivery counters (ConsumerRunner.statsByConsumer), scraped from a running admin's /metrics.
 */
import { MemoryTransport, OutboxMessage } from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import { uuidv7 } from 'uuidv7';
import { AdminHarness, startAdminHarness } from '../support/adminHarness';
import { waitUntil } from '../support/broker';
import { LedgerPosted } from '../support/contracts';
import { wireMessage } from '../support/consumers';
import { DbKind } from '../support/databases';

/** The value of one sample line (`name` or `name{labels}`) of a Prometheus text exposition; undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const row = (): OutboxMessage => ({
  id: uuidv7(),
  topic: 'metrics.test',
  exchange: 'tmm.events',
  routingKey: 'metrics.test',
  payload: JSON.stringify({ n: Math.random() }),
  headers: {},
  availableAt: Date.now(),
  orderingKey: null,
  createdAt: Date.now(),
});

class Steady {
  @Consumer({ queue: 'admin-metrics.steady', exchange: 'admin-metrics', routingKey: 'work', retry: { maxAttempts: 2, delays: [20] } })
  async handle(_m: LedgerPosted): Promise<void> {}
}

class Broken {
  @Consumer({ queue: 'admin-metrics.broken', exchange: 'admin-metrics', routingKey: 'work', retry: { maxAttempts: 2, delays: [20] } })
  async handle(_m: LedgerPosted): Promise<void> {
    throw new Error('downstream unavailable');
  }
}

describe.each<{ kind: DbKind }>([{ kind: 'sqlite' }, { kind: 'postgres' }])('metrics fed by core hooks on $kind', ({ kind }) => {
  let h: AdminHarness;

  beforeEach(async () => {
    h = await startAdminHarness(kind, {
      consumers: [new Steady(), new Broken()],
      tmm: { relay: { pollIntervalMs: 50, batchSize: 40 } },
    });
  });
  afterEach(async () => h?.dispose());

  it('relay claim and mark statements are observed into the tmm_relay_* histograms', async () => {
    const transport = h.transport as MemoryTransport;
    await transport.subscribe({ queue: { name: 'admin-metrics.all', bindings: [{ exchange: 'tmm.events', routingKey: 'metrics.#' }] }, prefetch: 500 }, async (d) => d.ack());
    const before = (await h.api.get('/metrics')).body as string;
    expect(sample(before, 'tmm_relay_claim_rows_sum')).toBe(0); // only empty sweeps so far (if any)
    expect(sample(before, 'tmm_relay_mark_rows_sum')).toBe(0);

    // Rows as a crashed process leaves them (leased to a dead owner, lease expired): only the relay publishes them.
    const rows = Array.from({ length: 100 }, row);
    await h.tmm.transactions.run(() => h.tmm.outbox.append(h.tmm.transactions.manager, rows, { owner: 'crashed-process', until: Date.now() - 1 }));
    await waitUntil(() => h.tmm.dispatcher.stats.marked >= 100, 'the relay to publish and mark every row');

    const text = (await h.api.get('/metrics')).body as string;
    // Every row came through a claim statement and a mark statement (batches of at most 40).
    expect(sample(text, 'tmm_relay_claim_rows_sum')).toBe(100);
    expect(sample(text, 'tmm_relay_claim_rows_count')).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'tmm_relay_claim_duration_seconds_count')).toBe(sample(text, 'tmm_relay_claim_rows_count'));
    expect(sample(text, 'tmm_relay_claim_duration_seconds_bucket{le="+Inf"}')).toBe(sample(text, 'tmm_relay_claim_rows_count'));
    expect(sample(text, 'tmm_relay_mark_rows_sum')).toBe(100);
    expect(sample(text, 'tmm_relay_mark_duration_seconds_count')).toBe(sample(text, 'tmm_relay_mark_rows_count'));
    expect(sample(text, 'tmm_relay_mark_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    // The cumulative counters still agree.
    expect(sample(text, 'tmm_relay_claimed_total')).toBe(100);
    expect(sample(text, 'tmm_outbox_marked_total')).toBe(100);

    // Once the admin stops, its observer is detached: further sweeps are not observed.
    await h.admin.stop();
    const observed = sample(await h.admin.metrics.registry.metrics(), 'tmm_relay_claim_rows_count');
    const sweeps = h.tmm.relay.stats.sweeps;
    await waitUntil(() => h.tmm.relay.stats.sweeps >= sweeps + 2, 'two more sweeps');
    expect(sample(await h.admin.metrics.registry.metrics(), 'tmm_relay_claim_rows_count')).toBe(observed);
  });

  it('counts deliveries per consumer: only the failing consumer’s retried and dead_lettered grow', async () => {
    for (const id of ['a', 'b']) await h.transport.publish(wireMessage({ exchange: 'admin-metrics', routingKey: 'work', body: { entryId: id, amount: 5, currency: 'EUR' } }));
    const byName = h.tmm.consumers.statsByConsumer;
    await waitUntil(() => byName.get('Steady.handle')?.handled === 2 && byName.get('Broken.handle')?.deadLettered === 2, 'both consumers to settle both messages');
    // The collector stores the dead letters under the same consumer name the counters use.
    await waitUntil(() => h.admin.collector.stats.stored === 2, 'the dead letters to be collected');
    expect(byName.get('Steady.handle')).toEqual({ handled: 2, duplicates: 0, retried: 0, deadLettered: 0, requeued: 0, abandoned: 0 });
    expect(byName.get('Broken.handle')).toEqual({ handled: 0, duplicates: 0, retried: 2, deadLettered: 2, requeued: 0, abandoned: 0 });

    const text = (await h.api.get('/metrics')).body as string;
    const of = (consumer: string, outcome: string) => sample(text, `tmm_consumer_messages_total{consumer="${consumer}",outcome="${outcome}"}`);
    expect(['handled', 'duplicate', 'retried', 'dead_lettered', 'requeued', 'abandoned'].map((o) => [o, of('Steady.handle', o), of('Broken.handle', o)])).toEqual([
      ['handled', 2, 0],
      ['duplicate', 0, 0],
      ['retried', 0, 2],
      ['dead_lettered', 0, 2],
      ['requeued', 0, 0],
      ['abandoned', 0, 0],
    ]);
    expect(sample(text, 'tmm_dead_letters_new_by_consumer{consumer="Broken.handle"}')).toBe(2);
    expect(sample(text, 'tmm_dead_letters_new_by_consumer{consumer="Steady.handle"}')).toBeUndefined();
    // The process-wide counters keep working alongside.
    expect(sample(text, 'tmm_consumer_handled_total')).toBe(2);
    expect(sample(text, 'tmm_consumer_retries_total')).toBe(2);
    expect(sample(text, 'tmm_consumer_dead_lettered_total')).toBe(2);
  });
});
