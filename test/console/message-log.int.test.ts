import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import { accessibilityViolations } from '../support/a11y.ts';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { createConsoleUser, signedInPage } from '../support/console.ts';
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
  waitForMessageStatus,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

const SLUG = 'msglab';
const WELBY = 'welby@msglab.example';

/** A metabolic panel of one patient (their own MRN only), with values chosen by the caller. */
function panel(
  controlId: string,
  mrn: string,
  values: { potassium: string; glucose: string; normal: boolean },
) {
  let message = basicMetabolicPanel({
    controlId,
    placer: `ORD-${controlId}`,
    filler: `FIL-${controlId}`,
    mrn,
    potassium: values.potassium,
    glucose: values.glucose,
  }).replace('~999-99-9999^^^SSA^SS', '');
  if (values.normal) message = message.replace('|HH|', '|N|').replace('|3.9-5.5|L|', '|3.9-5.5|N|');
  return message;
}

/**
 * The message log, one message's whole story, re-processing, the audit trail with its hash chain,
 * the captured mail and the monitoring figures, as an admin and a reviewer see them.
 */
describe('message log, audit, mail and monitoring in a real browser', () => {
  let lr: TestLabRelay;
  let browser: Browser;
  let cred: TenantCredential;
  let goodId: string;

  beforeAll(async () => {
    lr = await startTestLabRelay('pglite', { console: true });
    browser = await launchChromium();
    cred = await createTenantWithCredential(lr.baseUrl, SLUG);
    await admin(lr.baseUrl, 'POST', `/v1/admin/tenants/${SLUG}/providers`, {
      name: 'Marcus Welby',
      externalId: '1234',
      email: WELBY,
      roles: ['ordering'],
    });
    // A destination that is down: the good result's delivery is dead-lettered after its one attempt.
    await admin(lr.baseUrl, 'POST', `/v1/admin/tenants/${SLUG}/connections`, {
      name: 'Hospital webhook',
      direction: 'outbound',
      format: 'webhook',
      environment: 'production',
      endpoint: { url: `http://127.0.0.1:${await freePort()}/results` },
      settings: { maxAttempts: 1 },
    });

    const good = await postHl7(
      lr.baseUrl,
      cred,
      panel('GOOD-1', 'MRN-G1', { potassium: '4.2', glucose: '5.0', normal: true }),
    );
    expect(good.status).toBe(200);
    goodId = good.headers.get('labrelay-message-id')!;
    await waitForMessageStatus(lr.baseUrl, cred, goodId, 'delivered');

    // A result without its patient (no PID segment) is refused, and says where it went wrong.
    const bad = await postHl7(
      lr.baseUrl,
      cred,
      [
        'MSH|^~\\&|ACME_LIS|ACME_LAB|LABRELAY|STMARYS|20261122083000||ORU^R01^ORU_R01|BAD-1|P|2.5.1',
        'OBX|1|NM|2823-3^Potassium^LN||banana|mmol/L|3.5-5.1||||F',
      ].join('\r'),
    );
    expect(bad.status).toBeGreaterThanOrEqual(400);

    // A critical potassium: the ordering provider is e-mailed (captured, no SMTP here).
    const critical = await postHl7(
      lr.baseUrl,
      cred,
      panel('CRIT-1', 'MRN-C1', { potassium: '6.8', glucose: '5.0', normal: false }),
    );
    expect(critical.status).toBe(200);
    await eventually(async () => {
      const { mail } = await admin<{ mail: { kind: string; to: string }[] }>(
        lr.baseUrl,
        'GET',
        `/v1/admin/tenants/${SLUG}/mail`,
        undefined,
        200,
      );
      return mail.find((m) => m.kind === 'critical_result' && m.to === WELBY);
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await lr?.stop();
  });

  const logRow = (page: Page, controlId: string) =>
    page.getByRole('region', { name: 'Inbound messages' }).getByRole('row', { name: new RegExp(controlId) });

  /** The good message's DiagnosticReports as a result reader sees them through the FHIR API. */
  async function goodReports(): Promise<number> {
    const { body } = await getJson<{ entry?: { resource: unknown }[] }>(
      lr.baseUrl,
      cred,
      `/v1/t/${SLUG}/fhir/DiagnosticReport?_count=100`,
    );
    return (body.entry ?? []).filter((e) => JSON.stringify(e.resource).includes('FIL-GOOD-1')).length;
  }

  test('an admin reads the log and one message whole, and re-processes it without duplicating its report', async () => {
    const page = await signedInPage(browser, lr.baseUrl, ADMIN_EMAIL, ADMIN_PASSWORD);
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/messages`);
    expect(await logRow(page, 'GOOD-1').textContent()).toMatch(/http.*hl7v2.*ORU\^R01.*GOOD-1.*delivered/s);
    expect(await logRow(page, 'BAD-1').textContent()).toMatch(
      /http.*hl7v2.*ORU\^R01.*BAD-1.*rejected.*PID: the PID segment is missing/s,
    );
    await page.screenshot({ path: path.join(SCREENSHOTS, 'messages.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // Search by control id, and filter by status.
    await page.getByLabel('Control id').fill('BAD-1');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForURL(/controlId=BAD-1/);
    expect(await page.getByRole('region', { name: 'Inbound messages' }).getByRole('row').count()).toBe(2);
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/messages?status=delivered`);
    expect(await logRow(page, 'BAD-1').count()).toBe(0);
    expect(await logRow(page, 'GOOD-1').count()).toBe(1);

    // The good message: raw segments one a line, what was stored, the ACK, its workflow and timeline.
    await logRow(page, 'GOOD-1').getByRole('link').click();
    await page.getByRole('heading', { name: 'Message GOOD-1' }).waitFor();
    const raw = await page.getByRole('region', { name: 'Raw message' }).locator('pre').textContent();
    expect(raw).toMatch(/^MSH\|.*GOOD-1.*$/m);
    expect(raw).toMatch(/^OBX\|1\|NM\|2823-3\^Potassium.*\|4\.2\|/m);
    const parsed = page.getByRole('region', { name: 'Parse result' });
    expect(await parsed.getByRole('row', { name: /Potassium/ }).textContent()).toMatch(
      /4\.2.*mmol\/L.*3\.5-5\.1/s,
    );
    expect(await parsed.textContent()).toMatch(/stage released/);
    expect(await page.getByRole('region', { name: /Answer sent \(HTTP 200\)/ }).textContent()).toMatch(
      /MSA\|AA\|GOOD-1/,
    );
    const { body: status } = await getJson<{ workflowId: string }>(
      lr.baseUrl,
      cred,
      `/v1/t/${SLUG}/messages/${goodId}`,
    );
    expect(
      await page
        .getByRole('region', { name: 'Workflows' })
        .getByRole('row', { name: status.workflowId })
        .textContent(),
    ).toMatch(/COMPLETED|RUNNING/);
    const timeline = page.getByRole('region', { name: 'Timeline' });
    expect(await timeline.textContent()).toMatch(/message\.received.*report\.flagged.*report\.released/s);
    const deliveries = page.getByRole('region', { name: 'Deliveries of its reports' });
    await expect
      .poll(async () => {
        await page.reload();
        return deliveries.textContent();
      })
      .toMatch(/Hospital webhook.*dead letter/s);
    expect(
      await deliveries.getByRole('button', { name: 'Re-send delivery to Hospital webhook' }).count(),
    ).toBe(1);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'message-detail.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // Re-processing: explicit, audited with the person, and no second report appears.
    expect(await goodReports()).toBe(1);
    const before = Date.now();
    await page.getByLabel('Reason (recorded in the audit trail)').fill('checking the relay');
    await page.getByRole('button', { name: 'Re-process message' }).click();
    await expect
      .poll(() => page.getByRole('status').textContent())
      .toMatch(/Processing again: 1 report sent to\s+their workflow\./);
    const client = lr.labrelay.services!.temporal()!;
    await eventually(async () => {
      const run = await client.workflow.getHandle(status.workflowId).describe();
      return run.startTime.getTime() >= before - 1000 && run.status.name === 'COMPLETED' ? run : undefined;
    });
    expect(await goodReports()).toBe(1);
    await page.reload();
    expect(await timeline.textContent()).toMatch(
      /message\.reprocessed on message\/[0-9a-f-]+ by admin@labrelay\.test \(console\).*checking the relay/s,
    );
    expect(await page.getByRole('region', { name: 'Parse result' }).getByRole('table').count()).toBe(1);

    // The refused message opens too, with its reason.
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/messages?controlId=BAD-1`);
    await logRow(page, 'BAD-1').getByRole('link').click();
    await page.getByRole('heading', { name: 'Refused message' }).waitFor();
    expect(await page.getByRole('region', { name: 'Why it was refused' }).textContent()).toContain(
      'the PID segment is missing',
    );
  });

  test('the audit trail lists the events and its hash chain verifies', async () => {
    const page = await signedInPage(browser, lr.baseUrl, ADMIN_EMAIL, ADMIN_PASSWORD);
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/audit`);
    const events = page.getByRole('region', { name: 'Events' });
    expect(await events.textContent()).toMatch(/message\.reprocessed.*admin@labrelay\.test \(console\)/s);
    expect(await events.textContent()).toContain('message.received');
    await page.getByLabel('Action starts with').fill('message.rep');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForURL(/action=message\.rep/);
    // Only the re-processing is left (the header row aside).
    await expect
      .poll(async () =>
        (await events.getByRole('row').allTextContents()).slice(1).map((r) => /message\.reprocessed/.test(r)),
      )
      .toEqual([true]);
    await page.getByRole('button', { name: 'Verify chain' }).click();
    await expect
      .poll(() => page.getByRole('region', { name: 'Hash chain' }).getByRole('status').textContent())
      .toMatch(/The chain is intact: all \d+ events verify/);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'audit.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
  });

  test('the mail outbox shows the captured critical e-mail as text', async () => {
    const page = await signedInPage(browser, lr.baseUrl, ADMIN_EMAIL, ADMIN_PASSWORD);
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/mail`);
    const row = page.getByRole('region', { name: 'Outbox' }).getByRole('row', { name: /CRITICAL RESULT/ });
    expect(await row.textContent()).toMatch(
      new RegExp(`${WELBY}.*CRITICAL RESULT.*critical result.*captured`, 's'),
    );
    await page.screenshot({ path: path.join(SCREENSHOTS, 'mail.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
    await row.getByRole('link').click();
    const body = await page.getByRole('region', { name: 'Message' }).textContent();
    expect(body).toContain('A critical result needs your acknowledgement');
    expect(body).toContain('/ack/');
  });

  test('monitoring counts what was sent: three received, two successful', async () => {
    const page = await signedInPage(browser, lr.baseUrl, ADMIN_EMAIL, ADMIN_PASSWORD);
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/monitoring`);
    const messages = page.getByRole('region', { name: 'Messages' });
    expect(await messages.textContent()).toMatch(
      /Received\s*3\s*Accepted\s*2\s*Refused at intake\s*1\s*Failed in processing\s*0\s*Success rate\s*66\.7%/,
    );
    expect(await page.getByRole('region', { name: 'Deliveries' }).textContent()).toMatch(
      /Dead letters\s*[12]/,
    );
    const critical = page.getByRole('region', { name: /time to acknowledge/ });
    expect(await critical.textContent()).toMatch(
      /Critical results\s*1\s*Acknowledged\s*0\s*Not yet acknowledged\s*1/,
    );
    expect(await critical.getByRole('img').count()).toBe(1);
    await page.getByLabel('Window', { exact: true }).selectOption('30d');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForURL(/window=30d/);
    expect(await page.getByRole('region', { name: 'Messages' }).textContent()).toMatch(/Received\s*3/);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'monitoring.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
  });

  test('a reviewer reads the log but cannot re-process (the form action answers 403)', async () => {
    const reviewer = await createConsoleUser(lr.baseUrl, {
      email: 'rita@msglab.example',
      roles: [{ tenant: SLUG, role: 'reviewer' }],
    });
    const page = await signedInPage(browser, lr.baseUrl, reviewer.email, reviewer.password);
    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/messages/${goodId}`);
    await page.getByRole('heading', { name: 'Message GOOD-1' }).waitFor();
    expect(await page.getByRole('button', { name: 'Re-process message' }).count()).toBe(0);
    expect((await page.goto(`${lr.baseUrl}/tenants/${SLUG}/mail`))?.status()).toBe(403);

    await page.goto(`${lr.baseUrl}/tenants/${SLUG}/messages/${goodId}`);
    const cookies = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const csrf = await page.locator('input[name="csrf"]').first().getAttribute('value');
    const { total: auditBefore } = await auditCount();
    const response = await fetch(`${lr.baseUrl}/tenants/${SLUG}/messages/${goodId}?/reprocess`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: lr.baseUrl,
        accept: 'text/html',
        cookie: cookies,
      },
      body: new URLSearchParams({ csrf: csrf!, reason: 'sneaky' }),
      redirect: 'manual',
    });
    expect(response.status).toBe(403);
    expect((await auditCount()).total).toBe(auditBefore);
  });

  test('the admin API re-processes a stored message the same way, and refuses an unknown one', async () => {
    const before = (await auditCount()).total;
    const outcome = await admin<{ reportIds: string[]; workflowIds: string[]; started: boolean }>(
      lr.baseUrl,
      'POST',
      `/v1/admin/tenants/${SLUG}/messages/${goodId}/reprocess`,
      { reason: 'from the API' },
      202,
    );
    expect(outcome.reportIds).toHaveLength(1);
    expect(outcome.started).toBe(true);
    expect((await auditCount()).total).toBe(before + 1);
    await admin(
      lr.baseUrl,
      'POST',
      `/v1/admin/tenants/${SLUG}/messages/00000000-0000-4000-8000-000000000000/reprocess`,
      {},
      404,
    );
  });

  /** How many message.reprocessed events the tenant's trail holds. */
  async function auditCount(): Promise<{ total: number }> {
    const services = lr.labrelay.services!;
    const rows = await services.db
      .selectFrom('audit_events')
      .select('id')
      .where('tenant_id', '=', cred.tenantId)
      .where('action', '=', 'message.reprocessed')
      .execute();
    return { total: rows.length };
  }
});
