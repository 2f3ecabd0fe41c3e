import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startSmartEhr } from '../support/smart-ehr.ts';
import { launchChromium, SCREENSHOTS } from '../support/browser.ts';
import { admin, freePort, startTestLabRelay, testEnv, type TestLabRelay } from '../support/labrelay.ts';

describe('SMART on FHIR EHR launch of the read-only results app', () => {
  let lr: TestLabRelay;
  let ehr: Awaited<ReturnType<typeof startSmartEhr>>;
  let browser: Browser;
  const slug = 'smart-hosp';

  beforeAll(async () => {
    // The callback URL is registered with the EHR before LabRelay starts: its port is chosen first.
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    lr = await startTestLabRelay('pglite', {
      env: await testEnv('pglite', { PORT: String(port), LABRELAY_PUBLIC_URL: publicUrl }),
    });
    ehr = await startSmartEhr({ redirectUri: `${publicUrl}/smart/${slug}/callback` });
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug, name: 'Smart Hospital' });
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: 'smart-other', name: 'Other' });
    const created = await admin(lr.baseUrl, 'POST', `/v1/admin/tenants/${slug}/connections`, {
      name: 'Hospital EHR',
      direction: 'pull',
      format: 'fhir',
      environment: 'production',
      endpoint: { url: ehr.issuer },
      auth: { type: 'smart_launch', clientId: 'labrelay-app', clientSecret: 'app-secret-0123456789' },
    });
    expect(JSON.stringify(created)).not.toContain('app-secret');
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await ehr?.close();
    await lr?.stop();
  });

  const launchUrl = (iss: string) =>
    `${lr.baseUrl}/smart/${slug}/launch?iss=${encodeURIComponent(iss)}&launch=${encodeURIComponent('xyz-123')}`;

  /** The clinician in the EHR: opens the app, signs in on the EHR's page, consents. Returns our page. */
  async function launchInBrowser() {
    const page = await browser.newPage();
    const callbacks: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes(`/smart/${slug}/callback`)) callbacks.push(r.url());
    });
    await page.goto(launchUrl(ehr.issuer));
    await page.locator('input[name="login"]').fill('dr.welby');
    await page.locator('input[name="password"]').fill('anything');
    await page.locator('button[type="submit"]').click();
    // oidc-provider's development consent page.
    await page.waitForURL(
      (url) => url.pathname.startsWith('/interaction') || url.pathname.startsWith('/smart'),
    );
    if (new URL(page.url()).pathname.startsWith('/interaction'))
      await page.locator('button[type="submit"]').first().click();
    await page.waitForURL((url) => url.pathname === `/smart/${slug}/callback`);
    return { page, callbacks };
  }

  test("the patient-in-context's recent results, read from the EHR with only GET requests", async () => {
    const { page } = await launchInBrowser();
    expect(await page.locator('h1').innerText()).toBe('Lab results: Jane Doe');
    const body = await page.locator('body').innerText();
    expect(body).toContain('born 1980-01-15');
    expect(body).toMatch(/Potassium\s+6\.8 mmol\/L\s+3\.5–5\.1\s+HH critical high/);
    expect(body).toMatch(/Sodium\s+140 mmol\/L/);
    expect(await page.locator('tr.critical').count()).toBe(1);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'smart-launch.png'), fullPage: true });
    const fhirCalls = ehr.requests.filter((r) => !r.path.includes('.well-known'));
    expect(fhirCalls.length).toBeGreaterThanOrEqual(2);
    expect(fhirCalls.every((r) => r.method === 'GET' && r.authorized)).toBe(true);
    await page.close();
  });

  test('a replayed callback is refused, and so is a state of another tenant or none', async () => {
    const { page, callbacks } = await launchInBrowser();
    await page.close();
    const callback = callbacks[0]!;
    const replay = await fetch(callback, { redirect: 'manual' });
    expect(replay.status).toBe(400);
    expect(await replay.text()).toContain('already used');
    const state = new URL(callback).searchParams.get('state')!;
    const other = await fetch(`${lr.baseUrl}/smart/smart-other/callback?code=x&state=${state}`);
    expect(other.status).toBe(400);
    const none = await fetch(`${lr.baseUrl}/smart/${slug}/callback?code=x`);
    expect(none.status).toBe(400);
    expect(await none.text()).toContain('without the launch state');
  });

  test('an issuer the tenant did not connect is never contacted or redirected to', async () => {
    const before = ehr.requests.length;
    const response = await fetch(launchUrl('https://evil.example/fhir'), { redirect: 'manual' });
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    expect(await response.text()).toContain('is not an EHR this organisation has connected');
    const missing = await fetch(`${lr.baseUrl}/smart/${slug}/launch?iss=${encodeURIComponent(ehr.issuer)}`, {
      redirect: 'manual',
    });
    expect(missing.status).toBe(400);
    expect(ehr.requests.length).toBe(before);
  });

  test('an EHR FHIR server that is down gives a clear page, not an error trace', async () => {
    ehr.setFhirDown(true);
    try {
      const { page } = await launchInBrowser();
      const body = await page.locator('body').innerText();
      expect(body).toContain('The EHR answered 503 for /fhir/Patient/pat-1');
      await page.close();
    } finally {
      ehr.setFhirDown(false);
    }
  });
});
