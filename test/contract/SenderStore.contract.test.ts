/**
 * The SenderStore contract (src/outbox/SenderStore.ts), run on both adapters — the outbox table and the local
 * transaction log — on every database lane, with RabbitMQ and a raw amqplib consumer as ground truth:
 * published iff committed, once; a rollback (thrown method, or a later beforeCommit hook failing after the
 * store's) publishes nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AmqpTransport, Tmm, silentLogger } from '../../src/internal';
import { TransactionalMessage } from 'tmm/decorators';
import { AMQP_URL, EntryTally, sleep, waitUntil } from '../support/broker';
import { LedgerPosted } from '../support/contracts';
import { TestDatabase, createTestDatabase, dbLanes } from '../support/databases';
import { LedgerEntry } from '../support/entities';

jest.setTimeout(60_000);

const EXCHANGE = `tmm.sender.contract.${process.pid}`;
let tally: EntryTally;
const received = new Map<string, number>();
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'tmm-sender-contract-'));
  tally = await EntryTally.open(EXCHANGE, received);
});

afterAll(async () => {
  await tally?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe.each(dbLanes())('SenderStore contract on $name', ({ kind }) => {
  describe.each(['outbox', 'log'] as const)('%s adapter', (sender) => {
    let db: TestDatabase;
    let tmm: Tmm;
    let service: Service;

    class Service {
      constructor(private readonly t: Tmm) {}
      @TransactionalMessage()
      async post(id: string, fail: 'none' | 'throw' | 'hook'): Promise<void> {
        await this.t.transactions.getRepository(LedgerEntry).insert({ id, account: 'contract', amount: 1 });
        await this.t.producer.sendAll([LedgerPosted.of(`${id}.a`, 1), LedgerPosted.of(`${id}.b`, 1)]);
        if (fail === 'throw') throw new Error('planned');
        if (fail === 'hook') this.t.transactions.current()!.beforeCommit(() => Promise.reject(new Error('later hook fails')));
      }
    }

    beforeAll(async () => {
      db = await createTestDatabase(kind, [LedgerEntry]);
      tmm = new Tmm({
        dataSource: db.dataSource,
        transport: new AmqpTransport({ url: AMQP_URL, logger: silentLogger }),
        logger: 'silent',
        producer: { defaultExchange: EXCHANGE },
        consumers: { enabled: false },
        sender,
        txlog: { directories: [join(tmp, `${kind}-${sender}`, 'a'), join(tmp, `${kind}-${sender}`, 'b')], analysisIntervalMs: 30 },
      });
      await tmm.start();
      service = new Service(tmm);
    });
    afterAll(async () => {
      await tmm?.stop();
      await db?.dispose();
    });

    const prefix = `${kind}-${sender}`;
    const rowCount = async (id: string) => ((await db.dataSource.getRepository(LedgerEntry).findBy({ id })) as unknown[]).length;

    it('publishes every message of a committed transaction, once', async () => {
      const ids = Array.from({ length: 5 }, (_, i) => `${prefix}-ok-${i}`);
      await Promise.all(ids.map((id) => service.post(id, 'none')));
      const expected = ids.flatMap((id) => [`${id}.a`, `${id}.b`]);
      await waitUntil(() => expected.every((e) => received.get(e) === 1), 'all messages', 10_000);
      await sleep(300);
      expect(expected.map((e) => received.get(e))).toEqual(expected.map(() => 1));
      for (const id of ids) expect(await rowCount(id)).toBe(1);
    });

    it.each(['throw', 'hook'] as const)('publishes nothing when the transaction rolls back (%s)', async (how) => {
      const id = `${prefix}-rb-${how}`;
      await expect(service.post(id, how)).rejects.toThrow(how === 'throw' ? 'planned' : 'later hook fails');
      // A committed marker transaction after it: once its messages are in, the rolled-back ones had their chance.
      await service.post(`${id}-marker`, 'none');
      await waitUntil(() => received.get(`${id}-marker.b`) === 1, 'the marker', 10_000);
      await sleep(200);
      expect(received.has(`${id}.a`) || received.has(`${id}.b`)).toBe(false);
      expect(await rowCount(id)).toBe(0);
    });
  });
});
