import { uuidv7 } from 'uuidv7';
import {
  DeadLetterStatus,
  OutboxMessage,
  TypeOrmAuditTrail,
  TypeOrmDeadLetterStore,
  TypeOrmOutboxAdminStore,
  TypeOrmOutboxStore,
  TypeOrmTransactionManager,
  migrate,
} from '../../src/internal';
import { sqlDialectFor } from '../../src/sql/SqlDialect';
import { TestDatabase, createTestDatabase, dbLanes } from '../support/databases';
import { newDeadLetter } from '../support/deadLetters';

const outboxMessage = (over: Partial<OutboxMessage> = {}): OutboxMessage => ({
  id: uuidv7(),
  topic: 'order.paid',
  exchange: 'tmm.events',
  routingKey: 'order.paid',
  payload: '{"orderId":"o-1"}',
  headers: {},
  availableAt: Date.now(),
  orderingKey: null,
  createdAt: Date.now(),
  ...over,
});

describe.each(dbLanes())('dead-letter stores (DeadLetterStore, AuditTrail, OutboxAdminStore) on $name', ({ kind }) => {
  let db: TestDatabase;
  let tm: TypeOrmTransactionManager;
  let store: TypeOrmDeadLetterStore;
  let audit: TypeOrmAuditTrail;
  let outbox: TypeOrmOutboxStore;
  let outboxAdmin: TypeOrmOutboxAdminStore;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    await migrate(db.dataSource);
    tm = new TypeOrmTransactionManager(db.dataSource);
    store = new TypeOrmDeadLetterStore(db.dataSource, tm.dialect);
    audit = new TypeOrmAuditTrail(db.dataSource, tm.dialect);
    outbox = new TypeOrmOutboxStore(tm, sqlDialectFor(tm.dialect));
    outboxAdmin = new TypeOrmOutboxAdminStore(db.dataSource, tm.dialect);
  });
  afterAll(async () => db?.dispose());
  beforeEach(async () => {
    await db.dataSource.query('DELETE FROM tmm_dead_letter');
    await db.dataSource.query('DELETE FROM tmm_audit');
    await db.dataSource.query('DELETE FROM tmm_outbox');
  });

  const add = (over = {}) => tm.run(() => store.add(tm.manager, newDeadLetter(over)));

  it('add stores every field and reads it back', async () => {
    const letter = newDeadLetter({ headers: { 'tmm-contract-version': 1, note: 'ünïcødé ✓', flag: true, none: null } });
    const { id, inserted } = await tm.run(() => store.add(tm.manager, letter));
    expect(inserted).toBe(true);
    expect(await store.get(id)).toEqual({ ...letter, id, payloadEncoding: 'utf8', status: 'NEW', statusAt: null, statusBy: null, resentMessageId: null, set: null });
  });

  it('add keeps a base64 payload and its encoding flag', async () => {
    const bytes = Buffer.from([0xff, 0x00, 0x41, 0xc3]);
    const letter = newDeadLetter({ payload: bytes.toString('base64'), payloadEncoding: 'base64' as const });
    const { id } = await tm.run(() => store.add(tm.manager, letter));
    const back = await store.get(id);
    expect(back).toMatchObject({ payloadEncoding: 'base64' });
    expect(Buffer.from(back!.payload, 'base64').equals(bytes)).toBe(true);
  });

  it('add is idempotent on (message id, dead-letter queue): a redelivery stores nothing new', async () => {
    const letter = newDeadLetter();
    const first = await tm.run(() => store.add(tm.manager, letter));
    const again = await tm.run(() => store.add(tm.manager, { ...letter, receivedAt: letter.receivedAt + 5 }));
    expect(again).toEqual({ id: first.id, inserted: false });
    // The same message dead-lettered by another consumer (another queue) is another dead letter.
    const other = await tm.run(() => store.add(tm.manager, { ...letter, deadLetterQueue: 'invoicing.dlq' }));
    expect(other.inserted).toBe(true);
    expect((await store.list({}, { limit: 10, offset: 0 })).total).toBe(2);
  });

  it('concurrent adds of one message store one row', async () => {
    const letter = newDeadLetter();
    const results = await Promise.all([1, 2, 3].map(() => tm.run(() => store.add(tm.manager, letter), { name: 'collect' })));
    expect(results.filter((r) => r.inserted)).toHaveLength(1);
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
  });

  it('add rolls back with the caller’s transaction', async () => {
    const letter = newDeadLetter();
    await expect(
      tm.run(async () => {
        await store.add(tm.manager, letter);
        throw new Error('crash before commit');
      }),
    ).rejects.toThrow('crash before commit');
    expect((await store.list({ messageId: letter.messageId }, { limit: 1, offset: 0 })).total).toBe(0);
  });

  it('list filters, pages newest first, and counts the whole match', async () => {
    const t0 = Date.now() - 100_000;
    for (let i = 0; i < 7; i++) await add({ lastFailureAt: t0 + i * 1000, topic: i % 2 ? 'order.paid' : 'order.refunded', consumer: i < 5 ? 'A.h' : 'B.h' });
    const page1 = await store.list({ topic: 'order.paid' }, { limit: 2, offset: 0 });
    expect(page1.total).toBe(3);
    expect(page1.items.map((d) => d.lastFailureAt)).toEqual([t0 + 5000, t0 + 3000]);
    const page2 = await store.list({ topic: 'order.paid' }, { limit: 2, offset: 2 });
    expect(page2.items.map((d) => d.lastFailureAt)).toEqual([t0 + 1000]);
    expect((await store.list({ consumer: 'B.h' }, { limit: 10, offset: 0 })).total).toBe(2);
    expect((await store.list({ from: t0 + 2000, to: t0 + 4000 }, { limit: 10, offset: 0 })).total).toBe(3);
    expect((page1.items[0] as unknown as Record<string, unknown>).payload).toBeUndefined(); // lists stay light
  });

  it('list finds every dead letter of one conversation by its tmm-correlation-id header, and nothing for an id it cannot search', async () => {
    const withId = (correlationId: string) => ({ headers: { 'tmm-contract-version': 1, 'tmm-correlation-id': correlationId, 'tmm-consume-attempt': 3 } });
    const a = (await add(withId('order-7:a1'))).id;
    const b = (await add(withId('order-7:a1'))).id;
    await add(withId('order-7:a10')); // a longer id that starts with the searched one
    await add(withId('order-8'));
    await add(); // no correlation id at all
    const page = await store.list({ correlationId: 'order-7:a1' }, { limit: 10, offset: 0 });
    expect(page.total).toBe(2);
    expect(page.items.map((d) => d.id).sort()).toEqual([a, b].sort());
    expect((await store.list({ correlationId: 'order-9' }, { limit: 10, offset: 0 })).total).toBe(0);
    expect((await store.list({ correlationId: 'order-%' }, { limit: 10, offset: 0 })).total).toBe(0); // a LIKE wildcard is not a search
  });

  it('dead letters carry their SET (the tmm-set header) and filter by it, LIKE wildcards and look-alike header values matching nothing else', async () => {
    const inSet = (set: string, extra: Record<string, string> = {}) => ({ headers: { 'tmm-contract-version': 1, 'tmm-set': set, ...extra } });
    const b = (await add(inSet('B'))).id;
    await add(inSet('BB'));
    await add(inSet('a_b'));
    await add(inSet('axb'));
    await add({ headers: { 'x-note': '"tmm-set":"B"' } }); // a value that contains the text: JSON-escaped, not a match
    await add(); // outside SET routing
    const page = await store.list({ set: 'B' }, { limit: 10, offset: 0 });
    expect(page.items.map((d) => [d.id, d.set])).toEqual([[b, 'B']]);
    expect((await store.list({ set: 'a_b' }, { limit: 10, offset: 0 })).items.map((d) => d.set)).toEqual(['a_b']);
    expect((await store.list({ set: '%' }, { limit: 10, offset: 0 })).total).toBe(0);
    expect((await store.list({ set: 'B"' }, { limit: 10, offset: 0 })).total).toBe(0);
    const all = await store.list({}, { limit: 10, offset: 0 });
    expect(all.items.map((d) => d.set).sort()).toEqual([null, null, 'B', 'BB', 'a_b', 'axb'].sort());
    expect((await store.get(b))!.set).toBe('B');
  });

  it('groups dead letters by error fingerprint, biggest group first', async () => {
    for (let i = 0; i < 3; i++) await add({ errorMessage: `order ${1000 + i} not found`, fingerprint: 'aaaaaaaaaaaaaaaa' });
    await add({ errorMessage: 'timeout', fingerprint: 'bbbbbbbbbbbbbbbb' });
    const groups = await store.groups({ status: [DeadLetterStatus.New] }, 10);
    expect(groups.map((g) => [g.fingerprint, g.count])).toEqual([
      ['aaaaaaaaaaaaaaaa', 3],
      ['bbbbbbbbbbbbbbbb', 1],
    ]);
    expect(groups[0].sampleError).toMatch(/^order 100\d not found$/);
  });

  it('lock + setStatus change only rows in the expected status; a second operator gets nothing', async () => {
    const a = await add();
    const b = await add();
    const first = await tm.run(async () => {
      const rows = await store.lock(tm.manager, [a.id, b.id], [DeadLetterStatus.New]);
      const n = await store.setStatus(tm.manager, rows.map((r) => r.id), { from: [DeadLetterStatus.New], to: DeadLetterStatus.Discarded, at: 1, by: 'user:alice' });
      return { rows: rows.length, n };
    });
    expect(first).toEqual({ rows: 2, n: 2 });
    const second = await tm.run(async () => store.lock(tm.manager, [a.id, b.id], [DeadLetterStatus.New]));
    expect(second).toEqual([]);
    expect(await store.get(a.id)).toMatchObject({ status: 'DISCARDED', statusBy: 'user:alice', statusAt: 1 });
    const counts = await store.summarize();
    expect(counts.byStatus).toEqual({ NEW: 0, RESENT: 0, DISCARDED: 2 });
  });

  it('purge deletes RESENT and DISCARDED rows whose status changed before the cut-off, oldest first and at most limit; never NEW ones', async () => {
    const rows = await Promise.all([add(), add(), add(), add(), add()]);
    const set = (id: string, status: DeadLetterStatus, at: number) => tm.run(() => store.setStatus(tm.manager, [id], { from: [DeadLetterStatus.New], to: status, at, by: 'test' }));
    await set(rows[0].id, DeadLetterStatus.Discarded, 100);
    await set(rows[1].id, DeadLetterStatus.Discarded, 300);
    await set(rows[2].id, DeadLetterStatus.Discarded, 5000); // after the cut-off
    // rows[3] stays NEW however old; rows[4] is RESENT early
    await tm.run(() => store.setStatus(tm.manager, [rows[4].id], { from: [DeadLetterStatus.New], to: DeadLetterStatus.Resent, at: 200, by: 'test', resentMessageIds: new Map([[rows[4].id, uuidv7()]]) }));
    expect(await store.countPurgeable(1000)).toBe(3);
    expect(await tm.run(() => store.purge(tm.manager, 1000, 2))).toBe(2);
    const left = async () => (await db.dataSource.query('SELECT id FROM tmm_dead_letter')).map((r: { id: string }) => String(r.id)).sort();
    expect(await left()).toEqual([rows[1].id, rows[2].id, rows[3].id].sort()); // the two oldest went (100, 200)
    expect(await tm.run(() => store.purge(tm.manager, 1000, 100))).toBe(1);
    expect(await left()).toEqual([rows[2].id, rows[3].id].sort());
    // A purge that rolls back deletes nothing.
    await expect(tm.run(async () => {
      await store.purge(tm.manager, 10_000, 100);
      throw new Error('roll back');
    })).rejects.toThrow('roll back');
    expect(await left()).toEqual([rows[2].id, rows[3].id].sort());
  });

  it('the audit trail purges entries older than the cut-off, at most limit at a time', async () => {
    await tm.run(() => audit.record(tm.manager, [10, 20, 30, 5000].map((at) => ({ at, principal: 'test', action: 'dead-letter.discard', targetType: 'dead-letter' as const, targetId: uuidv7(), before: null, after: null, comment: String(at) }))));
    expect(await audit.countPurgeable(1000)).toBe(3);
    expect(await tm.run(() => audit.purge(tm.manager, 1000, 2))).toBe(2);
    expect((await audit.list({}, { limit: 10, offset: 0 })).items.map((e) => e.comment)).toEqual(['5000', '30']);
  });

  it('get and lock ignore ids that are not UUIDs instead of failing', async () => {
    expect(await store.get("x' OR 1=1 --")).toBeUndefined();
    expect(await tm.run(() => store.lock(tm.manager, ['nope'], [DeadLetterStatus.New]))).toEqual([]);
  });

  it('the audit trail records in the caller’s transaction and lists newest first', async () => {
    await tm.run(() =>
      audit.record(tm.manager, [
        { at: 1, principal: 'user:alice', action: 'dead-letter.resend', targetType: 'dead-letter', targetId: 'x', before: { status: 'NEW' }, after: { status: 'RESENT' }, comment: 'fixed' },
        { at: 2, principal: 'user:bob', action: 'dead-letter.discard', targetType: 'dead-letter', targetId: 'y', before: { status: 'NEW' }, after: { status: 'DISCARDED' }, comment: null },
      ]),
    );
    await tm
      .run(async () => {
        await audit.record(tm.manager, [{ at: 3, principal: 'user:eve', action: 'x', targetType: 'outbox', targetId: 'z', before: null, after: null, comment: null }]);
        throw new Error('rolled back');
      })
      .catch(() => undefined);
    const page = await audit.list({}, { limit: 10, offset: 0 });
    expect(page.total).toBe(2);
    expect(page.items.map((e) => e.principal)).toEqual(['user:bob', 'user:alice']);
    expect(page.items[1]).toMatchObject({ action: 'dead-letter.resend', before: { status: 'NEW' }, after: { status: 'RESENT' }, comment: 'fixed' });
    expect((await audit.list({ targetId: 'x' }, { limit: 10, offset: 0 })).total).toBe(1);
  });

  it('outbox admin: lists DEAD rows, revives them as due PENDING rows, removes them, and leaves other rows alone', async () => {
    const dead = outboxMessage();
    const pending = outboxMessage();
    await tm.run(() => outbox.append(tm.manager, [dead, pending]));
    await outbox.recordFailure(dead.id, 'x', { error: 'TMM_PUBLISH_UNROUTABLE: nope', retryAt: Date.now() + 60_000, dead: true });
    const list = await outboxAdmin.list({ status: ['DEAD'] }, { limit: 10, offset: 0 });
    expect(list.items.map((r) => [r.id, r.status, r.lastError])).toEqual([[dead.id, 'DEAD', 'TMM_PUBLISH_UNROUTABLE: nope']]);
    expect((await outboxAdmin.stats()).byStatus).toMatchObject({ PENDING: 1, DEAD: 1 });

    const now = Date.now();
    const revived = await tm.run(async () => {
      const rows = await outboxAdmin.lock(tm.manager, [dead.id, pending.id], ['DEAD', 'EXCEPTION']);
      return { locked: rows.map((r) => r.id), n: await outboxAdmin.revive(tm.manager, [dead.id, pending.id], now) };
    });
    expect(revived).toEqual({ locked: [dead.id], n: 1 });
    expect(await outbox.get(dead.id)).toMatchObject({ status: 'PENDING', attempts: 0, availableAt: now, leaseOwner: null });
    const stats = await outboxAdmin.stats(now + 1);
    expect(stats).toMatchObject({ due: 2 });

    await outbox.recordFailure(dead.id, 'x', { error: 'again', retryAt: now, dead: true });
    expect(await tm.run(() => outboxAdmin.remove(tm.manager, [dead.id, pending.id]))).toBe(1);
    expect(await outbox.get(dead.id)).toBeUndefined();
    expect(await outbox.get(pending.id)).toBeDefined();
  });

  it('outbox admin stats: the due backlog and its oldest row per topic, delayed and other statuses left out', async () => {
    const now = Date.now();
    const rows = [
      outboxMessage({ topic: 'order.paid', availableAt: now - 5000 }),
      outboxMessage({ topic: 'order.paid', availableAt: now - 1000 }),
      outboxMessage({ topic: 'order.paid', availableAt: now - 2000 }),
      outboxMessage({ topic: 'order.refunded', availableAt: now - 7000 }),
      outboxMessage({ topic: 'order.refunded', availableAt: now + 60_000 }), // delayed: not due
      outboxMessage({ topic: 'order.shipped', availableAt: now - 9000 }),
    ];
    await tm.run(() => outbox.append(tm.manager, rows));
    await outbox.recordFailure(rows[5].id, 'x', { error: 'gone', retryAt: now, dead: true }); // DEAD: not backlog
    const stats = await outboxAdmin.stats(now);
    expect(stats.dueByTopic).toEqual([
      { topic: 'order.paid', due: 3, oldestDueAt: now - 5000, waitingSince: now - 5000 },
      { topic: 'order.refunded', due: 1, oldestDueAt: now - 7000, waitingSince: now - 7000 },
    ]);
    expect(stats).toMatchObject({ due: 4, oldestDueAt: now - 7000, oldestWaitingSince: now - 7000 });
    await db.dataSource.query('DELETE FROM tmm_outbox');
    expect(await outboxAdmin.stats(now)).toMatchObject({ due: 0, oldestDueAt: null, oldestWaitingSince: null, dueByTopic: [] });
  });

  it('outbox admin stats: a row whose publish failed waits since it was created, though its retry is not due yet (a broker outage is not a fresh backlog)', async () => {
    const now = Date.now();
    const failing = outboxMessage({ topic: 'order.failing', availableAt: now - 60_000, createdAt: now - 60_000 });
    const due = outboxMessage({ topic: 'order.paid', availableAt: now - 1000, createdAt: now - 1000 });
    await tm.run(() => outbox.append(tm.manager, [failing, due]));
    await outbox.recordFailure(failing.id, 'x', { error: 'broker down', retryAt: now + 30_000, dead: false }); // rescheduled
    const stats = await outboxAdmin.stats(now);
    expect(stats.dueByTopic).toEqual([
      { topic: 'order.paid', due: 1, oldestDueAt: now - 1000, waitingSince: now - 1000 },
      { topic: 'order.failing', due: 0, oldestDueAt: null, waitingSince: now - 60_000 },
    ]);
    expect(stats).toMatchObject({ due: 1, oldestDueAt: now - 1000, oldestWaitingSince: now - 60_000 });
    await db.dataSource.query('DELETE FROM tmm_outbox');
  });

  it('outbox admin per SET: the backlog of each asked set (due or waiting for a retry, not delayed by the sender), and lists with the set field and filter', async () => {
    const now = Date.now();
    const inSet = (set: string, over: Partial<OutboxMessage> = {}) => outboxMessage({ headers: { 'tmm-set': set }, ...over });
    const rows = [
      inSet('A', { createdAt: now - 4000, availableAt: now - 4000 }),
      inSet('A', { createdAt: now - 1000, availableAt: now - 1000 }),
      inSet('B', { createdAt: now - 9000, availableAt: now - 9000 }), // will wait for a retry (its set is down)
      inSet('B', { createdAt: now - 3000, availableAt: now + 60_000 }), // delayed by its sender: not backlog
      inSet('a_b', { createdAt: now - 2000, availableAt: now - 2000 }),
      outboxMessage({ availableAt: now - 500 }), // outside SET routing
    ];
    await tm.run(() => outbox.append(tm.manager, rows));
    await outbox.recordFailure(rows[2].id, 'x', { error: 'TMM_PUBLISH_CONNECTION_LOST', retryAt: now + 30_000, dead: false, countAttempt: false });
    const stats = await outboxAdmin.stats(now, ['A', 'B', 'axb', 'C']);
    expect(stats.bySet).toEqual([
      { set: 'A', pending: 2, oldestCreatedAt: now - 4000 },
      { set: 'B', pending: 1, oldestCreatedAt: now - 9000 },
      { set: 'axb', pending: 0, oldestCreatedAt: null },
      { set: 'C', pending: 0, oldestCreatedAt: null },
    ]);
    expect((await outboxAdmin.stats(now)).bySet).toBeUndefined();
    const listed = await outboxAdmin.list({ status: ['PENDING'], set: 'B' }, { limit: 10, offset: 0 });
    expect(listed.items.map((r) => [r.id, r.set]).sort()).toEqual([[rows[2].id, 'B'], [rows[3].id, 'B']].sort());
    expect((await outboxAdmin.list({ status: ['PENDING'], set: 'a_b' }, { limit: 10, offset: 0 })).total).toBe(1);
    const all = await outboxAdmin.list({ status: ['PENDING'] }, { limit: 10, offset: 0 });
    expect(all.items.map((r) => r.set).sort()).toEqual([null, 'A', 'A', 'B', 'B', 'a_b'].sort());
    expect((all.items[0] as unknown as Record<string, unknown>).headers).toBeUndefined(); // lists stay light
  });
});
