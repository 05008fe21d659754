import { Delivery, MemoryTransport, Tmm, TmmOptions } from '../../src/internal';
import { DbKind, TestDatabase, createTestDatabase } from './databases';
import { LedgerEntry } from './entities';

export interface Harness {
  db: TestDatabase;
  tmm: Tmm;
  transport: MemoryTransport;
  /** Every message delivered to the catch-all queue, in arrival order. */
  received: Delivery[];
  /** Waits until the fast path is idle (published and marked). */
  settle(): Promise<void>;
  dispose(): Promise<void>;
}

/** A started Tmm on a fresh database with a queue that receives every message of the default exchange. */
export async function startHarness(kind: DbKind, options: Partial<TmmOptions> = {}, poolSize?: number): Promise<Harness> {
  const db = await createTestDatabase(kind, [LedgerEntry], { poolSize });
  const transport = new MemoryTransport();
  const tmm = new Tmm({ dataSource: db.dataSource, transport, logger: 'silent', dispatcher: { deleteDelivered: false }, ...options });
  await tmm.start();
  const received: Delivery[] = [];
  await transport.subscribe({ queue: { name: 'all', bindings: [{ exchange: 'tmm.events', routingKey: '#' }] }, prefetch: 1000 }, async (d) => {
    received.push(d);
    await d.ack();
  });
  return {
    db,
    tmm,
    transport,
    received,
    settle: async () => {
      await tmm.dispatcher.idle();
      await new Promise((r) => setImmediate(r));
    },
    dispose: async () => {
      await tmm.stop();
      await db.dispose();
    },
  };
}
