/**
 * Retention inside the application: with `retention.purgeIntervalMs` the admin purges RESENT/DISCARDED
 * dead letters and audit entries past their age on its own (PostgreSQL), and leaves NEW ones and younger
 * rows alone; ground truth read with SQL.
 */
import { uuidv7 } from 'uuidv7';
import { type AdminHarness, startAdminHarness } from '../support/adminHarness';
import { waitUntil } from '../support/consumers';
import { newDeadLetter } from '../support/deadLetters';

describe('admin retention on postgres', () => {
  let h: AdminHarness;
  const DAY = 86_400_000;
  afterAll(async () => h?.dispose());

  it('purges what is past its retention every purgeIntervalMs, and nothing else', async () => {
    h = await startAdminHarness('postgres', { admin: { collector: { enabled: false }, retention: { deadLettersMs: 7 * DAY, auditMs: 30 * DAY, purgeIntervalMs: 300 } } });
    const { tmm, admin, db } = h;
    const now = Date.now();
    const ids: Record<string, string> = {};
    for (const [tag, status, age] of [['old-new', 'NEW', 60], ['old-discarded', 'DISCARDED', 8], ['young-discarded', 'DISCARDED', 6]] as const) {
      ids[tag] = (await tmm.transactions.run(() => admin.deadLetters.add(tmm.transactions.manager, newDeadLetter({ topic: tag })))).id;
      if (status !== 'NEW') await db.dataSource.query(`UPDATE tmm_dead_letter SET status = $1, status_at = $2, status_by = 'test' WHERE id = $3`, [status, now - age * DAY, ids[tag]]);
    }
    await tmm.transactions.run(() =>
      admin.audit.record(tmm.transactions.manager, [40, 20].map((age) => ({ at: now - age * DAY, principal: 'test', action: 'dead-letter.discard', targetType: 'dead-letter' as const, targetId: uuidv7(), before: null, after: null, comment: `${age}d` }))),
    );
    const topics = async () => (await db.dataSource.query('SELECT topic FROM tmm_dead_letter ORDER BY topic')).map((r: { topic: string }) => r.topic);
    await waitUntil(async () => (await topics()).length === 2, 'the timer to purge the old DISCARDED letter');
    expect(await topics()).toEqual(['old-new', 'young-discarded']);
    await waitUntil(async () => Number((await db.dataSource.query('SELECT COUNT(*) AS n FROM tmm_audit'))[0].n) === 1, 'the old audit entry to go');
    expect((await db.dataSource.query('SELECT comment FROM tmm_audit'))[0].comment).toBe('20d');
    expect(await admin.purge({ dryRun: true })).toMatchObject({ deadLetters: 0, audit: 0, dryRun: true });
  });
});
