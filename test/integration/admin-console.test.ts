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
    if (entry.entryId === 'long-error') throw new Error(`no billing address for entry long-error: the lookup in ${'/billing/addresses/region-eu-west/customers/'.repeat(12)}index.json failed`);
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
    // Clear draws a new form; setting the old one's status would submit its consumer filter along with it.
    await waitUntil(async () => (await page.inputValue('input[name=consumer]')) === '', 'the cleared filter form');
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

  it('shows the newer answer when an older one on the same tab comes back later', async () => {
    await page.click('a[data-tab=dead]');
    await page.getByRole('button', { name: 'Clear' }).click();
    await waitUntil(async () => (await page.inputValue('input[name=consumer]')) === '', 'the cleared filter form');
    // The answer for the Invoices filter is held back until the Ledger filter, applied after it, is shown.
    let held = 0;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    await page.route(/\/api\/dead-letters\?.*consumer=Invoices/, async (r) => {
      held += 1;
      await released;
      await r.continue();
    });
    try {
      await page.selectOption('select[name=status]', 'ALL');
      await page.fill('input[name=consumer]', 'Invoices.invoice');
      await page.click('[data-testid=apply-filter]');
      await waitUntil(async () => held === 1, 'the Invoices request to be held');
      await page.fill('input[name=consumer]', 'Ledger.post');
      await page.click('[data-testid=apply-filter]');
      await waitUntil(async () => (await rows().count()) === 3, 'the three ledger rows');
      const late = page.waitForResponse(/\/api\/dead-letters\?.*consumer=Invoices/);
      release();
      await late;
      await page.waitForTimeout(500); // time to draw it, were it drawn
      expect(await rows().count()).toBe(3);
      expect(await page.inputValue('input[name=consumer]')).toBe('Ledger.post');
      await expectText(page, '[data-testid=dead-total]', '3 matching');
    } finally {
      release(); // also when an assertion failed while it was held
      await page.unroute(/\/api\/dead-letters\?.*consumer=Invoices/);
    }
  });
});

describe('admin console: links, audit diff, lag panel, narrow window, favicon', () => {
  let h: AdminHarness;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  const invoices = new Invoices();
  let token: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const transport = new AmqpTransport({ url: AMQP_URL, logger: silentLogger, connectionName: 'tmm-console-polish-test', confirmTimeoutMs: 5000 });
    h = await startAdminHarness('sqlite', {
      consumers: [invoices],
      transport,
      tmm: { name: 'console-polish' },
      admin: { port: 0, metrics: { sampleIntervalMs: 200 }, queues: { cacheMs: 0 } },
    });
    token = h.token;
    for (const [entryId, amount] of [['e-1', 10], ['wrong-amount', 120], ['long-error', 75]] as const) {
      await h.tmm.producer.send(LedgerPosted.of(entryId, amount), { exchange: prefix, routingKey: 'ledger.posted' });
    }
    await waitUntil(async () => (await h.admin.deadLetters.summarize()).byStatus.NEW === 2, 'two dead letters to be collected', 20_000);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    await page.goto(h.url);
    await page.fill('#login-token', token);
    await page.click('#login-submit');
    await expectText(page, '[data-testid=principal]', 'token:ops');
  });
  afterAll(async () => {
    await browser?.close();
    await h?.dispose();
  });

  const letterOf = async (entryId: string) => (await h.admin.deadLetters.get((await h.admin.deadLetters.list({ status: ['NEW'] }, { limit: 10, offset: 0 })).items.find((d) => d.errorMessage.includes(entryId))!.id))!;

  it('wraps a long error in the list and in the detail instead of overflowing', async () => {
    await page.click('a[data-tab=dead]');
    const cell = page.locator('[data-testid=dead-table] tbody tr', { hasText: 'long-error' }).locator('td.err');
    await cell.waitFor();
    const box = await cell.evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth, height: el.clientHeight, line: parseFloat((globalThis as unknown as { getComputedStyle(e: unknown): { lineHeight: string } }).getComputedStyle(el).lineHeight) }));
    expect(box.scroll).toBeLessThanOrEqual(box.client);
    expect(box.height).toBeGreaterThan(box.line * 1.5); // more than one line: it wrapped
    await cell.click();
    const error = page.locator('[data-testid=error]');
    await expectText(page, '[data-testid=error]', 'long-error');
    expect(await error.evaluate((el) => el.scrollWidth <= el.clientWidth)).toBe(true);
  });

  it('opens a dead letter from its direct link', async () => {
    const letter = await letterOf('wrong-amount');
    const other = await browser.context.newPage(); // a colleague opening the link (same browser session)
    await other.goto(`${h.url}/#dead/${letter.id}`);
    await other.fill('#login-token', token);
    await other.click('#login-submit');
    await other.locator('[data-testid=detail][data-status=NEW]').waitFor();
    await expectText(other, '[data-testid=error]', 'no billing address for entry wrong-amount');
    expect(await other.locator('[data-testid=permalink]').textContent()).toBe(`${h.url}/#dead/${letter.id}`);
    await other.close();
  });

  it('shows the comment and, for edit-and-resend, the payload before/after as a diff in the audit list', async () => {
    const letter = await letterOf('wrong-amount');
    invoices.addresses.add('wrong-amount');
    const payload = { ...JSON.parse(letter.payload), amount: 12 };
    const r = await h.api.post(`/api/dead-letters/${letter.id}/resend`, { payload, comment: 'amount was entered in cents; corrected to 12' });
    expect(r.status).toBe(200);
    await waitUntil(() => invoices.handled.includes('wrong-amount@1'), 'the corrected message to be consumed');
    await page.click('a[data-tab=audit]');
    const row = page.locator('[data-testid=audit-table] tbody tr', { hasText: 'dead-letter.edit-resend' });
    await row.waitFor();
    expect(await row.textContent()).toContain('amount was entered in cents; corrected to 12');
    await page.screenshot({ path: join(SHOTS, 'audit.png') });
    await row.locator('td').first().click(); // not the middle: the target cell links to the dead letter
    await expectText(page, '[data-testid=audit-comment]', 'corrected to 12');
    await page.screenshot({ path: join(SHOTS, 'audit-diff.png') });
    const removed = await page.locator('[data-testid=payload-diff] .diff-del').allTextContents();
    const added = await page.locator('[data-testid=payload-diff] .diff-add').allTextContents();
    const squeeze = (l: string) => l.replace(/\s+/g, ' ').trim();
    expect(removed.map(squeeze)).toEqual(['- "amount": 120,']);
    expect(added.map(squeeze)).toEqual(['+ "amount": 12,']);
  });

  it('shows latency percentiles, consumer rates, queue depths, retries and alerts on the Lag tab', async () => {
    await page.click('a[data-tab=lag]');
    const queues = page.locator('[data-testid=queue-depths] tbody tr');
    await queues.filter({ hasText: `${prefix}.invoices.dlq` }).waitFor();
    expect(await queues.count()).toBe(2); // work queue and dead-letter queue (no retries: retry: false)
    expect(await page.locator('[data-testid=publish-latency] tbody tr', { hasText: 'ledger.posted' }).locator('td').nth(1).textContent()).toBe('4');
    const rates = page.locator('[data-testid=consumer-rates] tbody tr', { hasText: 'Invoices.invoice' });
    expect(await rates.locator('td').nth(5).textContent()).toBe('2'); // handled: e-1 and the corrected one
    await page.locator('[data-testid=alerts] [data-alert=backlogAge][data-firing=false]').waitFor();
    await page.screenshot({ path: join(SHOTS, 'lag.png') });
  });

  it('fits the header into a 400 px wide window', async () => {
    const narrow = await browser.context.newPage();
    await narrow.setViewportSize({ width: 400, height: 760 });
    await narrow.goto(`${h.url}/#overview`);
    await narrow.fill('#login-token', token);
    await narrow.click('#login-submit');
    await expectText(narrow, '[data-testid=principal]', 'token:ops');
    await narrow.waitForSelector('svg.chart');
    type Box = { left: number; right: number; width: number };
    type Doc = { documentElement: { scrollWidth: number }; querySelectorAll(s: string): Iterable<{ getBoundingClientRect(): Box }> };
    const layout = await narrow.evaluate(() => {
      const doc = (globalThis as unknown as { document: Doc }).document;
      return { page: doc.documentElement.scrollWidth, tabs: [...doc.querySelectorAll('#tabs a:not([hidden]), #logout, .brand')].map((el) => el.getBoundingClientRect()).map((r) => ({ left: r.left, right: r.right, width: r.width })) };
    });
    expect(layout.page).toBeLessThanOrEqual(400);
    expect(layout.tabs.length).toBe(9); // 7 tabs (Transaction log is hidden without a log sender), sign-out, brand
    for (const r of layout.tabs) expect({ left: r.left >= 0, right: r.right <= 400, shown: r.width > 0 }).toEqual({ left: true, right: true, shown: true });
    await narrow.screenshot({ path: join(SHOTS, 'overview-narrow.png') });
    await narrow.close();
  });

  it('serves a favicon the page links to', async () => {
    expect(await page.locator('link[rel=icon]').getAttribute('href')).toBe('/favicon.svg');
    const res = await page.request.get(`${h.url}/favicon.svg`);
    expect(res.status()).toBe(200);
    expect(res.headers()['content-type']).toBe('image/svg+xml');
    expect((await res.text()).startsWith('<svg')).toBe(true);
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
