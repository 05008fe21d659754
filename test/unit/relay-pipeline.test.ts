/**
 * The relay's pipelining and the Dispatcher's settle callback, on fakes (no IO): a store that serves a
 * backlog from memory and a transport whose confirms the test releases by hand.
 */
import type { EntityManager } from 'typeorm';
import { Dispatcher, OutboxMessage, OutboxRecord, OutboxStore, Relay, Transport, TransportMessage } from '../../src/internal';

const row = (i: number): OutboxRecord => ({
  id: `row-${String(i).padStart(6, '0')}`,
  topic: 'pipeline.test',
  exchange: 'tmm.events',
  routingKey: 'pipeline.test',
  payload: JSON.stringify({ i }),
  headers: {},
  availableAt: 0,
  orderingKey: null,
  createdAt: 0,
  status: 'PENDING',
  attempts: 0,
  leaseOwner: null,
  leaseUntil: null,
  deliveredAt: null,
  lastError: null,
});

/** Serves claims from an in-memory backlog; marks delete, failures put the row back. */
class FakeOutboxStore implements OutboxStore {
  readonly claims: number[] = [];
  readonly marked: string[] = [];
  constructor(readonly backlog: OutboxRecord[]) {}
  async append(_m: EntityManager, _messages: OutboxMessage[]): Promise<void> {}
  async markDelivered(ids: string[]): Promise<number> {
    this.marked.push(...ids);
    return ids.length;
  }
  async recordFailure(): Promise<boolean> {
    return true;
  }
  async get(): Promise<OutboxRecord | undefined> {
    return undefined;
  }
  async countByStatus() {
    return { PENDING: this.backlog.length, DELIVERED: 0, DEAD: 0, EXCEPTION: 0 };
  }
  async claimDue(_owner: string, options: { limit: number }): Promise<OutboxRecord[]> {
    const batch = this.backlog.splice(0, options.limit);
    this.claims.push(batch.length);
    return batch;
  }
  async isHeadOfKey(): Promise<boolean> {
    return true;
  }
  async releaseLeases(ids: string[]): Promise<number> {
    return ids.length;
  }
  async purgeDelivered(): Promise<number> {
    return 0;
  }
}

/** publish() resolves (or rejects) only when the test says so. */
class FakeTransport {
  readonly waiting: { message: TransportMessage; confirm(): void; fail(e: Error): void }[] = [];
  publish(message: TransportMessage): Promise<void> {
    return new Promise((resolve, reject) => this.waiting.push({ message, confirm: resolve, fail: reject }));
  }
  confirmAll(): number {
    const all = this.waiting.splice(0);
    for (const w of all) w.confirm();
    return all.length;
  }
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

describe('Relay pipelining', () => {
  it('claims the next batch while earlier ones still publish, but never holds more than maxPendingRows', async () => {
    const store = new FakeOutboxStore(Array.from({ length: 100 }, (_v, i) => row(i)));
    const transport = new FakeTransport();
    const dispatcher = new Dispatcher(transport as unknown as Transport, store, { owner: 'me', concurrency: 1000, markLingerMs: 0 });
    const relay = new Relay(store, dispatcher, { owner: 'me', batchSize: 10, maxPendingRows: 30, pollIntervalMs: 10 });
    await relay.start();
    try {
      await tick(50);
      // Nothing is confirmed yet: three batches went out without waiting for each other, and no fourth.
      expect(store.claims).toEqual([10, 10, 10]);
      expect(relay.pending).toBe(30);
      expect(transport.waiting).toHaveLength(30);
      // As rows settle, claiming resumes, until the backlog is gone.
      while (store.marked.length < 100) {
        transport.confirmAll();
        await tick(5);
        expect(relay.pending).toBeLessThanOrEqual(30);
      }
      expect(new Set(store.marked).size).toBe(100);
      await tick(20);
      expect(relay.pending).toBe(0);
    } finally {
      transport.confirmAll();
      await relay.stop();
    }
  });
});

describe('Dispatcher settle callback', () => {
  it('is called once per row: after its mark statement, or after its failure is recorded', async () => {
    const store = new FakeOutboxStore([]);
    const transport = new FakeTransport();
    const dispatcher = new Dispatcher(transport as unknown as Transport, store, { owner: 'me', markLingerMs: 10_000 });
    const settled: string[] = [];
    dispatcher.dispatch([row(1), row(2)], (m) => settled.push(m.id));
    await tick(5);
    transport.waiting[0].confirm();
    transport.waiting[1].fail(new Error('nacked'));
    await tick(5);
    expect(settled).toEqual(['row-000002']); // the failure is settled; the confirmed row waits for its mark
    await dispatcher.flush();
    expect(store.marked).toEqual(['row-000001']);
    expect(settled.sort()).toEqual(['row-000001', 'row-000002']);
  });
});

describe('RelayObserver', () => {
  it('sees each claim statement and each mark-delivered statement (fast path too) with its rows; a throwing observer changes nothing', async () => {
    const store = new FakeOutboxStore(Array.from({ length: 25 }, (_v, i) => row(i)));
    const transport = new FakeTransport();
    const dispatcher = new Dispatcher(transport as unknown as Transport, store, { owner: 'me', markLingerMs: 0, markBatchSize: 50 });
    const relay = new Relay(store, dispatcher, { owner: 'me', batchSize: 10 });
    const claims: number[] = [];
    const marks: number[] = [];
    const durations: number[] = [];
    const throwing = relay.observe({
      onClaim: () => {
        throw new Error('observer bug');
      },
      onMarked: () => {
        throw new Error('observer bug');
      },
    });
    const detach = relay.observe({
      onClaim: (rows, ms) => {
        claims.push(rows);
        durations.push(ms);
      },
      onMarked: (rows, ms) => {
        marks.push(rows);
        durations.push(ms);
      },
    });
    const sweep = async () => {
      const claimed = relay.sweepOnce();
      await tick(5);
      transport.confirmAll(); // every confirm of a batch lands before its mark statement runs
      return claimed;
    };
    expect([await sweep(), await sweep(), await sweep(), await sweep()]).toEqual([10, 10, 5, 0]);
    expect(claims).toEqual([10, 10, 5, 0]);
    expect(marks).toEqual([10, 10, 5]);
    expect(new Set(store.marked).size).toBe(25); // the throwing observer broke neither claims nor marks

    // The fast path's marks are the same Dispatcher's: observed too.
    dispatcher.dispatch([row(100), row(101)]);
    await tick(5);
    transport.confirmAll();
    await dispatcher.flush();
    expect(marks).toEqual([10, 10, 5, 2]);
    expect(durations).toHaveLength(claims.length + marks.length);
    for (const ms of durations) expect(ms).toBeGreaterThanOrEqual(0);

    // Detached: no further calls, from the relay or the Dispatcher.
    detach();
    throwing();
    store.backlog.push(row(200));
    await sweep();
    expect(claims).toEqual([10, 10, 5, 0]);
    expect(marks).toEqual([10, 10, 5, 2]);
    expect(store.marked).toContain('row-000200');
  });
});

describe('Dispatcher slots and ordering keys', () => {
  it('an ordered row waiting for its key holds no publish slot: unordered rows flow past a key whose head is stuck', async () => {
    const store = new FakeOutboxStore([]);
    const transport = new FakeTransport();
    const dispatcher = new Dispatcher(transport as unknown as Transport, store, { owner: 'me', concurrency: 2, markLingerMs: 0 });
    const keyed = Array.from({ length: 5 }, (_v, i) => ({ ...row(i), orderingKey: 'slow', claimed: true }));
    const free = Array.from({ length: 5 }, (_v, i) => row(100 + i));
    dispatcher.dispatch([...keyed, ...free]);
    await tick();
    // One slot: the key's head (its confirm is held back); the other serves the unordered rows one by one.
    const published: string[] = [];
    for (let round = 0; round < 20 && published.filter((id) => id.startsWith('row-0001')).length < 5; round++) {
      const head = transport.waiting.filter((w) => w.message.id === keyed[0].id);
      const others = transport.waiting.filter((w) => w.message.id !== keyed[0].id);
      expect(head.length).toBe(1);
      expect(others.every((w) => !keyed.some((k) => k.id === w.message.id))).toBe(true);
      transport.waiting.splice(0, transport.waiting.length, ...head);
      for (const w of others) {
        published.push(w.message.id);
        w.confirm();
      }
      await tick();
    }
    expect(published.sort()).toEqual(free.map((r) => r.id));
    // The key's rows go one at a time, in order, once its head is confirmed.
    const order: string[] = [];
    for (let i = 0; i < 5; i++) {
      expect(transport.waiting.length).toBe(1);
      order.push(transport.waiting[0].message.id);
      transport.confirmAll();
      await tick();
    }
    expect(order).toEqual(keyed.map((r) => r.id));
    await dispatcher.flush();
    expect(dispatcher.pending).toBe(0);
  });
});
