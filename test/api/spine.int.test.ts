import { sql } from 'kysely';
import { verifyAuditChain } from '../../db/audit.ts';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel, twoOrders } from '../fixtures/hl7.ts';
import { expectValidSearchset } from '../support/fhir.ts';
import {
  ADMIN_TOKEN,
  admin,
  createTenantWithCredential,
  eventually,
  getJson,
  postHl7,
  signature,
  startTestLabRelay,
  testEnv,
  waitForMessageStatus,
  type DatabaseChoice,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

describe.each<DatabaseChoice>(['pglite', 'postgres'])('one result end to end on %s', (database) => {
  let lr: TestLabRelay;
  let cred: TenantCredential;
  let other: TenantCredential;

  beforeAll(async () => {
    lr = await startTestLabRelay(database, {
      env: await testEnv(database, { LABRELAY_MAX_BODY_BYTES: String(256 * 1024) }),
    });
    cred = await createTenantWithCredential(lr.baseUrl, 'stmarys');
    other = await createTenantWithCredential(lr.baseUrl, 'northside');
  });
  afterAll(() => lr?.stop());

  const db = () => lr.labrelay.services!.db;
  async function counts() {
    const row = await sql<{
      messages: number;
      reports: number;
      observations: number;
      inbox: number;
      patients: number;
    }>`
      select (select count(*)::int from messages) as messages, (select count(*)::int from reports) as reports,
             (select count(*)::int from observations) as observations, (select count(*)::int from inbox) as inbox,
             (select count(*)::int from patients) as patients`.execute(db());
    return row.rows[0]!;
  }

  test('a signed ORU^R01 is acknowledged AA after the commit and reaches the FHIR result API flagged', async () => {
    const response = await postHl7(lr.baseUrl, cred, basicMetabolicPanel({ controlId: 'CTRL-1' }));
    const ack = await response.text();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/hl7-v2/);
    const segments = ack.split('\r');
    expect(segments[0]).toMatch(/^MSH\|\^~\\&\|LABRELAY\|STMARYS\|ACME_LIS\|ACME_LAB\|\d{14}/);
    expect(segments[1]).toBe('MSA|AA|CTRL-1|');
    const messageId = response.headers.get('labrelay-message-id')!;
    expect(response.headers.get('location')).toBe(`/v1/t/stmarys/messages/${messageId}`);

    // Committed before the ACK: the message is there the moment the ACK is.
    const early = await getJson(lr.baseUrl, cred, `/v1/t/stmarys/messages/${messageId}`);
    expect(early.status).toBe(200);
    expect(['received', 'processing', 'delivered']).toContain(early.body.status);

    const done = await waitForMessageStatus(lr.baseUrl, cred, messageId, 'delivered');
    expect(done.workflowId).toBe(`order/${cred.tenantId}/ACME_LAB|P|ORD-1001`);
    const patientId = done.reports[0].patientId;
    expect(patientId).toMatch(/^[0-9a-f-]{36}$/);

    const search = await getJson(
      lr.baseUrl,
      cred,
      `/v1/t/stmarys/fhir/DiagnosticReport?patient=${patientId}`,
    );
    expect(search.status).toBe(200);
    expect(search.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    const bundle = search.body;
    expectValidSearchset(bundle);
    expect(bundle.total).toBe(1);
    const report = bundle.entry.find((e: any) => e.resource.resourceType === 'DiagnosticReport').resource;
    expect(report.status).toBe('final');
    expect(report.code.coding[0]).toMatchObject({ system: 'http://loinc.org', code: '24321-2' });
    expect(report.subject.reference).toBe(`Patient/${patientId}`);
    expect(report.result).toHaveLength(3);
    const observations = bundle.entry
      .filter((e: any) => e.resource.resourceType === 'Observation')
      .map((e: any) => e.resource);
    expect(observations.map((o: any) => `Observation/${o.id}`).sort()).toEqual(
      report.result.map((r: any) => r.reference).sort(),
    );
    const byCode = Object.fromEntries(observations.map((o: any) => [o.code.coding[0].code, o]));
    expect(byCode['2823-3'].valueQuantity).toMatchObject({
      value: 6.8,
      unit: 'mmol/L',
      system: 'http://unitsofmeasure.org',
    });
    expect(byCode['2823-3'].referenceRange[0]).toMatchObject({ low: { value: 3.5 }, high: { value: 5.1 } });
    expect(byCode['2823-3'].interpretation[0].coding[0]).toMatchObject({
      code: 'HH',
      system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation',
    });
    expect(byCode['2951-2'].interpretation[0].coding[0].code).toBe('N');
    // 2.0 mmol/L glucose is 36 mg/dL: below the critical low of 40 mg/dL once converted.
    expect(byCode['2345-7'].interpretation[0].coding[0].code).toBe('LL');

    const byIdentifier = await getJson(
      lr.baseUrl,
      cred,
      '/v1/t/stmarys/fhir/DiagnosticReport?patient.identifier=STMARYS|MRN123456&_include=DiagnosticReport:subject',
    );
    expectValidSearchset(byIdentifier.body);
    expect(byIdentifier.body.entry.map((e: any) => e.resource.id)).toContain(report.id);
    const patient = byIdentifier.body.entry.find((e: any) => e.resource.resourceType === 'Patient').resource;
    expect(patient).toMatchObject({
      id: patientId,
      gender: 'female',
      birthDate: '1980-01-15',
      name: [{ family: 'Doe', given: ['Jane', 'Q'] }],
    });

    const read = await getJson(lr.baseUrl, cred, `/v1/t/stmarys/fhir/Observation/${byCode['2823-3'].id}`);
    expect(read.body).toEqual(byCode['2823-3']);
  });

  test('the same message sent twice is stored once and answered the same way both times', async () => {
    const body = basicMetabolicPanel({ controlId: 'CTRL-DUP', placer: 'ORD-DUP' });
    const first = await postHl7(lr.baseUrl, cred, body);
    const firstAck = await first.text();
    const before = await counts();
    const second = await postHl7(lr.baseUrl, cred, body);
    expect(second.status).toBe(first.status);
    expect(await second.text()).toBe(firstAck);
    expect(second.headers.get('labrelay-message-id')).toBe(first.headers.get('labrelay-message-id'));
    expect(await counts()).toEqual(before);
    const stored = await db()
      .selectFrom('messages')
      .select('id')
      .where('control_id', '=', 'CTRL-DUP')
      .execute();
    expect(stored).toHaveLength(1);
  });

  test('bad input gets a clear answer and leaves nothing half-stored', async () => {
    // Let earlier messages finish, so the counts below only move if a bad request stored something.
    await new Promise((r) => setTimeout(r, 1000));
    const before = await counts();
    const rejectedBefore = (await db().selectFrom('rejected_messages').select('id').execute()).length;
    const good = basicMetabolicPanel({ controlId: 'CTRL-BAD' });
    const url = `${lr.baseUrl}/v1/t/stmarys/hl7`;
    const post = (headers: Record<string, string>, body = good) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/hl7-v2', ...headers }, body });

    const noKey = await post({});
    expect(noKey.status).toBe(401);
    expect(await noKey.text()).toMatch(/\rMSA\|AR\|CTRL-BAD\|/);
    expect((await post({ authorization: 'Bearer lr_live_nosuchkey' })).status).toBe(401);
    const otherTenant = await fetch(`${lr.baseUrl}/v1/t/northside/hl7`, {
      method: 'POST',
      headers: {
        'content-type': 'application/hl7-v2',
        authorization: `Bearer ${cred.apiKey}`,
        'labrelay-signature': signature(cred.signingSecret!, good),
      },
      body: good,
    });
    expect(otherTenant.status).toBe(403);
    expect((await post({ authorization: `Bearer ${cred.apiKey}` })).status).toBe(401); // unsigned
    const badSignature = await post({
      authorization: `Bearer ${cred.apiKey}`,
      'labrelay-signature': signature(other.signingSecret!, good),
    });
    expect(badSignature.status).toBe(401);
    expect(await badSignature.text()).toContain('signature');
    const stale = await post({
      authorization: `Bearer ${cred.apiKey}`,
      'labrelay-signature': signature(cred.signingSecret!, good, Math.floor(Date.now() / 1000) - 600),
    });
    expect(stale.status).toBe(401);
    const tampered = await post(
      { authorization: `Bearer ${cred.apiKey}`, 'labrelay-signature': signature(cred.signingSecret!, good) },
      good.replace('6.8', '3.8'),
    );
    expect(tampered.status).toBe(401);

    const notHl7 = await postHl7(lr.baseUrl, cred, 'hello, this is not HL7');
    expect(notHl7.status).toBe(400);
    expect(await notHl7.text()).toMatch(/\rMSA\|AR\|\|the message does not start with an MSH segment/);

    const noPid = await postHl7(lr.baseUrl, cred, good.replace(/\rPID\|[^\r]*/, ''));
    expect(noPid.status).toBe(422);
    const noPidAck = await noPid.text();
    expect(noPidAck).toMatch(/\rMSA\|AE\|CTRL-BAD\|the PID segment is missing/);
    expect(noPidAck).toMatch(/\rERR\|\|PID\^1\|101\^\^HL70357\|E/);

    const badValue = await postHl7(lr.baseUrl, cred, good.replace('|6.8|', '|six|'));
    expect(badValue.status).toBe(422);
    expect(await badValue.text()).toMatch(
      /\rERR\|\|OBX\^1\^5\|102\^\^HL70357\|E\|\|\|\|OBX-5 \(result 1\) value "six" is not a number/,
    );

    const wrongType = await postHl7(lr.baseUrl, cred, good.replace('ORU^R01^ORU_R01', 'ADT^A01^ADT_A01'));
    expect(wrongType.status).toBe(400);
    // The reason is HL7-escaped inside the ACK: ^ travels as \S\.
    expect(await wrongType.text()).toMatch(
      /\rMSA\|AR\|CTRL-BAD\|message type ADT\\S\\A01 is not accepted here/,
    );

    const tooBig = good + '\r' + `NTE|2|L|${'x'.repeat(300 * 1024)}`;
    const big = await postHl7(lr.baseUrl, cred, tooBig);
    expect(big.status).toBe(413);

    const wrongContentType = await postHl7(lr.baseUrl, cred, good, { 'content-type': 'application/json' });
    expect(wrongContentType.status).toBe(415);

    expect(await counts()).toEqual(before);
    const rejected = await db()
      .selectFrom('rejected_messages')
      .select(['raw', 'reason'])
      .orderBy('received_at')
      .execute();
    expect(rejected.length - rejectedBefore).toBe(4);
    expect(rejected.map((r) => r.raw)).toContain('hello, this is not HL7');
    expect(rejected.find((r) => r.raw.includes('|six|'))?.reason).toContain('OBX-5');
  });

  test('a message of two orders for a new patient makes two reports of one patient', async () => {
    const response = await postHl7(lr.baseUrl, cred, twoOrders({ controlId: 'TWO-1', mrn: 'MRN-TWO' }));
    expect(response.status).toBe(200);
    const done = await waitForMessageStatus(
      lr.baseUrl,
      cred,
      response.headers.get('labrelay-message-id')!,
      'delivered',
    );
    expect(done.workflowIds).toHaveLength(2);
    expect(new Set(done.reports.map((r: { patientId: string }) => r.patientId)).size).toBe(1);
    const search = await getJson(
      lr.baseUrl,
      cred,
      '/v1/t/stmarys/fhir/DiagnosticReport?patient.identifier=MRN-TWO',
    );
    expect(search.body.total).toBe(2);
    expect(search.body.entry.filter((e: any) => e.resource.resourceType === 'Observation')).toHaveLength(3);
  });

  test('a retry with a renewed MSH-7 is a duplicate; a different message under a used control id is refused', async () => {
    const first = await postHl7(
      lr.baseUrl,
      cred,
      basicMetabolicPanel({ controlId: 'CTRL-REUSE', placer: 'ORD-REUSE' }),
    );
    const firstAck = await first.text();
    const resent = basicMetabolicPanel({ controlId: 'CTRL-REUSE', placer: 'ORD-REUSE' }).replace(
      '20261122083000-0500',
      '20261122083500-0500',
    );
    const retry = await postHl7(lr.baseUrl, cred, resent);
    expect(await retry.text()).toBe(firstAck);
    const before = await counts();
    const reused = await postHl7(
      lr.baseUrl,
      cred,
      basicMetabolicPanel({ controlId: 'CTRL-REUSE', placer: 'ORD-OTHER', potassium: '4.1' }),
    );
    expect(reused.status).toBe(422);
    expect(await reused.text()).toMatch(
      /\rMSA\|AE\|CTRL-REUSE\|control id CTRL-REUSE from this sender was already used for a different message/,
    );
    expect(await counts()).toEqual(before);
  });

  test('odd inputs are answered, never a 5xx', async () => {
    const nul = await postHl7(
      lr.baseUrl,
      cred,
      basicMetabolicPanel({ controlId: 'CTRL-NUL' }).replace('Doe', 'D\u0000oe'),
    );
    expect(nul.status).toBe(400);
    expect(await nul.text()).toContain('NUL byte');
    const hugeSetId = await postHl7(
      lr.baseUrl,
      cred,
      basicMetabolicPanel({ controlId: 'CTRL-SETID', placer: 'ORD-SETID' }).replace(
        'OBX|1|NM|2823-3',
        'OBX|9999999999|NM|2823-3',
      ),
    );
    expect(hugeSetId.status).toBe(200);
    const yearZero = await postHl7(
      lr.baseUrl,
      cred,
      basicMetabolicPanel({ controlId: 'CTRL-Y0', placer: 'ORD-Y0' }).replace(
        '20261122070000-0500|||||',
        '00000101|||||',
      ),
    );
    expect(yearZero.status).toBe(422);
    const longOrder = await postHl7(
      lr.baseUrl,
      cred,
      basicMetabolicPanel({ controlId: 'CTRL-LONG', placer: 'P'.repeat(1100) }),
    );
    expect(longOrder.status).toBe(422);
    expect(await longOrder.text()).toContain('longer than 199 characters');
    const badIp = await fetch(`${lr.baseUrl}/v1/admin/tenants/stmarys/connections`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'x',
        direction: 'inbound',
        format: 'hl7v2',
        environment: 'sandbox',
        mllp: { sendingFacility: 'X', allowIps: ['10.0.0.300'] },
      }),
    });
    expect(badIp.status).toBe(400);
    expect(((await badIp.json()) as any).error.details[0].path).toBe('mllp.allowIps.0');
  });

  test('messages are listed by control id, and the admin token is told apart from a tenant key', async () => {
    const listed = await getJson(lr.baseUrl, cred, '/v1/t/stmarys/messages?controlId=CTRL-1');
    expect(listed.body.messages).toHaveLength(1);
    expect(listed.body.messages[0]).toMatchObject({
      controlId: 'CTRL-1',
      status: 'delivered',
      messageType: 'ORU^R01',
    });
    const status = await getJson(lr.baseUrl, cred, listed.body.messages[0].href);
    expect(status.body.id).toBe(listed.body.messages[0].id);
    expect((await getJson(lr.baseUrl, cred, '/v1/t/stmarys/messages?status=lost')).status).toBe(400);

    const withAdminToken = await fetch(`${lr.baseUrl}/v1/t/stmarys/messages`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(withAdminToken.status).toBe(401);
    expect(((await withAdminToken.json()) as any).error.message).toContain(
      'tenant routes take a tenant API key',
    );

    const hugeAdmin = await fetch(`${lr.baseUrl}/v1/admin/tenants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ slug: 'huge', name: 'x'.repeat(300 * 1024) }),
    });
    expect(hugeAdmin.status).toBe(413);
  });

  test('the FHIR endpoint states its capabilities and honours lenient handling of unknown parameters', async () => {
    const metadata = await getJson(lr.baseUrl, cred, '/v1/t/stmarys/fhir/metadata');
    expect(metadata.body).toMatchObject({
      resourceType: 'CapabilityStatement',
      fhirVersion: '4.0.1',
      kind: 'instance',
    });
    expect(metadata.body.rest[0].resource.map((r: { type: string }) => r.type)).toEqual([
      'DiagnosticReport',
      'Observation',
      'Patient',
    ]);
    const strict = await getJson(
      lr.baseUrl,
      cred,
      '/v1/t/stmarys/fhir/DiagnosticReport?patient.identifier=MRN123456&foo=bar',
    );
    expect(strict.status).toBe(400);
    const lenient = await fetch(
      `${lr.baseUrl}/v1/t/stmarys/fhir/DiagnosticReport?patient.identifier=MRN123456&foo=bar`,
      {
        headers: { authorization: `Bearer ${cred.apiKey}`, prefer: 'handling=lenient' },
      },
    );
    expect(lenient.status).toBe(200);
    expect(((await lenient.json()) as any).total).toBeGreaterThan(0);
  });

  test('a revoked key stops working at once', async () => {
    const temp = await createTenantWithCredential(lr.baseUrl, 'stmarys');
    expect(
      (await postHl7(lr.baseUrl, temp, basicMetabolicPanel({ controlId: 'CTRL-REVOKE-1', placer: 'ORD-R1' })))
        .status,
    ).toBe(200);
    await admin(
      lr.baseUrl,
      'DELETE',
      `/v1/admin/tenants/stmarys/credentials/${temp.credentialId}`,
      undefined,
      204,
    );
    const after = await postHl7(
      lr.baseUrl,
      temp,
      basicMetabolicPanel({ controlId: 'CTRL-REVOKE-2', placer: 'ORD-R2' }),
    );
    expect(after.status).toBe(401);
    await admin(
      lr.baseUrl,
      'DELETE',
      `/v1/admin/tenants/stmarys/credentials/${temp.credentialId}`,
      undefined,
      404,
    );
  });

  test('credentials are stored only as hashes', async () => {
    const rows = await db()
      .selectFrom('credentials')
      .selectAll()
      .where('id', '=', cred.credentialId)
      .execute();
    const stored = JSON.stringify(rows);
    expect(stored).not.toContain(cred.apiKey);
    expect(stored).not.toContain(cred.signingSecret!);
  });
});

describe('tenant isolation and the audit trail', () => {
  let lr: TestLabRelay;
  let a: TenantCredential;
  let b: TenantCredential;
  let ids: { messageId: string; reportId: string; observationId: string; patientId: string };

  beforeAll(async () => {
    lr = await startTestLabRelay('pglite');
    a = await createTenantWithCredential(lr.baseUrl, 'tenant-a');
    b = await createTenantWithCredential(lr.baseUrl, 'tenant-b');
    const response = await postHl7(lr.baseUrl, a, basicMetabolicPanel({ controlId: 'ISO-1' }));
    const messageId = response.headers.get('labrelay-message-id')!;
    const done = await waitForMessageStatus(lr.baseUrl, a, messageId, 'delivered');
    const report = await getJson(lr.baseUrl, a, `/v1/t/tenant-a/fhir/DiagnosticReport/${done.reports[0].id}`);
    ids = {
      messageId,
      reportId: done.reports[0].id,
      observationId: report.body.result[0].reference.split('/')[1],
      patientId: done.reports[0].patientId,
    };
  });
  afterAll(() => lr?.stop());

  const routes = () => [
    `/messages/${ids.messageId}`,
    `/fhir/DiagnosticReport?patient=${ids.patientId}`,
    `/fhir/DiagnosticReport/${ids.reportId}`,
    `/fhir/Observation?patient=${ids.patientId}`,
    `/fhir/Observation/${ids.observationId}`,
    `/fhir/Patient?identifier=MRN123456`,
    `/fhir/Patient/${ids.patientId}`,
  ];

  test("another tenant's credential gets 403 on every tenant route, never data", async () => {
    for (const route of routes()) {
      const response = await fetch(`${lr.baseUrl}/v1/t/tenant-a${route}`, {
        headers: { authorization: `Bearer ${b.apiKey}` },
      });
      const text = await response.text();
      expect({ route, status: response.status }).toEqual({ route, status: 403 });
      expect(text).not.toContain(ids.patientId);
    }
    const post = await postHl7(
      lr.baseUrl,
      { ...b, slug: 'tenant-a' },
      basicMetabolicPanel({ controlId: 'ISO-2' }),
    );
    expect(post.status).toBe(403);
    for (const [route, type, body] of [
      ['/fhir', 'application/fhir+json', '{"resourceType":"Patient"}'],
      ['/results', 'application/json', '{}'],
      ['/csv', 'text/csv', 'patient_id,test_code,value\r\n1,2,3\r\n'],
      ['/documents', 'multipart/form-data; boundary=x', '--x--\r\n'],
    ]) {
      const response = await fetch(`${lr.baseUrl}/v1/t/tenant-a${route!}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${b.apiKey}`,
          'content-type': type!,
          'labrelay-signature': signature(b.signingSecret!, body!),
        },
        body,
      });
      await response.arrayBuffer();
      expect({ route, status: response.status }).toEqual({ route, status: 403 });
    }
    for (const route of ['/orders', `/orders/${ids.messageId}`, `/documents/${ids.messageId}`]) {
      const response = await fetch(`${lr.baseUrl}/v1/t/tenant-a${route}`, {
        headers: { authorization: `Bearer ${b.apiKey}` },
      });
      await response.arrayBuffer();
      expect({ route, status: response.status }).toEqual({ route, status: 403 });
    }
  });

  test("a tenant asking for another tenant's records under its own slug finds nothing", async () => {
    for (const route of routes()) {
      const response = await fetch(`${lr.baseUrl}/v1/t/tenant-b${route}`, {
        headers: { authorization: `Bearer ${b.apiKey}` },
      });
      const text = await response.text();
      if (route.includes('?')) {
        expect({ route, status: response.status, total: JSON.parse(text).total }).toEqual({
          route,
          status: 200,
          total: 0,
        });
      } else {
        expect({ route, status: response.status }).toEqual({ route, status: 404 });
      }
      expect(text).not.toContain('Doe');
    }
  });

  test('every step is in the hash-chained audit trail, and an edited event breaks the chain', async () => {
    const db = lr.labrelay.services!.db;
    const trail = async () =>
      (
        await db
          .selectFrom('audit_events')
          .select('action')
          .where('tenant_id', '=', a.tenantId)
          .orderBy('sequence')
          .execute()
      ).map((e) => e.action);
    // Two critical values and no provider known: each loop skips every step and ends open on the board.
    const actions = await eventually(
      async () => {
        const all = await trail();
        return all.filter((x) => x === 'critical.unacknowledged').length === 2 && all.includes('order.closed')
          ? all
          : undefined;
      },
      30_000,
      'both critical loops to end on the critical board',
    );
    // The order's steps in order; the critical-result loops run beside them.
    const orderSteps = actions.filter((x) => !x.startsWith('critical.'));
    expect(orderSteps).toEqual([
      'tenant.created',
      'credential.created',
      'message.received',
      'order.opened',
      'patient.created',
      'report.flagged',
      'order.final',
      'report.routed',
      'report.released',
      'order.delivered',
      'patient.not_notifiable',
      'order.closed',
    ]);
    expect(await verifyAuditChain(db, a.tenantId)).toBeNull();
    await db
      .updateTable('audit_events')
      .set({ actor: 'someone-else' })
      .where('tenant_id', '=', a.tenantId)
      .where('action', '=', 'message.received')
      .execute();
    expect(await verifyAuditChain(db, a.tenantId)).toBe(3);
  });
});

describe('API reference', () => {
  let lr: TestLabRelay;
  beforeAll(async () => {
    lr = await startTestLabRelay('pglite');
  });
  afterAll(() => lr?.stop());

  test('the OpenAPI document and the /docs page describe the contract routes', async () => {
    const spec = (await (await fetch(`${lr.baseUrl}/v1/openapi.json`)).json()) as any;
    expect(spec.openapi).toBe('3.1.0');
    for (const path of [
      '/v1/admin/tenants',
      '/v1/admin/tenants/{slug}/credentials',
      '/v1/admin/tenants/{slug}/credentials/{id}',
      '/v1/admin/tenants/{slug}/connections',
      '/v1/t/{slug}/hl7',
      '/v1/t/{slug}/messages/{id}',
      '/v1/t/{slug}/fhir/DiagnosticReport',
      '/v1/t/{slug}/fhir',
      '/v1/t/{slug}/results',
      '/v1/t/{slug}/csv',
      '/v1/t/{slug}/csv/columns',
      '/v1/t/{slug}/documents',
      '/v1/t/{slug}/orders',
    ]) {
      expect(Object.keys(spec.paths)).toContain(path);
    }
    // Every route the admin API serves for connections and users is in the reference, PATCH too.
    expect(Object.keys(spec.paths['/v1/admin/tenants/{slug}/connections/{id}'])).toEqual(
      expect.arrayContaining(['patch', 'delete']),
    );
    expect(spec.paths['/v1/t/{slug}/csv'].post.requestBody.content['text/csv'].schema.example).toMatch(
      /^patient_id,/,
    );
    const docs = await fetch(`${lr.baseUrl}/docs`);
    expect(docs.status).toBe(200);
    const page = await docs.text();
    expect(page).toContain('<code>/v1/t/{slug}/hl7</code>');
    expect(page).toContain('LabRelay-Signature');
  });
});
