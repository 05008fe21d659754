/**
 * TMM-ADMIN and /metrics under SET routing, on two RabbitMQ virtual hosts as sets A and B (created and
 * deleted with rabbitmqctl), on SQLite, PostgreSQL and MariaDB: the set of each message in the outbox and
 * dead-letter lists (a field and a filter), per-set backlog gauges while the outbox holds the rows, per-set
 * flow counters once they are published, a dead letter that records its set, and an admin resend of it
 * that is consumed from that same set again.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { ConsumeContext, SetHeaders, SetRoutingTransport, Tmm, silentLogger } from '../../src/internal';
import { AmqpTransport } from '../../src/transport/amqp';
import { Consumer } from 'tmm/decorators';
import { TmmAdmin } from 'tmm/admin';
import { ApiClient } from '../support/adminHarness';
import { LedgerPosted } from '../support/contracts';
import { waitUntil } from '../support/consumers';
import { type DbKind, type TestDatabase, createTestDatabase } from '../support/databases';

jest.setTimeout(120_000);
const run = promisify(execFile);

const metric = (text: string, name: string, set: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{set="${set}"}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
};

describe.each<DbKind>(['sqlite', 'postgres', 'mariadb'])('the SET of each message in TMM-ADMIN and /metrics on %s', (kind) => {
  const tag = randomBytes(4).toString('hex');
  const vhosts = { A: `tmm-admin-set-a-${tag}`, B: `tmm-admin-set-b-${tag}` };
  const queue = `admin-sets-${tag}.ledger`;
  let db: TestDatabase;
  const urls: Record<string, string> = {};

  beforeAll(async () => {
    for (const [set, v] of Object.entries(vhosts)) {
      await run('rabbitmqctl', ['-q', 'add_vhost', v]);
      await run('rabbitmqctl', ['-q', 'set_permissions', '-p', v, 'guest', '.*', '.*', '.*']);
      urls[set] = `amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(v)}`;
    }
    db = await createTestDatabase(kind);
  });
  afterAll(async () => {
    await db?.dispose();
    for (const v of Object.values(vhosts)) await run('rabbitmqctl', ['-q', 'delete_vhost', v]).catch(() => undefined);
  });

  class Ledger {
    failing = true;
    readonly seen: { entryId: string; set: unknown; resendOf: unknown }[] = [];
    @Consumer({ queue, exchange: 'tmm.events', routingKey: 'ledger.#', retry: false })
    async post(entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
      if (this.failing) throw new Error(`ledger account for ${entry.entryId} is closed`);
      this.seen.push({ entryId: entry.entryId, set: ctx.headers[SetHeaders.set], resendOf: ctx.headers['tmm-resend-of'] });
    }
  }

  /** Keys e-b* belong to set B, everything else to the center A. */
  const router = () =>
    new SetRoutingTransport({
      sets: { A: new AmqpTransport({ url: urls.A, logger: silentLogger }), B: new AmqpTransport({ url: urls.B, logger: silentLogger }) },
      rules: { key: { field: 'entryId' }, center: 'A', values: { 'e-b1': 'B', 'e-b2': 'B' } },
    });

  async function start(options: { relay: boolean; consumers: object[] }) {
    const tmm = new Tmm(
      { dataSource: db.dataSource, logger: 'silent', relay: options.relay ? { pollIntervalMs: 50 } : { enabled: false } },
      { transport: router() },
    );
    tmm.consumers.register(...options.consumers);
    await tmm.start();
    const token = randomBytes(24).toString('hex');
    const admin = new TmmAdmin(tmm, { port: 0, auth: { tokens: { ops: token } } });
    const api = new ApiClient(await admin.start(), `Bearer ${token}`);
    return {
      tmm,
      api,
      async stop() {
        await admin.stop();
        await tmm.stop();
      },
    };
  }

  it('lists, filters and counts per set, records the set of a dead letter, and a resend is consumed from that set', async () => {
    // 1. Sent while nothing publishes: the rows wait in the outbox, each stamped with its set.
    const first = await start({ relay: false, consumers: [] });
    try {
      await first.tmm.dispatcher.stop();
      for (const id of ['e-a1', 'e-b1', 'e-a2', 'e-b2', 'e-a3']) await first.tmm.transactions.run(() => first.tmm.producer.send(LedgerPosted.of(id, 10)));
      const pending = await first.api.get('/api/outbox?status=PENDING&limit=50');
      expect(pending.status).toBe(200);
      expect(pending.body.items.map((r: { set: string }) => r.set).sort()).toEqual(['A', 'A', 'A', 'B', 'B']);
      const onlyB = await first.api.get('/api/outbox?status=PENDING&set=B');
      expect(onlyB.body.total).toBe(2);
      expect(onlyB.body.items.every((r: { set: string }) => r.set === 'B')).toBe(true);
      expect((await first.api.get('/api/outbox?status=PENDING&set=C')).body.total).toBe(0);
      expect((await first.api.get('/api/outbox?status=PENDING&set=%22x')).status).toBe(400);
      await new Promise((r) => setTimeout(r, 1100));
      const text = (await first.api.get('/metrics')).body as string;
      expect(metric(text, 'tmm_outbox_pending_by_set', 'A')).toBe(3);
      expect(metric(text, 'tmm_outbox_pending_by_set', 'B')).toBe(2);
      const age = metric(text, 'tmm_outbox_oldest_pending_age_seconds_by_set', 'B')!;
      expect(age).toBeGreaterThanOrEqual(1);
      expect(age).toBeLessThan(60);
      expect(metric(text, 'tmm_set_published_total', 'B')).toBe(0);
    } finally {
      await first.stop();
    }

    // 2. A relay publishes them, each to its set; the consumers (in both sets) fail and dead-letter them.
    const ledger = new Ledger();
    const second = await start({ relay: true, consumers: [ledger] });
    try {
      await waitUntil(async () => (await second.api.get('/api/dead-letters')).body.total === 5, 'five dead letters', 60_000);
      // The relay marks (deletes) its rows after the confirms, batched (dispatcher.markLingerMs): a consumer may
      // dead-letter a message before its row is gone, so wait for the outbox to empty rather than read it once.
      const pendingRows = async () => Number((await db.dataSource.query(`SELECT COUNT(*) AS n FROM tmm_outbox WHERE status = 'PENDING'`))[0].n);
      await waitUntil(async () => (await pendingRows()) === 0, 'the relay to mark its rows (no PENDING row left)', 30_000);
      const letters = (await second.api.get('/api/dead-letters?set=B')).body;
      expect(letters.total).toBe(2);
      expect(letters.items.map((d: { set: string }) => d.set)).toEqual(['B', 'B']);
      expect((await second.api.get('/api/dead-letters?set=A')).body.total).toBe(3);
      const detail = (await second.api.get(`/api/dead-letters/${letters.items[0].id}`)).body;
      expect(detail.set).toBe('B');
      expect(detail.headers[SetHeaders.set]).toBe('B');

      await waitUntil(async () => metric((await second.api.get('/metrics')).body, 'tmm_outbox_pending_by_set', 'B') === 0, 'the B backlog gauge to drop to 0');
      let text = (await second.api.get('/metrics')).body as string;
      // Outbox rows plus the consumers' dead-letter copies, each in the set it came from.
      expect(metric(text, 'tmm_set_published_total', 'A')).toBe(6);
      expect(metric(text, 'tmm_set_published_total', 'B')).toBe(4);
      expect(metric(text, 'tmm_set_publish_failed_total', 'B')).toBe(0);

      // 3. Resend set B's dead letters (a bulk action by the set filter): consumed from set B again.
      ledger.failing = false;
      const resent = await second.api.post('/api/dead-letters/resend', { filter: { set: 'B' } });
      expect(resent.status).toBe(200);
      await waitUntil(() => ledger.seen.length >= 2, 'the two resends to be consumed', 30_000);
      await new Promise((r) => setTimeout(r, 500)); // nothing else arrives
      expect(ledger.seen.map((s) => [s.entryId, s.set]).sort()).toEqual([
        ['e-b1', 'B'],
        ['e-b2', 'B'],
      ]);
      expect(ledger.seen.every((s) => typeof s.resendOf === 'string')).toBe(true);
      text = (await second.api.get('/metrics')).body as string;
      expect(metric(text, 'tmm_set_published_total', 'B')).toBe(6);
      expect(metric(text, 'tmm_set_published_total', 'A')).toBe(6);
      expect((await second.api.get('/api/dead-letters?set=B&status=RESENT')).body.total).toBe(2);
    } finally {
      await second.stop();
    }
  });
});
