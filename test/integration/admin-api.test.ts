import { ConsumeContext, DeadLetterStatus, NewDeadLetter, OutboxMessage } from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import { uuidv7 } from 'uuidv7';
import { AdminHarness, ALICE, ApiClient, basic, startAdminHarness } from '../support/adminHarness';
import { waitUntil } from '../support/broker';
import { LedgerPosted } from '../support/contracts';
import { DbKind } from '../support/databases';
import { newDeadLetter, seedDeadLetters } from '../support/deadLetters';

class LedgerHandler {
  readonly received: { messageId: string; message: LedgerPosted; headers: Record<string, unknown> }[] = [];
  @Consumer({ queue: 'admin-api.ledger', retry: false })
  async onPosted(message: LedgerPosted, ctx: ConsumeContext): Promise<void> {
    this.received.push({ messageId: ctx.messageId, message, headers: { ...ctx.headers } });
  }
}

const ledgerLetter = (over: Partial<NewDeadLetter> = {}) =>
  newDeadLetter({
    queue: 'admin-api.ledger',
    deadLetterQueue: 'admin-api.ledger.dlq',
    consumer: 'LedgerHandler.onPosted',
    topic: 'ledger.posted',
    originalRoutingKey: 'ledger.posted',
    payload: JSON.stringify({ entryId: 'e-1', amount: 250, currency: 'EUR' }),
    ...over,
  });

describe.each<{ kind: DbKind }>([{ kind: 'sqlite' }, { kind: 'postgres' }])('admin HTTP API on $kind', ({ kind }) => {
  let h: AdminHarness;
  let handler: LedgerHandler;

  beforeAll(async () => {
    handler = new LedgerHandler();
    h = await startAdminHarness(kind, { consumers: [handler] });
  });
  afterAll(async () => h?.dispose());
  beforeEach(async () => {
    for (const t of ['tmm_dead_letter', 'tmm_audit', 'tmm_outbox']) await h.db.dataSource.query(`DELETE FROM ${t}`);
    handler.received.length = 0;
  });

  const store = async (over: Partial<NewDeadLetter> = {}) => {
    const letter = ledgerLetter(over);
    const { id } = await h.tmm.transactions.run(() => h.admin.deadLetters.add(h.tmm.transactions.manager, letter));
    return { id, letter };
  };
  const auditOf = async (id: string) => (await h.api.get(`/api/audit?targetId=${id}`)).body.items;

  it('GET /api/session names the principal and hands out its CSRF token', async () => {
    const res = await h.api.get('/api/session');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ principal: 'token:ops', canAct: true, readOnly: false });
    expect(res.body.csrfToken).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('lists dead letters with filters and server-side pagination, newest first', async () => {
    const t0 = Date.now() - 60_000;
    for (let i = 0; i < 5; i++) await store({ lastFailureAt: t0 + i * 1000, topic: i < 3 ? 'ledger.posted' : 'ledger.reversed' });
    const page = await h.api.get('/api/dead-letters?limit=2&offset=1&topic=ledger.posted');
    expect(page.status).toBe(200);
    expect(page.body.total).toBe(3);
    expect(page.body.items.map((d: { lastFailureAt: number }) => d.lastFailureAt)).toEqual([t0 + 1000, t0]);
    const ranged = await h.api.get(`/api/dead-letters?from=${new Date(t0 + 3000).toISOString()}&to=${t0 + 4000}`);
    expect(ranged.body.total).toBe(2);
    expect((await h.api.get('/api/dead-letters?status=RESENT')).body.total).toBe(0);
  });

  it('groups failures by error fingerprint', async () => {
    for (const n of [1, 2, 3]) await store({ errorMessage: `ledger account ${n}00 is closed`, fingerprint: 'f'.repeat(16) });
    await store({ errorMessage: 'timeout', fingerprint: 'a'.repeat(16) });
    const res = await h.api.get('/api/dead-letters/groups');
    expect(res.body.groups.map((g: { fingerprint: string; count: number }) => [g.fingerprint, g.count])).toEqual([
      ['f'.repeat(16), 3],
      ['a'.repeat(16), 1],
    ]);
    expect((await h.api.get(`/api/dead-letters?fingerprint=${'f'.repeat(16)}`)).body.total).toBe(3);
  });

  it('resends one dead letter through the outbox to its consumer’s queue, where it is consumed; audited with the principal', async () => {
    const { id, letter } = await store();
    const res = await h.api.post(`/api/dead-letters/${id}/resend`, { comment: 'account reopened' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'RESENT', messageId: expect.any(String) });
    await waitUntil(() => handler.received.length === 1, 'the resent message to be consumed');
    const got = handler.received[0];
    expect(got.messageId).toBe(res.body.messageId);
    expect(got.message).toMatchObject({ entryId: 'e-1', amount: 250 });
    expect(got.headers).toMatchObject({ 'tmm-resend-of': letter.messageId, 'tmm-dead-letter-id': id, 'tmm-original-routing-key': 'ledger.posted' });
    expect(got.headers['tmm-error-message']).toBeUndefined(); // the failure headers do not travel again

    const detail = (await h.api.get(`/api/dead-letters/${id}`)).body;
    expect(detail).toMatchObject({ status: 'RESENT', statusBy: 'token:ops', resentMessageId: res.body.messageId, payload: letter.payload });
    // The journey is not recorded here (journey.enabled off): only what the dead letter and the audit trail
    // say, never a step nobody saw (no "created"/"published" for a message tmm may not have sent).
    expect(detail.journey.map((j: { step: string }) => j.step)).toEqual(['dead-lettered', 'collected', 'dead-letter.resend']);
    expect(detail.timeline).toBeNull();
    expect(await auditOf(id)).toEqual([
      expect.objectContaining({ principal: 'token:ops', action: 'dead-letter.resend', before: { status: 'NEW' }, after: expect.objectContaining({ status: 'RESENT', resentMessageId: res.body.messageId }), comment: 'account reopened' }),
    ]);

    const again = await h.api.post(`/api/dead-letters/${id}/resend`);
    expect(again.status).toBe(409);
    expect(again.body.error.message).toContain('is RESENT');
  });

  it('edit + resend validates the payload against the consumer’s contract, keeps the original, and records both', async () => {
    const { id, letter } = await store();
    const bad = await h.api.post(`/api/dead-letters/${id}/resend`, { payload: { entryId: 'e-1', amount: -5, currency: 'EUR' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('LedgerPosted');
    expect(bad.body.error.problems).toEqual([expect.objectContaining({ path: 'payload.amount' })]);
    expect((await h.api.get(`/api/dead-letters/${id}`)).body.status).toBe('NEW');
    expect(await auditOf(id)).toEqual([]);
    expect((await h.tmm.outbox.countByStatus()).PENDING + (await h.tmm.outbox.countByStatus()).DELIVERED).toBe(0);

    const notJson = await h.api.post(`/api/dead-letters/${id}/resend`, { payload: '{"entryId": ' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.message).toContain('not valid JSON');

    const ok = await h.api.post(`/api/dead-letters/${id}/resend`, { payload: { entryId: 'e-1', amount: 300, currency: 'EUR' } });
    expect(ok.status).toBe(200);
    await waitUntil(() => handler.received.length === 1, 'the edited message to be consumed');
    expect(handler.received[0].message.amount).toBe(300);
    expect((await h.api.get(`/api/dead-letters/${id}`)).body.payload).toBe(letter.payload);
    const [entry] = await auditOf(id);
    expect(entry).toMatchObject({ action: 'dead-letter.edit-resend', before: { payload: letter.payload } });
    expect(JSON.parse(entry.after.payload)).toEqual({ entryId: 'e-1', amount: 300, currency: 'EUR' });
  });

  it('discards one; a second discard is a conflict; basic-auth users are audited by name', async () => {
    const { id } = await store();
    const alice = new ApiClient(h.url, basic(ALICE.user, ALICE.password));
    const res = await alice.post(`/api/dead-letters/${id}/discard`, { comment: 'duplicate order' });
    expect(res.status).toBe(200);
    expect((await alice.post(`/api/dead-letters/${id}/discard`)).status).toBe(409);
    expect(await auditOf(id)).toEqual([expect.objectContaining({ principal: 'user:alice', action: 'dead-letter.discard', after: { status: 'DISCARDED' } })]);
    expect((await h.api.post(`/api/dead-letters/${uuidv7()}/discard`)).status).toBe(404);
  });

  it('bulk: resends a whole error group, skips what another operator already handled, and needs a filter or ids', async () => {
    const group = 'c'.repeat(16);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await store({ fingerprint: group })).id);
    await store({ fingerprint: 'd'.repeat(16) });
    await h.api.post(`/api/dead-letters/${ids[0]}/discard`);
    const res = await h.api.post('/api/dead-letters/resend', { filter: { fingerprint: group } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ matched: 3, skipped: [] });
    expect(res.body.done.sort()).toEqual(ids.slice(1).sort());
    await waitUntil(() => handler.received.length === 3, 'the group to be consumed');
    expect((await h.api.get('/api/dead-letters?status=NEW')).body.total).toBe(1); // the other group is untouched

    const byIds = await h.api.post('/api/dead-letters/discard', { ids: [ids[1], ids[0]] });
    expect(byIds.body).toMatchObject({ done: [], skipped: expect.arrayContaining([{ id: ids[1], status: 'RESENT' }, { id: ids[0], status: 'DISCARDED' }]) });

    const empty = await h.api.post('/api/dead-letters/resend', {});
    expect(empty.status).toBe(400);
    expect((await h.api.post('/api/dead-letters/resend', { filter: {} })).status).toBe(400);
  });

  it('retries and discards DEAD outbox rows', async () => {
    const row = (topic: string): OutboxMessage => ({ id: uuidv7(), topic, exchange: 'nowhere', routingKey: topic, payload: '{}', headers: {}, availableAt: Date.now() + 3_600_000, orderingKey: null, createdAt: Date.now() });
    const a = row('a.b');
    const b = row('c.d');
    await h.tmm.transactions.run(() => h.tmm.outbox.append(h.tmm.transactions.manager, [a, b]));
    for (const m of [a, b]) await h.tmm.outbox.recordFailure(m.id, 'x', { error: 'TMM_PUBLISH_UNROUTABLE: no queue', retryAt: Date.now() + 3_600_000, dead: true });
    const list = await h.api.get('/api/outbox');
    expect(list.body.total).toBe(2);
    expect(list.body.items[0]).toMatchObject({ status: 'DEAD', lastError: 'TMM_PUBLISH_UNROUTABLE: no queue' });

    // Stop the relay from publishing the revived row to an exchange that does not exist while we look at it.
    const retried = await h.api.post(`/api/outbox/${a.id}/retry`);
    expect(retried.status).toBe(200);
    const after = await h.tmm.outbox.get(a.id);
    expect(after && ['PENDING', 'DEAD'].includes(after.status)).toBe(true);
    expect((await h.api.get(`/api/audit?targetId=${a.id}`)).body.items[0]).toMatchObject({ action: 'outbox.retry', before: { status: 'DEAD' }, after: { status: 'PENDING', attempts: 0 } });

    expect((await h.api.post(`/api/outbox/${b.id}/discard`)).status).toBe(200);
    expect(await h.tmm.outbox.get(b.id)).toBeUndefined();
    expect((await h.api.get(`/api/audit?targetId=${b.id}`)).body.items[0].before).toMatchObject({ id: b.id, payload: '{}', status: 'DEAD' });
    expect((await h.api.post(`/api/outbox/${b.id}/discard`)).status).toBe(404);
  });

  it('overview and metrics report the backlog and the dead letters', async () => {
    await store({ consumer: 'LedgerHandler.onPosted' });
    await store({ consumer: 'Other.handle', fingerprint: 'e'.repeat(16) });
    const o = (await h.api.get('/api/overview')).body;
    expect(o.deadLetters.byStatus).toEqual({ NEW: 2, RESENT: 0, DISCARDED: 0 });
    expect(o.deadLetters.byConsumer).toEqual(expect.arrayContaining([{ consumer: 'Other.handle', count: 1 }, { consumer: 'LedgerHandler.onPosted', count: 1 }]));
    expect(o.deadLetters.topGroups).toHaveLength(2);
    expect(o.outbox).toMatchObject({ pending: 0, oldestPendingAgeMs: null });
    expect(o.process.consumers).toEqual([{ name: 'LedgerHandler.onPosted', queue: 'admin-api.ledger', deadLetterQueue: 'admin-api.ledger.dlq' }]);

    const m = await h.api.get('/metrics');
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toContain('text/plain');
    expect(m.body).toContain('tmm_dead_letters{status="NEW"} 2');
    expect(m.body).toContain('tmm_outbox_pending 0');
    expect(m.body).toMatch(/tmm_consumer_handled_total \d+/);
  });

  if (kind === 'sqlite') {
    it('stays fast with 100,000 dead letters: first and last page, filters and groups', async () => {
      const seeding = performance.now();
      await seedDeadLetters(h.db.dataSource, 100_000, { consumers: 5, errors: 20 });
      const seeded = performance.now() - seeding;
      const timed = async (path: string) => {
        const t = performance.now();
        const res = await h.api.get(path);
        expect(res.status).toBe(200);
        return { ms: performance.now() - t, body: res.body };
      };
      const first = await timed('/api/dead-letters?limit=50');
      expect(first.body.total).toBe(100_000);
      const last = await timed('/api/dead-letters?limit=50&offset=99950');
      expect(last.body.items).toHaveLength(50);
      const filtered = await timed('/api/dead-letters?consumer=Consumer3.handle&limit=50');
      expect(filtered.body.total).toBe(20_000);
      const groups = await timed('/api/dead-letters/groups');
      expect(groups.body.groups).toHaveLength(20); // 5 consumers × 20 errors, one consumer per error
      const overview = await timed('/api/overview');
      expect(overview.body.deadLetters.byStatus.NEW).toBe(100_000);
      // Generous bounds for a loaded 2-core CI machine; typical times are a few tens of ms.
      console.log(`100k dead letters: seeded in ${seeded.toFixed(0)} ms; ` + Object.entries({ first, last, filtered, groups, overview }).map(([n, r]) => `${n} ${r.ms.toFixed(0)} ms`).join(', '));
      for (const [name, r] of Object.entries({ first, last, filtered, groups, overview })) expect({ name, slow: r.ms > 1500 }).toEqual({ name, slow: false });
    });
  }
});

describe('DeadLetterStatus values', () => {
  it('are the stable strings rows and the API use', () => {
    expect(Object.values(DeadLetterStatus)).toEqual(['NEW', 'RESENT', 'DISCARDED']);
  });
});
