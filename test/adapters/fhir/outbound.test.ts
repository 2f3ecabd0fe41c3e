import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { deliveryOutcome, toDeliveryBundle } from '../../../adapters/fhir/outbound.ts';
import {
  correctedPanel,
  GLUCOSE_ID,
  PATIENT_ID,
  POTASSIUM_ID,
  releasedPanel,
  REPORT_ID,
  SODIUM_ID,
} from '../../fixtures/released-result.ts';
import { r4Problems, startFhirServer, type FhirTestServer } from '../../support/fhir-server.ts';

const OURS = 'urn%3Alabrelay%3Agenhosp';

describe('toDeliveryBundle', () => {
  test('a valid R4 transaction: the patient by conditional create on the hospital MRN, the report and results by conditional update on our identifiers', () => {
    const bundle = toDeliveryBundle(releasedPanel());
    expect(r4Problems(bundle)).toEqual([]);
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'transaction' });
    expect(bundle.entry.map((e) => e.fullUrl)).toEqual(
      [PATIENT_ID, REPORT_ID, POTASSIUM_ID, SODIUM_ID, GLUCOSE_ID].map((id) => `urn:uuid:${id}`),
    );
    expect(bundle.entry.map((e) => e.request)).toEqual([
      { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=GENHOSP|MRN123456' },
      { method: 'PUT', url: `DiagnosticReport?identifier=${OURS}%2Freport|${REPORT_ID}` },
      ...['2823-3', '2951-2', '2345-7'].map((loinc) => ({
        method: 'PUT',
        url: `Observation?identifier=${OURS}%2Fobservation|${REPORT_ID}%2F${loinc}`,
      })),
    ]);
    const [patient, report, ...observations] = bundle.entry.map((e) => e.resource as any);
    // The server assigns ids and versions; ours travel as identifiers, beside the hospital's MRN.
    for (const resource of [patient, report, ...observations]) {
      expect(resource).not.toHaveProperty('id');
      expect(resource).not.toHaveProperty('meta');
    }
    expect(patient.identifier.map((i: any) => [i.system, i.value])).toEqual([
      ['GENHOSP', 'MRN123456'],
      ['urn:labrelay:genhosp/patient', PATIENT_ID],
    ]);
    expect(report.identifier).toContainEqual({ system: 'urn:labrelay:genhosp/report', value: REPORT_ID });
    expect(observations[0].identifier).toEqual([
      { system: 'urn:labrelay:genhosp/observation', value: `${REPORT_ID}/2823-3` },
    ]);
    // References point inside the Bundle, never at LabRelay's own ids.
    expect(report.subject).toEqual({ reference: `urn:uuid:${PATIENT_ID}` });
    expect(report.result.map((r: any) => r.reference)).toEqual(bundle.entry.slice(2).map((e) => e.fullUrl));
    for (const o of observations) expect(o.subject).toEqual({ reference: `urn:uuid:${PATIENT_ID}` });
    expect(report.conclusion).toBe('Called to Dr Welby | read back ^ confirmed & noted');
    expect(observations[0].valueQuantity).toMatchObject({ value: 6.8, code: 'mmol/L' });
    expect(observations[0].interpretation[0].coding[0].code).toBe('HH');
  });

  test('the same result twice gives the same Bundle; a correction goes to the same conditional URLs', () => {
    expect(toDeliveryBundle(releasedPanel())).toEqual(toDeliveryBundle(releasedPanel()));
    const first = toDeliveryBundle(releasedPanel());
    const correction = toDeliveryBundle(correctedPanel());
    expect(correction.entry.map((e) => e.request)).toEqual(first.entry.map((e) => e.request));
    expect(correction.entry[1]!.resource).toMatchObject({
      status: 'corrected',
      conclusion: 'Potassium re-run on a fresh sample: 5.9 mmol/L',
    });
  });

  test('a patient known only by identifiers without a system is matched on LabRelay’s own identifier', () => {
    const result = releasedPanel();
    result.patient = { ...result.patient!, identifiers: [{ system: '', value: 'MRN123456', type: 'MR' }] };
    const bundle = toDeliveryBundle(result);
    expect(bundle.entry[0]!.request.ifNoneExist).toBe(`identifier=${OURS}%2Fpatient|${PATIENT_ID}`);
    expect(r4Problems(bundle)).toEqual([]);
  });

  test('a report without a patient has no Patient entry and no subject', () => {
    const bundle = toDeliveryBundle(releasedPanel({ patient: null, notes: [] }));
    expect(bundle.entry.map((e) => e.resource.resourceType)).toEqual([
      'DiagnosticReport',
      'Observation',
      'Observation',
      'Observation',
    ]);
    for (const e of bundle.entry) expect(e.resource).not.toHaveProperty('subject');
    expect(bundle.entry[0]!.resource).not.toHaveProperty('conclusion');
    expect(r4Problems(bundle)).toEqual([]);
  });
});

describe('deliveryOutcome', () => {
  test('reads where the report went; a failed entry or another kind of answer is an error', () => {
    expect(
      deliveryOutcome({
        resourceType: 'Bundle',
        type: 'transaction-response',
        entry: [
          { response: { status: '200 OK' } },
          { response: { status: '201 Created', location: 'http://ehr/fhir/DiagnosticReport/9/_history/1' } },
        ],
      }),
    ).toEqual({ reportLocation: 'DiagnosticReport/9/_history/1' });
    expect(() =>
      deliveryOutcome({
        resourceType: 'Bundle',
        type: 'transaction-response',
        entry: [
          { response: { status: '201 Created' } },
          {
            response: {
              status: '422 Unprocessable Entity',
              outcome: { resourceType: 'OperationOutcome', issue: [{ diagnostics: 'unknown code' }] },
            },
          },
        ],
      }),
    ).toThrow('entry 1 was not stored (status 422 Unprocessable Entity): unknown code');
    expect(() =>
      deliveryOutcome({ resourceType: 'Bundle', type: 'transaction-response', entry: [{}] }),
    ).toThrow('entry 0 was not stored (status missing)');
    expect(() => deliveryOutcome({ resourceType: 'OperationOutcome' })).toThrow('not a transaction-response');
    expect(() => deliveryOutcome({ resourceType: 'Bundle', type: 'batch-response', entry: [] })).toThrow(
      'not a transaction-response',
    );
  });
});

describe('delivering to a FHIR R4 server', () => {
  let fhir: FhirTestServer;
  beforeEach(async () => {
    fhir = await startFhirServer();
  });
  afterEach(() => fhir.close());

  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${fhir.baseUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as any };
  };
  const stored = (type: string) => [...fhir.store.values()].filter((r) => r.resourceType === type);

  test('sent twice: one Patient, one DiagnosticReport and one Observation per result', async () => {
    const first = await post('', toDeliveryBundle(releasedPanel()));
    expect(first.status).toBe(200);
    expect(first.body.entry.map((e: any) => e.response.status)).toEqual(Array(5).fill('201 Created'));
    const again = await post('', toDeliveryBundle(releasedPanel()));
    expect(again.body.entry.map((e: any) => e.response.status)).toEqual(Array(5).fill('200 OK'));
    expect(
      [stored('Patient'), stored('DiagnosticReport'), stored('Observation')].map((r) => r.length),
    ).toEqual([1, 1, 3]);
    const [patient] = stored('Patient');
    const [report] = stored('DiagnosticReport');
    // The Bundle's urn:uuid references now point at the server's own ids.
    expect(report!.subject).toEqual({ reference: `Patient/${patient!.id}` });
    expect(report!.result.map((r: any) => fhir.store.get(r.reference)?.code.coding[0].code)).toEqual([
      '2823-3',
      '2951-2',
      '2345-7',
    ]);
    expect(deliveryOutcome(again.body)).toEqual({
      reportLocation: `DiagnosticReport/${report!.id}/_history/2`,
    });
  });

  test('a corrected report updates what was delivered rather than adding to it', async () => {
    await post('', toDeliveryBundle(releasedPanel()));
    const answer = await post('', toDeliveryBundle(correctedPanel()));
    expect(answer.status).toBe(200);
    expect(
      [stored('Patient'), stored('DiagnosticReport'), stored('Observation')].map((r) => r.length),
    ).toEqual([1, 1, 3]);
    const [report] = stored('DiagnosticReport');
    expect(report).toMatchObject({ status: 'corrected', meta: { versionId: '2' } });
    const potassium = stored('Observation').find((o) => o.code.coding[0].code === '2823-3')!;
    expect(potassium).toMatchObject({ status: 'corrected', valueQuantity: { value: 5.9 } });
    expect(potassium.interpretation[0].coding[0].code).toBe('H');
  });

  test('the hospital’s own patient record is used, never overwritten', async () => {
    const theirs = fhir.seed({
      resourceType: 'Patient',
      identifier: [{ system: 'GENHOSP', value: 'MRN123456' }],
      name: [{ family: 'Doe-Smith', given: ['Jane'] }],
    });
    const answer = await post('', toDeliveryBundle(releasedPanel()));
    expect(answer.body.entry[0].response).toMatchObject({ status: '200 OK' });
    expect(stored('Patient')).toEqual([theirs]);
    expect(stored('DiagnosticReport')[0]!.subject).toEqual({ reference: `Patient/${theirs.id}` });
  });

  test('the server validates: an invalid resource is refused with the problem named, and nothing is stored', async () => {
    const bundle = toDeliveryBundle(releasedPanel());
    // Broken on purpose, in three ways the R4 definitions forbid.
    const potassium = bundle.entry[2]!.resource as any;
    potassium.status = 'done'; // not an ObservationStatus (a required binding)
    potassium.valueQuantity = { ...potassium.valueQuantity, value: '6.8' }; // a string, not a decimal
    potassium.valueString = '6.8'; // a second value[x]
    const refused = await post('', bundle);
    expect(refused.status).toBe(400);
    expect(refused.body.resourceType).toBe('OperationOutcome');
    const said = refused.body.issue[0].diagnostics as string;
    expect(said).toContain('Bundle.entry[2].resource.status: "done" is not a code of');
    expect(said).toContain('Bundle.entry[2].resource.value[x].value: Invalid JSON type');
    expect(said).toContain('only one of valueQuantity, valueString may be given');
    expect(fhir.store.size).toBe(0);
    expect(fhir.received).toHaveLength(1);

    const dangling = toDeliveryBundle(releasedPanel());
    dangling.entry.splice(4, 1); // glucose gone, still referenced by the report
    const unresolved = await post('', dangling);
    expect(unresolved.status).toBe(400);
    expect(unresolved.body.issue[0].diagnostics).toBe(
      `entry[1] refers to urn:uuid:${GLUCOSE_ID}, which is not in the Bundle`,
    );
    expect(fhir.store.size).toBe(0);

    const created = await post('/Patient', { resourceType: 'Patient', gender: 'woman' });
    expect(created.status).toBe(400);
    expect(created.body.issue[0].diagnostics).toContain('Patient.gender: "woman" is not a code of');
  });
});

describe('the local FHIR server', () => {
  test('a bearer token when asked for one; failNext and delayNext; reads and searches', async () => {
    const fhir = await startFhirServer({ checkToken: (token) => token === 'good' });
    try {
      const get = (path: string, token: string | null = 'good') =>
        fetch(`${fhir.baseUrl}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      const refused = await get('/Patient', null);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      expect((await get('/Patient', 'bad')).status).toBe(401);

      const before = new Date(Date.now() - 1).toISOString();
      const one = fhir.seed({
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        subject: { reference: 'Patient/p' },
      });
      const two = fhir.seed({
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        identifier: [{ system: 'urn:oid:1.2.3', value: 'ORD-9' }],
        subject: { reference: 'Patient/p' },
      });
      const ids = async (path: string) =>
        ((await (await get(path)).json()) as any).entry.map((e: any) => e.resource.id);
      expect(await ids(`/ServiceRequest?_lastUpdated=gt${before}`)).toEqual([one.id, two.id]);
      expect(await ids(`/ServiceRequest?_lastUpdated=gt${one.meta.lastUpdated}`)).toEqual([two.id]);
      expect(await ids('/ServiceRequest?identifier=urn:oid:1.2.3|ORD-9')).toEqual([two.id]);
      expect((await (await get(`/ServiceRequest/${one.id}`)).json()) as unknown).toEqual(one);
      expect((await get('/ServiceRequest/nope')).status).toBe(404);

      fhir.failNext(503, 2);
      expect((await get('/ServiceRequest')).status).toBe(503);
      expect((await get('/ServiceRequest')).status).toBe(503);
      expect((await get('/ServiceRequest')).status).toBe(200);
      fhir.delayNext(200);
      const started = Date.now();
      expect((await get('/ServiceRequest')).status).toBe(200);
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    } finally {
      await fhir.close();
    }
  });
});
