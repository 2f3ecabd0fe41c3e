import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Browser, Page, Response as PageResponse } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { admin, freePort, startTestLabRelay, testEnv, type TestLabRelay } from '../support/labrelay.ts';
import { EHR_LAUNCH, startSmartEhr } from '../support/smart-ehr.ts';

/**
 * SMART on FHIR EHR launch (https://hl7.org/fhir/smart-app-launch/app-launch.html) of LabRelay's
 * read-only results app, against a real OpenID/OAuth server (oidc-provider) and FHIR server, with
 * a clinician's sign-in and consent done in Chromium.
 */
describe('SMART on FHIR EHR launch of the read-only results app', () => {
  let lr: TestLabRelay;
  let ehr: Awaited<ReturnType<typeof startSmartEhr>>;
  let browser: Browser;
  let closedIssuer: string;
  const slug = 'smart-hosp';
  const publicSlug = 'smart-public';
  const otherSlug = 'smart-other';
  const CLIENT_SECRET = 'app-secret-0123456789';

  beforeAll(async () => {
    // The callback URLs are registered with the EHR before LabRelay starts: its port is chosen first.
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    lr = await startTestLabRelay('pglite', {
      env: await testEnv('pglite', { PORT: String(port), LABRELAY_PUBLIC_URL: publicUrl }),
    });
    ehr = await startSmartEhr({
      clients: [
        {
          clientId: 'labrelay-app',
          clientSecret: CLIENT_SECRET,
          redirectUri: `${publicUrl}/smart/${slug}/callback`,
        },
        { clientId: 'labrelay-public', redirectUri: `${publicUrl}/smart/${publicSlug}/callback` },
      ],
    });
    closedIssuer = `http://127.0.0.1:${await freePort()}/fhir`;
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug, name: 'Smart Hospital' });
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: publicSlug, name: 'Public Client Clinic' });
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: otherSlug, name: 'Other' });
    const connect = (tenant: string, name: string, url: string, auth: Record<string, unknown>) =>
      admin(lr.baseUrl, 'POST', `/v1/admin/tenants/${tenant}/connections`, {
        name,
        direction: 'pull',
        format: 'fhir',
        environment: 'production',
        // A trailing slash as an admin might type it: issuers are compared without it.
        endpoint: { url: `${url}/` },
        auth: { type: 'smart_launch', ...auth },
      });
    const created = await connect(slug, 'Hospital EHR', ehr.issuer, {
      clientId: 'labrelay-app',
      clientSecret: CLIENT_SECRET,
    });
    expect(JSON.stringify(created)).not.toContain(CLIENT_SECRET);
    await connect(slug, 'Retired EHR', closedIssuer, { clientId: 'labrelay-app' });
    await connect(publicSlug, 'Clinic EHR', ehr.issuer, { clientId: 'labrelay-public' });
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await ehr?.close();
    await lr?.stop();
  });

  const launchUrl = (tenant: string, iss: string, launch = EHR_LAUNCH) =>
    `${lr.baseUrl}/smart/${tenant}/launch?iss=${encodeURIComponent(iss)}&launch=${encodeURIComponent(launch)}`;

  /** The cookie each launch set in the "browser" that began it, by state. */
  const launchCookies = new Map<string, { name: string; value: string; path: string }>();

  /** What LabRelay answers the EHR's launch with: the authorize URL it sends the browser to. */
  async function authorizeUrl(tenant = slug) {
    const response = await fetch(launchUrl(tenant, ehr.issuer), { redirect: 'manual' });
    expect(response.status).toBe(302);
    const url = new URL(response.headers.get('location')!);
    const cookie = /^([^=]+)=([^;]*);.*Path=([^;]+)/i.exec(response.headers.get('set-cookie') ?? '');
    if (cookie)
      launchCookies.set(url.searchParams.get('state')!, {
        name: cookie[1]!,
        value: cookie[2]!,
        path: cookie[3]!,
      });
    return url;
  }

  /**
   * The clinician: opens `start` (the app's launch URL, or an authorize URL), signs in on the EHR's
   * login page, consents on its consent page, and lands on LabRelay's callback. Returns the page
   * and LabRelay's answer to the callback.
   */
  async function signInAndConsent(
    start: string,
    tenant = slug,
    options: { launchCookie?: boolean } = {},
  ): Promise<{ page: Page; callback: PageResponse }> {
    const page = await browser.newPage();
    // A launch begun with fetch (authorizeUrl) continues in this browser with its cookie, unless
    // the test is about a browser that did not begin it.
    const began = launchCookies.get(new URL(start).searchParams.get('state') ?? '');
    if (began && options.launchCookie !== false)
      await page.context().addCookies([{ ...began, domain: new URL(lr.baseUrl).hostname }]);
    const callback = page.waitForResponse((r) => new URL(r.url()).pathname === `/smart/${tenant}/callback`);
    await page.goto(start);
    await page.locator('input[name="login"]').fill('dr.welby');
    await page.locator('input[name="password"]').fill('anything');
    await page.locator('button[type="submit"]').click();
    await page.waitForURL((url) => url.pathname.startsWith('/interaction/'));
    expect(await page.locator('h1').innerText()).toBe('Authorize');
    expect(await page.locator('body').innerText()).toContain('patient/Observation.rs');
    await page.locator('button[type="submit"]').click();
    const response = await callback;
    await page.waitForLoadState();
    return { page, callback: response };
  }

  const fhirReads = () => ehr.requests.filter((r) => !r.path.includes('/.well-known/'));

  test("the patient-in-context's recent results, read from the EHR with only GET requests", async () => {
    const readsBefore = fhirReads().length;
    const { page, callback } = await signInAndConsent(launchUrl(slug, ehr.issuer));
    expect(callback.status()).toBe(200);
    expect(await page.locator('h1').innerText()).toBe('Lab results: Jane Doe');
    const body = await page.locator('body').innerText();
    expect(body).toContain('born 1980-01-15');
    expect(body).toContain('MRN-EHR-77');
    expect(body).toMatch(/Potassium\s+6\.8 mmol\/L\s+3\.5–5\.1\s+HH critical high/);
    expect(body).toMatch(/Sodium\s+140 mmol\/L\s+135–145\s+2026-12-03 07:00 UTC/);
    await expect(page.locator('tr.critical').innerText()).resolves.toContain('Potassium');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'smart-launch.png'), fullPage: true });

    // A private page: not cached, no Referer, no script; the access token is nowhere in it.
    const headers = callback.headers();
    expect(headers['cache-control']).toBe('no-store');
    expect(headers['referrer-policy']).toBe('no-referrer');
    expect(headers['content-security-policy']).toContain("default-src 'none'");
    expect(headers['content-security-policy']).not.toContain('script-src');
    const markup = await page.content();
    expect(markup).not.toContain('<script');
    expect(ehr.accessTokens.length).toBeGreaterThan(0);
    for (const token of ehr.accessTokens) expect(markup).not.toContain(token);

    // What the app asked the EHR's authorization server for (app-launch.html#request-4).
    const asked = ehr.authorizations.at(-1)!;
    expect(asked.get('response_type')).toBe('code');
    expect(asked.get('client_id')).toBe('labrelay-app');
    expect(asked.get('aud')).toBe(ehr.issuer);
    expect(asked.get('launch')).toBe(EHR_LAUNCH);
    expect(asked.get('code_challenge_method')).toBe('S256');
    expect(asked.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(asked.get('scope')!.split(' ')).toEqual(
      expect.arrayContaining(['launch', 'openid', 'patient/Observation.rs', 'patient/Patient.rs']),
    );

    // The EHR's FHIR API saw only reads, each with a token its own authorization server issued.
    const reads = fhirReads().slice(readsBefore);
    expect(reads.map((r) => r.path)).toEqual([
      '/fhir/Patient/pat-1',
      '/fhir/Observation?patient=pat-1&category=laboratory&_sort=-date&_count=50',
    ]);
    expect(ehr.requests.every((r) => r.method === 'GET')).toBe(true);
    expect(reads.every((r) => r.authorized)).toBe(true);
    await page.close();
  });

  test('a public client (no secret) exchanges its code with client_id and PKCE alone', async () => {
    const { page, callback } = await signInAndConsent(launchUrl(publicSlug, ehr.issuer), publicSlug);
    expect(callback.status()).toBe(200);
    expect(await page.locator('h1').innerText()).toBe('Lab results: Jane Doe');
    expect(ehr.authorizations.at(-1)!.get('client_id')).toBe('labrelay-public');
    await page.close();
  });

  test('a replayed callback is refused', async () => {
    const { page, callback } = await signInAndConsent(launchUrl(slug, ehr.issuer));
    expect(callback.status()).toBe(200);
    await page.close();
    const replay = await fetch(callback.url(), { redirect: 'manual' });
    expect(replay.status).toBe(400);
    expect(await replay.text()).toContain('already used');
  });

  test("another tenant's callback cannot take a state, which stays good for its own tenant", async () => {
    const authorize = await authorizeUrl();
    const state = authorize.searchParams.get('state')!;
    const other = await fetch(`${lr.baseUrl}/smart/${otherSlug}/callback?code=x&state=${state}`);
    expect(other.status).toBe(400);
    expect(await other.text()).toContain('This launch is unknown');
    const { page, callback } = await signInAndConsent(authorize.toString());
    expect(callback.status()).toBe(200);
    expect(await page.locator('h1').innerText()).toBe('Lab results: Jane Doe');
    await page.close();
  });

  test('a launch finished in another browser than the one that began it is refused', async () => {
    const authorize = await authorizeUrl();
    const { page, callback } = await signInAndConsent(authorize.toString(), slug, { launchCookie: false });
    expect(callback.status()).toBe(400);
    expect(await page.locator('[role=alert]').innerText()).toContain('started in another browser');
    await page.close();
  });

  test('a callback without a state, with an unknown state, or with an expired one is refused', async () => {
    const none = await fetch(`${lr.baseUrl}/smart/${slug}/callback?code=x`);
    expect(none.status).toBe(400);
    expect(await none.text()).toContain('without the launch state');
    const unknown = await fetch(`${lr.baseUrl}/smart/${slug}/callback?code=x&state=forged`);
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain('This launch is unknown');

    const state = (await authorizeUrl()).searchParams.get('state')!;
    await lr.labrelay
      .services!.db.updateTable('smart_launches')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('state', '=', state)
      .execute();
    const expired = await fetch(`${lr.baseUrl}/smart/${slug}/callback?code=x&state=${state}`);
    expect(expired.status).toBe(400);
    expect(await expired.text()).toContain('has expired');
  });

  test('a code issued for another PKCE challenge (an injected code) is refused by the token exchange', async () => {
    // The authorization is made with an attacker's code_challenge; LabRelay's own verifier cannot redeem it.
    const authorize = await authorizeUrl();
    const attackerVerifier = randomBytes(32).toString('base64url');
    authorize.searchParams.set(
      'code_challenge',
      createHash('sha256').update(attackerVerifier).digest('base64url'),
    );
    const readsBefore = fhirReads().length;
    const { page, callback } = await signInAndConsent(authorize.toString());
    expect(callback.status()).toBe(502);
    expect(await page.locator('[role=alert]').innerText()).toContain(
      'The EHR refused the authorization code (400 invalid_grant)',
    );
    expect(fhirReads().length).toBe(readsBefore);
    await page.close();
  });

  test("the authorization server's refusal is shown as such", async () => {
    const page = await browser.newPage();
    const callback = page.waitForResponse((r) => new URL(r.url()).pathname === `/smart/${slug}/callback`);
    await page.goto(launchUrl(slug, ehr.issuer));
    await page.getByRole('link', { name: '[ Cancel ]' }).click();
    expect((await callback).status()).toBe(400);
    expect(await page.locator('[role=alert]').innerText()).toBe(
      'The EHR did not authorize LabRelay: access_denied (End-User aborted interaction).',
    );
    await page.close();
  });

  test('an issuer the tenant did not connect is never contacted or redirected to', async () => {
    const before = { requests: ehr.requests.length, authorizations: ehr.authorizations.length };
    const response = await fetch(launchUrl(slug, 'https://evil.example/fhir'), { redirect: 'manual' });
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    expect(await response.text()).toContain('is not an EHR this organisation has connected');
    // The right EHR, but launching another tenant's app, or without a launch: refused too.
    const otherTenant = await fetch(launchUrl(otherSlug, ehr.issuer), { redirect: 'manual' });
    expect(otherTenant.status).toBe(400);
    const unknownTenant = await fetch(launchUrl('no-such-tenant', ehr.issuer), { redirect: 'manual' });
    expect(unknownTenant.status).toBe(400);
    expect(await unknownTenant.text()).toContain('This launch address is not known');
    const missing = await fetch(`${lr.baseUrl}/smart/${slug}/launch?iss=${encodeURIComponent(ehr.issuer)}`, {
      redirect: 'manual',
    });
    expect(missing.status).toBe(400);
    expect(await missing.text()).toContain('(iss) and a launch');
    expect({ requests: ehr.requests.length, authorizations: ehr.authorizations.length }).toEqual(before);
  });

  test('an EHR FHIR server that is down gives a clear 502 page, not an error trace', async () => {
    ehr.setFhirDown(true);
    try {
      const { page, callback } = await signInAndConsent(launchUrl(slug, ehr.issuer));
      expect(callback.status()).toBe(502);
      expect(await page.locator('[role=alert]').innerText()).toBe(
        'The EHR answered 503 for /fhir/Patient/pat-1.',
      );
      await page.close();
    } finally {
      ehr.setFhirDown(false);
    }
    // A connected EHR that does not answer at all: refused at discovery, before any redirect.
    const unreachable = await fetch(launchUrl(slug, closedIssuer), { redirect: 'manual' });
    expect(unreachable.status).toBe(502);
    expect(unreachable.headers.get('location')).toBeNull();
    expect(await unreachable.text()).toContain('The EHR could not be reached');
  });
});
