import { NewDeadLetter, findContracts } from '../../src/internal';
import { AdminHarness, startAdminHarness } from '../support/adminHarness';
import { LedgerPosted } from '../support/contracts';
import { DbKind } from '../support/databases';
import { newDeadLetter } from '../support/deadLetters';

/**
 * An admin that runs no consumer for the dead letter (a separate admin deployment): the contract of an
 * edited payload can only come from the registry of @MessageContract classes loaded in the process
 * (LedgerPosted, topic `ledger.posted`, version 2, imported above).
 */
describe.each<{ kind: DbKind }>([{ kind: 'sqlite' }, { kind: 'postgres' }])('edit + resend without a local consumer on $kind', ({ kind }) => {
  let h: AdminHarness;

  beforeAll(async () => {
    h = await startAdminHarness(kind);
  });
  afterAll(async () => h?.dispose());
  beforeEach(async () => {
    for (const t of ['tmm_dead_letter', 'tmm_audit', 'tmm_outbox']) await h.db.dataSource.query(`DELETE FROM ${t}`);
  });

  const store = async (over: Partial<NewDeadLetter> = {}) => {
    const letter = newDeadLetter({
      queue: 'ledger-service.ledger',
      deadLetterQueue: 'ledger-service.ledger.dlq',
      consumer: 'LedgerService.onPosted',
      topic: 'ledger.posted',
      originalRoutingKey: 'ledger.posted',
      payload: JSON.stringify({ entryId: 'e-1', amount: 250, currency: 'EUR' }),
      headers: { 'tmm-contract-version': 2, 'tmm-topic': 'ledger.posted', 'tmm-error-message': 'ledger closed', 'tmm-consume-attempt': 3 },
      ...over,
    });
    const { id } = await h.tmm.transactions.run(() => h.admin.deadLetters.add(h.tmm.transactions.manager, letter));
    return { id, letter };
  };
  const outboxRows = async () => (await h.db.dataSource.query('SELECT id, topic, payload, headers FROM tmm_outbox')) as { id: string; topic: string; payload: string; headers: unknown }[];
  const auditOf = async (id: string) => (await h.api.get(`/api/audit?targetId=${id}`)).body.items;

  it('runs no consumer, and the registry knows the letter’s contract', () => {
    expect(h.tmm.consumers.definitions).toEqual([]);
    expect(findContracts('ledger.posted', 2)).toEqual([LedgerPosted]);
  });

  it('refuses an edited payload that violates the contract, naming the field, and changes nothing', async () => {
    const { id } = await store();
    const missing = await h.api.post(`/api/dead-letters/${id}/resend`, { payload: { entryId: 'e-1', amount: 300 } });
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe('TMM_INVALID_INPUT');
    expect(missing.body.error.message).toContain('LedgerPosted');
    expect(missing.body.error.message).toContain('currency');
    expect(missing.body.error.problems).toEqual([expect.objectContaining({ path: 'payload.currency' })]);

    const negative = await h.api.post(`/api/dead-letters/${id}/resend`, { payload: { entryId: 'e-1', amount: -5, currency: 'EUR' } });
    expect(negative.status).toBe(400);
    expect(negative.body.error.problems).toEqual([expect.objectContaining({ path: 'payload.amount' })]);

    expect((await h.api.get(`/api/dead-letters/${id}`)).body).toMatchObject({ status: 'NEW', resentMessageId: null });
    expect(await auditOf(id)).toEqual([]);
    expect(await outboxRows()).toEqual([]);
  });

  it('accepts a valid edit: exactly one outbox row, carrying the edited payload and the contract version', async () => {
    const { id, letter } = await store();
    const ok = await h.api.post(`/api/dead-letters/${id}/resend`, { payload: { entryId: 'e-1', amount: 300, currency: 'EUR', note: 'stripped by the consumer' } });
    expect(ok.status).toBe(200);
    const rows = await outboxRows();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: ok.body.messageId, topic: 'ledger.posted' });
    expect(JSON.parse(rows[0].payload)).toEqual({ entryId: 'e-1', amount: 300, currency: 'EUR', note: 'stripped by the consumer' });
    const headers = typeof rows[0].headers === 'string' ? JSON.parse(rows[0].headers) : rows[0].headers;
    expect(headers).toMatchObject({ 'tmm-contract-version': 2, 'tmm-resend-of': letter.messageId, 'tmm-dead-letter-id': id });
    expect((await h.api.get(`/api/dead-letters/${id}`)).body).toMatchObject({ status: 'RESENT', resentMessageId: ok.body.messageId, payload: letter.payload });
    expect(await auditOf(id)).toEqual([expect.objectContaining({ action: 'dead-letter.edit-resend' })]);
  });

  it('does not validate a letter of a contract version this process has not loaded (only: a JSON object)', async () => {
    const { id } = await store({ headers: { 'tmm-contract-version': 7, 'tmm-topic': 'ledger.posted' } });
    expect((await h.api.post(`/api/dead-letters/${id}/resend`, { payload: '[1]' })).status).toBe(400);
    const ok = await h.api.post(`/api/dead-letters/${id}/resend`, { payload: { anything: true } });
    expect(ok.status).toBe(200);
    expect(await outboxRows()).toHaveLength(1);
  });
});
