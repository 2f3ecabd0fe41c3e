import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import { accessibilityViolations } from '../support/a11y.ts';
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

const SLUG = 'rulelab';
const ADMIN = 'rules.admin@rulelab.example';
/** Version 1, saved through the admin API: critical results are reviewed. */
const V1 = { reviewRequired: { some: [{ var: 'results' }, { var: 'critical' }] } };

describe('console: routing rules', () => {
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
    await admin(lr.baseUrl, 'POST', `/v1/admin/tenants/${SLUG}/routing-rules`, {
      rules: V1,
      note: 'critical results are reviewed',
    });
    const person = await createConsoleUser(lr.baseUrl, {
      email: ADMIN,
      roles: [{ tenant: SLUG, role: 'admin' }],
    });
    page = await signedInPage(browser, lr.baseUrl, person.email, person.password);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await lr?.stop();
  });

  /** Sends a metabolic panel with this potassium (normal glucose, so only the rules decide review). */
  async function sendPotassium(potassium: string, status: string): Promise<string> {
    const response = await postHl7(
      lr.baseUrl,
      cred,
      basicMetabolicPanel({
        controlId: `K-${potassium}`,
        placer: `ORD-K-${potassium}`,
        potassium,
        glucose: '5.0',
      }),
    );
    expect(response.status).toBe(200);
    const done = await waitForMessageStatus(
      lr.baseUrl,
      cred,
      response.headers.get('labrelay-message-id')!,
      status,
    );
    return done.reports[0].id as string;
  }

  const alert = () => page.locator('#draft-check [role="alert"]');
  const draft = () => page.getByLabel('Draft rules (JSON-logic)');

  test('an admin builds a rule, checks and tries it, saves it, dry-runs a stricter draft, compares versions and rolls back', async () => {
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/rules`);
    await waitForHydration(page);
    await page.getByRole('heading', { name: `Routing rules of Tenant ${SLUG}` }).waitFor();

    // Potassium (2823-3) above 5.0 goes to review, built in the visual builder.
    const builder = page.getByRole('region', { name: 'Visual builder' });
    await builder.getByLabel('Condition 1', { exact: true }).selectOption({ label: 'Result code is' });
    await builder.getByLabel('Condition 1 value').fill('2823-3');
    await builder.getByRole('button', { name: 'Add a condition' }).click();
    await builder.getByLabel('Condition 2', { exact: true }).selectOption({ label: 'Value is above' });
    await builder.getByLabel('Condition 2 value').fill('5.0');
    expect(await builder.getByLabel('send to review').isChecked()).toBe(true);
    const built = builder.getByLabel("The builder's JSON-logic");
    await expect.poll(() => built.textContent()).toContain('"2823-3"');
    const json = JSON.parse((await built.textContent())!) as unknown;
    expect(json).toEqual({
      reviewRequired: {
        some: [
          { var: 'results' },
          { and: [{ '==': [{ var: 'code' }, '2823-3'] }, { '>': [{ var: 'value' }, 5] }] },
        ],
      },
    });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'rules-builder.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
    await builder.getByRole('button', { name: 'Use as the draft' }).click();
    expect(JSON.parse(await draft().inputValue())).toEqual(json);
    expect(await page.locator('#draft-check [role="status"]').textContent()).toContain('valid');

    // A made-up operation in the raw editor is pointed at by its path, as the server would.
    const valid = await draft().inputValue();
    await draft().fill(valid.replace('">"', '"gt"'));
    await expect.poll(() => alert().textContent()).toContain('reviewRequired.some[1].and[1]');
    expect(await alert().textContent()).toContain('The operation "gt" is not allowed');
    expect(await page.getByRole('button', { name: 'Save as version 2' }).isDisabled()).toBe(true);
    await draft().fill(valid);
    await expect.poll(() => alert().count()).toBe(0);

    // Tried on the sample (a potassium of 5.4): review.
    await page.getByLabel('Try the draft on').selectOption('sample');
    await page.getByRole('button', { name: 'Try the draft' }).click();
    const decision = page.getByRole('region', { name: 'Decision' });
    await decision.waitFor();
    expect(await decision.textContent()).toMatch(/Review\s*send to review/);

    await page.getByLabel('Note for this version').fill('potassium above 5.0 is reviewed');
    await page.getByRole('button', { name: 'Save as version 2' }).click();
    await expect.poll(() => page.getByRole('status').first().textContent()).toContain('Saved as version 2');

    // Version 2 is in force: the 5.6 goes to review (a task is open), the 4.1 does not.
    const normal = await sendPotassium('4.1', 'delivered');
    const high = await sendPotassium('5.6', 'needs_review');
    const tasks = (reportId: string) =>
      getJson<{ tasks: { kind: string; reason: string }[] }>(
        lr.baseUrl,
        cred,
        `/v1/t/${SLUG}/tasks?status=open&kind=review_result&reportId=${reportId}`,
      );
    const task = await eventually(async () => (await tasks(high)).body.tasks[0]);
    expect(task.reason).toBe('the routing rules require review');
    expect((await tasks(normal)).body.tasks).toEqual([]);

    // A stricter draft (above 4.0), dry-run over the last 10 results: only the 4.1 would change.
    await page.reload();
    await waitForHydration(page);
    await builder.getByLabel('Condition 1 value').fill('2823-3');
    await builder.getByRole('button', { name: 'Add a condition' }).click();
    await builder.getByLabel('Condition 2', { exact: true }).selectOption({ label: 'Value is above' });
    await builder.getByLabel('Condition 2 value').fill('4.0');
    await builder.getByRole('button', { name: 'Use as the draft' }).click();
    expect(await draft().inputValue()).toContain('4');
    await page.getByLabel('Last results to look at').fill('10');
    await page.getByRole('button', { name: 'Dry run the draft' }).click();
    const dryRun = page.getByRole('region', { name: 'Dry run' });
    await expect
      .poll(() => dryRun.getByRole('status').textContent())
      .toContain('Done: 2 results evaluated, 1 would change');
    const rows = dryRun
      .getByRole('table', { name: 'Results the draft would route differently' })
      .locator('tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-report-id')).toBe(normal);
    expect(await rows.first().textContent()).toMatch(/v2: no review.*review.*reviewRequired: no → yes/s);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'rules-dry-run.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // What changed from version 1 to version 2, marked in text.
    const versions = page.getByRole('region', { name: 'Versions' });
    expect(await versions.getByRole('row', { name: /v2 \(in force\)/ }).textContent()).toContain(
      `${ADMIN} (console)`,
    );
    await versions.getByRole('link', { name: 'Changes from v1 (version 2)' }).click();
    const diff = page.getByRole('list', { name: 'Changes in version 2' });
    await diff.waitFor();
    const lines = await diff.locator('li').allTextContents();
    expect(lines.some((l) => /^added: \+ .*"2823-3"/.test(l))).toBe(true);
    expect(lines.some((l) => /^removed: − .*"var": "critical"/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {2}.*"var": "results"/.test(l))).toBe(true);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'rules-versions.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // Rolling back to version 1 saves it again as version 3, audited as this person.
    await versions.getByRole('button', { name: 'Roll back to v1' }).click();
    await expect
      .poll(() => page.getByRole('status').first().textContent())
      .toContain('Version 1 is back in force, saved as version 3');
    await versions.getByRole('row', { name: /v3 \(in force\)/ }).waitFor();
    const saved = await admin<{ versions: { version: number; rules: unknown; createdBy: string }[] }>(
      lr.baseUrl,
      'GET',
      `/v1/admin/tenants/${SLUG}/routing-rules`,
      undefined,
      200,
    );
    expect(saved.versions.map((v) => v.version)).toEqual([3, 2, 1]);
    expect(saved.versions[0]).toMatchObject({ rules: V1, createdBy: `${ADMIN} (console)` });
    const audited = await lr.labrelay
      .services!.db.selectFrom('audit_events')
      .select(['actor', 'details'])
      .where('action', '=', 'routing_rules.rolled_back')
      .where('subject', '=', 'routing-rules/3')
      .executeTakeFirstOrThrow();
    expect(audited).toMatchObject({ actor: `${ADMIN} (console)`, details: { to: 1 } });
  });
});
