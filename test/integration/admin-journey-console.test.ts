/**
 * The console's journey view in headless Chromium against a real server, PostgreSQL and RabbitMQ, with the
 * journey recorded (`journey.enabled`, business key `entryId`): an operator finds a message by its business
 * key and reads its timeline in order with the source of each step; a message that failed is dead-lettered,
 * resent after the fix from the dead letter's drawer, and the letter then shows the resent copy consumed.
 * Screenshots: docs/admin/journey-*.png when TMM_UPDATE_SCREENSHOTS=1.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { Consumer } from 'tmm/decorators';
import { AmqpTransport, silentLogger } from '../../src/internal';
import { type AdminHarness, startAdminHarness } from '../support/adminHarness';
import { launchBrowser } from '../support/browser';
import { LedgerPosted } from '../support/contracts';
import { AMQP_URL, uniquePrefix, waitUntil } from '../support/consumers';

const SHOTS = process.env.TMM_UPDATE_SCREENSHOTS === '1' ? resolve(__dirname, '..', '..', 'docs', 'admin') : resolve(__dirname, '..', '..', '.tmp', 'screenshots');
const prefix = uniquePrefix('journey-console');

class Ledger {
  readonly handled: string[] = [];
  readonly closed = new Set<string>(['j-poison']);
  @Consumer({ queue: `${prefix}.ledger`, exchange: prefix, routingKey: 'ledger.#', retry: { maxAttempts: 2, delays: [100] } })
  async post(entry: LedgerPosted): Promise<void> {
    if (this.closed.has(entry.entryId)) throw new Error(`ledger account for ${entry.entryId} is closed`);
    this.handled.push(entry.entryId);
  }
}

async function expectText(page: Page, selector: string, text: string): Promise<void> {
  await page.locator(selector).filter({ hasText: text }).first().waitFor({ timeout: 15_000 });
}

describe('admin console: the recorded journey in headless Chromium', () => {
  let h: AdminHarness;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  const ledger = new Ledger();
  let okId: string;
  let poisonId: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: `${prefix}-tmm` });
    h = await startAdminHarness('postgres', {
      consumers: [ledger],
      transport,
      tmm: { journey: { enabled: true, businessKeys: ['entryId'], flushIntervalMs: 50 } },
    });
    okId = await h.tmm.producer.send(LedgerPosted.of('j-ok', 10), { exchange: prefix, routingKey: 'ledger.posted', headers: { 'tmm-correlation-id': `${prefix}-checkout` } });
    poisonId = await h.tmm.producer.send(LedgerPosted.of('j-poison', 20), { exchange: prefix, routingKey: 'ledger.posted', headers: { 'tmm-correlation-id': `${prefix}-checkout` } });
    await waitUntil(() => ledger.handled.includes('j-ok'), 'the good entry to be consumed', 20_000);
    await waitUntil(async () => (await h.admin.deadLetters.summarize()).byStatus.NEW === 1, 'the poison entry to be collected', 30_000);
    const recorded = async (id: string, ...steps: string[]) => {
      const r = await h.api.get(`/api/journey/${id}`);
      return r.status === 200 && steps.every((s) => r.body.steps.some((x: { step: string }) => x.step === s));
    };
    await waitUntil(() => recorded(okId, 'published', 'delivered'), 'the good entry’s journey', 30_000);
    await waitUntil(() => recorded(poisonId, 'dead-lettered', 'collected'), 'the poison entry’s journey', 30_000);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    await page.goto(h.url);
    await page.fill('#login-token', h.token);
    await page.click('#login-submit');
    await expectText(page, '[data-testid=principal]', 'token:ops');
  });

  afterAll(async () => {
    await browser?.close();
    await h?.dispose();
    const admin = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: `${prefix}-cleanup` });
    try {
      const queues = [`${prefix}.ledger`, `${prefix}.ledger.dlq`, `${prefix}.ledger.retry.100ms`].map((name) => ({ name }));
      await admin.remove({ queues, exchanges: [{ name: prefix }] });
    } finally {
      await admin.close();
    }
  });

  const stepsShown = (scope: string) => page.locator(`${scope} [data-testid=journey] > li`).evaluateAll((lis) => lis.map((li) => li.getAttribute('data-step')));

  it('finds a message by its business key and shows its timeline in order, with each step’s source', async () => {
    await page.click('a[data-tab=journey]');
    await page.fill('[data-testid=journey-q]', 'j-ok');
    await page.click('[data-testid=journey-find]');
    const rows = page.locator('[data-testid=journey-table] tbody tr');
    await waitUntil(async () => (await rows.count()) === 1, 'one message for business key j-ok');
    expect(await rows.first().textContent()).toContain(okId);
    await page.screenshot({ path: join(SHOTS, 'journey-search.png') });
    await rows.first().click();
    await page.locator('#drawer [data-testid=journey]').waitFor();
    expect(await stepsShown('#drawer')).toEqual(['sent', 'stored', 'published', 'delivered']);
    const text = await page.locator('#drawer').textContent();
    expect(text).toContain(`Ledger.post@${h.tmm.instanceId}`);
    expect(text).toContain('consumed');
    await page.screenshot({ path: join(SHOTS, 'journey-timeline.png') });
  });

  it('finds both messages of a conversation by correlation id', async () => {
    await page.click('#drawer-close');
    await page.fill('[data-testid=journey-q]', `${prefix}-checkout`);
    await page.click('[data-testid=journey-find]');
    const rows = page.locator('[data-testid=journey-table] tbody tr');
    await waitUntil(async () => (await rows.count()) === 2, 'two messages of the conversation');
    const text = await page.locator('[data-testid=journey-table]').textContent();
    expect(text).toContain(okId);
    expect(text).toContain(poisonId);
  });

  it('after a resend from the dead letter, the letter shows the resent copy consumed', async () => {
    await page.click('a[data-tab=dead]');
    const rows = page.locator('[data-testid=dead-table] tbody tr');
    await waitUntil(async () => (await rows.count()) === 1, 'the dead letter listed');
    await rows.first().click();
    await page.locator('[data-testid=detail][data-status=NEW]').waitFor();
    expect(await stepsShown('#drawer')).toEqual(['sent', 'stored', 'published', 'delivered', 'retried', 'delivered', 'dead-lettered', 'collected']);
    ledger.closed.delete('j-poison'); // the fix
    await page.click('[data-testid=resend]');
    await page.locator('#confirm-ok').click();
    await page.locator('[data-testid=detail][data-status=RESENT]').waitFor();
    await waitUntil(() => ledger.handled.includes('j-poison'), 'the resent copy to be consumed', 20_000);
    const [letter] = (await h.admin.deadLetters.list({ messageId: poisonId, status: ['RESENT'] }, { limit: 1, offset: 0 })).items;
    await waitUntil(async () => (await h.api.get(`/api/dead-letters/${letter.id}`)).body.timeline.copies[0]?.steps.some((s: { step: string }) => s.step === 'delivered'), 'the copy’s delivery recorded', 30_000);
    // The operator opens the letter again (all statuses).
    await page.click('#drawer-close');
    await page.selectOption('select[name=status]', 'ALL');
    await page.click('[data-testid=apply-filter]');
    await waitUntil(async () => (await rows.count()) === 1, 'the resent letter listed');
    await rows.first().click();
    await page.locator('[data-testid=detail][data-status=RESENT]').waitFor();
    await page.locator('[data-testid=journey-copy][data-fate=consumed]').waitFor({ timeout: 15_000 });
    expect(await stepsShown('#drawer')).toEqual(['sent', 'stored', 'published', 'delivered', 'retried', 'delivered', 'dead-lettered', 'collected', 'resent']);
    expect(await page.locator('#drawer [data-testid=copy-timeline] > li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-step')))).toEqual(['stored', 'published', 'delivered']);
    expect(await page.locator('[data-testid=copy-fate]').textContent()).toBe('consumed');
    // The journey only (the headers below it hold a stack trace with this machine's paths), without the toast.
    await page.locator('[data-testid=toast]').first().waitFor({ state: 'detached', timeout: 15_000 });
    await page.locator('#drawer [data-testid=journey-view]').screenshot({ path: join(SHOTS, 'journey-dead-letter.png') });
  });
});
