/**
 * Searching dead letters by correlation id through the admin API (GET /api/dead-letters?correlationId=…),
 * on SQLite and PostgreSQL: every letter of one conversation, none of another, and a clear 400 for an id
 * that cannot be searched.
 */
import { type AdminHarness, startAdminHarness } from '../support/adminHarness';
import { newDeadLetter } from '../support/deadLetters';

describe.each(['sqlite', 'postgres'] as const)('dead letters by correlation id on %s', (kind) => {
  let h: AdminHarness;
  beforeAll(async () => {
    h = await startAdminHarness(kind);
  });
  afterAll(async () => h?.dispose());

  const add = (correlationId?: string) =>
    h.tmm.transactions.run(() =>
      h.admin.deadLetters.add(h.tmm.transactions.manager, newDeadLetter(correlationId ? { headers: { 'tmm-contract-version': 1, 'tmm-correlation-id': correlationId } } : {})),
    );

  it('lists the conversation’s letters only', async () => {
    const mine = [(await add('req-42')).id, (await add('req-42')).id];
    await add('req-43');
    await add();
    const res = await h.api.get('/api/dead-letters?status=ALL&correlationId=req-42');
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(2);
    expect(res.body.items.map((d: { id: string }) => d.id).sort()).toEqual(mine.sort());
    expect((await h.api.get('/api/dead-letters?status=ALL')).body.total).toBe(4);
  });

  it('refuses an id with characters it cannot search, naming the parameter', async () => {
    const res = await h.api.get(`/api/dead-letters?correlationId=${encodeURIComponent('req_%')}`);
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('correlationId');
  });
});
