import { AddressInfo, Server, Socket, createServer, connect } from 'node:net';
import { EntitySubscriberInterface, EventSubscriber, QueryFailedError, TransactionCommitEvent } from 'typeorm';
import { MemoryTransport, Tmm, TmmOptions } from '../../src/internal';
import { TransactionalMessage } from 'tmm/decorators';
import { LedgerPosted } from '../support/contracts';
import { TestDatabase, createTestDatabase } from '../support/databases';
import { LedgerEntry } from '../support/entities';

/**
 * ADR 0078: on PostgreSQL the transaction's COMMIT goes out right behind the outbox INSERT, without waiting
 * for the INSERT's answer. Checked on the wire: a TCP proxy between tmm and PostgreSQL holds every answer
 * of the server for DELAY_MS, so a client that waits for the INSERT's answer cannot send COMMIT before the
 * proxy has passed that answer on; a pipelining client sends it before. Runs on both TypeORM lanes.
 */
const DELAY_MS = 60;

interface WireEvent {
  conn: number;
  dir: 'c2s' | 's2c';
  text: string;
}

/** A proxy to PostgreSQL recording each chunk in order: client→server as received, server→client as passed on (late). */
async function delayingProxy(): Promise<{ port: number; events: WireEvent[]; recording: { on: boolean }; close(): Promise<void> }> {
  const events: WireEvent[] = [];
  const recording = { on: false };
  const sockets = new Set<Socket>();
  let conns = 0;
  const server: Server = createServer((client) => {
    const conn = ++conns;
    const upstream = connect(Number(process.env.TMM_PG_PORT ?? 5432), process.env.TMM_PG_HOST ?? '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => {
      if (recording.on) events.push({ conn, dir: 'c2s', text: chunk.toString('latin1') });
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      setTimeout(() => {
        if (recording.on) events.push({ conn, dir: 's2c', text: chunk.toString('latin1') });
        if (!client.destroyed) client.write(chunk);
      }, DELAY_MS);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    events,
    recording,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * For the outbox INSERT carrying `marker` (its Bind holds the payload): whether the client sent COMMIT on
 * that connection before the INSERT's answer reached it.
 */
function commitBeforeInsertAnswer(events: WireEvent[], marker: string): boolean {
  const i = events.findIndex((e) => e.dir === 'c2s' && e.text.includes(marker) && e.text.includes('"entryId"'));
  if (i < 0) throw new Error(`no outbox INSERT carrying ${marker} on the wire`);
  const conn = events[i].conn;
  const later = events.slice(i).filter((e) => e.conn === conn);
  const commit = later.findIndex((e) => e.dir === 'c2s' && e.text.includes('COMMIT'));
  const answer = later.findIndex((e) => e.dir === 's2c' && e.text.includes('INSERT 0 1'));
  if (commit < 0 || answer < 0) throw new Error(`incomplete exchange for ${marker}: COMMIT at ${commit}, INSERT answer at ${answer}`);
  return commit < answer;
}

class Ledger {
  constructor(private readonly tmm: Tmm) {}

  /** As post(), with a beforeCommit hook of the application's that queries after tmm's INSERT was sent. */
  @TransactionalMessage()
  async postWithHook(id: string): Promise<void> {
    await this.post(id);
    const scope = this.tmm.transactions.current()!;
    scope.beforeCommit(async () => {
      await scope.manager.query('SELECT 1');
    });
  }

  @TransactionalMessage()
  async post(id: string, amount = 1): Promise<void> {
    await this.tmm.transactions.getRepository(LedgerEntry).insert({ id, account: 'acc', amount });
    await this.tmm.producer.send(LedgerPosted.of(id, amount));
  }
}

/** A subscriber that listens to commits: TypeORM would announce a pipelined COMMIT answered ROLLBACK as one. */
@EventSubscriber()
class CommitListener implements EntitySubscriberInterface {
  commits = 0;
  afterTransactionCommit(_event: TransactionCommitEvent): void {
    this.commits++;
  }
}

describe('commit pipelining on postgres (ADR 0078)', () => {
  let proxy: Awaited<ReturnType<typeof delayingProxy>>;
  const worlds: { tmm: Tmm; db: TestDatabase }[] = [];

  beforeAll(async () => {
    proxy = await delayingProxy();
  });
  afterEach(async () => {
    proxy.recording.on = false;
    proxy.events.length = 0;
    for (const w of worlds.splice(0)) {
      await w.tmm.stop();
      await w.db.dispose();
    }
  });
  afterAll(async () => {
    await proxy.close();
  });

  async function world(options: Partial<TmmOptions> = {}, subscribers?: Function[]): Promise<{ tmm: Tmm; db: TestDatabase; ledger: Ledger; received: string[] }> {
    const db = await createTestDatabase('postgres', [LedgerEntry], { port: proxy.port, poolSize: 2, subscribers });
    const transport = new MemoryTransport();
    const tmm = new Tmm({ dataSource: db.dataSource, transport, logger: 'silent', relay: { enabled: false }, dispatcher: { deleteDelivered: false }, ...options });
    await tmm.start();
    const received: string[] = [];
    await transport.subscribe({ queue: { name: 'all', bindings: [{ exchange: 'tmm.events', routingKey: '#' }] }, prefetch: 100 }, async (d) => {
      received.push(JSON.parse(d.message.body.toString()).entryId);
      await d.ack();
    });
    worlds.push({ tmm, db });
    return { tmm, db, ledger: new Ledger(tmm), received };
  }

  const count = async (db: TestDatabase, sql: string, params: unknown[] = []): Promise<number> => Number(((await db.dataSource.query(sql, params)) as { n: string }[])[0].n);

  it('sends COMMIT before the outbox INSERT is answered, and both commit', async () => {
    const { tmm, db, ledger, received } = await world();
    proxy.recording.on = true;
    await ledger.post('pipe-a1');
    await ledger.post('pipe-a2');
    proxy.recording.on = false;
    expect(commitBeforeInsertAnswer(proxy.events, 'pipe-a1')).toBe(true);
    expect(commitBeforeInsertAnswer(proxy.events, 'pipe-a2')).toBe(true);
    // In one write: the INSERT's Bind/Execute/Sync and the COMMIT arrive in the same chunk.
    for (const marker of ['pipe-a1', 'pipe-a2']) {
      expect(proxy.events.some((e) => e.dir === 'c2s' && e.text.includes(marker) && e.text.includes('"entryId"') && e.text.includes('COMMIT'))).toBe(true);
    }
    await tmm.dispatcher.idle();
    expect(await count(db, `SELECT count(*) AS n FROM test_ledger WHERE id IN ('pipe-a1', 'pipe-a2')`)).toBe(2);
    expect(await count(db, `SELECT count(*) AS n FROM tmm_outbox WHERE payload LIKE '%pipe-a%'`)).toBe(2);
    expect(received.sort()).toEqual(['pipe-a1', 'pipe-a2']);
  });

  it('waits for the INSERT before COMMIT with postgres.pipelineCommit: false', async () => {
    const { ledger, db } = await world({ postgres: { pipelineCommit: false } });
    proxy.recording.on = true;
    await ledger.post('pipe-b1');
    proxy.recording.on = false;
    expect(commitBeforeInsertAnswer(proxy.events, 'pipe-b1')).toBe(false);
    expect(await count(db, `SELECT count(*) AS n FROM tmm_outbox WHERE payload LIKE '%pipe-b1%'`)).toBe(1);
  });

  it('does not pipeline when a TypeORM subscriber listens to commits (and the subscriber sees each commit)', async () => {
    const { ledger, db } = await world({}, [CommitListener]);
    const listener = db.dataSource.subscribers.find((s) => s instanceof CommitListener) as CommitListener;
    const before = listener.commits;
    proxy.recording.on = true;
    await ledger.post('pipe-c1');
    proxy.recording.on = false;
    expect(commitBeforeInsertAnswer(proxy.events, 'pipe-c1')).toBe(false);
    expect(listener.commits - before).toBe(1);
  });

  it('an INSERT the server refuses rolls the business write back: nothing stored, nothing published, the connection reusable', async () => {
    const { tmm, db, ledger, received } = await world();
    // The fault: PostgreSQL itself refuses the outbox row of one payload.
    await db.dataSource.query(`
      CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.payload LIKE '%pipe-poison%' THEN RAISE EXCEPTION 'outbox row refused by the test trigger'; END IF; RETURN NEW; END $$`);
    await db.dataSource.query(`CREATE TRIGGER refuse_poison BEFORE INSERT ON tmm_outbox FOR EACH ROW EXECUTE FUNCTION refuse_poison()`);
    proxy.recording.on = true;
    const err = await ledger.post('pipe-poison').then(
      () => undefined,
      (e: unknown) => e,
    );
    proxy.recording.on = false;
    expect(err).toBeInstanceOf(QueryFailedError);
    expect(String((err as Error).message)).toContain('outbox row refused by the test trigger');
    // It was pipelined (COMMIT went out behind the refused INSERT), and PostgreSQL rolled the transaction back.
    const i = proxy.events.findIndex((e) => e.dir === 'c2s' && e.text.includes('pipe-poison') && e.text.includes('"entryId"'));
    const conn = proxy.events[i].conn;
    const after = proxy.events.slice(i).filter((e) => e.conn === conn);
    expect(after.findIndex((e) => e.dir === 'c2s' && e.text.includes('COMMIT'))).toBeLessThan(after.findIndex((e) => e.dir === 's2c' && e.text.includes('refused by the test trigger')));
    expect(await count(db, `SELECT count(*) AS n FROM test_ledger WHERE id = 'pipe-poison'`)).toBe(0);
    // An application hook that queries after the refused INSERT fails with "current transaction is aborted";
    // the caller sees the cause, the refusal, and nothing is stored either.
    const err2 = await ledger.postWithHook('pipe-poison-2').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err2).toBeInstanceOf(QueryFailedError);
    expect(String((err2 as Error).message)).toContain('outbox row refused by the test trigger');
    expect(await count(db, `SELECT count(*) AS n FROM test_ledger WHERE id = 'pipe-poison-2'`)).toBe(0);
    expect(await count(db, `SELECT count(*) AS n FROM tmm_outbox`)).toBe(0);
    // Both pooled connections (poolSize 2) are reused at once afterwards: one left inside the aborted
    // transaction would fail its next statement ("current transaction is aborted").
    await Promise.all([ledger.post('pipe-d1'), ledger.post('pipe-d2')]);
    await tmm.dispatcher.idle();
    expect(await count(db, `SELECT count(*) AS n FROM test_ledger WHERE id IN ('pipe-d1', 'pipe-d2')`)).toBe(2);
    expect(received.sort()).toEqual(['pipe-d1', 'pipe-d2']);
  });
});
