import path from 'node:path';
import type { Browser } from 'playwright-core';
import { accessibilityViolations } from '../support/a11y.ts';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { createConsoleUser, signedInPage, signIn, waitForHydration } from '../support/console.ts';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  admin,
  createTenantWithCredential,
  eventually,
  freePort,
  postHl7,
  startTestLabRelay,
  waitForMessageStatus,
  type TestLabRelay,
} from '../support/labrelay.ts';

describe('console in a real browser', () => {
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

  test('an admin signs in with e-mail and password and sees tenants and recent messages with their status', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'consolelab');
    // A destination that is down: the result's delivery is dead-lettered after its one attempt.
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/consolelab/connections', {
      name: 'Hospital webhook',
      direction: 'outbound',
      format: 'webhook',
      environment: 'production',
      endpoint: { url: `http://127.0.0.1:${await freePort()}/results` },
      settings: { maxAttempts: 1 },
    });
    const response = await postHl7(lr.baseUrl, cred, basicMetabolicPanel({ controlId: 'CONSOLE-1' }));
    await waitForMessageStatus(lr.baseUrl, cred, response.headers.get('labrelay-message-id')!, 'delivered');

    const page = await browser.newPage();
    await page.goto(`${lr.baseUrl}/`);
    expect(new URL(page.url()).pathname).toBe('/login');
    // The form works with or without JavaScript (use:enhance), so no need to wait for hydration.

    await page.getByLabel('E-mail address').fill(ADMIN_EMAIL);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('do not match');

    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${lr.baseUrl}/`);
    await page.getByRole('heading', { name: 'Tenants' }).waitFor();
    const tenantRow = page.getByRole('region', { name: 'Tenants' }).getByRole('row', { name: /consolelab/ });
    expect(await tenantRow.textContent()).toContain('Tenant consolelab');
    const messageRow = page
      .getByRole('region', { name: 'Recent messages' })
      .getByRole('row', { name: /CONSOLE-1/ });
    expect(await messageRow.textContent()).toMatch(/consolelab.*http.*ORU\^R01.*CONSOLE-1.*delivered/s);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'overview.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // The tenant's own endpoints, credentials and sample requests, one click from the overview.
    await page.goto(`${lr.baseUrl}/tenants/consolelab/endpoints`);
    await page.getByRole('heading', { name: /Endpoints of/ }).waitFor();
    const http = page.getByRole('region', { name: 'HTTP endpoints' });
    expect(await http.textContent()).toContain(`/v1/t/consolelab/hl7`);
    expect(await http.textContent()).toContain(`/v1/t/consolelab/csv`);
    const credentials = page.getByRole('region', { name: 'Credentials' });
    expect(await credentials.textContent()).toMatch(/test.*lr_live_.*results:write.*active/s);
    expect(await credentials.textContent()).not.toContain(cred.apiKey);
    expect(await page.getByLabel('HL7 sample request').textContent()).toContain(
      'LabRelay-Signature: t=$T,v1=$SIG',
    );
    await page.screenshot({ path: path.join(SCREENSHOTS, 'tenant-endpoints.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
    await page.goBack();

    // The dead letter, with its reason, and a re-send that goes through the same rule as the API.
    await eventually(
      async () => {
        const { deliveries } = await admin<{ deliveries: { status: string }[] }>(
          lr.baseUrl,
          'GET',
          '/v1/admin/tenants/consolelab/deliveries?status=dead_letter',
          undefined,
          200,
        );
        return deliveries.length === 1 ? true : undefined;
      },
      30_000,
      'the dead letter',
    );
    await page.goto(`${lr.baseUrl}/tenants/consolelab/deliveries`);
    await page.getByRole('heading', { name: /Deliveries of/ }).waitFor();
    const row = page
      .getByRole('region', { name: 'Deliveries' })
      .getByRole('row', { name: /Hospital webhook/ });
    expect(await row.textContent()).toMatch(/dead letter.*1 \/ 1.*could not be reached/s);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'deliveries.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
    await page.getByRole('button', { name: 'Re-send delivery to Hospital webhook' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Sending again');
    await expect
      .poll(
        async () => {
          await page.reload();
          return page
            .getByRole('region', { name: 'Deliveries' })
            .getByRole('row', { name: /Hospital webhook/ })
            .textContent();
        },
        { timeout: 30_000 },
      )
      .toMatch(/dead letter.*2 \/ 1/s);
    await page.goto(`${lr.baseUrl}/`);

    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'labrelay_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${lr.baseUrl}/login`);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'login.png') });
    expect(await accessibilityViolations(page)).toEqual([]);
  });

  test('a form posted from another origin, or without its CSRF token, is refused', async () => {
    const body = new URLSearchParams({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
    const crossSite = await fetch(`${lr.baseUrl}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      body,
      redirect: 'manual',
    });
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers.get('set-cookie')).toBeNull();

    // Same origin, right password, but no CSRF token: refused, no session.
    const noToken = await fetch(`${lr.baseUrl}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: lr.baseUrl },
      body,
      redirect: 'manual',
    });
    expect(noToken.status).toBe(403);
    expect(await noToken.text()).toContain('Reload the page');
    expect(noToken.headers.get('set-cookie') ?? '').not.toContain('labrelay_session');

    // With the login page's token (cookie and field), the same request signs in.
    const loginPage = await fetch(`${lr.baseUrl}/login`);
    const cookie = loginPage.headers.get('set-cookie')!.split(';')[0]!;
    const token = /name="csrf" value="([^"]+)"/.exec(await loginPage.text())![1]!;
    body.set('csrf', token);
    const signedIn = await fetch(`${lr.baseUrl}/login`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'text/html',
        origin: lr.baseUrl,
        cookie,
      },
      body,
      redirect: 'manual',
    });
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.get('set-cookie')).toContain('labrelay_session=');
  });

  test('a person changes their own password on their account page (their other sessions end); an admin resets a forgotten one and disables an account', async () => {
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: 'acct-lab', name: 'Account Lab' });
    const first = 'the first password given 2026';
    const person = await createConsoleUser(lr.baseUrl, {
      email: 'nora@acct-lab.example',
      password: first,
      roles: [{ tenant: 'acct-lab', role: 'reviewer' }],
    });
    const elsewhere = await signedInPage(browser, lr.baseUrl, person.email, first);
    const page = await signedInPage(browser, lr.baseUrl, person.email, first);

    // A first password from an admin: every page asks for a new one until it is changed.
    const given = page.getByText('You are signed in with a password someone gave you.');
    expect(await given.count()).toBe(1);
    await page.getByRole('link', { name: /nora@acct-lab\.example/ }).click();
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    await waitForHydration(page);
    expect(await page.getByRole('list', { name: 'Your roles' }).textContent()).toContain(
      'reviewer of Account Lab',
    );
    const change = async (current: string, next: string, repeated = next) => {
      await page.getByLabel('Current password').fill(current);
      await page.getByLabel('New password', { exact: true }).fill(next);
      await page.getByLabel('New password again').fill(repeated);
      await page.getByRole('button', { name: 'Change password' }).click();
    };
    await change('not my password at all', 'a brand new passphrase 2026');
    await page.getByRole('alert').filter({ hasText: 'That is not your current password.' }).waitFor();
    await change(first, 'a brand new passphrase 2026', 'a brand new passphrase 2025');
    await page.getByRole('alert').filter({ hasText: 'differ' }).waitFor();
    await change(first, 'a brand new passphrase 2026');
    await page.getByRole('status').filter({ hasText: 'Your password is changed.' }).waitFor();
    expect(await given.count()).toBe(0);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'account.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // This browser stays signed in; the other session has ended; only the new password works.
    await page.goto(`${lr.baseUrl}/tenants/acct-lab/review`);
    await page.getByRole('heading', { name: /Review queue/ }).waitFor();
    await elsewhere.goto(`${lr.baseUrl}/tenants/acct-lab/review`);
    expect(new URL(elsewhere.url()).pathname).toBe('/login');
    await waitForHydration(elsewhere);
    await elsewhere.getByLabel('E-mail address').fill(person.email);
    await elsewhere.getByLabel('Password').fill(first);
    await elsewhere.getByRole('button', { name: 'Sign in' }).click();
    await elsewhere.getByRole('alert').filter({ hasText: 'do not match an active account' }).waitFor();

    // Forgotten: a platform administrator gives a new one through the admin API; sessions end.
    const reset = await admin<{ disabled: boolean }>(
      lr.baseUrl,
      'POST',
      `/v1/admin/users/${person.id}/password`,
      { password: 'a password the admin gave 2026' },
      200,
    );
    expect(reset.disabled).toBe(false);
    await page.reload();
    expect(new URL(page.url()).pathname).toBe('/login');
    await signIn(page, lr.baseUrl, person.email, 'a password the admin gave 2026');
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await given.count()).toBe(1);

    // Leaving: disabled, signed out at once, and cannot sign in until enabled again.
    expect(
      (
        await admin<{ disabled: boolean }>(
          lr.baseUrl,
          'POST',
          `/v1/admin/users/${person.id}/disable`,
          undefined,
          200,
        )
      ).disabled,
    ).toBe(true);
    await page.reload();
    expect(new URL(page.url()).pathname).toBe('/login');
    await waitForHydration(page);
    await page.getByLabel('E-mail address').fill(person.email);
    await page.getByLabel('Password').fill('a password the admin gave 2026');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'do not match an active account' }).waitFor();
    await admin(lr.baseUrl, 'POST', `/v1/admin/users/${person.id}/enable`, undefined, 200);
    await signIn(page, lr.baseUrl, person.email, 'a password the admin gave 2026');
    expect(new URL(page.url()).pathname).toBe('/');

    const audited = await lr.labrelay
      .services!.db.selectFrom('audit_events')
      .innerJoin('tenants', 'tenants.id', 'audit_events.tenant_id')
      .select(['audit_events.actor', 'audit_events.action'])
      .where('tenants.slug', '=', 'acct-lab')
      .where('audit_events.action', 'like', 'user.%')
      .orderBy('audit_events.sequence')
      .execute();
    expect(audited).toEqual([
      { actor: 'admin', action: 'user.added' },
      { actor: `${person.email} (console)`, action: 'user.password_changed' },
      { actor: 'admin', action: 'user.password_reset' },
      { actor: 'admin', action: 'user.disabled' },
      { actor: 'admin', action: 'user.enabled' },
    ]);
    expect(
      (await admin(
        lr.baseUrl,
        'POST',
        '/v1/admin/users/00000000-0000-4000-8000-000000000000/disable',
        undefined,
        404,
      )) as any,
    ).toMatchObject({ error: { code: 'not_found' } });
  });
});
