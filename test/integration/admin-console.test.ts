/**
 * The web console in headless Chromium against a real server, database and RabbitMQ: messages sent
 * through the outbox fail in their consumers, are dead-lettered by the broker and collected; an operator
 * signs in, lists and filters them, resends one after the fix and sees it consumed, discards one, and
 * resends a whole error group. The screenshots it takes are the ones in docs/admin.md.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { AmqpTransport, ConsumeContext, silentLogger } from '../../src/internal';
import { Consumer } from 'tmm/decorators';
import { AdminHarness, startAdminHarness } from '../support/adminHarness';
import { launchBrowser } from '../support/browser';
import { LedgerPosted } from '../support/contracts';
import { AMQP_URL, uniquePrefix, waitUntil } from '../support/consumers';
import { seedDeadLetters } from '../support/deadLetters';

// Screenshots land in docs/admin/ (the ones docs/admin.md shows) only when asked to refresh them
// (TMM_UPDATE_SCREENSHOTS=1), so that a test run does not rewrite tracked files.
const SHOTS = process.env.TMM_UPDATE_SCREENSHOTS === '1' ? resolve(__dirname, '..', '..', 'docs', 'admin') : resolve(__dirname, '..', '..', '.tmp', 'screenshots');
const prefix = uniquePrefix('console');

class Ledger {
  readonly handled: string[] = [];
  closed = true;
  @Consumer({ queue: `${prefix}.ledger`, exchange: prefix, routingKey: 'ledger.#', retry: { maxAttempts: 2, delays: [50] } })
  async post(entry: LedgerPosted): Promise<void> {
    if (this.closed && entry.entryId.startsWith('poison-')) throw new Error(`ledger account for ${entry.entryId} is closed`);
    this.handled.push(entry.entryId);
  }
}

class Invoices {
  readonly handled: string[] = [];
  readonly addresses = new Set<string>(['e-1', 'poison-1', 'poison-2', 'poison-3']);
  @Consumer({ queue: `${prefix}.invoices`, exchange: prefix, routingKey: 'ledger.posted', retry: false })
  async invoice(entry: LedgerPosted, ctx: ConsumeContext): Promise<void> {
    if (!this.addresses.has(entry.entryId)) throw new Error(`no billing address for entry ${entry.entryId}`);
    this.handled.push(`${entry.entryId}@${ctx.attempt}`);
  }
}

describe('admin console in headless Chromium', () => {
  let h: AdminHarness;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  const ledger = new Ledger();
  const invoices = new Invoices();

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-console-test', confirmTimeoutMs: 5000 });
    h = await startAdminHarness('sqlite', {
      consumers: [ledger, invoices],
      transport,
      admin: { port: 0, auth: { tokens: { ops: 'console-test-token-0123' } }, metrics: { sampleIntervalMs: 200 } },
    });
    for (const [entryId, amount] of [['e-1', 10], ['poison-1', 120], ['poison-2', 75], ['poison-3', 990], ['no-address', 42]] as const) {
      await h.tmm.producer.send(LedgerPosted.of(entryId, amount), { exchange: prefix, routingKey: 'ledger.posted' });
    }
    // 3 ledger failures (one group) + 1 invoicing failure.
    await waitUntil(async () => (await h.admin.deadLetters.summarize()).byStatus.NEW === 4, 'four dead letters to be collected', 20_000);
    browser = await launchBrowser();
    page = await browser.context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await h?.dispose();
    const admin = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-console-test-cleanup' });
    try {
      const queues = [`${prefix}.ledger`, `${prefix}.ledger.dlq`, `${prefix}.ledger.retry.50ms`, `${prefix}.invoices`, `${prefix}.invoices.dlq`].map((name) => ({ name }));
      await admin.remove({ queues, exchanges: [{ name: prefix }] });
    } finally {
      await admin.close();
    }
  });

  const rows = () => page.locator('[data-testid=dead-table] tbody tr');
  const confirm = async () => {
    await page.locator('#confirm-ok').click();
  };

  it('asks for credentials, refuses a wrong token, and signs in with the right one', async () => {
    await page.goto(h.url);
    await page.locator('#login-token').waitFor();
    await page.fill('#login-token', 'wrong-token-0000000000');
    await page.click('#login-submit');
    await expectText(page, '#login-error', 'Wrong credentials.');
    await page.fill('#login-token', 'console-test-token-0123');
    await page.click('#login-submit');
    await expectText(page, '[data-testid=principal]', 'token:ops');
    await expectText(page, '[data-testid=card-dead] .value', '4');
    await page.waitForSelector('svg.chart');
    await page.screenshot({ path: join(SHOTS, 'overview.png') });
  });

  it('lists dead letters and filters them by consumer', async () => {
    await page.click('a[data-tab=dead]');
    await waitUntil(async () => (await rows().count()) === 4, 'four rows');
    await expectText(page, '[data-testid=pager-text]', '1–4 of 4');
    await page.screenshot({ path: join(SHOTS, 'dead-letters.png') });
    await page.fill('input[name=consumer]', 'Invoices.invoice');
    await page.click('[data-testid=apply-filter]');
    await waitUntil(async () => (await rows().count()) === 1, 'one row for Invoices.invoice');
    await expectText(page, '[data-testid=dead-total]', '1 matching');
    expect(await rows().first().textContent()).toContain('no billing address for entry no-address');
  });

  it('resends one dead letter after the fix and shows it consumed', async () => {
    await rows().first().click();
    await page.locator('[data-testid=detail][data-status=NEW]').waitFor();
    await expectText(page, '[data-testid=error]', 'no billing address for entry no-address');
    await page.screenshot({ path: join(SHOTS, 'dead-letter-detail.png') });
    invoices.addresses.add('no-address'); // the fix
    await page.click('[data-testid=resend]');
    await confirm();
    await page.locator('[data-testid=detail][data-status=RESENT]').waitFor();
    await waitUntil(() => invoices.handled.includes('no-address@1'), 'the resent message to be consumed by Invoices');
    const journey = await page.locator('[data-testid=journey]').textContent();
    expect(journey).toContain('dead-letter.resend');
    expect(journey).toContain('by token:ops');
  });

  it('discards one dead letter', async () => {
    await page.click('a[data-tab=overview]');
    await page.click('a[data-tab=dead]'); // the filter stays: show the ledger's instead
    await page.fill('input[name=consumer]', 'Ledger.post');
    await page.click('[data-testid=apply-filter]');
    await waitUntil(async () => (await rows().count()) === 3, 'three ledger rows');
    await rows().filter({ hasText: 'poison-3' }).click();
    await page.locator('[data-testid=detail][data-status=NEW]').waitFor();
    await page.click('[data-testid=discard]');
    await confirm();
    await page.locator('[data-testid=detail][data-status=DISCARDED]').waitFor();
    const stored = (await h.admin.deadLetters.list({ consumer: 'Ledger.post', status: ['DISCARDED'] }, { limit: 5, offset: 0 })).items;
    expect(stored.map((d) => d.errorMessage)).toEqual(['ledger account for poison-3 is closed']);
    expect(stored[0].statusBy).toBe('token:ops');
  });

  it('resends a whole error group in bulk, and each is consumed', async () => {
    await page.click('a[data-tab=groups]');
    const group = page.locator('[data-testid=groups-table] tbody tr').filter({ hasText: 'Ledger.post' });
    await group.waitFor();
    expect(await group.locator('td').nth(3).textContent()).toBe('2');
    await page.screenshot({ path: join(SHOTS, 'error-groups.png') });
    ledger.closed = false; // the fix
    await group.locator('[data-testid=group-resend]').click();
    await expectText(page, '#confirm-title', 'Resend 2 dead letters?');
    await confirm();
    await expectText(page, '[data-testid=toast]', 'Resent 2 of 2');
    await waitUntil(() => ledger.handled.includes('poison-1') && ledger.handled.includes('poison-2'), 'the group to be consumed');
    expect(ledger.handled).not.toContain('poison-3'); // discarded ones stay discarded
    expect((await h.admin.deadLetters.summarize()).byStatus).toEqual({ NEW: 0, RESENT: 3, DISCARDED: 1 });
    await page.locator('[data-testid=groups-table-empty]').waitFor();
  });

  it('shows the SET of each message and filters by it (outside SET routing: no set, so nothing is in set B)', async () => {
    await page.click('a[data-tab=dead]');
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.selectOption('select[name=status]', 'ALL');
    await page.click('[data-testid=apply-filter]');
    await waitUntil(async () => (await rows().count()) === 4, 'all four dead letters');
    expect(await page.locator('[data-testid=dead-table] thead').textContent()).toContain('Set');
    await page.fill('[data-testid=filter-set]', 'B');
    await page.click('[data-testid=apply-filter]');
    await expectText(page, '[data-testid=dead-total]', '0 matching');
    await page.click('a[data-tab=outbox]');
    await page.fill('[data-testid=outbox-filter-set]', 'B');
    await page.click('[data-testid=outbox-apply-filter]');
    await page.locator('[data-testid=outbox-table-empty]').waitFor(); // the API took the filter (a 400 would leave no table)
  });
});

async function expectText(page: Page, selector: string, text: string): Promise<void> {
  await page.locator(selector).filter({ hasText: text }).first().waitFor({ timeout: 10_000 });
}

describe('admin console with 100,000 dead letters', () => {
  let h: AdminHarness;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;

  beforeAll(async () => {
    h = await startAdminHarness('sqlite', { admin: { port: 0, auth: { tokens: { ops: 'console-volume-token-01' } } } });
    await seedDeadLetters(h.db.dataSource, 100_000, { consumers: 5, errors: 20 });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await h?.dispose();
  });

  it('pages and filters on the server: each view is ready within 2 s on a loaded machine', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${h.url}/#dead`);
    await page.fill('#login-token', 'console-volume-token-01');
    await page.click('#login-submit');
    const pager = page.locator('[data-testid=pager-text]');
    await pager.filter({ hasText: '1–50 of 100,000' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'dead-letters-100k.png') });
    const timed = async (action: () => Promise<void>, expected: string) => {
      const t = performance.now();
      await action();
      await pager.filter({ hasText: expected }).waitFor();
      return performance.now() - t;
    };
    const next = await timed(() => page.click('[data-testid=next]'), '51–100 of 100,000');
    const filter = await timed(async () => {
      await page.fill('input[name=consumer]', 'Consumer2.handle');
      await page.click('[data-testid=apply-filter]');
    }, '1–50 of 20,000');
    expect(await page.locator('[data-testid=dead-table] tbody tr').count()).toBe(50);
    // Generous bound for a loaded 2-core machine (typically ~50 ms each).
    expect({ next: next < 2000, filter: filter < 2000 }).toEqual({ next: true, filter: true });
  });
});
