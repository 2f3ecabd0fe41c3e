import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import { accessibilityViolations } from '../support/a11y.ts';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { createConsoleUser, signedInPage, waitForHydration } from '../support/console.ts';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  admin,
  createTenantWithCredential,
  eventually,
  freePort,
  getJson,
  postHl7,
  startTestLabRelay,
  testEnv,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

const SLUG = 'critlab';
const WELBY = 'welby@stmarys.example';
const PASSWORD = 'a long console passphrase 2026';

interface Settings {
  criticalTable: { loinc: string; high: number | null; unit: string }[];
  escalation: { steps: { role: string; timeoutMinutes: number }[] };
}

/**
 * The critical-result loop from the console: an admin sets the tenant's critical table and
 * escalation chain, a potassium that is critical only by the new table reaches the board with its
 * clock and first e-mail, the provider follows the e-mailed link and reads back, and a reviewer
 * records a phone acknowledgement with read-back. Escalation timeouts are real minutes here: no
 * test waits for one.
 */
describe('critical board and critical values in a real browser', () => {
  let lr: TestLabRelay;
  let browser: Browser;
  let cred: TenantCredential;
  beforeAll(async () => {
    // The e-mailed link carries the public URL: make it this server's, as a real deployment would.
    const port = await freePort();
    lr = await startTestLabRelay('pglite', {
      console: true,
      env: await testEnv('pglite', { PORT: String(port), LABRELAY_PUBLIC_URL: `http://127.0.0.1:${port}` }),
    });
    browser = await launchChromium();
    cred = await createTenantWithCredential(lr.baseUrl, SLUG, [
      'results:write',
      'results:read',
      'tasks:write',
    ]);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await lr?.stop();
  });

  const tenantSettings = async () =>
    (await admin<{ settings: Settings }>(lr.baseUrl, 'GET', `/v1/admin/tenants/${SLUG}`, undefined, 200))
      .settings;

  /** A metabolic panel whose potassium the sender flags only high (H), not critical (HH). */
  async function sendPotassium(
    controlId: string,
    mrn: string,
    potassium: string,
    patient = { name: 'Doe^Jane^Q', birthDate: '19800115' },
  ) {
    const response = await postHl7(
      lr.baseUrl,
      cred,
      basicMetabolicPanel({
        controlId,
        placer: `ORD-${controlId}`,
        filler: `FIL-${controlId}`,
        mrn,
        potassium,
        glucose: '5.0',
      })
        .replace('|HH|', '|H|')
        // Each patient by their own MRN only (the fixture's shared SSN would make them one).
        .replace('~999-99-9999^^^SSA^SS', '')
        .replace('Doe^Jane^Q||19800115', `${patient.name}||${patient.birthDate}`),
    );
    expect(response.status).toBe(200);
  }

  /** The board's row of a patient's open critical result, once it is there (the board is re-read). */
  async function boardRow(page: Page, mrn: string, expected: RegExp) {
    await expect
      .poll(
        async () => {
          await page.goto(`${lr.baseUrl}/tenants/${SLUG}/critical`);
          const row = page.getByRole('region', { name: 'Open critical results' }).getByRole('row', {
            name: new RegExp(mrn),
          });
          return (await row.count()) === 1 ? row.textContent() : '';
        },
        { timeout: 30_000, interval: 500 },
      )
      .toMatch(expected);
    return page
      .getByRole('region', { name: 'Open critical results' })
      .getByRole('row', { name: new RegExp(mrn) });
  }

  test('an admin tightens potassium and the chain; the board, the e-mailed link and the console form close the loop', async () => {
    const reviewer = await createConsoleUser(lr.baseUrl, {
      email: 'rita@critlab.example',
      password: PASSWORD,
      roles: [{ tenant: SLUG, role: 'reviewer' }],
    });
    const page = await signedInPage(browser, lr.baseUrl, ADMIN_EMAIL, ADMIN_PASSWORD);

    // Critical values: the default table until the tenant has its own.
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/deliveries`);
    await page
      .getByRole('navigation', { name: /pages/ })
      .getByRole('link', { name: 'Critical values' })
      .click();
    await page.getByRole('heading', { name: /Critical values of/ }).waitFor();
    await waitForHydration(page);
    expect(await page.getByLabel('High critical limit of Potassium').inputValue()).toBe('6.2');
    await page.getByLabel('High critical limit of Potassium').fill('6.0');
    await page.getByLabel('Who is told at step 5').selectOption('covering');
    await page.getByLabel('Minutes to acknowledge at step 5').fill('20');
    await page.getByRole('button', { name: 'Save critical table and escalation chain' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Saved');
    const saved = await tenantSettings();
    expect(saved.criticalTable.find((l) => l.loinc === '2823-3')?.high).toBe(6);
    expect(saved.escalation.steps).toHaveLength(5);
    expect(saved.escalation.steps[4]).toEqual({ role: 'covering', timeoutMinutes: 20 });

    // A unit LabRelay cannot convert is refused at its field, and nothing else on the form is saved.
    await page.getByLabel('Unit of Sodium').fill('bananas');
    await page.getByLabel('High critical limit of Glucose').fill('500');
    await page.getByRole('button', { name: 'Save critical table and escalation chain' }).click();
    const sodiumUnit = page.getByLabel('Unit of Sodium').locator('xpath=ancestor::td');
    await expect.poll(() => sodiumUnit.getByRole('alert').textContent()).toContain('not a UCUM unit');
    expect(await page.getByLabel('Unit of Sodium').getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByLabel('Unit of Sodium').inputValue()).toBe('bananas');
    const after = await tenantSettings();
    expect(after.criticalTable.find((l) => l.loinc === '2345-7')?.high).toBe(450);
    expect(after.criticalTable.find((l) => l.loinc === '2951-2')?.unit).toBe('mmol/L');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'critical-values.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // The ordering provider the chain's first step reaches, added from the same page.
    await page.reload();
    await waitForHydration(page);
    await page.getByLabel('Name', { exact: true }).fill('Marcus Welby');
    await page.getByLabel('E-mail').fill(WELBY);
    await page.getByLabel('External id (as senders give it)').fill('1234');
    await page.getByLabel('ordering provider').check();
    await page.getByRole('button', { name: 'Add provider' }).click();
    const providers = page.getByRole('region', { name: 'Providers' });
    await expect
      .poll(() => providers.getByRole('row', { name: /Marcus Welby/ }).textContent())
      .toMatch(/welby@stmarys\.example.*1234.*ordering provider/);

    // 6.1 mmol/L is critical only by the tenant's new limit (6.0; the default is 6.2).
    await sendPotassium('CRIT-1', 'MRN-C1', '6.1');
    const row = await boardRow(page, 'MRN-C1', /sent/);
    const text = (await row.textContent()) ?? '';
    expect(text).toMatch(/Potassium/);
    expect(text).toMatch(/\d+:\d\d open/);
    expect(text).toContain('Step 1 of 5 — ordering provider');
    expect(text).toMatch(/next: step 2, covering provider \(nobody with an e-mail address/);
    expect(text).toMatch(/step 1:\s*e-mail to Marcus Welby <welby@stmarys\.example> — sent/);
    // The clock ticks in the browser between the board's own refreshes.
    await waitForHydration(page);
    const clock = row.getByRole('timer');
    const first = await clock.textContent();
    await expect.poll(() => clock.textContent(), { timeout: 5000 }).not.toBe(first);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'critical-board.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // The provider follows the link in the captured e-mail: a wrong read-back is refused, the right one recorded.
    const mail = await eventually(async () => {
      const { mail } = await admin<{ mail: { kind: string; to: string; text: string }[] }>(
        lr.baseUrl,
        'GET',
        `/v1/admin/tenants/${SLUG}/mail`,
        undefined,
        200,
      );
      return mail.find((m) => m.kind === 'critical_result' && m.to === WELBY && m.text.includes('MRN-C1'));
    });
    const link = /(http\S+\/ack\/\S+)/.exec(mail.text)![1]!;
    const provider = await (await browser.newContext()).newPage();
    await provider.goto(link);
    await provider.getByLabel('Value as you received it').fill('6.2');
    await provider.getByLabel(/Patient identifier/).fill('MRN-C1');
    await provider.getByRole('button', { name: 'Acknowledge' }).click();
    expect(await provider.getByRole('alert').textContent()).toContain('value read back does not match');
    await provider.getByLabel('Value as you received it').fill('6.1');
    await provider.getByLabel(/Patient identifier/).fill('MRN-C1');
    await provider.getByRole('button', { name: 'Acknowledge' }).click();
    expect(await provider.getByRole('status').textContent()).toContain('Acknowledged');

    const acknowledged = await boardRow(page, 'MRN-C1', /acknowledged — patient contact/);
    const done = (await acknowledged.textContent()) ?? '';
    expect(done).toContain(`by ${WELBY}`);
    expect(done).toMatch(/read-back did not match.*Marcus Welby <welby@stmarys\.example> — acknowledged/s);
    expect(done).toMatch(/\d+:\d\d to acknowledge/);

    // A second critical, acknowledged by phone from the console by a reviewer, read-back checked.
    await sendPotassium('CRIT-2', 'MRN-C2', '6.5', { name: 'Roe^Richard', birthDate: '19650304' });
    const rita = await signedInPage(browser, lr.baseUrl, reviewer.email, reviewer.password);
    await (await boardRow(rita, 'MRN-C2', /sent/)).getByRole('link', { name: /Potassium/ }).click();
    await rita.getByRole('heading', { name: /Critical result: Potassium/ }).waitFor();
    await waitForHydration(rita);
    const attempts = rita.getByRole('region', { name: 'Attempts' });
    expect(await attempts.textContent()).toMatch(/step 1, ordering provider: Marcus Welby.*e-mail.*sent/s);
    await rita.getByLabel('Provider who received it').fill('Dr Marcus Welby');
    await rita.getByLabel('Reached by').selectOption('phone');
    await rita.getByLabel('Value read back').fill('6.4');
    await rita.getByLabel(/Patient MRN or birth date/).fill('MRN-C2');
    await rita.getByRole('button', { name: 'Record acknowledgement' }).click();
    const ackForm = rita.getByRole('region', { name: 'Record an acknowledgement' });
    await expect
      .poll(() => ackForm.getByRole('alert').allTextContents())
      .toContain('The value read back does not match.');
    await rita.getByLabel('Value read back').fill('6.5 mmol/L');
    await rita.getByLabel(/Patient MRN or birth date/).fill('1965-03-04');
    await rita.getByRole('button', { name: 'Record acknowledgement' }).click();
    await expect.poll(() => rita.getByRole('status').first().textContent()).toContain('Acknowledged');
    expect(await attempts.textContent()).toMatch(
      /Dr Marcus Welby.*phone.*read-back did not match.*Dr Marcus Welby.*phone.*acknowledged — read-back confirmed.*rita@critlab\.example \(console\)/s,
    );
    await rita.getByRole('region', { name: 'Record a patient contact attempt' }).waitFor();
    await rita.screenshot({ path: path.join(SCREENSHOTS, 'critical-result.png'), fullPage: true });
    expect(await accessibilityViolations(rita)).toEqual([]);

    const { body: board } = await getJson(lr.baseUrl, cred, `/v1/t/${SLUG}/critical-results?open=true`);
    const second = board.criticalResults.find(
      (r: { recipient: string | null }) => r.recipient === 'Dr Marcus Welby',
    );
    expect(second).toMatchObject({
      status: 'acknowledged',
      communicator: 'rita@critlab.example (console)',
      method: 'phone, read-back confirmed',
    });

    // The patient is reached: the loop closes and the board lists it as closed.
    await rita.getByLabel('Outcome').selectOption('reached');
    await rita.getByRole('button', { name: 'Record attempt' }).click();
    await expect
      .poll(
        async () => {
          await rita.goto(`${lr.baseUrl}/tenants/${SLUG}/critical`);
          return rita.getByRole('region', { name: 'Recently closed' }).textContent();
        },
        { timeout: 30_000, interval: 500 },
      )
      .toMatch(/Potassium.*Dr Marcus Welby.*phone, read-back confirmed.*reached \(1\)/s);

    // A reviewer works the board but does not configure the tenant.
    const forbidden = await rita.goto(`${lr.baseUrl}/tenants/${SLUG}/critical-values`);
    expect(forbidden?.status()).toBe(403);
  });

  test("a provider linked to a provider record sees only the results addressed to them, and no other tenant's", async () => {
    const { providers } = await admin<{ providers: { id: string; name: string }[] }>(
      lr.baseUrl,
      'GET',
      `/v1/admin/tenants/${SLUG}/providers`,
      undefined,
      200,
    );
    const welby = providers.find((p) => p.name === 'Marcus Welby')!;
    const other = await admin<{ id: string }>(lr.baseUrl, 'POST', `/v1/admin/tenants/${SLUG}/providers`, {
      name: 'Casey Cover',
      email: 'cover@stmarys.example',
      roles: ['covering'],
    });
    const welbyUser = await createConsoleUser(lr.baseUrl, {
      email: WELBY,
      password: PASSWORD,
      roles: [{ tenant: SLUG, role: 'provider', providerId: welby.id }],
    });
    const coverUser = await createConsoleUser(lr.baseUrl, {
      email: 'cover@stmarys.example',
      password: PASSWORD,
      roles: [{ tenant: SLUG, role: 'provider', providerId: other.id }],
    });
    await createTenantWithCredential(lr.baseUrl, 'critlab-other');

    const welbyPage = await signedInPage(browser, lr.baseUrl, welbyUser.email, welbyUser.password);
    await welbyPage.goto(`${lr.baseUrl}/tenants/${SLUG}/critical`);
    expect(await welbyPage.getByText('Showing the critical results addressed to you.').count()).toBe(1);
    const mine = welbyPage.getByRole('region', { name: 'Open critical results' });
    expect(await mine.textContent()).toContain('MRN-C1');
    const detail = await mine
      .getByRole('link', { name: /Potassium/ })
      .first()
      .getAttribute('href');

    const coverPage = await signedInPage(browser, lr.baseUrl, coverUser.email, coverUser.password);
    await coverPage.goto(`${lr.baseUrl}/tenants/${SLUG}/critical`);
    expect(await coverPage.getByRole('region', { name: 'Open critical results' }).textContent()).toContain(
      'No critical result is open',
    );
    expect((await coverPage.goto(`${lr.baseUrl}${detail}`))?.status()).toBe(404);
    expect((await coverPage.goto(`${lr.baseUrl}/tenants/critlab-other/critical`))?.status()).toBe(404);
    expect((await coverPage.goto(`${lr.baseUrl}/tenants/${SLUG}/critical-values`))?.status()).toBe(403);
  });
});
