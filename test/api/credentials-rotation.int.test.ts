import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import {
  admin,
  createTenantWithCredential,
  postHl7,
  startTestLabRelay,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

describe('credential rotation and connection promotion (admin API)', () => {
  let lr: TestLabRelay;
  beforeAll(async () => {
    lr = await startTestLabRelay('pglite');
  });
  afterAll(() => lr?.stop());

  let n = 0;
  /** An ORU the credential sends: the HTTP status says whether the key (and signature) was taken. */
  async function statusOf(cred: TenantCredential): Promise<number> {
    n += 1;
    const response = await postHl7(lr.baseUrl, cred, basicMetabolicPanel({ controlId: `ROT-${n}` }));
    await response.text();
    return response.status;
  }

  test('a rotated API key keeps working through its overlap beside the new one; revoking ends it at once', async () => {
    const old = await createTenantWithCredential(lr.baseUrl, 'rotate-key');
    const rotated = await admin<{
      id: string;
      apiKey: string;
      signingSecret: string;
      previousEndsAt: string;
    }>(lr.baseUrl, 'POST', `/v1/admin/tenants/rotate-key/credentials/${old.credentialId}/rotate`, {
      overlapMinutes: 60,
    });
    expect(rotated.apiKey).not.toBe(old.apiKey);
    expect(rotated.signingSecret).toMatch(/\S/);
    expect(Date.parse(rotated.previousEndsAt) - Date.now()).toBeGreaterThan(59 * 60_000);
    const fresh: TenantCredential = {
      ...old,
      credentialId: rotated.id,
      apiKey: rotated.apiKey,
      signingSecret: rotated.signingSecret,
    };
    expect(await statusOf(fresh)).toBe(200);
    expect(await statusOf(old)).toBe(200);

    // Rotating the new key with no overlap: it stops at once, its replacement works.
    const next = await admin<{ id: string; apiKey: string; signingSecret: string }>(
      lr.baseUrl,
      'POST',
      `/v1/admin/tenants/rotate-key/credentials/${fresh.credentialId}/rotate`,
      { overlapMinutes: 0 },
    );
    expect(await statusOf(fresh)).toBe(401);
    expect(await statusOf({ ...old, apiKey: next.apiKey, signingSecret: next.signingSecret })).toBe(200);

    // The first key, still in its overlap, is revoked: it stops now.
    await admin(
      lr.baseUrl,
      'DELETE',
      `/v1/admin/tenants/rotate-key/credentials/${old.credentialId}`,
      undefined,
      204,
    );
    expect(await statusOf(old)).toBe(401);

    await admin(
      lr.baseUrl,
      'POST',
      `/v1/admin/tenants/rotate-key/credentials/${old.credentialId}/rotate`,
      { overlapMinutes: 60 },
      404,
    );
    await admin(
      lr.baseUrl,
      'POST',
      `/v1/admin/tenants/rotate-key/credentials/${next.id}/rotate`,
      { overlapMinutes: 99_999 },
      400,
    );
  });

  test('a rotated signing secret: both verify during the overlap; a second rotation without overlap leaves only the newest', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'rotate-secret');
    const first = await admin<{ signingSecret: string; previousEndsAt: string }>(
      lr.baseUrl,
      'POST',
      `/v1/admin/tenants/rotate-secret/credentials/${cred.credentialId}/rotate-secret`,
      { overlapMinutes: 30 },
    );
    expect(first.signingSecret).not.toBe(cred.signingSecret);
    expect(first.previousEndsAt).not.toBeNull();
    expect(await statusOf(cred)).toBe(200);
    expect(await statusOf({ ...cred, signingSecret: first.signingSecret })).toBe(200);
    expect(await statusOf({ ...cred, signingSecret: 'not-the-secret' })).toBe(401);

    const second = await admin<{ signingSecret: string; previousEndsAt: string | null }>(
      lr.baseUrl,
      'POST',
      `/v1/admin/tenants/rotate-secret/credentials/${cred.credentialId}/rotate-secret`,
      { overlapMinutes: 0 },
    );
    expect(second.previousEndsAt).toBeNull();
    expect(await statusOf(cred)).toBe(401);
    expect(await statusOf({ ...cred, signingSecret: first.signingSecret })).toBe(401);
    expect(await statusOf({ ...cred, signingSecret: second.signingSecret })).toBe(200);

    const unsigned = await createTenantWithCredential(lr.baseUrl, 'rotate-secret', undefined, false);
    await admin(
      lr.baseUrl,
      'POST',
      `/v1/admin/tenants/rotate-secret/credentials/${unsigned.credentialId}/rotate-secret`,
      {},
      409,
    );
  });

  test('promotion from sandbox to production is explicit and audited', async () => {
    await createTenantWithCredential(lr.baseUrl, 'promote');
    const connection = await admin<{ id: string; environment: string }>(
      lr.baseUrl,
      'POST',
      '/v1/admin/tenants/promote/connections',
      {
        name: 'Results hook',
        direction: 'outbound',
        format: 'webhook',
        environment: 'sandbox',
        endpoint: { url: 'https://hooks.genhosp.example/labrelay' },
      },
    );
    expect(connection.environment).toBe('sandbox');
    const path = `/v1/admin/tenants/promote/connections/${connection.id}/promote`;
    await admin(lr.baseUrl, 'POST', path, {}, 400);
    const promoted = await admin<{ environment: string }>(
      lr.baseUrl,
      'POST',
      path,
      { tested: true, note: 'tested with GenHosp IT on 4 Dec' },
      200,
    );
    expect(promoted.environment).toBe('production');
    await admin(lr.baseUrl, 'POST', path, { tested: true }, 409);
    const { db } = lr.labrelay.services!;
    const events = await db
      .selectFrom('audit_events')
      .select(['action', 'details'])
      .where('subject', '=', `connection/${connection.id}`)
      .orderBy('sequence')
      .execute();
    expect(events.map((e) => e.action)).toEqual(['connection.created', 'connection.promoted']);
    expect(JSON.stringify(events[1]!.details)).toContain('tested with GenHosp IT');
  });
});
