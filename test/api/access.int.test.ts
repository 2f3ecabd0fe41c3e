import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import { selfSignedCertificate } from '../support/tls.ts';
import {
  admin,
  ADMIN_TOKEN,
  eventually,
  postHl7,
  signature,
  startTestLabRelay,
  testEnv,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

async function credentialWith(
  lr: TestLabRelay,
  slug: string,
  extra: Record<string, unknown>,
): Promise<TenantCredential> {
  const created = await admin<{ id: string; apiKey: string; signingSecret: string | null }>(
    lr.baseUrl,
    'POST',
    `/v1/admin/tenants/${slug}/credentials`,
    { name: 'limited', scopes: ['results:write', 'results:read'], ...extra },
  );
  return {
    slug,
    tenantId: '',
    credentialId: created.id,
    apiKey: created.apiKey,
    signingSecret: created.signingSecret,
  };
}

describe('access control on tenant routes', () => {
  let lr: TestLabRelay;
  beforeAll(async () => {
    lr = await startTestLabRelay('pglite');
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: 'gate', name: 'Gate Lab' });
  });
  afterAll(() => lr?.stop());

  test('a credential over its rate limit is answered 429 with Retry-After, and others are not held up', async () => {
    const slow = await credentialWith(lr, 'gate', { rateLimitPerMinute: 3 });
    const other = await credentialWith(lr, 'gate', {});
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${lr.baseUrl}/v1/t/gate/messages`, {
        headers: { authorization: `Bearer ${slow.apiKey}` },
      });
      statuses.push(response.status);
      if (response.status === 429) {
        retryAfter = response.headers.get('retry-after');
        const body = (await response.json()) as { error: { code: string } };
        expect(body.error.code).toBe('rate_limited');
      } else await response.arrayBuffer();
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    // 3 a minute: the next token comes in 20 s.
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(20);
    const unaffected = await fetch(`${lr.baseUrl}/v1/t/gate/messages`, {
      headers: { authorization: `Bearer ${other.apiKey}` },
    });
    expect(unaffected.status).toBe(200);
  });

  test('a credential with an IP allowlist works from an allowed address only', async () => {
    const local = await credentialWith(lr, 'gate', { allowIps: ['127.0.0.0/8', '::1'] });
    const remote = await credentialWith(lr, 'gate', { allowIps: ['10.20.0.0/16'] });
    const fromHere = await postHl7(lr.baseUrl, local, basicMetabolicPanel({ controlId: 'IP-1' }));
    expect(fromHere.status).toBe(200);
    const refused = await postHl7(lr.baseUrl, remote, basicMetabolicPanel({ controlId: 'IP-2' }));
    expect(refused.status).toBe(403);
    expect(await refused.text()).toMatch(/MSA\|AR\|IP-2[\s\S]*may not be used from 127\.0\.0\.1/);
    const bad = await fetch(`${lr.baseUrl}/v1/admin/tenants/gate/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x', scopes: ['results:write'], allowIps: ['10.0.0.0/33'] }),
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toContain('allowIps.0');
  });
});

describe('client and location scope (seed 003)', () => {
  let lr: TestLabRelay;
  beforeAll(async () => {
    lr = await startTestLabRelay('pglite');
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: 'scoped', name: 'Scoped Lab' });
  });
  afterAll(() => lr?.stop());

  const result = (clientId: string | undefined, order: string) =>
    JSON.stringify({
      patient: {
        identifiers: [{ system: 'urn:scoped', value: `P-${order}` }],
        familyName: 'Scope',
        birthDate: '1980-01-01',
      },
      order: { placerOrderNumber: order, ...(clientId ? { clientId } : {}) },
      report: { code: { system: 'http://loinc.org', code: '2951-2' } },
      results: [{ code: { system: 'http://loinc.org', code: '2951-2' }, value: 140, unit: 'mmol/L' }],
    });
  const send = (cred: TenantCredential, body: string) =>
    fetch(`${lr.baseUrl}/v1/t/scoped/results`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${cred.apiKey}`,
        'content-type': 'application/json',
        'labrelay-signature': signature(cred.signingSecret!, body),
      },
      body,
    });

  test('a key scoped to a client writes and reads only that client’s results', async () => {
    const north = await credentialWith(lr, 'scoped', {
      clientIds: ['NORTH'],
      scopes: ['results:write', 'results:read'],
    });
    const lab = await credentialWith(lr, 'scoped', { scopes: ['results:write', 'results:read'] });
    const refused = await send(north, result('SOUTH', 'S-1'));
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as any).error.message).toMatch(
      /client SOUTH is outside this key's client scope/,
    );
    const unnamed = await send(north, result(undefined, 'S-2'));
    expect(unnamed.status).toBe(403);
    const accepted = await send(north, result('NORTH', 'N-1'));
    expect(accepted.status).toBe(202);
    const other = await send(lab, result('SOUTH', 'S-3'));
    expect(other.status).toBe(202);
    for (const r of [accepted, other]) {
      const id = r.headers.get('labrelay-message-id')!;
      await eventually(
        async () => {
          const s = await fetch(`${lr.baseUrl}/v1/t/scoped/messages/${id}`, {
            headers: { authorization: `Bearer ${lab.apiKey}` },
          });
          return ((await s.json()) as any).status === 'delivered' ? true : undefined;
        },
        30_000,
        'delivered',
      );
    }
    const seen = async (cred: TenantCredential) => {
      const r = await fetch(`${lr.baseUrl}/v1/t/scoped/fhir/DiagnosticReport?code=2951-2`, {
        headers: { authorization: `Bearer ${cred.apiKey}` },
      });
      const bundle = (await r.json()) as any;
      return (bundle.entry ?? [])
        .filter((e: any) => e.resource.resourceType === 'DiagnosticReport')
        .flatMap(
          (e: any) =>
            e.resource.basedOn?.map((b: any) => b.identifier?.value) ??
            e.resource.identifier?.map((i: any) => i.value) ??
            [],
        );
    };
    expect(JSON.stringify(await seen(north))).toContain('N-1');
    expect(JSON.stringify(await seen(north))).not.toContain('S-3');
    expect(JSON.stringify(await seen(lab))).toContain('S-3');

    // A CSV upload: the row outside the scope is refused by its row number, the others kept.
    const csv =
      'patient_id,patient_id_system,family_name,birth_date,order_number,client_id,test_code,test_system,value,unit\r\n' +
      'C-1,urn:scoped,Scope,1980-01-01,N-2,NORTH,2951-2,LN,140,mmol/L\r\n' +
      'C-2,urn:scoped,Scope,1980-01-01,S-4,SOUTH,2951-2,LN,141,mmol/L\r\n';
    const upload = await fetch(`${lr.baseUrl}/v1/t/scoped/csv`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${north.apiKey}`,
        'content-type': 'text/csv',
        'labrelay-signature': signature(north.signingSecret!, csv),
      },
      body: csv,
    });
    expect(upload.status).toBe(202);
    const answer = (await upload.json()) as any;
    expect(answer.accepted).toBe(1);
    expect(answer.rejected).toEqual([{ row: 3, message: expect.stringMatching(/client SOUTH is outside/) }]);
  });
});

describe('MLLP over TLS', () => {
  let lr: TestLabRelay;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'labrelay-tls-'));
    selfSignedCertificate(dir);
    const env = await testEnv('pglite', {
      MLLP_TLS_CERT: path.join(dir, 'cert.pem'),
      MLLP_TLS_KEY: path.join(dir, 'key.pem'),
      MLLP_FRAME_TIMEOUT_MS: '1500',
      MLLP_MAX_CONNECTIONS: '3',
    });
    lr = await startTestLabRelay('pglite', { env });
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants', { slug: 'tlslab', name: 'TLS Lab' });
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/tlslab/connections', {
      name: 'LIS over TLS',
      direction: 'inbound',
      format: 'hl7v2',
      environment: 'production',
      mllp: { sendingFacility: 'TLS_LAB' },
    });
  });
  afterAll(async () => {
    await lr?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a sender that trusts our certificate sends a 10 MB message and gets its ACK; plain TCP gets nothing', async () => {
    const ca = execFileSync('cat', [path.join(dir, 'cert.pem')]);
    const socket = tlsConnect({ host: '127.0.0.1', port: lr.mllpPort, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.authorized).toBe(true);
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('utf8')));
    // A report with a 10 MB text result (a long narrative): framing and limits must carry it.
    const big =
      basicMetabolicPanel({ controlId: 'TLS-BIG', sendingFacility: 'TLS_LAB' }) +
      `\rOBX|9|TX|11526-1^Pathology study^LN||${'A'.repeat(10 * 1024 * 1024)}||||||F`;
    socket.write(`\x0b${big}\x1c\r`);
    await eventually(async () => (received.includes('\x1c\r') ? true : undefined), 60_000, 'the TLS ACK');
    expect(received).toMatch(/MSA\|AA\|TLS-BIG/);
    socket.end();

    // Plain TCP to the TLS port: the handshake never happens, no ACK is sent.
    const plain = connect({ host: '127.0.0.1', port: lr.mllpPort });
    await new Promise<void>((resolve) => plain.once('connect', () => resolve()));
    let plainReceived = '';
    plain.on('data', (d: Buffer) => (plainReceived += d.toString('latin1')));
    plain.write(`\x0b${basicMetabolicPanel({ controlId: 'PLAIN-1', sendingFacility: 'TLS_LAB' })}\x1c\r`);
    await new Promise<void>((resolve) => {
      plain.once('close', () => resolve());
      setTimeout(() => {
        plain.destroy();
        resolve();
      }, 3000).unref();
    });
    expect(plainReceived).not.toContain('MSA|');
  }, 120_000);

  test('a sender that begins a frame and stalls is cut off; the connection limit holds', async () => {
    const ca = execFileSync('cat', [path.join(dir, 'cert.pem')]);
    const open = async () => {
      const s = tlsConnect({ host: '127.0.0.1', port: lr.mllpPort, ca, servername: 'localhost' });
      await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
      return s;
    };
    const stalled = await open();
    const closedAt = new Promise<number>((resolve) => stalled.once('close', () => resolve(Date.now())));
    const began = Date.now();
    stalled.write('\x0bMSH|^~\\&|LIS|TLS_LAB|');
    expect((await closedAt) - began).toBeLessThan(10_000);

    const held = [await open(), await open(), await open()];
    const fourth = tlsConnect({ host: '127.0.0.1', port: lr.mllpPort, ca, servername: 'localhost' });
    const outcome = await new Promise<string>((resolve) => {
      fourth.once('secureConnect', () => resolve('connected'));
      fourth.once('error', () => resolve('refused'));
      fourth.once('close', () => resolve('refused'));
    });
    expect(outcome).toBe('refused');
    held.forEach((s) => s.destroy());
  }, 60_000);
});
