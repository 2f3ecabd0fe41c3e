import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { accessibilityViolations } from '../support/a11y.ts';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { createConsoleUser, createProviderUser, signedInPage, waitForHydration } from '../support/console.ts';
import { admin, eventually, startTestLabRelay, type TestLabRelay } from '../support/labrelay.ts';

const HEADER =
  'patient_id,patient_id_system,family_name,given_name,birth_date,order_number,test_code,test_system,test_name,value,unit,reference_range,collected_at';
const TESTS = [
  ['2951-2', 'Sodium', '139', 'mmol/L', '135-145'],
  ['2823-3', 'Potassium', '4.1', 'mmol/L', '3.5-5.1'],
  ['2345-7', 'Glucose', '95', 'mg/dL', '70-99'],
];

/** A large upload of one patient's results: every 250th row has no test code (refused). */
function bigCsv(rows: number): string {
  const lines = [HEADER];
  for (let i = 1; i <= rows; i++) {
    const [code, name, value, unit, range] = TESTS[i % TESTS.length]!;
    lines.push(
      `U-1,urn:uploadlab,Upton,Una,1970-02-03,UP-ORD-1,${i % 250 === 0 ? '' : code},LN,${name},${value},${unit},${range},2026-12-04T06:00:00Z`,
    );
  }
  return lines.join('\r\n') + '\r\n';
}

describe('CSV upload in the console', () => {
  let lr: TestLabRelay;
  let browser: Browser;
  beforeAll(async () => {
    lr = await startTestLabRelay('pglite', { console: true });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await lr?.stop();
  });

  test('a reviewer uploads a large CSV with its progress shown, and sees the refused rows by number', async () => {
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: 'uploadlab', name: 'Upload Lab' });
    const rita = await createConsoleUser(lr.baseUrl, {
      email: 'rita@uploadlab.example',
      roles: [{ tenant: 'uploadlab', role: 'reviewer' }],
    });
    const page = await signedInPage(browser, lr.baseUrl, rita.email, rita.password);
    await page.goto(`${lr.baseUrl}/tenants/uploadlab/csv`);
    await waitForHydration(page);
    expect(await page.getByRole('region', { name: 'Columns' }).textContent()).toContain('patient_id');

    const csv = bigCsv(1_600);
    await page
      .getByLabel('CSV file')
      .setInputFiles({ name: 'results.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByRole('region', { name: 'Progress' }).waitFor();
    const result = page.getByRole('region', { name: 'Result' });
    await result.waitFor({ timeout: 60_000 });
    expect(await result.textContent()).toContain('1594 of 1600 rows accepted; 6 refused.');
    const refused = await result.getByRole('table', { name: 'Refused rows' }).textContent();
    // Rows are numbered as in a spreadsheet: the header is row 1, so the 250th data row is row 251.
    expect(refused).toMatch(/251.*test_code/s);
    expect(refused).toContain('1501');
    expect(await page.getByRole('status').textContent()).toContain(
      '1600 rows read: 1594 accepted, 6 refused.',
    );
    await page.screenshot({ path: path.join(SCREENSHOTS, 'csv-upload.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // The upload is one message of the tenant, sent with a key named for who uploaded it.
    const { db } = lr.labrelay.services!;
    const messages = await db
      .selectFrom('messages')
      .innerJoin('credentials', 'credentials.id', 'messages.credential_id')
      .select(['messages.format', 'messages.progress', 'credentials.name', 'credentials.revoked_at'])
      .where('messages.format', '=', 'csv')
      .execute();
    expect(messages).toHaveLength(1);
    expect(messages[0]!.name).toBe('console upload by rita@uploadlab.example');
    expect(messages[0]!.revoked_at).not.toBeNull();
    expect(messages[0]!.progress).toMatchObject({ rowsRead: 1600, accepted: 1594, rejected: 6, done: true });
  });

  test('a provider cannot upload: the page and the upload endpoint refuse', async () => {
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: 'uploadlab2', name: 'Upload Lab 2' });
    const pat = await createProviderUser(lr.baseUrl, {
      email: 'pat@uploadlab2.example',
      tenant: 'uploadlab2',
    });
    const page = await signedInPage(browser, lr.baseUrl, pat.email, pat.password);
    await page.goto(`${lr.baseUrl}/tenants/uploadlab2/csv`);
    expect(await page.textContent('body')).toContain('does not allow');
    const cookies = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const csrf = await page.locator('input[name="csrf"]').first().getAttribute('value');
    const response = await fetch(`${lr.baseUrl}/tenants/uploadlab2/csv/upload`, {
      method: 'POST',
      headers: {
        'content-type': 'text/csv',
        'x-csrf-token': csrf!,
        'x-upload-key': crypto.randomUUID(),
        origin: lr.baseUrl,
        cookie: cookies,
      },
      body: bigCsv(3),
    });
    expect(response.status).toBe(403);
  });

  test('a CSV without test_system or test_name: the page says so, and a critical potassium is still caught by its LOINC check digit and named', async () => {
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: 'uploadlab3', name: 'Upload Lab 3' });
    const rita = await createConsoleUser(lr.baseUrl, {
      email: 'rita@uploadlab3.example',
      roles: [{ tenant: 'uploadlab3', role: 'reviewer' }],
    });
    const page = await signedInPage(browser, lr.baseUrl, rita.email, rita.password);
    await page.goto(`${lr.baseUrl}/tenants/uploadlab3/csv`);
    await waitForHydration(page);
    const csv = [
      'patient_id,patient_id_system,family_name,given_name,birth_date,order_number,test_code,value,unit,reference_range,collected_at',
      'W-1,urn:uploadlab3,Warn,Wes,1965-05-06,WARN-ORD-1,2823-3,7.2,mmol/L,3.5-5.1,2026-12-04T06:00:00Z',
    ].join('\r\n');
    await page
      .getByLabel('CSV file')
      .setInputFiles({ name: 'no-system.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.getByRole('button', { name: 'Upload' }).click();
    const result = page.getByRole('region', { name: 'Result' });
    await result.waitFor({ timeout: 60_000 });
    expect(await result.textContent()).toContain('1 of 1 rows accepted; 0 refused.');
    expect(await result.getByRole('list', { name: 'Warnings' }).textContent()).toContain(
      'there is no test_system column',
    );

    const { db } = lr.labrelay.services!;
    const critical = await eventually(
      () =>
        db
          .selectFrom('critical_results')
          .innerJoin('tenants', 'tenants.id', 'critical_results.tenant_id')
          .select('critical_results.finding')
          .where('tenants.slug', '=', 'uploadlab3')
          .executeTakeFirst(),
      60_000,
      'the potassium to open a critical result',
    );
    // No test_name either: the finding names the analyte its LOINC code stands for.
    expect(critical.finding).toMatch(/^Potassium \(2823-3\) 7\.2 mmol\/L/);
  });
});
