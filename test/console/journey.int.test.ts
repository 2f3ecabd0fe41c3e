import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import { accessibilityViolations } from '../support/a11y.ts';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { addPersonOnUsersPage, signedInPage, waitForHydration } from '../support/console.ts';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  freePort,
  postHl7,
  startTestLabRelay,
  testEnv,
  type TestLabRelay,
} from '../support/labrelay.ts';

const SLUG = 'northside';
const TENANT = 'Northside Clinic';
const CONTROL_ID = 'JOURNEY-1';
const REVIEWER = {
  email: 'rosa@northside.example',
  name: 'Rosa Reviewer',
  password: 'a long reviewer passphrase 2026',
  role: 'reviewer',
} as const;
const PROVIDER = {
  email: 'welby@northside.example',
  name: 'Marcus Welby',
  password: 'a long provider passphrase 2026',
  role: 'provider',
  // The provider record the person is, as the Users page lists it.
  provider: 'Marcus Welby <welby@northside.example>',
} as const;
/** A patient nobody else in the tenant shares a name and birth date with (no match task). */
const PATIENT = {
  hl7Name: 'Halvorsen^Ingrid',
  listed: 'Halvorsen, Ingrid',
  birthDate: '19581207',
  mrn: 'MRN-NS-1',
};

/**
 * The lab's result as its LIS sends it: a metabolic panel with a critical potassium (7.1 mmol/L,
 * flagged HH) ordered by Dr Welby (OBR-16 1234); sodium and glucose normal, so the potassium is the
 * only critical value.
 */
function criticalPotassium(): string {
  return basicMetabolicPanel({
    controlId: CONTROL_ID,
    placer: `ORD-${CONTROL_ID}`,
    filler: `FIL-${CONTROL_ID}`,
    mrn: PATIENT.mrn,
    potassium: '7.1',
    glucose: '5.0',
  })
    .replace('~999-99-9999^^^SSA^SS', '')
    .replace('Doe^Jane^Q||19800115', `${PATIENT.hl7Name}||${PATIENT.birthDate}`)
    .replace('|3.9-5.5|L|', '|3.9-5.5|N|');
}

/**
 * A new user's first day with the console, in a real browser: the platform admin adds a tenant,
 * sets up its inbound HL7 connection and takes the credential from the handoff page, adds a
 * routing rule that sends potassium to review, the ordering provider, and a reviewer and a provider
 * as people. The lab sends a critical potassium signed with that credential; the reviewer claims and
 * approves it from the queue; the critical board shows its escalation; the provider follows the
 * e-mailed link from the outbox and reads back; the board, the message log and the results show
 * the outcome. Every main page is saved as a screenshot and checked with axe.
 */
describe('a new user’s journey through the console', () => {
  let lr: TestLabRelay;
  let browser: Browser;
  beforeAll(async () => {
    // The e-mailed acknowledgement link carries the public URL: make it this server's.
    const port = await freePort();
    lr = await startTestLabRelay('pglite', {
      console: true,
      env: await testEnv('pglite', { PORT: String(port), LABRELAY_PUBLIC_URL: `http://127.0.0.1:${port}` }),
    });
    browser = await launchChromium();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await lr?.stop();
  });

  let shots = 0;
  /** Saves the page as `journey-NN-name.png` and checks it with axe (WCAG 2 A and AA). */
  async function record(page: Page, name: string) {
    shots += 1;
    const file = `journey-${String(shots).padStart(2, '0')}-${name}.png`;
    await page.screenshot({ path: path.join(SCREENSHOTS, file), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
  }

  /** From the overview, opens the tenant a person has a role in, as they would. */
  async function openTenant(page: Page) {
    await page
      .getByRole('region', { name: 'Tenants' })
      .getByRole('link', { name: SLUG, exact: true })
      .click();
    await page.waitForURL((url) => url.pathname.startsWith(`/tenants/${SLUG}/`));
    await waitForHydration(page);
  }

  /** Follows a link in the tenant's menu, as a person does, and waits for the page to be usable. */
  async function openFromMenu(page: Page, label: string) {
    const link = page
      .getByRole('navigation', { name: `${TENANT} pages` })
      .getByRole('link', { name: label, exact: true });
    const href = (await link.getAttribute('href'))!;
    await link.click();
    await page.waitForURL((url) => url.pathname === href);
    await waitForHydration(page);
  }

  /** Reloads the page until the text read from it matches: pages read the database when loaded. */
  async function reloadUntil(page: Page, text: () => Promise<string | null>, expected: RegExp) {
    await expect
      .poll(
        async () => {
          await page.reload();
          return text();
        },
        { timeout: 30_000, interval: 500 },
      )
      .toMatch(expected);
    await waitForHydration(page);
  }

  test('onboarding → a signed critical result → review → critical acknowledgement, seen page by page', async () => {
    // 1. The platform admin signs in and adds the tenant on the overview.
    const admin = await signedInPage(browser, lr.baseUrl, ADMIN_EMAIL, ADMIN_PASSWORD);
    await waitForHydration(admin);
    const tenants = admin.getByRole('region', { name: 'Tenants' });
    expect(await tenants.textContent()).toContain('No tenants yet.');
    expect(await admin.getByRole('region', { name: 'Recent messages' }).textContent()).toContain(
      'No messages received yet.',
    );
    await record(admin, 'overview');
    await admin.getByLabel('Name', { exact: true }).fill(TENANT);
    await admin.getByLabel('Slug (in its URLs)').fill(SLUG);
    await admin.getByRole('button', { name: 'Add tenant' }).click();

    // 2. The onboarding wizard: an inbound HL7 connection, its credential handed over once.
    await admin.getByRole('heading', { name: `Connections of ${TENANT}` }).waitFor();
    await waitForHydration(admin);
    const inbound = admin.getByRole('region', { name: 'Receive orders and results' });
    expect(await inbound.textContent()).toContain('None yet.');
    await record(admin, 'onboarding');
    await inbound.getByText('Add a connection to receive orders and results').click();
    await inbound.getByLabel('Name').fill('Northside LIS');
    await inbound.getByLabel('Format').selectOption({ label: 'HL7 v2 (HTTP or MLLP)' });
    await inbound.getByLabel('Sending facility (MSH-4)').fill('ACME_LAB');
    await inbound.getByRole('button', { name: 'Add connection' }).click();
    const handoff = admin.getByRole('region', { name: /Credential handoff: Northside LIS/ });
    await handoff.waitFor();
    expect(await handoff.textContent()).toContain('Shown this once.');
    const apiKey = (await admin.getByLabel('API key', { exact: true }).textContent())!.trim();
    const signingSecret = (await admin.getByLabel('Signing secret', { exact: true }).textContent())!.trim();
    expect(apiKey).toMatch(/^lr_test_/);
    expect(signingSecret).not.toBe('');
    expect(await handoff.textContent()).toContain(`/v1/t/${SLUG}/hl7`);
    expect(await inbound.getByRole('row', { name: /Northside LIS/ }).textContent()).toMatch(
      /Northside LIS.*hl7v2.*sandbox/s,
    );
    await record(admin, 'credential-handoff');

    // 3. A routing rule, built visually: every potassium result goes to a person first.
    await openFromMenu(admin, 'Routing rules');
    await admin.getByRole('heading', { name: `Routing rules of ${TENANT}` }).waitFor();
    const builder = admin.getByRole('region', { name: 'Visual builder' });
    await builder.getByLabel('Condition 1', { exact: true }).selectOption({ label: 'Result code is' });
    await builder.getByLabel('Condition 1 value').fill('2823-3');
    expect(await builder.getByLabel('send to review').isChecked()).toBe(true);
    await expect
      .poll(() => builder.getByLabel("The builder's JSON-logic").textContent())
      .toContain('"2823-3"');
    await builder.getByRole('button', { name: 'Use as the draft' }).click();
    await admin.locator('#draft-check [role="status"]').filter({ hasText: 'valid' }).waitFor();
    await admin.getByLabel('Note for this version').fill('potassium is reviewed by a person');
    await admin.getByRole('button', { name: 'Save as version 1' }).click();
    await expect.poll(() => admin.getByRole('status').first().textContent()).toContain('Saved as version 1');
    const versions = admin.getByRole('region', { name: 'Versions' });
    const version1 = (await versions.getByRole('row', { name: /v1 \(in force\)/ }).textContent()) ?? '';
    expect(version1).toContain('potassium is reviewed by a person');
    expect(version1).toContain(`${ADMIN_EMAIL} (console)`);
    await record(admin, 'rules');

    // 4. The ordering provider the critical chain reaches (OBR-16 1234), then the people and their roles.
    await openFromMenu(admin, 'Critical values');
    await admin.getByRole('heading', { name: `Critical values of ${TENANT}` }).waitFor();
    await admin.getByLabel('Name', { exact: true }).fill(PROVIDER.name);
    await admin.getByLabel('E-mail').fill(PROVIDER.email);
    await admin.getByLabel('External id (as senders give it)').fill('1234');
    await admin.getByLabel('ordering provider').check();
    await admin.getByRole('button', { name: 'Add provider' }).click();
    const providers = admin.getByRole('region', { name: 'Providers' });
    await expect
      .poll(() => providers.getByRole('row', { name: /Marcus Welby/ }).textContent())
      .toMatch(/welby@northside\.example.*1234.*ordering provider/s);
    await record(admin, 'critical-values');

    await openFromMenu(admin, 'Users');
    await admin.getByRole('heading', { name: `Users of ${TENANT}` }).waitFor();
    await addPersonOnUsersPage(admin, REVIEWER);
    await addPersonOnUsersPage(admin, PROVIDER);
    const people = admin.getByRole('region', { name: 'People' });
    expect(await people.getByRole('row', { name: /rosa@northside\.example/ }).textContent()).toMatch(
      /Rosa Reviewer.*reviewer/s,
    );
    expect(await people.getByRole('row', { name: /welby@northside\.example/ }).textContent()).toMatch(
      /Marcus Welby.*provider.*Marcus Welby/s,
    );
    await record(admin, 'users');

    // 5. The lab's system sends the result, signed with the credential the handoff page showed.
    const sent = await postHl7(
      lr.baseUrl,
      { slug: SLUG, tenantId: '', credentialId: '', apiKey, signingSecret },
      criticalPotassium(),
    );
    const ack = await sent.text();
    expect(sent.status, ack).toBe(200);
    expect(ack).toContain(`MSA|AA|${CONTROL_ID}`);

    // 6. The reviewer finds it in the queue, claims it, reads the original beside the values, approves.
    const reviewer = await signedInPage(browser, lr.baseUrl, REVIEWER.email, REVIEWER.password);
    await waitForHydration(reviewer);
    await openTenant(reviewer);
    await openFromMenu(reviewer, 'Review queue');
    const queue = reviewer.getByRole('region', { name: /^Tasks/ });
    const taskRow = queue.getByRole('row', { name: new RegExp(PATIENT.mrn) });
    await reloadUntil(reviewer, () => queue.textContent(), new RegExp(PATIENT.mrn));
    expect(await taskRow.textContent()).toMatch(
      // Stat: a critical value is the most urgent thing in the queue, whatever the rule's priority.
      new RegExp(
        `stat.*Review result.*the routing rules require review.*${PATIENT.listed}.*${PATIENT.mrn}`,
        's',
      ),
    );
    await record(reviewer, 'review-queue');
    await taskRow.getByRole('button', { name: /^Claim / }).click();
    await reviewer.waitForURL(new RegExp(`/tenants/${SLUG}/review/[0-9a-f-]{36}$`));
    await waitForHydration(reviewer);
    expect(await reviewer.locator('main').textContent()).toContain(`claimed by ${REVIEWER.email} (you)`);
    const raw = reviewer
      .getByRole('region', { name: 'Original' })
      .getByRole('group', { name: /Raw HL7 message/ });
    expect(await raw.textContent()).toContain(PATIENT.hl7Name);
    expect(await raw.textContent()).toMatch(/OBX.*2823-3\^Potassium.*7\.1.*HH/s);
    const parsed = reviewer.getByRole('region', { name: 'Parsed' });
    expect(await parsed.textContent()).toContain(`${PATIENT.listed}, born 1958-12-07`);
    expect(await parsed.locator('tr[data-observation="2823-3"]').textContent()).toMatch(
      /Potassium.*7\.1 mmol\/L.*3\.5-5\.1.*critically high/s,
    );
    await record(reviewer, 'review-task');
    await reviewer.getByRole('button', { name: 'Approve as received' }).click();
    await reviewer.waitForURL(`**/tenants/${SLUG}/review?done=approve`);
    expect(await reviewer.getByRole('status').textContent()).toContain(
      'Approved: the report goes on to release.',
    );
    expect(await taskRow.count()).toBe(0);

    // 7. The critical board: the potassium with its open clock and the step the chain is at.
    await openFromMenu(admin, 'Critical board');
    const open = admin.getByRole('region', { name: 'Open critical results' });
    const criticalRow = open.getByRole('row', { name: new RegExp(PATIENT.mrn) });
    await reloadUntil(
      admin,
      () => open.textContent(),
      /e-mail to Marcus Welby <welby@northside\.example> — sent/,
    );
    const boardText = (await criticalRow.textContent()) ?? '';
    expect(boardText).toMatch(new RegExp(`Potassium.*${PATIENT.listed}`, 's'));
    expect(boardText).toMatch(/\d+:\d\d open/);
    expect(boardText).toContain('notifying');
    expect(boardText).toMatch(/Step 1 of \d+ — ordering provider/);
    expect(boardText).toMatch(/next: step 2, covering provider/);
    const clock = criticalRow.getByRole('timer');
    const first = await clock.textContent();
    await expect.poll(() => clock.textContent(), { timeout: 5000 }).not.toBe(first);
    await record(admin, 'critical-board');

    // The e-mail to Dr Welby, as the mail outbox captured it, carries the acknowledgement link.
    await openFromMenu(admin, 'Mail');
    const outbox = admin.getByRole('region', { name: 'Outbox' });
    const mailRow = outbox.getByRole('row', { name: /CRITICAL RESULT/ });
    expect(await mailRow.textContent()).toMatch(
      /welby@northside\.example.*CRITICAL RESULT.*critical result/s,
    );
    await record(admin, 'mail-outbox');
    await mailRow.getByRole('link').click();
    const mail = admin.getByRole('region', { name: 'Message' });
    await mail.waitFor();
    await waitForHydration(admin);
    const mailText = (await mail.textContent()) ?? '';
    expect(mailText).toContain('A critical result needs your acknowledgement');
    await record(admin, 'mail');
    const link = /(http\S+\/ack\/\S+)/.exec(mailText)?.[1];
    expect(link, mailText).toBeDefined();

    // The provider signs in: the board says it shows what is addressed to them; they open the result.
    const provider = await signedInPage(browser, lr.baseUrl, PROVIDER.email, PROVIDER.password);
    await waitForHydration(provider);
    await openTenant(provider);
    await openFromMenu(provider, 'Critical board');
    expect(await provider.getByText('Showing the critical results addressed to you.').count()).toBe(1);
    await provider
      .getByRole('region', { name: 'Open critical results' })
      .getByRole('row', { name: new RegExp(PATIENT.mrn) })
      .getByRole('link', { name: /Potassium/ })
      .click();
    await provider.getByRole('heading', { name: /Critical result: Potassium/ }).waitFor();
    await waitForHydration(provider);
    const summary = provider.getByRole('region', { name: 'Result and patient' });
    expect(await summary.textContent()).toMatch(/Potassium.*7\.1 mmol\/L/s);
    expect(await summary.textContent()).toContain(`${PATIENT.listed} — ${PATIENT.mrn}, born 1958-12-07`);
    expect(await provider.getByRole('region', { name: 'Attempts' }).textContent()).toMatch(
      /step 1, ordering provider: Marcus Welby.*e-mail.*sent/s,
    );
    await record(provider, 'critical-result');

    // The link in the e-mail: the provider reads back the value and the patient, and it is recorded.
    await provider.goto(link!);
    await provider.getByLabel('Value as you received it').fill('7.1');
    await provider.getByLabel(/Patient identifier/).fill(PATIENT.mrn);
    await record(provider, 'acknowledgement');
    await provider.getByRole('button', { name: 'Acknowledge' }).click();
    await provider
      .getByRole('status')
      .filter({ hasText: 'Acknowledged. Your read-back matched and has been recorded.' })
      .waitFor();
    await record(provider, 'acknowledged');

    // The board now shows it acknowledged, by whom, and how long it took.
    await admin.goto(`${lr.baseUrl}/tenants/${SLUG}/critical`);
    await reloadUntil(admin, () => criticalRow.textContent(), /acknowledged — patient contact/);
    const acknowledged = (await criticalRow.textContent()) ?? '';
    expect(acknowledged).toContain(`by ${PROVIDER.email}`);
    expect(acknowledged).toMatch(/\d+:\d\d to acknowledge/);
    expect(acknowledged).toContain('Done (e-mail with signed link, read-back confirmed)');
    expect(acknowledged).toMatch(/Marcus Welby <welby@northside\.example> — acknowledged/);
    await record(admin, 'critical-board-acknowledged');

    // 8. The message log: delivered, and its timeline from receipt to release.
    await openFromMenu(admin, 'Messages');
    const log = admin.getByRole('region', { name: 'Inbound messages' });
    const logRow = log.getByRole('row', { name: new RegExp(CONTROL_ID) });
    await reloadUntil(admin, () => logRow.textContent(), /delivered/);
    expect(await logRow.textContent()).toMatch(
      new RegExp(`http.*hl7v2.*ORU\\^R01.*${CONTROL_ID}.*delivered`, 's'),
    );
    await record(admin, 'message-log');
    await logRow.getByRole('link').click();
    await admin.getByRole('heading', { name: `Message ${CONTROL_ID}` }).waitFor();
    await waitForHydration(admin);
    expect(await admin.getByRole('region', { name: /Answer sent \(HTTP 200\)/ }).textContent()).toContain(
      `MSA|AA|${CONTROL_ID}`,
    );
    // Its whole story: received, flagged, reviewed by Rosa, released; and Dr Welby's acknowledgement.
    const timeline = admin.getByRole('region', { name: 'Timeline' });
    expect(await timeline.textContent()).toMatch(
      /message\.received.*report\.flagged.*task\.completed.*rosa@northside\.example \(console\).*report\.released/s,
    );
    expect(await timeline.textContent()).toMatch(/critical\.acknowledged.*by welby@northside\.example/);
    await record(admin, 'message');

    // The results dashboard: the released report, its potassium marked critical.
    await openFromMenu(admin, 'Results');
    const recent = admin.getByRole('region', { name: 'Recent reports' });
    const report = recent.getByRole('row', { name: new RegExp(PATIENT.listed) });
    expect(await report.textContent()).toMatch(/released/);
    const potassium = report.locator('li[data-analyte^="Potassium"]');
    expect(await potassium.locator('[data-flag]').getAttribute('data-flag')).toBe('critical');
    expect(await potassium.textContent()).toMatch(/7\.1 mmol\/L\s*HH\s*, critically high/);
    await record(admin, 'results');
  }, 240_000);
});
