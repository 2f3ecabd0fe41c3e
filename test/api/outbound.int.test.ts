import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pino from 'pino';
import { createDeliveryActivities } from '../../activities/deliveries.ts';
import { parseHl7 } from '../../adapters/hl7v2/message.ts';
import { findDelivery, updateDelivery } from '../../db/deliveries.ts';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import { expectValidSearchset } from '../support/fhir.ts';
import { startFhirServer } from '../support/fhir-server.ts';
import {
  ADMIN_TOKEN,
  admin,
  createTenantWithCredential,
  eventually,
  getJson,
  postHl7,
  freePort,
  startTestLabRelay,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';
import { startOidcServer } from '../support/oidc-server.ts';

const SCOPES = ['results:write', 'results:read', 'patients:read', 'orders:write', 'tasks:write'];

type Delivery = {
  id: string;
  status: string;
  attempts: number;
  sends: number;
  critical: boolean;
  connection: string;
  lastError: string | null;
  deadLetterReason: string | null;
  remoteReference: string | null;
};

async function deliveriesOf(lr: TestLabRelay, slug: string, query = ''): Promise<Delivery[]> {
  const { deliveries } = await admin<{ deliveries: Delivery[] }>(
    lr.baseUrl,
    'GET',
    `/v1/admin/tenants/${slug}/deliveries${query}`,
    undefined,
    200,
  );
  return deliveries;
}

async function waitForDelivery(lr: TestLabRelay, slug: string, status: string, timeoutMs = 60_000) {
  return eventually(
    async () => (await deliveriesOf(lr, slug)).find((d) => d.status === status),
    timeoutMs,
    `a delivery of ${slug} to be ${status}`,
  );
}

async function send(
  lr: TestLabRelay,
  cred: TenantCredential,
  controlId: string,
  extra: Parameters<typeof basicMetabolicPanel>[0] = {},
) {
  const response = await postHl7(lr.baseUrl, cred, basicMetabolicPanel({ controlId, ...extra }));
  expect(response.status).toBe(200);
  return response.headers.get('labrelay-message-id')!;
}

/** An MLLP receiver (a hospital's interface engine): ACKs each message with the code `answer` gives. */
async function startMllpReceiver(answer: (message: string) => 'AA' | 'AE' | 'AR') {
  const received: string[] = [];
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const start = buffer.indexOf(0x0b);
        const end = buffer.indexOf(Buffer.from([0x1c, 0x0d]));
        if (start < 0 || end < 0) break;
        const message = buffer.subarray(start + 1, end).toString('utf8');
        buffer = buffer.subarray(end + 2);
        received.push(message);
        const msh = parseHl7(message).segment('MSH')!;
        const code = answer(message);
        const ack = [
          `MSH|^~\\&|HIS|GENHOSP|${msh.field(3).raw}|${msh.field(4).raw}|20261203120000||ACK^R01|ACK${received.length}|P|2.5.1`,
          `MSA|${code}|${msh.field(10).raw}${code === 'AA' ? '' : `|refused by the test receiver (${code})`}`,
        ].join('\r');
        socket.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from(ack), Buffer.from([0x1c, 0x0d])]));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A webhook receiver that verifies LabRelay-Signature as our own contract says, and answers `status()`. */
async function startWebhookReceiver(status: () => number) {
  let secret = '';
  const received: { verified: boolean; deliveryId: string; idempotencyKey: string; body: any }[] = [];
  const server: Server = createHttpServer(async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const header = String(req.headers['labrelay-signature'] ?? '');
    const t = /t=(\d+)/.exec(header)?.[1] ?? '';
    const v1 = /v1=([0-9a-f]{64})/.exec(header)?.[1] ?? '';
    const expected = createHmac('sha256', secret).update(`${t}.${raw}`).digest('hex');
    const fresh = Math.abs(Date.now() / 1000 - Number(t)) <= 300;
    const verified = fresh && v1.length === 64 && timingSafeEqual(Buffer.from(v1), Buffer.from(expected));
    received.push({
      verified,
      deliveryId: String(req.headers['labrelay-delivery-id']),
      idempotencyKey: String(req.headers['idempotency-key']),
      body: JSON.parse(raw),
    });
    res.writeHead(verified ? status() : 401, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    // Like many webhook URLs, this one carries its secret in the path: errors must not show it.
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/labrelay/s3cret-path-token`,
    received,
    setSecret(s: string) {
      secret = s;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('outbound delivery', () => {
  let lr: TestLabRelay;
  let oidc: Awaited<ReturnType<typeof startOidcServer>>;
  let fhir: Awaited<ReturnType<typeof startFhirServer>>;

  beforeAll(async () => {
    lr = await startTestLabRelay('pglite');
    oidc = await startOidcServer({
      clients: [
        {
          client_id: 'labrelay',
          client_secret: 'labrelay-secret-0123456789',
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      accessTokenTtlSeconds: 2,
    });
    fhir = await startFhirServer({
      checkToken: async (token: string | null) => !!token && !!(await oidc.verifyAccessToken(token)),
    });
  }, 120_000);

  afterAll(async () => {
    await fhir?.close();
    await oidc?.close();
    await lr?.stop();
  });

  test('a released result reaches the hospital FHIR server once, with OAuth client credentials; a correction updates it; a refused token is renewed', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'out-fhir', SCOPES);
    const created = await admin<{ id: string; hasAuth: boolean; authType: string; auth?: unknown }>(
      lr.baseUrl,
      'POST',
      '/v1/admin/tenants/out-fhir/connections',
      {
        name: 'GenHosp FHIR',
        direction: 'outbound',
        format: 'fhir',
        environment: 'production',
        endpoint: { url: fhir.baseUrl },
        auth: {
          type: 'client_credentials',
          tokenUrl: oidc.tokenEndpoint,
          clientId: 'labrelay',
          clientSecret: 'labrelay-secret-0123456789',
          method: 'client_secret_basic',
          scope: 'system/*.cruds',
        },
      },
    );
    // The secret is sealed: never returned, not even in part.
    expect(JSON.stringify(created)).not.toContain('labrelay-secret');
    expect(created).toMatchObject({ hasAuth: true, authType: 'client_credentials' });

    await send(lr, cred, 'OUT-FHIR-1');
    const delivered = await waitForDelivery(lr, 'out-fhir', 'delivered');
    expect(delivered).toMatchObject({ connection: 'GenHosp FHIR', critical: true, attempts: 1 });
    expect(delivered.remoteReference).toMatch(/^DiagnosticReport\//);
    const count = (type: string) => [...fhir.store.keys()].filter((k) => k.startsWith(`${type}/`)).length;
    expect(count('Patient')).toBe(1);
    expect(count('DiagnosticReport')).toBe(1);
    expect(count('Observation')).toBe(3);

    // The lab corrects the potassium: the same DiagnosticReport and Observations are updated, nothing duplicated.
    // The server revokes the token it just issued: LabRelay gets a new one and sends again, once.
    const tokensBefore = oidc.tokenRequests;
    fhir.failNext(401);
    await send(lr, cred, 'OUT-FHIR-2', { orderStatus: 'C', potassium: '5.9' });
    await eventually(
      async () => ((await deliveriesOf(lr, 'out-fhir', '?status=delivered')).length === 2 ? true : undefined),
      60_000,
      'the correction to be delivered',
    );
    expect(count('Patient')).toBe(1);
    expect(count('DiagnosticReport')).toBe(1);
    expect(count('Observation')).toBe(3);
    const potassium = [...fhir.store.values()].find(
      (r: any) => r.resourceType === 'Observation' && r.code?.coding?.[0]?.code === '2823-3',
    ) as any;
    expect(potassium.valueQuantity.value).toBe(5.9);
    expect(oidc.tokenRequests).toBeGreaterThanOrEqual(tokensBefore + 1);
    expect((await deliveriesOf(lr, 'out-fhir')).every((d) => d.attempts === 1)).toBe(true);
    // Every request the FHIR server took carried a valid token (it refuses the others with 401).
    expect(fhir.received.length).toBeGreaterThanOrEqual(2);
  });

  test('an admin fixes a destination in place: a wrong client secret dead-letters, the right one given by PATCH delivers on re-send; a new endpoint takes the next results; bad changes are refused', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'out-fix', SCOPES);
    const created = await admin<{ id: string }>(lr.baseUrl, 'POST', '/v1/admin/tenants/out-fix/connections', {
      name: 'Fixable FHIR',
      direction: 'outbound',
      format: 'fhir',
      environment: 'production',
      endpoint: { url: fhir.baseUrl },
      auth: {
        type: 'client_credentials',
        tokenUrl: oidc.tokenEndpoint,
        clientId: 'labrelay',
        clientSecret: 'a secret the hospital has since changed',
      },
      settings: { maxAttempts: 3, timeoutSeconds: 10 },
    });
    const path = `/v1/admin/tenants/out-fix/connections/${created.id}`;
    await send(lr, cred, 'OUT-FIX-1', { placer: 'ORD-FIX-1', filler: 'FIL-FIX-1' });
    const dead = await waitForDelivery(lr, 'out-fix', 'dead_letter');

    const fixed = await admin<{ settings: Record<string, unknown>; authType: string }>(
      lr.baseUrl,
      'PATCH',
      path,
      {
        auth: {
          type: 'client_credentials',
          tokenUrl: oidc.tokenEndpoint,
          clientId: 'labrelay',
          clientSecret: 'labrelay-secret-0123456789',
        },
        settings: { maxAttempts: 5 },
      },
      200,
    );
    expect(JSON.stringify(fixed)).not.toContain('labrelay-secret');
    // Settings given replace those of the same name; the others stay.
    expect(fixed).toMatchObject({
      authType: 'client_credentials',
      settings: { maxAttempts: 5, timeoutSeconds: 10 },
    });
    await admin(lr.baseUrl, 'POST', `/v1/admin/tenants/out-fix/deliveries/${dead.id}/resend`, {}, 202);
    await eventually(
      async () =>
        (await deliveriesOf(lr, 'out-fix')).find((d) => d.id === dead.id)?.status === 'delivered'
          ? true
          : undefined,
      60_000,
      'the re-sent delivery to get through',
    );

    // The hospital moves its FHIR server: the next result goes to the new address.
    const moved = await startFhirServer();
    try {
      // The stored client secret never follows the connection to a new host unless given again.
      const kept = await fetch(`${lr.baseUrl}${path}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ endpoint: { url: moved.baseUrl } }),
      });
      expect(kept.status).toBe(400);
      expect(await kept.text()).toContain('a new address takes its authentication again');
      await admin(
        lr.baseUrl,
        'PATCH',
        path,
        { endpoint: { url: moved.baseUrl }, auth: { type: 'none' } },
        200,
      );
      await send(lr, cred, 'OUT-FIX-2', { placer: 'ORD-FIX-2', filler: 'FIL-FIX-2' });
      await eventually(
        async () =>
          [...moved.store.keys()].some((k) => k.startsWith('DiagnosticReport/')) ? true : undefined,
        60_000,
        'the next result at the new address',
      );
    } finally {
      await moved.close();
    }

    const refused = async (body: unknown, status = 400) => {
      const response = await fetch(`${lr.baseUrl}${path}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status, JSON.stringify(body)).toBe(status);
      return ((await response.json()) as { error: { message: string } }).error.message;
    };
    expect(await refused({})).toContain('nothing to change');
    expect(await refused({ endpoint: { host: 'mllp.example', port: 2575 } })).toContain(
      'a fhir destination needs {url}',
    );
    expect(await refused({ direction: 'inbound' })).toMatch(/direction/);
    expect(await refused({ mllp: { sendingFacility: 'X' } })).toContain(
      'mllp settings belong to an inbound hl7v2',
    );
    await admin(lr.baseUrl, 'DELETE', path, undefined, 204);
    expect(await refused({ name: 'again' }, 404)).toContain('no live connection');

    const audit = await lr.labrelay
      .services!.db.selectFrom('audit_events')
      .select('details')
      .where('tenant_id', '=', cred.tenantId)
      .where('action', '=', 'connection.updated')
      .orderBy('sequence')
      .execute();
    expect(audit.map((a) => a.details)).toEqual([
      { name: 'Fixable FHIR', changed: ['auth', 'settings'], authType: 'client_credentials' },
      { name: 'Fixable FHIR', changed: ['endpoint', 'auth'], authType: null },
    ]);
  });

  test('the tenant result API: Observation search by code, date, status and _lastUpdated, paged with _count', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'out-api', SCOPES);
    const before = new Date(Date.now() - 1000).toISOString();
    await send(lr, cred, 'OUT-API-1');
    await send(lr, cred, 'OUT-API-2', { placer: 'ORD-7007', filler: 'FIL-8007' });
    const search = async (query: string) =>
      (await getJson(lr.baseUrl, cred, `/v1/t/out-api/fhir/Observation?${query}`)).body;
    await eventually(
      async () => ((await search('code=2823-3')).total === 2 ? true : undefined),
      30_000,
      'both reports released',
    );
    const page1 = await search('code=http://loinc.org|2823-3&status=final&date=ge2026-11-22&_count=1');
    expectValidSearchset(page1);
    expect(page1.total).toBe(2);
    expect(page1.entry).toHaveLength(1);
    const next = page1.link.find((l: any) => l.relation === 'next').url as string;
    const page2 = (await getJson(lr.baseUrl, cred, new URL(next).pathname + new URL(next).search)).body;
    expect(page2.entry).toHaveLength(1);
    expect(page2.entry[0].resource.id).not.toBe(page1.entry[0].resource.id);
    expect((await search(`_lastUpdated=gt${before}`)).total).toBe(6);
    expect((await search('_lastUpdated=gt2099-01-01')).total).toBe(0);
    expect((await search('date=lt2026-01-01')).total).toBe(0);
    expect((await search('status=preliminary')).total).toBe(0);
    const bad = await getJson(lr.baseUrl, cred, '/v1/t/out-api/fhir/Observation?date=yesterday');
    expect(bad.status).toBe(400);
    expect(bad.body.resourceType).toBe('OperationOutcome');
  });

  test('HL7 over MLLP: AA delivers, AE is retried, AR dead-letters; a critical dead letter goes to a person; re-send delivers', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'out-mllp', SCOPES);
    let codes: ('AA' | 'AE' | 'AR')[] = ['AE', 'AA'];
    const receiver = await startMllpReceiver(() => codes.shift() ?? 'AA');
    try {
      await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/out-mllp/connections', {
        name: 'GenHosp HL7',
        direction: 'outbound',
        format: 'hl7v2',
        environment: 'production',
        endpoint: { host: '127.0.0.1', port: receiver.port },
        settings: { receivingFacility: 'GENHOSP', maxAttempts: 3 },
      });
      await send(lr, cred, 'OUT-MLLP-1');
      const delivered = await waitForDelivery(lr, 'out-mllp', 'delivered');
      expect(delivered.attempts).toBe(2);
      expect(receiver.received).toHaveLength(2);
      const oru = parseHl7(receiver.received[1]!);
      expect(oru.segment('MSH')!.field(9).raw).toMatch(/^ORU\^R01/);
      expect(oru.segment('MSH')!.field(6).raw).toBe('GENHOSP');
      expect(oru.segment('PID')!.field(3).raw).toContain('MRN123456');
      // A retry carries the same control id, so the receiver can tell it is the same message.
      expect(parseHl7(receiver.received[0]!).segment('MSH')!.field(10).raw).toBe(
        oru.segment('MSH')!.field(10).raw,
      );

      codes = ['AR'];
      await send(lr, cred, 'OUT-MLLP-2', { placer: 'ORD-2002', filler: 'FIL-3002' });
      const dead = await waitForDelivery(lr, 'out-mllp', 'dead_letter');
      expect(dead.attempts).toBe(1);
      expect(dead.deadLetterReason).toContain('AR');
      // A critical result that could not be delivered is put in front of a person at once.
      const task = await eventually(
        async () => {
          const { body } = await getJson(lr.baseUrl, cred, '/v1/t/out-mllp/tasks?status=open');
          return body.tasks.find((t: any) => t.kind === 'delivery_failed');
        },
        30_000,
        'the delivery_failed task',
      );
      expect(task.priority).toBe(2);

      codes = ['AA'];
      const resent = await admin<Delivery>(
        lr.baseUrl,
        'POST',
        `/v1/admin/tenants/out-mllp/deliveries/${dead.id}/resend`,
        { reason: 'receiver fixed' },
        202,
      );
      expect(resent).toMatchObject({ status: 'pending', sends: 2 });
      await eventually(
        async () =>
          (await deliveriesOf(lr, 'out-mllp', '?status=delivered')).length === 2 ? true : undefined,
        60_000,
        'the re-sent delivery',
      );
      // A delivery under way or delivered again cannot be re-sent twice at once; an unknown one is 404.
      await admin(
        lr.baseUrl,
        'POST',
        `/v1/admin/tenants/out-mllp/deliveries/${crypto.randomUUID()}/resend`,
        {},
        404,
      );
      const detail = await admin<{ payload: string; response: string }>(
        lr.baseUrl,
        'GET',
        `/v1/admin/tenants/out-mllp/deliveries/${dead.id}`,
        undefined,
        200,
      );
      expect(detail.payload).toContain('ORU^R01');
      expect(detail.response).toContain('MSA|AA');
    } finally {
      await receiver.close();
    }
  });

  test('a signed webhook: the receiver verifies the signature; a 500 is retried, a 400 is not', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'out-hook', SCOPES);
    let statuses = [500, 200];
    const hook = await startWebhookReceiver(() => statuses.shift() ?? 200);
    try {
      const created = await admin<{ signingSecret: string }>(
        lr.baseUrl,
        'POST',
        '/v1/admin/tenants/out-hook/connections',
        {
          name: 'Result webhook',
          direction: 'outbound',
          format: 'webhook',
          environment: 'production',
          endpoint: { url: hook.url },
          settings: { maxAttempts: 3 },
        },
      );
      expect(created.signingSecret).toMatch(/^whsec_/);
      hook.setSecret(created.signingSecret);
      const listed = await admin<{ connections: unknown[] }>(
        lr.baseUrl,
        'GET',
        '/v1/admin/tenants/out-hook/connections',
        undefined,
        200,
      );
      expect(JSON.stringify(listed)).not.toContain(created.signingSecret);

      await send(lr, cred, 'OUT-HOOK-1');
      const delivered = await waitForDelivery(lr, 'out-hook', 'delivered');
      expect(delivered.attempts).toBe(2);
      expect(hook.received.every((r) => r.verified)).toBe(true);
      expect(hook.received.map((r) => r.deliveryId)).toEqual([delivered.id, delivered.id]);
      // Retries of one send share one idempotency key.
      expect(hook.received.map((r) => r.idempotencyKey)).toEqual([`${delivered.id}/1`, `${delivered.id}/1`]);
      const body = hook.received[1]!.body;
      expect(body.event).toBe('result.released');
      expect(body.bundle.entry.map((e: any) => e.resource.resourceType)).toContain('DiagnosticReport');
      // Every reference between the Bundle's resources resolves to one of its entries.
      const fullUrls = new Set(body.bundle.entry.map((e: any) => e.fullUrl));
      const report = body.bundle.entry.find(
        (e: any) => e.resource.resourceType === 'DiagnosticReport',
      ).resource;
      expect(fullUrls.has(report.subject.reference)).toBe(true);
      expect(report.result.length).toBeGreaterThan(0);
      for (const r of report.result) expect(fullUrls.has(r.reference)).toBe(true);
      for (const e of body.bundle.entry.filter((x: any) => x.resource.resourceType === 'Observation'))
        expect(fullUrls.has(e.resource.subject.reference)).toBe(true);

      statuses = [400];
      await send(lr, cred, 'OUT-HOOK-2', { placer: 'ORD-3003', filler: 'FIL-4003' });
      const dead = await waitForDelivery(lr, 'out-hook', 'dead_letter');
      expect(dead.attempts).toBe(1);
      expect(dead.deadLetterReason).toContain('400');
      expect(dead.deadLetterReason).toContain('Result webhook (http://127.0.0.1:');
      expect(dead.deadLetterReason).not.toContain('s3cret-path-token');

      // A re-send is a new send: the receiver must not discard it as a repeat.
      statuses = [200];
      await admin(lr.baseUrl, 'POST', `/v1/admin/tenants/out-hook/deliveries/${dead.id}/resend`, {}, 202);
      const resent = await eventually(
        async () =>
          (await deliveriesOf(lr, 'out-hook')).find((d) => d.id === dead.id && d.status === 'delivered'),
        60_000,
        'the re-sent delivery',
      );
      expect(resent.sends).toBe(2);
      expect(hook.received.at(-1)!.idempotencyKey).toBe(`${dead.id}/2`);

      // The first send's late word (an attempt that outlived its activity) changes nothing now.
      const { db, config } = lr.labrelay.services!;
      const row = (await findDelivery(
        db,
        (await db.selectFrom('tenants').select('id').where('slug', '=', 'out-hook').executeTakeFirstOrThrow())
          .id,
        dead.id,
      ))!;
      expect(row.workflow_id).toBe(`delivery/${dead.id}/2`);
      const late = { workflowId: `delivery/${dead.id}/1` };
      expect(
        await updateDelivery(
          db,
          row.tenant_id,
          dead.id,
          { status: 'dead_letter', deadLetterReason: 'late' },
          late,
        ),
      ).toBe(false);
      const activities = createDeliveryActivities({
        db,
        logger: pino({ level: 'silent' }),
        masterKey: config.masterKey,
      } as Parameters<typeof createDeliveryActivities>[0]);
      const before = hook.received.length;
      await expect(
        activities.deliverReport({ tenantId: row.tenant_id, deliveryId: dead.id, ...late }),
      ).rejects.toMatchObject({ type: 'DeliverySuperseded' });
      await activities.deadLetterDelivery({
        tenantId: row.tenant_id,
        deliveryId: dead.id,
        ...late,
        reason: 'late',
      });
      expect(hook.received.length).toBe(before);
      expect(await findDelivery(db, row.tenant_id, dead.id)).toMatchObject({ status: 'delivered', sends: 2 });
    } finally {
      await hook.close();
    }
  });

  test('a sandbox result is never delivered to a production connection', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'out-sandbox', SCOPES);
    const sandboxKey = await admin<{ id: string; apiKey: string; signingSecret: string | null }>(
      lr.baseUrl,
      'POST',
      '/v1/admin/tenants/out-sandbox/credentials',
      { name: 'sandbox', scopes: SCOPES, environment: 'sandbox', signed: false },
    );
    const hits: string[] = [];
    const production = await startWebhookReceiver(() => {
      hits.push('production');
      return 200;
    });
    const sandbox = await startWebhookReceiver(() => {
      hits.push('sandbox');
      return 200;
    });
    try {
      for (const [name, environment, receiver] of [
        ['Production hook', 'production', production],
        ['Sandbox hook', 'sandbox', sandbox],
      ] as const) {
        const c = await admin<{ signingSecret: string }>(
          lr.baseUrl,
          'POST',
          '/v1/admin/tenants/out-sandbox/connections',
          {
            name,
            direction: 'outbound',
            format: 'webhook',
            environment,
            endpoint: { url: receiver.url },
          },
        );
        receiver.setSecret(c.signingSecret);
      }
      await send(
        { ...lr } as TestLabRelay,
        { ...cred, apiKey: sandboxKey.apiKey, signingSecret: null },
        'OUT-SBX-1',
      );
      const delivered = await waitForDelivery(lr, 'out-sandbox', 'delivered');
      expect(delivered.connection).toBe('Sandbox hook');
      // Give a wrong delivery time to happen, then check it did not.
      await new Promise((r) => setTimeout(r, 1500));
      expect(hits).toEqual(['sandbox']);
      expect(await deliveriesOf(lr, 'out-sandbox')).toHaveLength(1);
    } finally {
      await production.close();
      await sandbox.close();
    }
  });

  test('a FHIR server that is down is retried, then dead-lettered with the reason', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'out-down', SCOPES);
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/out-down/connections', {
      name: 'Offline FHIR',
      direction: 'outbound',
      format: 'fhir',
      environment: 'production',
      endpoint: { url: `http://127.0.0.1:${await freePort()}/fhir` },
      settings: { maxAttempts: 2 },
    });
    await send(lr, cred, 'OUT-DOWN-1');
    const dead = await waitForDelivery(lr, 'out-down', 'dead_letter');
    expect(dead.attempts).toBe(2);
    expect(dead.deadLetterReason).toMatch(/could not be reached: .*ECONNREFUSED/);
  });

  test('a FHIR server slower than the connection allows: the attempt gives up and the next one delivers', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'out-slow', SCOPES);
    const slow = await startFhirServer();
    try {
      await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/out-slow/connections', {
        name: 'Slow FHIR',
        direction: 'outbound',
        format: 'fhir',
        environment: 'production',
        endpoint: { url: slow.baseUrl },
        settings: { timeoutSeconds: 1, maxAttempts: 3 },
      });
      slow.delayNext(2500);
      await send(lr, cred, 'OUT-SLOW-1');
      const delivered = await waitForDelivery(lr, 'out-slow', 'delivered');
      expect(delivered.attempts).toBe(2);
      const detail = await admin<{ lastError: string | null; response: string }>(
        lr.baseUrl,
        'GET',
        `/v1/admin/tenants/out-slow/deliveries/${delivered.id}`,
        undefined,
        200,
      );
      expect(detail.response).toMatch(/^200 /);
      // The slow first request was stored by the server after all: the retry updated it, no duplicate.
      await new Promise((r) => setTimeout(r, 1500));
      expect([...slow.store.keys()].filter((k) => k.startsWith('DiagnosticReport/'))).toHaveLength(1);
    } finally {
      await slow.close();
    }
  });

  test('pull: new ServiceRequests on the hospital FHIR server become orders, each once', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'pull-orders', SCOPES);
    fhir.seed({
      resourceType: 'Patient',
      id: 'pat-1',
      identifier: [{ system: 'urn:oid:1.2.3.4', value: 'MRN-PULL-1' }],
      name: [{ family: 'Pull', given: ['Patricia'] }],
      birthDate: '1970-02-03',
    });
    fhir.seed({
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      identifier: [{ system: 'urn:oid:1.2.3.4.5', value: 'PULL-ORDER-1' }],
      code: { coding: [{ system: 'http://loinc.org', code: '24321-2', display: 'Basic metabolic panel' }] },
      subject: { reference: 'Patient/pat-1' },
    });
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/pull-orders/connections', {
      name: 'GenHosp orders',
      direction: 'pull',
      format: 'fhir',
      environment: 'production',
      endpoint: { url: fhir.baseUrl },
      auth: {
        type: 'client_credentials',
        tokenUrl: oidc.tokenEndpoint,
        clientId: 'labrelay',
        clientSecret: 'labrelay-secret-0123456789',
        method: 'client_secret_basic',
      },
      settings: { pollIntervalSeconds: 5 },
    });
    const order = await eventually(
      async () => {
        const { body } = await getJson(lr.baseUrl, cred, '/v1/t/pull-orders/orders');
        return body.orders.find((o: any) => o.placerOrderNumber === 'PULL-ORDER-1');
      },
      60_000,
      'the pulled order',
    );
    expect(order).toBeTruthy();
    // The next polls find nothing new: still one order.
    await new Promise((r) => setTimeout(r, 6000));
    const { body } = await getJson(lr.baseUrl, cred, '/v1/t/pull-orders/orders');
    expect(body.orders.filter((o: any) => o.placerOrderNumber === 'PULL-ORDER-1')).toHaveLength(1);
    // Pulling only reads.
    expect(fhir.requests.filter((r) => r.method !== 'GET' && r.url.includes('ServiceRequest'))).toEqual([]);
  }, 90_000);

  test('SMART Backend Services: LabRelay generates the key pair, the EHR registers its JWKS, deliveries authenticate with a signed assertion', async () => {
    const cred = await createTenantWithCredential(lr.baseUrl, 'out-smart', SCOPES);
    // The EHR's authorization server registers LabRelay only once it has LabRelay's public key.
    const port = await freePort();
    const tokenUrl = `http://127.0.0.1:${port}/token`;
    let ehr: Awaited<ReturnType<typeof startOidcServer>> | null = null;
    const ehrFhir = await startFhirServer({
      checkToken: async (token: string | null) => !!token && !!ehr && !!(await ehr.verifyAccessToken(token)),
    });
    try {
      const created = await admin<{ id: string; jwksUrl: string; publicJwks: unknown }>(
        lr.baseUrl,
        'POST',
        '/v1/admin/tenants/out-smart/connections',
        {
          name: 'EHR FHIR (SMART)',
          direction: 'outbound',
          format: 'fhir',
          environment: 'production',
          endpoint: { url: ehrFhir.baseUrl },
          auth: {
            type: 'smart_backend',
            tokenUrl,
            clientId: 'labrelay-backend',
            generateKey: 'ES384',
            scope: 'system/*.cruds',
          },
        },
      );
      expect(created.jwksUrl).toMatch(new RegExp(`/v1/jwks/${created.id}$`));
      const jwks = (await (await fetch(`${lr.baseUrl}/v1/jwks/${created.id}`)).json()) as {
        keys: Record<string, unknown>[];
      };
      expect(jwks.keys).toHaveLength(1);
      expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-384', alg: 'ES384', use: 'sig' });
      expect(jwks.keys[0]).not.toHaveProperty('d');
      expect(created.publicJwks).toEqual(jwks);
      ehr = await startOidcServer({
        port,
        clients: [
          {
            client_id: 'labrelay-backend',
            token_endpoint_auth_method: 'private_key_jwt',
            jwks: jwks as never,
          },
        ],
      });

      await send(lr, cred, 'OUT-SMART-1');
      const delivered = await waitForDelivery(lr, 'out-smart', 'delivered');
      expect(delivered.attempts).toBe(1);
      expect([...ehrFhir.store.keys()].filter((k) => k.startsWith('DiagnosticReport/'))).toHaveLength(1);

      // A key the EHR never registered is refused; the delivery is dead-lettered at once, not retried.
      const unregistered = await admin<{ id: string }>(
        lr.baseUrl,
        'POST',
        '/v1/admin/tenants/out-smart/connections',
        {
          name: 'EHR FHIR (unregistered key)',
          direction: 'outbound',
          format: 'fhir',
          environment: 'production',
          endpoint: { url: ehrFhir.baseUrl },
          auth: { type: 'smart_backend', tokenUrl, clientId: 'labrelay-other', generateKey: 'RS384' },
        },
      );
      await send(lr, cred, 'OUT-SMART-2', { placer: 'ORD-5005', filler: 'FIL-6005' });
      const refused = await waitForDelivery(lr, 'out-smart', 'dead_letter');
      expect(refused).toMatchObject({ connection: 'EHR FHIR (unregistered key)', attempts: 1 });
      expect(refused.deadLetterReason).toContain('invalid_client');
      // A disabled connection's key set is no longer served.
      await admin(
        lr.baseUrl,
        'DELETE',
        `/v1/admin/tenants/out-smart/connections/${unregistered.id}`,
        undefined,
        204,
      );
      expect((await fetch(`${lr.baseUrl}/v1/jwks/${unregistered.id}`)).status).toBe(404);
    } finally {
      await ehrFhir.close();
      await ehr?.close();
    }
  });

  test('connection settings are checked: an hl7v2 destination needs host and port; unknown auth is refused', async () => {
    await createTenantWithCredential(lr.baseUrl, 'out-bad', SCOPES);
    const bad = async (body: object) =>
      admin<{ error: { details: { path: string }[] } }>(
        lr.baseUrl,
        'POST',
        '/v1/admin/tenants/out-bad/connections',
        body,
        400,
      );
    const base = { name: 'x', direction: 'outbound', environment: 'production' };
    expect(
      (await bad({ ...base, format: 'hl7v2', endpoint: { url: 'http://x' } })).error.details[0]!.path,
    ).toBe('endpoint');
    expect(
      (await bad({ ...base, format: 'fhir', endpoint: { url: 'http://x' }, auth: { type: 'magic' } })).error
        .details[0]!.path,
    ).toMatch(/^auth/);
    expect(
      (await bad({ ...base, format: 'csv', endpoint: { url: 'http://x' } })).error.details[0]!.path,
    ).toBe('format');
  });
});
