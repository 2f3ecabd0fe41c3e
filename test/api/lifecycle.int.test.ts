import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  admin,
  createTenantWithCredential,
  eventually,
  getJson,
  postHl7,
  signature,
  startTestLabRelay,
  testEnv,
  waitForMessageStatus,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';
import { startSmtpServer } from '../support/smtp.ts';

interface Obx {
  code: string;
  name: string;
  value: string;
  unit: string;
  range: string;
  flag?: string;
}

/** An ORU^R01 for one patient and one order, built the way an LIS writes it. */
function oru(o: {
  controlId: string;
  mrn: string;
  family?: string;
  given?: string;
  dob?: string;
  email?: string;
  placer: string;
  filler?: string;
  test?: [string, string];
  status?: string;
  observed?: string;
  obx: Obx[];
}): string {
  const [testCode, testName] = o.test ?? ['57698-3', 'Lipid panel'];
  const observed = o.observed ?? '20261122070000';
  return [
    `MSH|^~\\&|ACME_LIS|ACME_LAB|LABRELAY|STMARYS|20261122083000||ORU^R01|${o.controlId}|P|2.5.1`,
    `PID|1||${o.mrn}^^^STMARYS^MR||${o.family ?? `Roe${o.mrn.replace(/\W/g, '')}`}^${o.given ?? 'Richard'}||${o.dob ?? '19650304'}|M|||||${o.email ? `^NET^Internet^${o.email}` : ''}`,
    `OBR|1|${o.placer}|${o.filler ?? `F-${o.placer}`}|${testCode}^${testName}^LN|||${observed}|||||||||||||||20261122080000|||${o.status ?? 'F'}`,
    ...o.obx.map(
      (x, i) =>
        `OBX|${i + 1}|NM|${x.code}^${x.name}^LN||${x.value}|${x.unit}|${x.range}|${x.flag ?? ''}|||${o.status ?? 'F'}`,
    ),
  ].join('\r');
}

const cholesterol = (value: string): Obx => ({
  code: '2093-3',
  name: 'Cholesterol',
  value,
  unit: 'mg/dL',
  range: '<200',
});

/**
 * Orders through their lifecycle on a real Temporal server, a real database and a real SMTP server:
 * routing rules deciding review, review tasks worked through the API, patient matching by a person,
 * duplicates and corrections, patient e-mail in plain language.
 */
describe('order lifecycle', () => {
  let lr: TestLabRelay;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let cred: TenantCredential;

  beforeAll(async () => {
    smtp = await startSmtpServer();
    lr = await startTestLabRelay('pglite', { env: await testEnv('pglite', { SMTP_URL: smtp.url }) });
    cred = await createTenantWithCredential(lr.baseUrl, 'life', [
      'results:write',
      'results:read',
      'patients:read',
      'tasks:write',
    ]);
  }, 60_000);
  afterAll(async () => {
    await lr?.stop();
    await smtp?.close();
  });

  async function send(body: string) {
    const response = await postHl7(lr.baseUrl, cred, body);
    expect(response.status, await response.clone().text()).toBe(200);
    return response.headers.get('labrelay-message-id')!;
  }

  async function call(method: string, pathname: string, body?: unknown) {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const response = await fetch(`${lr.baseUrl}${pathname}`, {
      method,
      headers: {
        authorization: `Bearer ${cred.apiKey}`,
        ...(text !== undefined
          ? { 'content-type': 'application/json', 'labrelay-signature': signature(cred.signingSecret!, text) }
          : {}),
      },
      ...(text !== undefined ? { body: text } : {}),
    });
    const raw = await response.text();
    return { status: response.status, body: raw ? JSON.parse(raw) : null };
  }

  const openTask = (kind: string, reportId: string) =>
    eventually(async () => {
      const { body } = await getJson(
        lr.baseUrl,
        cred,
        `/v1/t/life/tasks?status=open&kind=${kind}&reportId=${reportId}`,
      );
      return body.tasks[0];
    });

  test('the routing rules send lipid panels to review; a reviewer claims the task and corrects a value; the corrected result is released with the received value kept', async () => {
    const rules = await admin<{ version: number }>(
      lr.baseUrl,
      'POST',
      '/v1/admin/tenants/life/routing-rules',
      {
        rules: { reviewRequired: { '==': [{ var: 'test.code' }, '57698-3'] } },
        note: 'lipids are reviewed by a person',
      },
    );
    expect(rules.version).toBe(1);

    const messageId = await send(
      oru({ controlId: 'LIFE-1', mrn: 'MRN-L1', placer: 'ORD-L1', obx: [cholesterol('2120')] }),
    );
    const held = await waitForMessageStatus(lr.baseUrl, cred, messageId, 'needs_review');
    const reportId: string = held.reports[0].id;
    const task = await openTask('review_result', reportId);
    expect(task).toMatchObject({
      kind: 'review_result',
      reason: 'the routing rules require review',
      priority: 0,
    });

    const audit = await lr.labrelay
      .services!.db.selectFrom('audit_events')
      .select('details')
      .where('action', '=', 'report.routed')
      .where('subject', '=', `report/${reportId}`)
      .executeTakeFirstOrThrow();
    expect(audit.details).toMatchObject({ ruleVersion: 1, reviewRequired: true });

    // Claimed by one reviewer, it cannot be completed by another.
    expect(
      (await call('POST', `/v1/t/life/tasks/${task.id}/claim`, { by: 'dr.a@acme.example' })).body,
    ).toMatchObject({
      status: 'claimed',
      assignee: 'dr.a@acme.example',
    });
    // The task shows the reviewer what they decide on: the report's results as received and flagged.
    const { body: detail } = await getJson(lr.baseUrl, cred, `/v1/t/life/tasks/${task.id}`);
    expect(detail.report.observations).toMatchObject([
      { code: { code: '2093-3' }, value: 2120, unit: 'mg/dL', interpretation: 'H' },
    ]);
    const observations = detail.report.observations as { id: string }[];
    const correction = {
      decision: 'correct',
      corrections: [{ observationId: observations[0]!.id, value: 212 }],
      interpretation: 'Mildly raised; recheck fasting in 3 months.',
      by: 'dr.a@acme.example',
    };
    const stolen = await call('POST', `/v1/t/life/tasks/${task.id}/complete`, {
      ...correction,
      by: 'dr.b@acme.example',
    });
    expect(stolen.status).toBe(409);
    const badCorrection = await call('POST', `/v1/t/life/tasks/${task.id}/complete`, {
      ...correction,
      corrections: [{ observationId: '00000000-0000-4000-8000-000000000000', value: 1 }],
    });
    expect(badCorrection.status).toBe(400);
    const textForNumber = await call('POST', `/v1/t/life/tasks/${task.id}/complete`, {
      ...correction,
      corrections: [{ observationId: observations[0]!.id, value: 'abc' }],
    });
    expect(textForNumber.status).toBe(400);
    expect(textForNumber.body.error.message).toContain('numeric');
    // Handed over to dr.b, who completes it; dr.a no longer can.
    const handover = await call('POST', `/v1/t/life/tasks/${task.id}/reassign`, {
      assignee: 'dr.b@acme.example',
      by: 'dr.a@acme.example',
    });
    expect(handover.status).toBe(200);
    expect((await call('POST', `/v1/t/life/tasks/${task.id}/complete`, correction)).status).toBe(409);
    const done = await call('POST', `/v1/t/life/tasks/${task.id}/complete`, {
      ...correction,
      by: 'dr.b@acme.example',
    });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: 'completed', decision: { decision: 'correct' } });
    expect((await call('POST', `/v1/t/life/tasks/${task.id}/complete`, correction)).status).toBe(409);

    await waitForMessageStatus(lr.baseUrl, cred, messageId, 'delivered');
    const { body: bundle } = await getJson(
      lr.baseUrl,
      cred,
      `/v1/t/life/fhir/Observation?patient.identifier=MRN-L1`,
    );
    expect(bundle.entry.map((e: any) => e.resource.valueQuantity.value)).toEqual([212]);
    const corrected = await lr.labrelay
      .services!.db.selectFrom('observations')
      .select(['corrected_from', 'interpretation'])
      .where('id', '=', observations[0]!.id)
      .executeTakeFirstOrThrow();
    expect(corrected.corrected_from).toMatchObject({ numeric: 2120, by: expect.stringContaining('dr.b') });
    expect(corrected.interpretation).toBe('H');
  });

  test('a rule that fails to evaluate opens review instead of skipping the result; invalid rules are refused with the failing path; a rollback is a new version', async () => {
    const refused = await fetch(`${lr.baseUrl}/v1/admin/tenants/life/routing-rules`, {
      method: 'POST',
      headers: { authorization: 'Bearer test-admin-token-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({ rules: { reviewRequired: { and: [true, { log: 1 }] } } }),
    });
    expect(refused.status).toBe(400);
    const problem = (await refused.json()) as { error: { details: { path: string }[] } };
    expect(problem.error.details[0]!.path).toBe('reviewRequired.and[1]');

    // A rule that can never give a usable decision is refused when it is saved.
    const asap = await fetch(`${lr.baseUrl}/v1/admin/tenants/life/routing-rules`, {
      method: 'POST',
      headers: { authorization: 'Bearer test-admin-token-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({ rules: { priority: 'asap' } }),
    });
    expect(asap.status).toBe(400);
    // Gives a number instead of true/false, but only for a CBC: saved, and a person decides.
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/life/routing-rules', {
      rules: { reviewRequired: { if: [{ '==': [{ var: 'test.code' }, '58410-2'] }, 3, false] } },
    });
    const messageId = await send(
      oru({
        controlId: 'LIFE-2',
        mrn: 'MRN-L2',
        placer: 'ORD-L2',
        test: ['58410-2', 'CBC panel'],
        obx: [{ code: '718-7', name: 'Hemoglobin', value: '14.1', unit: 'g/dL', range: '13.5-17.5' }],
      }),
    );
    const held = await waitForMessageStatus(lr.baseUrl, cred, messageId, 'needs_review');
    const task = await openTask('review_result', held.reports[0].id);
    expect(task.reason).toMatch(/the routing rules failed: .*reviewRequired/);
    expect((await call('POST', `/v1/t/life/tasks/${task.id}/complete`, { decision: 'approve' })).status).toBe(
      200,
    );
    await waitForMessageStatus(lr.baseUrl, cred, messageId, 'delivered');

    const rolledBack = await admin<{ version: number; note: string }>(
      lr.baseUrl,
      'POST',
      '/v1/admin/tenants/life/routing-rules/rollback',
      { version: 1 },
    );
    expect(rolledBack).toMatchObject({ version: 3, note: 'rollback to version 1' });
    const versions = await admin<{ versions: { version: number }[] }>(
      lr.baseUrl,
      'GET',
      '/v1/admin/tenants/life/routing-rules',
      undefined,
      200,
    );
    expect(versions.versions.map((v) => v.version)).toEqual([3, 2, 1]);
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/life/routing-rules', { rules: {}, note: 'no review' });
  });

  test('a patient with an e-mail address is told in plain language when results are available and when an interpretation is added; one without is recorded as not notifiable', async () => {
    const messageId = await send(
      oru({
        controlId: 'LIFE-3',
        mrn: 'MRN-L3',
        family: 'Patel',
        given: 'Asha',
        email: 'asha.patel@example.org',
        placer: 'ORD-L3',
        obx: [cholesterol('245')],
      }),
    );
    const done = await waitForMessageStatus(lr.baseUrl, cred, messageId, 'delivered');
    const [mail] = await eventually(async () => {
      const got = smtp.to('asha.patel@example.org');
      return got.length > 0 ? got : undefined;
    });
    expect(mail!.subject).toBe('Your test results are available');
    expect(mail!.text).toContain('Cholesterol');
    expect(mail!.text).toContain('above the usual range');
    expect(mail!.text).not.toMatch(/2093-3|\bH\b/);

    expect(
      (
        await call('POST', `/v1/t/life/reports/${done.reports[0].id}/interpretation`, {
          text: 'Please book a follow-up to talk about diet.',
          by: 'dr.a@acme.example',
        })
      ).status,
    ).toBe(204);
    const second = await eventually(async () => smtp.to('asha.patel@example.org')[1]);
    expect(second.subject).toBe('A note from your care team about your test results');
    expect(second.text).toContain('Please book a follow-up to talk about diet.');

    const silent = await send(
      oru({ controlId: 'LIFE-4', mrn: 'MRN-L4', placer: 'ORD-L4', obx: [cholesterol('150')] }),
    );
    const silentDone = await waitForMessageStatus(lr.baseUrl, cred, silent, 'delivered');
    const record = await eventually(async () =>
      lr.labrelay
        .services!.db.selectFrom('patient_notifications')
        .selectAll()
        .where('report_id', '=', silentDone.reports[0].id)
        .executeTakeFirst(),
    );
    expect(record).toMatchObject({
      kind: 'available',
      status: 'not_notifiable',
      reason: 'the patient has no e-mail address',
    });
  });

  test('two patients share a name and birth date: a new identifier with those demographics goes to a person, who picks one; it never guesses', async () => {
    const twin = (i: number, mrn: string) =>
      send(
        oru({
          controlId: `TWIN-${i}`,
          mrn,
          family: 'Nguyen',
          given: 'Linh',
          dob: '19900101',
          placer: `ORD-TWIN-${i}`,
          obx: [cholesterol('180')],
        }),
      );
    await waitForMessageStatus(lr.baseUrl, cred, await twin(0, 'MRN-TWIN-A'), 'delivered');
    // Same name and birth date, but another number from the same hospital: a person decides (a new patient).
    const secondId = await twin(1, 'MRN-TWIN-B');
    const second = await waitForMessageStatus(lr.baseUrl, cred, secondId, 'needs_review');
    const secondTask = await openTask('match_patient', second.reports[0].id);
    expect(secondTask.payload.candidates.map((c: any) => c.identifiers[0].value)).toEqual(['MRN-TWIN-A']);
    expect(
      (await call('POST', `/v1/t/life/tasks/${secondTask.id}/complete`, { decision: 'new' })).status,
    ).toBe(200);
    await waitForMessageStatus(lr.baseUrl, cred, secondId, 'delivered');

    const messageId = await send(
      oru({
        controlId: 'TWIN-X',
        mrn: 'MRN-TWIN-NEW',
        family: 'NGUYEN',
        given: 'Linh',
        dob: '19900101',
        placer: 'ORD-TWIN-X',
        obx: [cholesterol('190')],
      }),
    );
    const held = await waitForMessageStatus(lr.baseUrl, cred, messageId, 'needs_review');
    const task = await openTask('match_patient', held.reports[0].id);
    expect(task.payload.candidates.map((c: any) => c.identifiers[0].value).sort()).toEqual([
      'MRN-TWIN-A',
      'MRN-TWIN-B',
    ]);
    const chosen = task.payload.candidates.find((c: any) => c.identifiers[0].value === 'MRN-TWIN-B');

    const notOurs = await call('POST', `/v1/t/life/tasks/${task.id}/complete`, {
      decision: 'match',
      patientId: '00000000-0000-4000-8000-000000000000',
    });
    expect(notOurs.status).toBe(400);
    expect(
      (
        await call('POST', `/v1/t/life/tasks/${task.id}/complete`, {
          decision: 'match',
          patientId: chosen.id,
        })
      ).status,
    ).toBe(200);
    const done = await waitForMessageStatus(lr.baseUrl, cred, messageId, 'delivered');
    expect(done.reports[0].patientId).toBe(chosen.id);
    const { body } = await getJson(lr.baseUrl, cred, '/v1/t/life/fhir/Patient?identifier=MRN-TWIN-NEW');
    expect(body.entry[0].resource.id).toBe(chosen.id);
  });

  test('the same report sent again under a new control id is a recorded duplicate; a corrected report keeps the first as history', async () => {
    const first = await send(
      oru({ controlId: 'DUP-1', mrn: 'MRN-D1', placer: 'ORD-D1', obx: [cholesterol('199')] }),
    );
    await waitForMessageStatus(lr.baseUrl, cred, first, 'delivered');
    const again = await send(
      oru({ controlId: 'DUP-2', mrn: 'MRN-D1', placer: 'ORD-D1', obx: [cholesterol('199')] }),
    );
    const dup = await eventually(async () => {
      const { body } = await getJson(lr.baseUrl, cred, `/v1/t/life/messages/${again}`);
      return body.reports[0].stage === 'duplicate' ? body : undefined;
    });
    expect(dup.status).toBe('delivered');
    expect(dup.statusDetail).toMatch(/^a duplicate of report /);

    const corrected = await send(
      oru({ controlId: 'DUP-3', mrn: 'MRN-D1', placer: 'ORD-D1', status: 'C', obx: [cholesterol('201')] }),
    );
    await waitForMessageStatus(lr.baseUrl, cred, corrected, 'delivered');
    const { body } = await getJson(
      lr.baseUrl,
      cred,
      '/v1/t/life/fhir/DiagnosticReport?patient.identifier=MRN-D1',
    );
    const reports = body.entry.filter((e: any) => e.resource.resourceType === 'DiagnosticReport');
    expect(reports.map((e: any) => e.resource.status).sort()).toEqual(['corrected', 'final']);
    const order = await lr.labrelay
      .services!.db.selectFrom('orders')
      .select(['status', 'history'])
      .where('order_key', '=', 'ACME_LAB|P|ORD-D1')
      .executeTakeFirstOrThrow();
    expect(order.history.map((h) => h.status)).toEqual(
      expect.arrayContaining(['ordered', 'final', 'delivered', 'closed', 'corrected']),
    );
  });

  test('settings that cannot be right are refused: an unknown unit, a low limit above the high one, an analyte twice', async () => {
    for (const settings of [
      { criticalTable: [{ loinc: '2951-2', name: 'Sodium', low: 120, high: 160, unit: 'bananas' }] },
      { criticalTable: [{ loinc: '2951-2', name: 'Sodium', low: 160, high: 120, unit: 'mmol/L' }] },
      {
        criticalTable: [
          { loinc: '2951-2', name: 'Sodium', low: 120, high: 160, unit: 'mmol/L' },
          { loinc: '2951-2', name: 'Sodium', low: 110, high: 170, unit: 'mmol/L' },
        ],
      },
      { referenceRanges: [{ code: '2951-2', low: 145, high: 135, unit: 'mmol/L' }] },
    ]) {
      const response = await fetch(`${lr.baseUrl}/v1/admin/tenants/life`, {
        method: 'PATCH',
        headers: { authorization: 'Bearer test-admin-token-0123456789', 'content-type': 'application/json' },
        body: JSON.stringify({ settings }),
      });
      expect({ settings, status: response.status }).toEqual({ settings, status: 400 });
    }
  });

  test("a result that arrives without a reference range is flagged against the tenant's default range, converted by UCUM", async () => {
    await admin(
      lr.baseUrl,
      'PATCH',
      '/v1/admin/tenants/life',
      { settings: { referenceRanges: [{ code: '2093-3', low: null, high: 2.0, unit: 'g/L' }] } },
      200,
    );
    const messageId = await send(
      oru({
        controlId: 'RANGE-1',
        mrn: 'MRN-R1',
        placer: 'ORD-R1',
        obx: [{ ...cholesterol('245'), range: '' }],
      }),
    );
    await waitForMessageStatus(lr.baseUrl, cred, messageId, 'delivered');
    const { body } = await getJson(lr.baseUrl, cred, '/v1/t/life/fhir/Observation?patient.identifier=MRN-R1');
    const observation = body.entry[0].resource;
    expect(observation.interpretation[0].coding[0].code).toBe('H');
    const flagged = await lr.labrelay
      .services!.db.selectFrom('observations')
      .select('flag_reasons')
      .where('id', '=', observation.id)
      .executeTakeFirstOrThrow();
    expect(flagged.flag_reasons!.join(' ')).toContain('tenant default');
  });

  test('a completion without a decision says which decisions exist; a tenant is read with its settings', async () => {
    const empty = await call('POST', '/v1/t/life/tasks/00000000-0000-4000-8000-000000000000/complete', {});
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toContain('decision is required: approve, correct or reject');
    const tenant = await admin<{ slug: string; settings: Record<string, unknown> }>(
      lr.baseUrl,
      'GET',
      '/v1/admin/tenants/life',
      undefined,
      200,
    );
    expect(tenant.slug).toBe('life');
    expect(tenant.settings).toHaveProperty('referenceRanges');
  });

  test("another tenant's key sees none of these tasks or critical results", async () => {
    const other = await createTenantWithCredential(lr.baseUrl, 'life-other', ['tasks:write', 'results:read']);
    const tasks = await fetch(`${lr.baseUrl}/v1/t/life/tasks`, {
      headers: { authorization: `Bearer ${other.apiKey}` },
    });
    expect(tasks.status).toBe(403);
    const own = await getJson(lr.baseUrl, other, '/v1/t/life-other/tasks');
    expect(own.body.tasks).toEqual([]);
    const readOnly = await createTenantWithCredential(lr.baseUrl, 'life', ['results:read']);
    const noScope = await fetch(`${lr.baseUrl}/v1/t/life/tasks`, {
      headers: { authorization: `Bearer ${readOnly.apiKey}` },
    });
    expect(noScope.status).toBe(403);
  });
});
