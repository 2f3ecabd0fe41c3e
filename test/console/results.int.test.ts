import path from 'node:path';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import { accessibilityViolations } from '../support/a11y.ts';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { createConsoleUser, signedInPage, waitForHydration } from '../support/console.ts';
import {
  createTenantWithCredential,
  eventually,
  getJson,
  postHl7,
  startTestLabRelay,
  waitForMessageStatus,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

const SLUG = 'trendlab';
const MRN = 'MRN-TREND-1';

/**
 * The result dashboard, a patient's trend and manual entry, in a real browser: two potassium
 * results of one patient (4.1, then 5.6 flagged high), the dashboard highlighting 5.6, the
 * patient's trend with its reference band and the +1.5 change; then a reviewer enters a glucose
 * with an interpretation and uploads a PDF, both through the API's own intake.
 */
describe('results dashboard, trends and manual entry in a real browser', () => {
  let lr: TestLabRelay;
  let browser: Browser;
  let cred: TenantCredential;
  let page: Page;
  beforeAll(async () => {
    lr = await startTestLabRelay('pglite', { console: true });
    browser = await launchChromium();
    cred = await createTenantWithCredential(lr.baseUrl, SLUG, [
      'results:write',
      'results:read',
      'tasks:write',
    ]);
    const reviewer = await createConsoleUser(lr.baseUrl, {
      email: 'rhea@trendlab.example',
      roles: [{ tenant: SLUG, role: 'reviewer' }],
    });
    page = await signedInPage(browser, lr.baseUrl, reviewer.email, reviewer.password);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await lr?.stop();
  });

  /** A metabolic panel of the patient taken on `day`, with this potassium and its flag; nothing critical. */
  async function sendPotassium(controlId: string, day: string, potassium: string, flag: string) {
    const response = await postHl7(
      lr.baseUrl,
      cred,
      basicMetabolicPanel({
        controlId,
        placer: `ORD-${controlId}`,
        filler: `FIL-${controlId}`,
        mrn: MRN,
        potassium,
        glucose: '5.0',
      })
        .replace('|HH|', `|${flag}|`)
        .replace('|3.9-5.5|L|', '|3.9-5.5|N|')
        .replace('~999-99-9999^^^SSA^SS', '')
        .replaceAll('20261122070000-0500', `${day}070000-0500`),
    );
    expect(response.status).toBe(200);
    await waitForMessageStatus(lr.baseUrl, cred, response.headers.get('labrelay-message-id')!, 'delivered');
  }

  test('the dashboard highlights the high potassium and the patient page shows its trend and change', async () => {
    await sendPotassium('K-1', '20261110', '4.1', 'N');
    await sendPotassium('K-2', '20261121', '5.6', 'H');

    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/results`);
    await page.getByRole('heading', { name: /^Results of/ }).waitFor();
    const recent = page.getByRole('region', { name: 'Recent reports' });
    await expect.poll(() => recent.getByRole('row').count()).toBe(3);
    expect(await page.locator('[data-count="received-today"]').textContent()).toBe('2');
    // 5.6 is marked high, seen (the H mark) and said (", high"); 4.1 carries no flag.
    const high = recent.locator('li[data-analyte^="Potassium"]', { hasText: '5.6' });
    await expect.poll(() => high.locator('[data-flag]').getAttribute('data-flag')).toBe('high');
    expect(await high.textContent()).toMatch(/5\.6 mmol\/L\s*H\s*, high/);
    const normal = recent.locator('li[data-analyte^="Potassium"]', { hasText: '4.1' });
    expect(await normal.locator('[data-flag]').getAttribute('data-flag')).toBe('normal');
    expect(await normal.textContent()).not.toMatch(/high|low/);

    // Out of range only: the report with 5.6, not the one with 4.1.
    await page.getByLabel('Out of range only').check();
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/outOfRange=1/);
    expect(await recent.getByRole('row').count()).toBe(2);
    expect(await recent.textContent()).toContain('5.6');
    expect(await recent.textContent()).not.toContain('4.1');
    await page.getByLabel('Patient name or identifier').fill('nobody-like-this');
    await page.getByRole('button', { name: 'Filter' }).click();
    await recent.getByText('No reports match this filter.').waitFor();
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/results?patient=${MRN}`);
    expect(await recent.getByRole('row').count()).toBe(3);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'results.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    await recent.getByRole('link', { name: 'Doe, Jane Q' }).first().click();
    await page.getByRole('heading', { name: 'Doe, Jane Q', level: 1 }).waitFor();
    const potassium = page.locator('section[data-analyte="2823-3"]');
    const chart = potassium.getByRole('img');
    const label = (await chart.getAttribute('aria-label'))!;
    expect(await chart.evaluate((e) => e.tagName.toLowerCase())).toBe('svg');
    expect(label).toMatch(/^Potassium/);
    expect(label).toContain('reference range 3.5 to 5.1 mmol/L');
    expect(label).toMatch(/5\.6 high/);
    expect(await chart.locator('[data-range="reference"]').count()).toBe(1);
    expect(await chart.locator('[data-flag="H"]').count()).toBe(1);
    const rows = potassium.getByRole('table').locator('tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await rows.nth(0).textContent()).toContain('first value');
    expect(await rows.nth(1).locator('[data-difference]').textContent()).toBe('+1.5');
    expect(await rows.nth(1).textContent()).toMatch(/4\.1.*\+1\.5\s*\(up\)/s);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'patient-trend.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
  });

  test('a reviewer enters a glucose with an interpretation and uploads a PDF, through the API intake', async () => {
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/results/new`);
    await waitForHydration(page);
    // Nothing chosen: each missing field says so, and nothing is stored.
    await page.getByRole('button', { name: 'Save results' }).click();
    await page.getByRole('alert').filter({ hasText: 'Some fields need attention.' }).waitFor();
    expect(await page.getByText('Pick a patient from the search').count()).toBe(1);
    expect(await page.getByText('Enter at least one result.').count()).toBe(1);

    await page.getByLabel('Name or identifier').fill(MRN);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('radio', { name: /Doe, Jane Q/ }).check();
    await page.getByLabel('Type', { exact: true }).selectOption('blood-work');
    await page.getByLabel('Report title (optional)').fill('Fasting glucose');
    await page.getByLabel('Test code, result 1').fill('2345-7');
    await page.getByLabel('Test name, result 1').fill('Glucose');
    await page.getByLabel('Value, result 1').fill('not a number');
    await page.getByLabel('Unit, result 1').fill('mg/dL');
    await page.getByLabel('Range low, result 1').fill('seventy');
    await page.getByLabel('Range high, result 1').fill('99');
    await page
      .getByLabel('Interpretation (shown to the patient)')
      .fill('Glucose slightly high; repeat fasting test in 3 months.');
    await page.getByRole('button', { name: 'Save results' }).click();
    await page.getByText('A number, e.g. 3.5.').waitFor();
    expect(await page.getByLabel('Range low, result 1').getAttribute('aria-invalid')).toBe('true');
    await page.getByLabel('Range low, result 1').fill('70');
    await page.getByLabel('Value, result 1').fill('112');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'manual-entry.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
    await page.getByRole('button', { name: 'Save results' }).click();
    await page.waitForURL(/\/messages\/[0-9a-f-]{36}$/, { timeout: 8000 }).catch(async (e) => {
      console.log('DEBUG', page.url(), await page.locator('main').innerText());
      throw e;
    });
    const entryId = page.url().split('/').pop()!;
    expect(await page.getByText('console / json').count()).toBe(1);

    // The workflow runs as for any intake: released, flagged high, with the interpretation.
    await waitForMessageStatus(lr.baseUrl, cred, entryId, 'delivered');
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/results?patient=${MRN}`);
    const recent = page.getByRole('region', { name: 'Recent reports' });
    const glucose = recent.getByRole('row', { name: /Fasting glucose/ });
    expect(await glucose.textContent()).toContain('released');
    expect(await glucose.locator('li[data-analyte="Glucose"] [data-flag]').getAttribute('data-flag')).toBe(
      'high',
    );
    expect(await glucose.textContent()).toContain('repeat fasting test in 3 months');

    // A PDF: stored and sent to review exactly like POST /documents.
    const doc = await PDFDocument.create();
    const font = await doc.embedFont(StandardFonts.Helvetica);
    doc.addPage().drawText('Urinalysis: protein negative', { x: 50, y: 760, font, size: 12 });
    const pdf = Buffer.from(await doc.save());
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/results/new?q=${MRN}`);
    await waitForHydration(page);
    await page.getByRole('radio', { name: /Doe, Jane Q/ }).check();
    await page.getByRole('radio', { name: 'Upload a PDF report' }).check();
    await page.getByLabel('Type', { exact: true }).selectOption('urinalysis');
    await page
      .getByLabel('PDF file to upload')
      .setInputFiles({ name: 'urinalysis.pdf', mimeType: 'application/pdf', buffer: pdf });
    await page.getByRole('button', { name: 'Upload PDF' }).click();
    await page.waitForURL(/\/messages\/[0-9a-f-]{36}$/);
    const uploadId = page.url().split('/').pop()!;
    expect(await page.getByText('console / pdf').count()).toBe(1);
    const task = await eventually(
      async () => {
        const { body } = await getJson(lr.baseUrl, cred, `/v1/t/${SLUG}/tasks?status=open`);
        return (body.tasks as { kind: string; reason: string; messageId?: string; reportId?: string }[]).find(
          (t) => t.kind === 'review_result' && /uploaded document/.test(t.reason),
        );
      },
      30_000,
      'a review task for the uploaded PDF',
    );
    expect(task).toBeDefined();
    const { body: status } = await getJson(lr.baseUrl, cred, `/v1/t/${SLUG}/messages/${uploadId}`);
    expect(status.status).toBe('needs_review');
    expect(status.documents).toHaveLength(1);
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/results`);
    expect(await page.locator('[data-count="pending-review"]').textContent()).toBe('1');
  });
});
