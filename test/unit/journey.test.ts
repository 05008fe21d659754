/**
 * The journey's pure parts and the writer's bounds, against an in-test JourneyStore (the store's SQL is tested
 * on real databases in test/integration/journey.test.ts): the display order, business keys, option checks,
 * and what the writer does when the store fails or the buffer is full.
 */
import { BufferedJourneyRecorder, ConfigurationError, type JourneyEvent, type JourneyStore, type RecordedJourneyEvent, businessKeyOf, checkBusinessKeyPaths, expandSteps, orderSteps, resolveTmmOptions } from '../../src/internal';

class ListStore implements JourneyStore {
  readonly rows: JourneyEvent[] = [];
  failing = false;
  async append(events: readonly JourneyEvent[]): Promise<void> {
    if (this.failing) throw new Error('database is down');
    this.rows.push(...events);
  }
  async events(): Promise<RecordedJourneyEvent[]> {
    return [];
  }
  async linked(): Promise<string[]> {
    return [];
  }
  async search() {
    return [];
  }
  async purge(): Promise<number> {
    return 0;
  }
}

const ev = (step: string, at: number, id = 0): RecordedJourneyEvent => ({
  id, messageId: 'm', step, at, source: 's', attempt: null, outcome: null, durationMs: null, detail: null, linkedId: null, correlationId: null, businessKey: null,
});

describe('journey display order', () => {
  it('lists a publish before a delivery that started before its confirm, and a collection after its dead-lettering', () => {
    const steps = [ev('delivered', 105, 1), ev('published', 110, 2), ev('sent', 100, 3), ev('collected', 200, 4), ev('stored', 101, 5), ev('dead-lettered', 205, 6), ev('retried', 150, 7)];
    expect(orderSteps(steps).map((s) => s.step)).toEqual(['sent', 'stored', 'published', 'delivered', 'retried', 'dead-lettered', 'collected']);
  });
});

describe('journey steps as recorded', () => {
  it('shows the producer’s stored row as sent (at the send) and stored (at the commit)', () => {
    const stored = { ...ev('stored', 1000, 1), durationMs: 40, outcome: 'tmm_outbox', detail: 'order.placed in transaction tx1', correlationId: 'c-1', businessKey: 'o-1' };
    expect(expandSteps([stored]).map((s) => [s.step, s.at, s.detail, s.businessKey])).toEqual([
      ['sent', 960, 'order.placed in transaction tx1', 'o-1'],
      ['stored', 1000, 'committed to tmm_outbox', null],
    ]);
    const copy = { ...ev('stored', 1000, 2), linkedId: 'original', detail: 'resend of original' };
    expect(expandSteps([copy])).toEqual([copy]);
  });
});

describe('business keys', () => {
  it('takes the first path that holds a string or a number', () => {
    const paths = checkBusinessKeyPaths(['order.id', 'orderId']);
    expect(businessKeyOf({ orderId: 'o-1' }, paths)).toBe('o-1');
    expect(businessKeyOf({ order: { id: 42 }, orderId: 'o-1' }, paths)).toBe('42');
    expect(businessKeyOf({ order: { id: { x: 1 } } }, paths)).toBeNull();
    expect(businessKeyOf(undefined, paths)).toBeNull();
  });

  it('refuses a path that is not a dotted property path, naming it', () => {
    expect(() => resolveTmmOptions({ dataSource: { options: {}, createQueryRunner() {} } as never, journey: { businessKeys: ['order..id'] } })).toThrow(ConfigurationError);
    expect(() => checkBusinessKeyPaths(['ok', 'a b'])).toThrow(/journey\.businessKeys\.1/);
  });
});

describe('BufferedJourneyRecorder', () => {
  const e = (i: number): JourneyEvent => ({ messageId: `m-${i}`, step: 'sent', at: i, source: 's' });

  it('keeps the events of a failed write for the next one, and counts the failure', async () => {
    const store = new ListStore();
    const r = new BufferedJourneyRecorder(store, { flushIntervalMs: 60_000 });
    store.failing = true;
    for (let i = 0; i < 3; i++) r.record(e(i));
    await r.flush();
    expect(r.stats).toMatchObject({ failedWrites: 1, written: 0, dropped: 0 });
    expect(r.error).toBe('database is down');
    store.failing = false;
    await r.flush();
    expect(store.rows.map((x) => x.messageId)).toEqual(['m-0', 'm-1', 'm-2']);
    expect(r.error).toBeUndefined();
  });

  it('drops and counts what does not fit, and what comes after stop(); stop() gives up on a failing store at once', async () => {
    const store = new ListStore();
    const r = new BufferedJourneyRecorder(store, { maxBuffered: 2, flushIntervalMs: 60_000 });
    r.start();
    for (let i = 0; i < 5; i++) r.record(e(i));
    expect(r.stats).toMatchObject({ recorded: 2, dropped: 3 });
    store.failing = true;
    const t0 = Date.now();
    expect(await r.stop(10_000)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.stats.dropped).toBe(5);
    r.record(e(9));
    expect(r.stats.dropped).toBe(6);
    expect(r.buffered).toBe(0);
  });
});
