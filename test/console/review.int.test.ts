import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { createConsoleUser, signedInPage, waitForHydration } from '../support/console.ts';
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
 * The review queue in a real browser: a routing rule holds lipid panels for review; a reviewer
 * claims a task from the queue, reads the raw HL7 beside the parsed values, corrects one value and
 * approves (the corrected value is what the result API releases).
 */
describe('review queue in a real browser', () => {
  let lr: TestLabRelay;
  let browser: Browser;
  let cred: TenantCredential;
  let reviewer: Page;

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
      email: PROVIDER,
      password: PASSWORD,
      roles: [{ tenant: SLUG, role: 'provider' }],
    });
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
});
