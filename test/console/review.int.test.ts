import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { accessibilityViolations } from '../support/a11y.ts';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { createConsoleUser, createProviderUser, signedInPage, waitForHydration } from '../support/console.ts';
import {
  admin,
  createTenantWithCredential,
  eventually,
  getJson,
  postHl7,
  startTestLabRelay,
  waitForMessageStatus,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

const SLUG = 'revlab';
const PASSWORD = 'a long console passphrase 2026';
const REVIEWER = 'rhea@revlab.example';
const SECOND_REVIEWER = 'sam@revlab.example';
const PROVIDER = 'pat@revlab.example';

/** An ORU^R01 as an LIS writes it: a lipid panel (reviewed by this tenant's rule) or a CBC (not). */
function oru(o: {
  controlId: string;
  mrn: string;
  family?: string;
  given?: string;
  dob?: string;
  cholesterol?: string;
  cbc?: boolean;
}): string {
  const [test, obx] = o.cbc
    ? ['58410-2^CBC panel^LN', ['OBX|1|NM|718-7^Hemoglobin^LN||13.9|g/dL|13.5-17.5|N|||F']]
    : [
        '57698-3^Lipid panel^LN',
        [
          `OBX|1|NM|2093-3^Cholesterol^LN||${o.cholesterol ?? '2120'}|mg/dL|<200|H|||F`,
          'OBX|2|NM|2085-9^HDL Cholesterol^LN||55|mg/dL|>40|N|||F',
        ],
      ];
  return [
    `MSH|^~\\&|ACME_LIS|ACME_LAB|LABRELAY|STMARYS|20261122083000||ORU^R01|${o.controlId}|P|2.5.1`,
    `PID|1||${o.mrn}^^^STMARYS^MR||${o.family ?? 'Okafor'}^${o.given ?? 'Ada'}||${o.dob ?? '19720310'}|F`,
    `OBR|1|ORD-${o.controlId}|FIL-${o.controlId}|${test}|||20261122070000|||||||||||||||20261122080000|||F`,
    ...obx,
  ].join('\r');
}

/**
 * The review queue in a real browser: a routing rule holds lipid panels for review. A reviewer
 * claims a task from the queue, reads the raw HL7 beside the parsed values, corrects one value and
 * approves (the corrected value is what the result API releases); a task another reviewer claimed
 * is theirs alone; a rejection needs its reason and holds the report back; twins are told apart by
 * picking one of the candidates; the task page works from the keyboard; a provider cannot reach the
 * queue or act on it.
 */
describe('review queue in a real browser', () => {
  let lr: TestLabRelay;
  let browser: Browser;
  let cred: TenantCredential;
  let reviewer: Page;
  let providerId: string;

  beforeAll(async () => {
    lr = await startTestLabRelay('pglite', { console: true });
    browser = await launchChromium();
    cred = await createTenantWithCredential(lr.baseUrl, SLUG, [
      'results:write',
      'results:read',
      'patients:read',
      'tasks:write',
    ]);
    await admin(lr.baseUrl, 'POST', `/v1/admin/tenants/${SLUG}/routing-rules`, {
      rules: { reviewRequired: { '==': [{ var: 'test.code' }, '57698-3'] } },
      note: 'lipids are reviewed by a person',
    });
    await createConsoleUser(lr.baseUrl, {
      email: REVIEWER,
      password: PASSWORD,
      roles: [{ tenant: SLUG, role: 'reviewer' }],
    });
    await createConsoleUser(lr.baseUrl, {
      email: SECOND_REVIEWER,
      password: PASSWORD,
      roles: [{ tenant: SLUG, role: 'reviewer' }],
    });
    providerId = (await createProviderUser(lr.baseUrl, { email: PROVIDER, password: PASSWORD, tenant: SLUG }))
      .providerId;
    reviewer = await signedInPage(browser, lr.baseUrl, REVIEWER, PASSWORD);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await lr?.stop();
  });

  async function send(body: string, status: string) {
    const response = await postHl7(lr.baseUrl, cred, body);
    expect(response.status, await response.clone().text()).toBe(200);
    const messageId = response.headers.get('labrelay-message-id')!;
    const message = await waitForMessageStatus(lr.baseUrl, cred, messageId, status);
    return { messageId, reportId: message.reports[0].id as string };
  }

  const taskOf = (kind: string, reportId: string) =>
    eventually(async () => {
      const { body } = await getJson(
        lr.baseUrl,
        cred,
        `/v1/t/${SLUG}/tasks?kind=${kind}&reportId=${reportId}`,
      );
      return body.tasks[0] as { id: string; title: string; status: string; decision: any } | undefined;
    });

  test('a reviewer claims a task from the queue, reads the raw HL7 beside the parsed values, corrects one value and approves; the corrected value is released', async () => {
    const { messageId, reportId } = await send(oru({ controlId: 'REV-1', mrn: 'MRN-R1' }), 'needs_review');
    const task = await taskOf('review_result', reportId);

    await reviewer.goto(`${lr.baseUrl}/tenants/${SLUG}`);
    await reviewer
      .getByRole('navigation', { name: /pages/ })
      .getByRole('link', { name: 'Review queue' })
      .click();
    await reviewer.getByRole('heading', { name: /Review queue/ }).waitFor();
    await waitForHydration(reviewer);
    const row = reviewer.locator(`tr[data-task-id="${task.id}"]`);
    const rowText = await row.textContent();
    expect(rowText).toContain('Review result');
    expect(rowText).toContain('the routing rules require review');
    expect(rowText).toContain('Okafor, Ada');
    expect(rowText).toContain('MRN-R1');
    await reviewer.screenshot({ path: path.join(SCREENSHOTS, 'review-queue.png'), fullPage: true });
    expect(await accessibilityViolations(reviewer)).toEqual([]);

    await row.getByRole('button', { name: /^Claim / }).click();
    await reviewer.waitForURL(`**/review/${task.id}`);
    await waitForHydration(reviewer);
    expect(await reviewer.locator('.summary').textContent()).toContain(`claimed by ${REVIEWER} (you)`);

    // The original as sent: one segment a line, segment names marked, each field at its position.
    const original = reviewer.getByRole('region', { name: 'Original' });
    const raw = original.getByRole('group', { name: /Raw HL7 message/ });
    expect(await raw.locator('.segment-name').allTextContents()).toEqual(['MSH', 'PID', 'OBR', 'OBX', 'OBX']);
    expect(await raw.locator('.segment').nth(3).locator('[title="OBX-5"]').textContent()).toBe('2120');
    expect(await raw.locator('.segment').nth(1).locator('[title="PID-3"]').textContent()).toBe(
      'MRN-R1^^^STMARYS^MR',
    );
    // Beside it, the parsed values with their ranges and flags; the high one stands out.
    const parsed = reviewer.getByRole('region', { name: 'Parsed' });
    const cholesterol = parsed.locator('tr[data-observation="2093-3"]');
    expect(await cholesterol.textContent()).toMatch(/2120 mg\/dL.*<200.*high/s);
    expect(await cholesterol.getAttribute('class')).toContain('out-of-range');
    expect(await parsed.locator('tr[data-observation="2085-9"]').getAttribute('class')).not.toContain(
      'out-of-range',
    );
    await reviewer.screenshot({ path: path.join(SCREENSHOTS, 'review-task.png'), fullPage: true });
    expect(await accessibilityViolations(reviewer)).toEqual([]);

    // Nothing changed is not a correction.
    await reviewer.getByRole('button', { name: 'Correct and approve' }).click();
    await reviewer.getByRole('alert').filter({ hasText: 'No value was changed' }).waitFor();
    await reviewer.getByLabel('Corrected value of Cholesterol', { exact: true }).fill('212');
    await reviewer.getByRole('button', { name: 'Correct and approve' }).click();
    await reviewer.waitForURL(`**/tenants/${SLUG}/review?done=correct`);
    expect(await reviewer.getByRole('status').textContent()).toContain('Corrected and approved');
    expect(await reviewer.locator(`tr[data-task-id="${task.id}"]`).count()).toBe(0);

    await waitForMessageStatus(lr.baseUrl, cred, messageId, 'delivered');
    const { body: bundle } = await getJson(
      lr.baseUrl,
      cred,
      `/v1/t/${SLUG}/fhir/Observation?patient.identifier=MRN-R1`,
    );
    const values = Object.fromEntries(
      bundle.entry.map((e: any) => [e.resource.code.coding[0].code, e.resource.valueQuantity.value]),
    );
    // Only the changed value was sent: HDL stands as received.
    expect(values).toEqual({ '2093-3': 212, '2085-9': 55 });
    const done = await taskOf('review_result', reportId);
    expect(done.decision).toEqual({
      decision: 'correct',
      corrections: [{ observationId: expect.any(String), value: 212 }],
    });
  });

  /** The session's CSRF token as the page's forms carry it. */
  const csrfOf = (page: Page) => page.locator('input[name="csrf"]').first().inputValue();

  test('a task another reviewer claimed is theirs alone; a rejection needs its reason, and a rejected report is never released', async () => {
    const { messageId, reportId } = await send(
      oru({ controlId: 'REV-2', mrn: 'MRN-R2', family: 'Mensah', given: 'Kofi' }),
      'needs_review',
    );
    const task = await taskOf('review_result', reportId);
    const taskUrl = `${lr.baseUrl}/tenants/${SLUG}/review/${task.id}`;

    const second = await signedInPage(browser, lr.baseUrl, SECOND_REVIEWER, PASSWORD);
    await second.goto(taskUrl);
    await waitForHydration(second);
    await second.getByRole('button', { name: 'Claim this task' }).click();
    await second.getByRole('status').filter({ hasText: 'You claimed this task.' }).waitFor();

    // The first reviewer sees who has it and is offered no decision.
    await reviewer.goto(taskUrl);
    await waitForHydration(reviewer);
    expect(await reviewer.locator('main').textContent()).toContain(
      `${SECOND_REVIEWER} has claimed this task`,
    );
    expect(await reviewer.getByRole('button', { name: /Reject|Approve|Claim/ }).count()).toBe(0);
    // A form posted anyway is refused by the same rule the tasks API applies.
    const forged = await reviewer.request.post(`${taskUrl}?/reject`, {
      form: { csrf: await csrfOf(reviewer), comment: 'not mine to reject' },
      headers: { accept: 'text/html', origin: lr.baseUrl },
      maxRedirects: 0,
    });
    expect(forged.status()).toBe(409);
    expect((await taskOf('review_result', reportId)).status).toBe('claimed');

    // A reason of blanks is no reason.
    await second.getByLabel('Reason for rejecting (required)').fill('   ');
    await second.getByRole('button', { name: 'Reject' }).click();
    await second.getByRole('alert').filter({ hasText: 'Say why the report is rejected.' }).waitFor();
    await second.getByLabel('Reason for rejecting (required)').fill('Specimen haemolysed; redraw requested');
    await second.getByRole('button', { name: 'Reject' }).click();
    await second.waitForURL(`**/tenants/${SLUG}/review?done=reject`);
    expect(await second.getByRole('status').textContent()).toContain(
      'Rejected: the report will not be released.',
    );

    const done = await taskOf('review_result', reportId);
    expect(done.status).toBe('completed');
    expect(done.decision).toMatchObject({
      decision: 'reject',
      comment: 'Specimen haemolysed; redraw requested',
    });
    const rejected = await eventually(async () => {
      const { body } = await getJson(lr.baseUrl, cred, `/v1/t/${SLUG}/messages/${messageId}`);
      return body.reports[0].stage === 'rejected' ? body : undefined;
    });
    expect(rejected.reports[0].id).toBe(reportId);
    const { body: released } = await getJson(
      lr.baseUrl,
      cred,
      `/v1/t/${SLUG}/fhir/Observation?patient.identifier=MRN-R2`,
    );
    expect(released.entry ?? []).toEqual([]);
    await second.context().close();
  });

  test('twins with one name and birth date: the reviewer picks the right one from the candidates, and the report is filed under them', async () => {
    const twin = (controlId: string, mrn: string) =>
      send(oru({ controlId, mrn, family: 'Nguyen', given: 'Linh', dob: '19900101', cbc: true }), 'delivered');
    await twin('REV-TWIN-A', 'MRN-TWIN-A');
    // Same name and birth date under another number: a person decides, here that it is someone new.
    const b = await send(
      oru({
        controlId: 'REV-TWIN-B',
        mrn: 'MRN-TWIN-B',
        family: 'Nguyen',
        given: 'Linh',
        dob: '19900101',
        cbc: true,
      }),
      'needs_review',
    );
    const bTask = await taskOf('match_patient', b.reportId);
    await reviewer.goto(`${lr.baseUrl}/tenants/${SLUG}/review/${bTask.id}`);
    await waitForHydration(reviewer);
    await reviewer.getByRole('button', { name: 'New patient' }).click();
    await reviewer.waitForURL(`**/tenants/${SLUG}/review?done=new`);
    await waitForMessageStatus(lr.baseUrl, cred, b.messageId, 'delivered');

    const { messageId, reportId } = await send(
      oru({
        controlId: 'REV-TWIN-X',
        mrn: 'MRN-TWIN-X',
        family: 'NGUYEN',
        given: 'Linh',
        dob: '19900101',
        cbc: true,
      }),
      'needs_review',
    );
    const task = await taskOf('match_patient', reportId);
    await reviewer.goto(`${lr.baseUrl}/tenants/${SLUG}/review?kind=match_patient`);
    await reviewer.locator(`tr[data-task-id="${task.id}"]`).getByRole('link').click();
    await reviewer.waitForURL(`**/review/${task.id}`);
    await waitForHydration(reviewer);
    const match = reviewer.getByRole('region', { name: 'Which patient is this?' });
    expect(await match.textContent()).toContain('Sent as NGUYEN, Linh, born 1990-01-01, MRN-TWIN-X');
    const candidates = match.locator('tbody tr');
    expect(await candidates.count()).toBe(2);
    expect((await candidates.allTextContents()).map((t) => /MRN-TWIN-[AB]/.exec(t)?.[0]).sort()).toEqual([
      'MRN-TWIN-A',
      'MRN-TWIN-B',
    ]);
    await reviewer.screenshot({ path: path.join(SCREENSHOTS, 'review-match-patient.png'), fullPage: true });
    expect(await accessibilityViolations(reviewer)).toEqual([]);
    const chosen = match.locator('tbody tr', { hasText: 'MRN-TWIN-B' });
    const chosenId = await chosen.getAttribute('data-patient-id');
    await chosen.getByRole('button', { name: /^This patient: Nguyen, Linh, MRN-TWIN-B/ }).click();
    await reviewer.waitForURL(`**/tenants/${SLUG}/review?done=match`);

    const done = await waitForMessageStatus(lr.baseUrl, cred, messageId, 'delivered');
    expect(done.reports[0].patientId).toBe(chosenId);
    const { body } = await getJson(lr.baseUrl, cred, `/v1/t/${SLUG}/fhir/Patient?identifier=MRN-TWIN-X`);
    expect(body.entry.map((e: any) => e.resource.id)).toEqual([chosenId]);
  });

  test('the task page works from the keyboard: c claims, j and k move through the queue, a then Enter approves, q goes back', async () => {
    const first = await send(
      oru({ controlId: 'REV-K1', mrn: 'MRN-K1', family: 'Keys', given: 'One' }),
      'needs_review',
    );
    const second = await send(
      oru({ controlId: 'REV-K2', mrn: 'MRN-K2', family: 'Keys', given: 'Two' }),
      'needs_review',
    );
    const firstTask = await taskOf('review_result', first.reportId);
    const secondTask = await taskOf('review_result', second.reportId);

    await reviewer.goto(`${lr.baseUrl}/tenants/${SLUG}/review/${firstTask.id}`);
    await waitForHydration(reviewer);
    // The queue is oldest first within a priority: the second task comes after the first.
    await reviewer.keyboard.press('j');
    await reviewer.waitForURL(`**/review/${secondTask.id}`);
    await waitForHydration(reviewer);
    await reviewer.keyboard.press('k');
    await reviewer.waitForURL(`**/review/${firstTask.id}`);
    await waitForHydration(reviewer);

    await reviewer.keyboard.press('c');
    expect(await reviewer.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe(
      'claim-button',
    );
    await reviewer.keyboard.press('Enter');
    await reviewer.getByRole('status').filter({ hasText: 'You claimed this task.' }).waitFor();
    // A shortcut key typed into a field is just text.
    await reviewer.keyboard.press('r');
    await reviewer.keyboard.type('jaq');
    expect(await reviewer.getByLabel('Reason for rejecting (required)').inputValue()).toBe('jaq');
    // Had `j` or `q` navigated, the page would have fetched its next data by now.
    await reviewer.waitForLoadState('networkidle');
    expect(reviewer.url()).toContain(`/review/${firstTask.id}`);
    await reviewer.getByLabel('Reason for rejecting (required)').fill('');
    await reviewer.locator('h1').click();

    await reviewer.keyboard.press('a');
    expect(await reviewer.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe(
      'approve-button',
    );
    await reviewer.keyboard.press('Enter');
    await reviewer.waitForURL(`**/tenants/${SLUG}/review?done=approve`);
    await waitForMessageStatus(lr.baseUrl, cred, first.messageId, 'delivered');

    await reviewer.goto(`${lr.baseUrl}/tenants/${SLUG}/review/${secondTask.id}`);
    await waitForHydration(reviewer);
    await reviewer.keyboard.press('q');
    await reviewer.waitForURL((url) => url.pathname === `/tenants/${SLUG}/review`);
    expect(await reviewer.locator(`tr[data-task-id="${secondTask.id}"]`).count()).toBe(1);
  });

  test('a provider cannot open the queue or a task, and a claim posted anyway is refused', async () => {
    const { reportId } = await send(
      oru({ controlId: 'REV-P1', mrn: 'MRN-P1', family: 'Adeyemi', given: 'Tolu' }),
      'needs_review',
    );
    const task = await taskOf('review_result', reportId);
    const provider = await signedInPage(browser, lr.baseUrl, PROVIDER, PASSWORD);
    const token = await csrfOf(provider);

    const queue = await provider.goto(`${lr.baseUrl}/tenants/${SLUG}/review`);
    expect(queue!.status()).toBe(403);
    const page = await provider.goto(`${lr.baseUrl}/tenants/${SLUG}/review/${task.id}`);
    expect(page!.status()).toBe(403);
    expect(await provider.locator('body').textContent()).not.toContain('MRN-P1');
    for (const url of [
      `${lr.baseUrl}/tenants/${SLUG}/review?/claim`,
      `${lr.baseUrl}/tenants/${SLUG}/review/${task.id}?/claim`,
    ]) {
      const claim = await provider.request.post(url, {
        form: { csrf: token, taskId: task.id },
        headers: { accept: 'text/html', origin: lr.baseUrl },
        maxRedirects: 0,
      });
      expect(claim.status(), url).toBe(403);
    }
    const after = await taskOf('review_result', reportId);
    expect(after.status).toBe('open');
    // Their provider record removed (they left the practice): the critical board says why it shows nothing.
    await admin(lr.baseUrl, 'DELETE', `/v1/admin/tenants/${SLUG}/providers/${providerId}`, undefined, 204);
    await provider.goto(`${lr.baseUrl}/tenants/${SLUG}/critical`);
    expect(await provider.getByRole('alert').textContent()).toContain(
      'Your provider role is not linked to a provider',
    );
    await provider.context().close();
  });
});
