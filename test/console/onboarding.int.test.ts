import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import { accessibilityViolations } from '../support/a11y.ts';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { createProviderUser, signedInPage, waitForHydration } from '../support/console.ts';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  ADMIN_TOKEN,
  admin,
  postHl7,
  startTestLabRelay,
  type TestLabRelay,
} from '../support/labrelay.ts';

/** A hospital's webhook receiver: records what LabRelay delivers. */
async function startReceiver() {
  const bodies: unknown[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    res.writeHead(200).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/labrelay-results`,
    bodies,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe('onboarding a hospital in the console', () => {
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

  async function textOf(page: Page, name: string) {
    return (await page.getByLabel(name, { exact: true }).textContent())!.trim();
  }

  test('tenant, inbound connection with its credential shown once, a signed sample that works, a sandbox destination tested step by step, promotion, rotation', async () => {
    const receiver = await startReceiver();
    try {
      const page = await signedInPage(browser, lr.baseUrl, ADMIN_EMAIL, ADMIN_PASSWORD);
      // The form is open while there is no tenant yet.
      if ((await page.locator('details', { hasText: 'Add a tenant' }).getAttribute('open')) === null)
        await page.getByText('Add a tenant').click();
      await page.getByLabel('Name', { exact: true }).fill('General Hospital');
      await page.getByLabel('Slug (in its URLs)').fill('genhosp');
      await page.getByRole('button', { name: 'Add tenant' }).click();
      await page.getByRole('heading', { name: 'Connections of General Hospital' }).waitFor();

      // Receive orders and results: an HL7 connection in the sandbox, with a credential.
      const inbound = page.getByRole('region', { name: 'Receive orders and results' });
      await inbound.getByText('Add a connection to receive orders and results').click();
      await inbound.getByLabel('Name').fill('GenHosp LIS');
      await inbound.getByLabel('Sending facility (MSH-4)').fill('GENHOSP_LAB');
      // A wrong address in the allowlist is pointed out beside the MLLP fields, nothing created.
      await inbound.getByLabel(/Allowed addresses/).fill('10.0.0.0/99, banana');
      await inbound.getByRole('button', { name: 'Add connection' }).click();
      await inbound.getByRole('alert').filter({ hasText: 'CIDR' }).waitFor();
      expect(await inbound.textContent()).toContain('None yet.');
      await inbound.getByLabel(/Allowed addresses/).fill('');
      await inbound.getByRole('button', { name: 'Add connection' }).click();
      const handoff = page.getByRole('region', { name: /Credential handoff/ });
      await handoff.waitFor();
      expect(await handoff.textContent()).toContain('Shown this once');
      const apiKey = await textOf(page, 'API key');
      const signingSecret = await textOf(page, 'Signing secret');
      expect(apiKey).toMatch(/^lr_test_/);
      expect(await page.getByLabel('Signed HL7 sample request').textContent()).toMatch(
        /LabRelay-Signature: t=\d+,v1=[0-9a-f]{64}/,
      );
      await page.screenshot({ path: path.join(SCREENSHOTS, 'onboarding-handoff.png'), fullPage: true });

      // The hospital's first message, signed with what the page showed: accepted.
      const cred = { slug: 'genhosp', tenantId: '', credentialId: '', apiKey, signingSecret };
      const first = await postHl7(
        lr.baseUrl,
        cred,
        basicMetabolicPanel({ controlId: 'GH-1', potassium: '4.2' }),
      );
      expect(first.status).toBe(200);

      // Shown once: after a reload, the key is gone from the page.
      await page.reload();
      await waitForHydration(page);
      expect(await page.content()).not.toContain(apiKey);
      const credentials = page.getByRole('region', { name: 'Credentials' });
      expect(await credentials.textContent()).toMatch(/GenHosp LIS.*lr_test_.*sandbox.*active/s);

      // Pull approved data: what to register with the EHR for a SMART launch.
      expect(await page.getByRole('region', { name: 'Pull approved data' }).textContent()).toContain(
        '/smart/genhosp/callback',
      );

      // Send results back: a sandbox webhook, tested through the sandbox step by step.
      const outbound = page.getByRole('region', { name: 'Send results back' });
      await outbound.getByText('Add a connection to send results back').click();
      await outbound.getByLabel('Name').fill('GenHosp results hook');
      await outbound.getByLabel('Deliver as').selectOption('webhook');
      // A URL the browser takes but LabRelay does not: refused, with the reason beside the field.
      await outbound.getByLabel('URL').fill('ftp://genhosp.example/results');
      await outbound.getByRole('button', { name: 'Add connection' }).click();
      await expect.poll(() => outbound.getByRole('alert').textContent()).toContain('http(s) URL');
      await outbound.getByLabel('URL').fill(receiver.url);
      await outbound.getByRole('button', { name: 'Add connection' }).click();
      const secret = page.getByLabel('Webhook signing secret', { exact: true });
      await secret.waitFor();
      expect(await secret.textContent()).toMatch(/^whsec_/);

      await page.getByRole('button', { name: 'Test connection GenHosp results hook' }).click();
      await page.getByRole('heading', { name: 'Connection test' }).waitFor();
      const steps = page.getByRole('list', { name: 'Test steps' });
      await expect
        .poll(() => steps.textContent(), { timeout: 60_000 })
        .toMatch(/✓ passed — Delivered to GenHosp results hook/);
      const stepsText = await steps.textContent();
      for (const label of ['Workflow started', 'Patient reconciled', 'Flagged and routed', 'Released'])
        expect(stepsText).toContain(`✓ passed — ${label}`);
      expect(receiver.bodies.length).toBeGreaterThanOrEqual(1);
      await page.screenshot({ path: path.join(SCREENSHOTS, 'onboarding-test.png'), fullPage: true });
      // Every control labelled, every button and link named, text readable (axe-core, WCAG 2 A/AA).
      expect(await accessibilityViolations(page)).toEqual([]);

      // Promotion is explicit: without "tested" it is refused; with it, audited.
      const row = outbound.getByRole('row', { name: /GenHosp results hook/ });
      await row.getByRole('button', { name: 'Promote GenHosp results hook to production' }).click();
      await expect.poll(() => page.getByRole('alert').textContent()).toContain('tested in the sandbox');
      await row.getByLabel('GenHosp results hook was tested in the sandbox').check();
      await row.getByLabel('Promotion note for GenHosp results hook').fill('tested with GenHosp IT');
      await row.getByRole('button', { name: 'Promote GenHosp results hook to production' }).click();
      await expect.poll(() => page.getByRole('status').first().textContent()).toContain('in production now');
      expect(await row.textContent()).toContain('production');

      // Changed in place: a bad URL is refused with the reason; a new name and tighter limits are kept.
      const change = outbound.locator('details', { hasText: 'Change GenHosp results hook' });
      await change.getByText('Change GenHosp results hook').click();
      await change.getByLabel('URL').fill('ftp://genhosp.example/results');
      await change.getByRole('button', { name: 'Save changes to GenHosp results hook' }).click();
      await page.getByRole('alert').filter({ hasText: 'GenHosp results hook was not changed' }).waitFor();
      expect(await page.getByRole('alert').textContent()).toContain('http(s) URL');
      await change.getByLabel('URL').fill(receiver.url);
      await change.getByLabel('Name').fill('GenHosp results webhook');
      await change.getByLabel('Answer within (seconds)').fill('10');
      await change.getByLabel('Attempts before the dead letter').fill('3');
      await change.getByRole('button', { name: 'Save changes to GenHosp results hook' }).click();
      await page
        .getByRole('status')
        .filter({ hasText: 'GenHosp results webhook was changed: name, settings.' })
        .waitFor();
      const changed = await admin<{ connections: { name: string; settings: unknown }[] }>(
        lr.baseUrl,
        'GET',
        '/v1/admin/tenants/genhosp/connections',
        undefined,
        200,
      );
      expect(changed.connections.find((c) => c.name === 'GenHosp results webhook')?.settings).toEqual({
        timeoutSeconds: 10,
        maxAttempts: 3,
      });
      // The test's own sandbox key was revoked as soon as its message was answered.
      expect(await page.getByRole('region', { name: 'Credentials' }).textContent()).toMatch(
        /connection test of GenHosp results hook.*revoked/s,
      );

      // Rotation: a new key shown once; the old key keeps working through the overlap.
      await page
        .getByRole('region', { name: 'Credentials' })
        .getByRole('button', { name: 'Rotate key of GenHosp LIS' })
        .first()
        .click();
      await page.getByRole('region', { name: /Credential handoff/ }).waitFor();
      const newKey = await textOf(page, 'API key');
      expect(newKey).not.toBe(apiKey);
      const second = await postHl7(
        lr.baseUrl,
        cred,
        basicMetabolicPanel({ controlId: 'GH-2', potassium: '4.3' }),
      );
      expect(second.status).toBe(200);

      const audit = await lr.labrelay
        .services!.db.selectFrom('audit_events')
        .innerJoin('tenants', 'tenants.id', 'audit_events.tenant_id')
        .select(['audit_events.action', 'audit_events.actor'])
        .where('tenants.slug', '=', 'genhosp')
        .execute();
      const actions = audit.map((a) => a.action);
      for (const action of [
        'tenant.created',
        'connection.created',
        'connection.tested',
        'connection.promoted',
        'connection.updated',
        'credential.rotated',
      ])
        expect(actions).toContain(action);
      expect(audit.find((a) => a.action === 'connection.promoted')!.actor).toBe(`${ADMIN_EMAIL} (console)`);
    } finally {
      await receiver.close();
    }
  });

  test('people get roles per tenant; a reviewer cannot configure, and a forged form without the session token is refused', async () => {
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: 'roles-lab', name: 'Roles Lab' });
    const page = await signedInPage(browser, lr.baseUrl, ADMIN_EMAIL, ADMIN_PASSWORD);
    await page.goto(`${lr.baseUrl}/tenants/roles-lab/users`);
    await waitForHydration(page);
    await page.getByLabel('E-mail address').fill('rita@roles-lab.example');
    await page.getByLabel('Name').fill('Rita Reviewer');
    await page.getByLabel(/First password/).fill('short');
    await page.getByLabel('Role', { exact: true }).selectOption('reviewer');
    await page.getByRole('button', { name: 'Add' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('at least 12 characters');
    await page.getByLabel(/First password/).fill('a long enough reviewer password');
    await page.getByRole('button', { name: 'Add' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('can sign in now as reviewer');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'users.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
    // A provider role names the provider the person is: with none yet, the page says where to add one.
    await page.getByLabel('E-mail address').fill('rita@roles-lab.example');
    await page.getByLabel('Role', { exact: true }).selectOption('provider');
    expect(await page.getByText('No providers yet').textContent()).toContain('Critical values');
    await page.getByRole('button', { name: 'Add' }).click();
    await page.getByRole('alert').filter({ hasText: 'Choose which provider this person is.' }).waitFor();
    const provider = await admin<{ id: string }>(
      lr.baseUrl,
      'POST',
      '/v1/admin/tenants/roles-lab/providers',
      {
        name: 'Rita Reviewer',
        email: 'rita@roles-lab.example',
        roles: ['ordering'],
      },
    );
    // The same address again gives the existing account one more role; both changes are audited with who made them.
    await page.reload();
    await waitForHydration(page);
    await page.getByLabel('E-mail address').fill('rita@roles-lab.example');
    await page.getByLabel('Role', { exact: true }).selectOption('provider');
    await page.getByLabel('Which provider').selectOption({ label: 'Rita Reviewer <rita@roles-lab.example>' });
    await page.getByRole('button', { name: 'Add' }).click();
    await page.getByRole('status').filter({ hasText: 'now also has the provider role' }).waitFor();
    const audited = await lr.labrelay
      .services!.db.selectFrom('audit_events')
      .innerJoin('tenants', 'tenants.id', 'audit_events.tenant_id')
      .select(['audit_events.actor', 'audit_events.action', 'audit_events.details'])
      .where('tenants.slug', '=', 'roles-lab')
      .where('audit_events.action', 'like', 'user.%')
      .orderBy('audit_events.sequence')
      .execute();
    expect(audited).toEqual([
      {
        actor: `${ADMIN_EMAIL} (console)`,
        action: 'user.added',
        details: { email: 'rita@roles-lab.example', roles: [{ role: 'reviewer', providerId: null }] },
      },
      {
        actor: `${ADMIN_EMAIL} (console)`,
        action: 'user.role_granted',
        details: { email: 'rita@roles-lab.example', role: 'provider', providerId: provider.id },
      },
    ]);

    const reviewer = await signedInPage(
      browser,
      lr.baseUrl,
      'rita@roles-lab.example',
      'a long enough reviewer password',
    );
    expect(await reviewer.getByRole('region', { name: 'Tenants' }).textContent()).toContain('roles-lab');
    expect(await reviewer.getByRole('region', { name: 'Tenants' }).textContent()).not.toContain('genhosp');
    const menu = reviewer.getByRole('navigation', { name: 'Roles Lab pages' });
    await reviewer.goto(`${lr.baseUrl}/tenants/roles-lab/onboarding`);
    expect(await reviewer.textContent('body')).toContain('does not allow');
    await reviewer.goto(`${lr.baseUrl}/tenants/genhosp/onboarding`);
    expect(await reviewer.textContent('body')).toContain('there is no tenant genhosp');
    await reviewer.goto(`${lr.baseUrl}/tenants/roles-lab/deliveries`);
    expect(await menu.textContent()).not.toContain('Connections');
    expect(await menu.textContent()).toContain('Review queue');

    // A form action posted with the reviewer's session: refused by role; without the CSRF token: refused.
    const cookies = (await reviewer.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const csrf = await reviewer.locator('input[name="csrf"]').first().getAttribute('value');
    const post = (body: Record<string, string>) =>
      fetch(`${lr.baseUrl}/tenants/roles-lab/onboarding?/issue`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          origin: lr.baseUrl,
          accept: 'text/html',
          cookie: cookies,
        },
        body: new URLSearchParams(body),
        redirect: 'manual',
      });
    expect((await post({ name: 'sneaky', scopes: 'results:write' })).status).toBe(403);
    expect((await post({ name: 'sneaky', scopes: 'results:write', csrf: csrf! })).status).toBe(403);
    const credentials = await admin<{ credentials?: unknown[] }>(
      lr.baseUrl,
      'GET',
      '/v1/admin/tenants/roles-lab',
      undefined,
      200,
    );
    expect(JSON.stringify(credentials)).not.toContain('sneaky');
    // The admin API holds to the same rule as the users page: a provider role names a provider.
    const unnamed = await fetch(`${lr.baseUrl}/v1/admin/users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        email: 'pat@roles-lab.example',
        name: 'Pat',
        password: 'a long provider passphrase',
        roles: [{ tenant: 'roles-lab', role: 'provider' }],
      }),
    });
    expect(unnamed.status).toBe(400);
    expect(((await unnamed.json()) as { error: { message: string } }).error.message).toContain(
      'give providerId',
    );
    const pat = await createProviderUser(lr.baseUrl, { email: 'pat@roles-lab.example', tenant: 'roles-lab' });
    expect(pat.providerId).toMatch(/^[0-9a-f-]{36}$/);
  });
});
