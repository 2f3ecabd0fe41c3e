import { createHmac } from 'node:crypto';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import {
  createTenantWithCredential,
  eventually,
  getJson,
  postHl7,
  startTestLabRelay,
  waitForMessageStatus,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

/** Posts a body as a sender would: API key, and a signature over the exact bytes. */
async function post(
  lr: TestLabRelay,
  cred: TenantCredential,
  route: string,
  body: Uint8Array | string,
  contentType: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac('sha256', cred.signingSecret!).update(`${t}.`).update(bytes).digest('hex');
  return fetch(`${lr.baseUrl}/v1/t/${cred.slug}${route}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${cred.apiKey}`,
      'content-type': contentType,
      'labrelay-signature': `t=${t},v1=${v1}`,
      ...headers,
    },
    body: bytes,
  });
}

async function fhirReports(lr: TestLabRelay, cred: TenantCredential, identifier: string) {
  const { body } = await getJson(
    lr.baseUrl,
    cred,
    `/v1/t/${cred.slug}/fhir/DiagnosticReport?patient.identifier=${encodeURIComponent(identifier)}`,
  );
  return body as { total: number; entry?: { resource: any; search: { mode: string } }[] };
}

const ALL_SCOPES = [
  'results:write',
  'results:read',
  'patients:read',
  'patients:write',
  'orders:write',
  'tasks:write',
];

describe('inbound formats', () => {
  let lr: TestLabRelay;
  let cred: TenantCredential;
  beforeAll(async () => {
    lr = await startTestLabRelay('pglite');
    cred = await createTenantWithCredential(lr.baseUrl, 'formats', ALL_SCOPES);
  });
  afterAll(() => lr?.stop());

  test('the simple JSON result is stored, answered 202 with its message, and released to the FHIR API', async () => {
    const body = {
      patient: {
        externalPatientId: 'EXT-77',
        identifiers: [{ system: 'urn:oid:1.2.3.4', value: 'J-1001', type: 'MR' }],
        familyName: 'Jones',
        givenNames: ['Ann'],
        birthDate: '1975-03-02',
        sex: 'female',
      },
      order: { placerOrderNumber: 'JSON-ORD-1' },
      report: { code: { system: 'http://loinc.org', code: '24323-8', display: 'Metabolic panel' } },
      results: [
        {
          code: { system: 'http://loinc.org', code: '2951-2', display: 'Sodium' },
          value: 141,
          unit: 'mmol/L',
          referenceRange: { low: 135, high: 145 },
        },
        {
          code: { system: 'http://loinc.org', code: '2345-7', display: 'Glucose' },
          value: 180,
          unit: 'mg/dL',
          referenceRange: { low: 70, high: 99 },
        },
      ],
    };
    const response = await post(lr, cred, '/results', JSON.stringify(body), 'application/json');
    expect(response.status).toBe(202);
    const answer = (await response.json()) as { messageId: string; results: number };
    expect(answer.results).toBe(2);
    expect(response.headers.get('location')).toBe(`/v1/t/formats/messages/${answer.messageId}`);
    await waitForMessageStatus(lr.baseUrl, cred, answer.messageId, 'delivered');
    const bundle = await fhirReports(lr, cred, 'urn:oid:1.2.3.4|J-1001');
    expect(bundle.total).toBe(1);
    const glucose = bundle.entry!.find(
      (e) => e.resource.resourceType === 'Observation' && e.resource.code.coding[0].code === '2345-7',
    );
    expect(glucose?.resource.interpretation[0].coding[0].code).toBe('H');

    // The same body again: the same answer, nothing new.
    const again = await post(lr, cred, '/results', JSON.stringify(body), 'application/json');
    expect(again.status).toBe(202);
    expect(((await again.json()) as { messageId: string }).messageId).toBe(answer.messageId);

    // A later result with the same externalPatientId lands on the same patient, not a new one.
    const second = await post(
      lr,
      cred,
      '/results',
      JSON.stringify({
        ...body,
        patient: {
          externalPatientId: 'EXT-77',
          familyName: 'Jones',
          givenNames: ['Ann'],
          birthDate: '1975-03-02',
        },
        order: { placerOrderNumber: 'JSON-ORD-2' },
      }),
      'application/json',
    );
    const secondId = ((await second.json()) as { messageId: string }).messageId;
    const done = await waitForMessageStatus(lr.baseUrl, cred, secondId, 'delivered');
    const first = await getJson(lr.baseUrl, cred, `/v1/t/formats/messages/${answer.messageId}`);
    expect(done.reports[0].patientId).toBe(first.body.reports[0].patientId);
  });

  test('a bad JSON result is refused with the failing path, nothing stored', async () => {
    const response = await post(
      lr,
      cred,
      '/results',
      JSON.stringify({
        patient: {},
        report: { code: { code: 'X' } },
        results: [{ code: { code: 'Y' } }],
        extra: 1,
      }),
      'application/json',
    );
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { details: { path: string }[] } };
    const paths = body.error.details.map((d) => d.path);
    expect(paths).toContain('patient');
    expect(paths).toContain('results.0.value');
    const { body: list } = await getJson(lr.baseUrl, cred, '/v1/t/formats/messages?limit=500');
    expect(
      list.messages.every(
        (m: { format: string; status: string }) => m.format !== 'json' || m.status !== 'failed',
      ),
    ).toBe(true);
  });

  test('a FHIR transaction Bundle is answered with a transaction-response and its report reaches the result API', async () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      identifier: { system: 'urn:acme:bundles', value: 'B-1' },
      entry: [
        {
          fullUrl: 'urn:uuid:8c1c3a7e-0000-4000-8000-000000000001',
          resource: {
            resourceType: 'Patient',
            identifier: [
              {
                system: 'urn:oid:2.16.840.1.113883.19.5',
                value: 'F-555',
                type: { coding: [{ code: 'MR' }] },
              },
            ],
            name: [{ family: 'Fhir', given: ['Fiona'] }],
            birthDate: '1990-07-04',
            gender: 'female',
          },
          request: { method: 'POST', url: 'Patient' },
        },
        {
          fullUrl: 'urn:uuid:8c1c3a7e-0000-4000-8000-000000000002',
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: 'http://loinc.org', code: '2823-3', display: 'Potassium' }] },
            subject: { reference: 'urn:uuid:8c1c3a7e-0000-4000-8000-000000000001' },
            valueQuantity: {
              value: 4.2,
              unit: 'mmol/L',
              system: 'http://unitsofmeasure.org',
              code: 'mmol/L',
            },
            referenceRange: [{ low: { value: 3.5 }, high: { value: 5.1 } }],
          },
          request: { method: 'POST', url: 'Observation' },
        },
        {
          fullUrl: 'urn:uuid:8c1c3a7e-0000-4000-8000-000000000003',
          resource: {
            resourceType: 'DiagnosticReport',
            status: 'final',
            identifier: [{ system: 'urn:acme:reports', value: 'R-1' }],
            basedOn: [{ identifier: { system: 'urn:acme:orders', value: 'FHIR-ORD-1' } }],
            code: { coding: [{ system: 'http://loinc.org', code: '24323-8' }] },
            subject: { reference: 'urn:uuid:8c1c3a7e-0000-4000-8000-000000000001' },
            effectiveDateTime: '2026-11-22T07:00:00Z',
            result: [{ reference: 'urn:uuid:8c1c3a7e-0000-4000-8000-000000000002' }],
          },
          request: { method: 'POST', url: 'DiagnosticReport' },
        },
      ],
    };
    const response = await post(
      lr,
      cred,
      '/fhir',
      JSON.stringify(bundle),
      'application/fhir+json; fhirVersion=4.0',
    );
    expect(response.status).toBe(202);
    const answer = (await response.json()) as any;
    expect(answer.resourceType).toBe('Bundle');
    expect(answer.type).toBe('transaction-response');
    expect(answer.entry).toHaveLength(3);
    const messageId = response.headers.get('labrelay-message-id')!;
    await waitForMessageStatus(lr.baseUrl, cred, messageId, 'delivered');
    const reports = await fhirReports(lr, cred, 'urn:oid:2.16.840.1.113883.19.5|F-555');
    expect(reports.total).toBe(1);
    const potassium = reports.entry!.find((e) => e.resource.resourceType === 'Observation');
    expect(potassium?.resource.valueQuantity.value).toBe(4.2);

    // The same Bundle.identifier again: the stored answer, nothing new.
    const again = await post(lr, cred, '/fhir', JSON.stringify(bundle), 'application/fhir+json');
    expect(again.headers.get('labrelay-message-id')).toBe(messageId);
  });

  test('a FHIR body with structural problems gets an OperationOutcome naming each element; another version is refused', async () => {
    const response = await post(
      lr,
      cred,
      '/fhir',
      JSON.stringify({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ resource: { resourceType: 'DiagnosticReport', code: { coding: [{ code: 'x' }] } } }],
      }),
      'application/fhir+json',
    );
    expect([400, 422]).toContain(response.status);
    const outcome = (await response.json()) as any;
    expect(outcome.resourceType).toBe('OperationOutcome');
    const expressions = outcome.issue.flatMap((i: any) => i.expression ?? []);
    expect(expressions.some((e: string) => e.includes('entry[0]') && e.includes('status'))).toBe(true);
    expect(expressions.some((e: string) => e.includes('entry[0]') && e.includes('subject'))).toBe(true);

    const r5 = await post(
      lr,
      cred,
      '/fhir',
      JSON.stringify({ resourceType: 'Patient', name: [{ family: 'X' }] }),
      'application/fhir+json; fhirVersion=5.0',
    );
    expect(r5.status).toBe(422);
    expect(JSON.stringify(await r5.json())).toMatch(/4\.0/);
  });

  test('a CSV upload accepts its good rows, names each bad row, and shows its progress on the message', async () => {
    const csv =
      '\uFEFFpatient_id,patient_id_system,family_name,given_name,birth_date,order_number,test_code,test_system,test_name,value,unit,reference_range,collected_at\r\n' +
      'C-1,urn:csvlab,Stone,Sam,1960-01-01,CSV-ORD-1,2951-2,LN,Sodium,139,mmol/L,135-145,2026-11-22T06:00:00Z\r\n' +
      'C-1,urn:csvlab,Stone,Sam,1960-01-01,CSV-ORD-1,2823-3,LN,"Potassium, serum",4.0,mmol/L,3.5-5.1,2026-11-22T06:00:00Z\r\n' +
      'C-1,urn:csvlab,Stone,Sam,1960-01-01,CSV-ORD-1,,LN,Chloride,101,mmol/L,98-107,2026-11-22T06:00:00Z\r\n' +
      ',urn:csvlab,Nobody,,1960-01-01,CSV-ORD-1,2075-0,LN,Chloride,101,mmol/L,98-107,2026-11-22T06:00:00Z\r\n';
    const response = await post(lr, cred, '/csv', csv, 'text/csv');
    expect(response.status).toBe(202);
    const answer = (await response.json()) as any;
    expect(answer.accepted).toBe(2);
    expect(answer.rejected.map((r: { row: number }) => r.row)).toEqual([4, 5]);
    expect(answer.rejected[0].message).toMatch(/test_code/);
    const status = await getJson(lr.baseUrl, cred, `/v1/t/formats/messages/${answer.messageId}`);
    expect(status.body.progress).toMatchObject({ rowsRead: 4, accepted: 2, rejected: 2, done: true });
    await waitForMessageStatus(lr.baseUrl, cred, answer.messageId, 'delivered');
    const reports = await fhirReports(lr, cred, 'urn:csvlab|C-1');
    expect(reports.entry!.filter((e) => e.resource.resourceType === 'Observation')).toHaveLength(2);

    const again = await post(lr, cred, '/csv', csv, 'text/csv');
    expect(((await again.json()) as any).messageId).toBe(answer.messageId);

    const noHeader = await post(lr, cred, '/csv', 'a,b\r\n1,2\r\n', 'text/csv');
    expect(noHeader.status).toBe(400);
    expect(((await noHeader.json()) as any).error.message).toMatch(/test_code/);
  });

  test('a PDF upload is stored, its text read, and a review task opened; an unreadable one is kept for manual processing', async () => {
    const doc = await PDFDocument.create();
    const font = await doc.embedFont(StandardFonts.Helvetica);
    const page = doc.addPage();
    page.drawText('Patient: Paper, Pat', { x: 50, y: 760, font, size: 12 });
    page.drawText('DOB: 1970-05-05', { x: 50, y: 740, font, size: 12 });
    page.drawText('Sodium 138 mmol/L 135-145', { x: 50, y: 700, font, size: 12 });
    page.drawText('Potassium 4.4 mmol/L 3.5-5.1', { x: 50, y: 680, font, size: 12 });
    const pdf = await doc.save();
    const form = new FormData();
    form.set('file', new Blob([pdf], { type: 'application/pdf' }), 'report.pdf');
    form.set('mrn', 'PDF-1');
    form.set('mrnSystem', 'urn:pdflab');
    form.set('category', 'blood-work');
    const encoded = new Response(form);
    const body = new Uint8Array(await encoded.arrayBuffer());
    const response = await post(lr, cred, '/documents', body, encoded.headers.get('content-type')!);
    expect(response.status).toBe(202);
    const answer = (await response.json()) as any;
    expect(answer.extraction).toBe('extracted');
    expect(answer.results).toBe(2);
    const task = await eventually(
      async () => {
        const { body: tasks } = await getJson(lr.baseUrl, cred, '/v1/t/formats/tasks?status=open');
        return tasks.tasks.find(
          (t: any) => t.kind === 'review_result' && /uploaded document \(confidence \d+%\)/.test(t.reason),
        );
      },
      30_000,
      'a review task for the PDF',
    );
    // The reviewer sees what was read, beside the document.
    const { body: detail } = await getJson(lr.baseUrl, cred, `/v1/t/formats/tasks/${task.id}`);
    expect(JSON.stringify(detail)).toContain('2951-2');
    // The reviewer opens the PDF itself: served as sent, inline, without script.
    const { body: status } = await getJson(lr.baseUrl, cred, `/v1/t/formats/messages/${answer.messageId}`);
    expect(status.documents).toHaveLength(1);
    const file = await fetch(`${lr.baseUrl}/v1/t/formats/documents/${status.documents[0].id}`, {
      headers: { authorization: `Bearer ${cred.apiKey}` },
    });
    expect(file.headers.get('content-type')).toBe('application/pdf');
    expect(file.headers.get('content-security-policy')).toContain('sandbox');
    expect(Buffer.from(await file.arrayBuffer()).equals(Buffer.from(pdf))).toBe(true);

    const junk = new FormData();
    junk.set(
      'file',
      new Blob([Buffer.from('this is not a pdf at all')], { type: 'application/pdf' }),
      'scan.pdf',
    );
    junk.set('externalPatientId', 'EXT-77');
    const junkEncoded = new Response(junk);
    const junkResponse = await post(
      lr,
      cred,
      '/documents',
      new Uint8Array(await junkEncoded.arrayBuffer()),
      junkEncoded.headers.get('content-type')!,
    );
    expect(junkResponse.status).toBe(202);
    const junkAnswer = (await junkResponse.json()) as any;
    expect(junkAnswer.extraction).toBe('unreadable');
    await eventually(
      async () => {
        const { body: tasks } = await getJson(lr.baseUrl, cred, '/v1/t/formats/tasks?status=open');
        return tasks.tasks.find(
          (t: any) => t.kind === 'review_result' && /could not be read: process it by hand/.test(t.reason),
        );
      },
      30_000,
      'a manual-processing task',
    );
  });

  test('an ORM^O01 places orders that later results join; a cancellation closes its order', async () => {
    const orm = [
      'MSH|^~\\&|EPIC|STMARYS|LABRELAY|ACME_LAB|20261122060000||ORM^O01|ORM-1|P|2.5.1',
      'PID|1||ORM-MRN^^^STMARYS^MR||Order^Olga||19800101|F',
      'ORC|NW|ORM-ORD-1^STMARYS||||||||||1234^Welby^Marcus',
      'OBR|1|ORM-ORD-1^STMARYS||2823-3^Potassium^LN|||20261122055000',
      'ORC|NW|ORM-ORD-2^STMARYS||||||||||1234^Welby^Marcus',
      'OBR|2|ORM-ORD-2^STMARYS||2951-2^Sodium^LN|||20261122055000',
    ].join('\r');
    const placed = await postHl7(lr.baseUrl, cred, orm);
    expect(placed.status).toBe(200);
    expect(await placed.text()).toMatch(/MSA\|AA\|ORM-1/);

    const cancel = orm
      .replace('ORM-1', 'ORM-2')
      .split('\r')
      .filter((s) => !s.includes('ORM-ORD-1'))
      .map((s) => s.replace('ORC|NW', 'ORC|CA'))
      .join('\r');
    expect((await postHl7(lr.baseUrl, cred, cancel)).status).toBe(200);

    const oru = [
      'MSH|^~\\&|ACME_LIS|ACME_LAB|LABRELAY|STMARYS|20261122083000||ORU^R01|ORU-ORM-1|P|2.5.1',
      'PID|1||ORM-MRN^^^STMARYS^MR||Order^Olga||19800101|F',
      'OBR|1|ORM-ORD-1^STMARYS|F-1|2823-3^Potassium^LN|||20261122070000|||||||||1234^Welby^Marcus||||||20261122080000|||F',
      'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F',
    ].join('\r');
    const result = await postHl7(lr.baseUrl, cred, oru);
    const messageId = result.headers.get('labrelay-message-id')!;
    await waitForMessageStatus(lr.baseUrl, cred, messageId, 'delivered');
    const orders = await eventually(
      async () => {
        const { body } = await getJson(lr.baseUrl, cred, '/v1/t/formats/orders?limit=50');
        const one = body.orders?.find((o: any) => o.placerOrderNumber === 'ORM-ORD-1');
        const two = body.orders?.find((o: any) => o.placerOrderNumber === 'ORM-ORD-2');
        return one?.status === 'closed' && two?.status === 'cancelled' ? { one, two } : undefined;
      },
      30_000,
      'the ordered order closed and the cancelled one cancelled',
    );
    expect(orders.one.history.map((h: any) => h.status)).toEqual(
      expect.arrayContaining(['ordered', 'final', 'closed']),
    );
  });

  test('a burst committed together: each message answered after its commit, a copy answered the same, one bad message refused alone', async () => {
    const messages = Array.from({ length: 24 }, (_, i) =>
      basicMetabolicPanel({ controlId: `BURST-${i}`, placer: `BURST-ORD-${i}`, mrn: `BURST-${i}` }),
    );
    // A text value with an escaped NUL: the parser lets it through, the database refuses it.
    const poisoned =
      basicMetabolicPanel({ controlId: 'BURST-BAD', placer: 'BURST-ORD-BAD' }) +
      '\rOBX|9|ST|X^Note^L||a\\X00\\b||||||F';
    const responses = await Promise.all(
      [...messages, messages[3]!, poisoned].map((m) => postHl7(lr.baseUrl, cred, m)),
    );
    const texts = await Promise.all(responses.map((r) => r.text()));
    for (let i = 0; i < 24; i++) {
      expect(responses[i]!.status).toBe(200);
      expect(texts[i]).toMatch(new RegExp(`MSA\\|AA\\|BURST-${i}\\|`));
    }
    // The copy gets the very answer the original got.
    expect(responses[24]!.headers.get('labrelay-message-id')).toBe(
      responses[3]!.headers.get('labrelay-message-id'),
    );
    expect(texts[24]).toBe(texts[3]);
    expect(responses[25]!.status).toBe(422);
    expect(texts[25]).toMatch(/MSA\|AE\|BURST-BAD/);
    const { body } = await getJson(lr.baseUrl, cred, '/v1/t/formats/messages?limit=500');
    const ids = body.messages
      .filter((m: any) => String(m.controlId).startsWith('BURST-'))
      .map((m: any) => m.controlId);
    expect(ids.sort()).toEqual(messages.map((_, i) => `BURST-${i}`).sort());
  });
});
