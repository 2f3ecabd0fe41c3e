import { describe, expect, test } from 'vitest';
import {
  FhirIntakeError,
  operationOutcome,
  parseFhirIntake,
  type FhirIntake,
} from '../../../adapters/fhir/intake.ts';
import type { LabReport, ObservationResult } from '../../../domain/model.ts';

// Vendor-shaped FHIR R4 bodies. Identifiers and people are invented; the shapes (urn:uuid
// transactions, RESTful fullUrls with relative references, message Bundles, contained results,
// PLAC/FILL identifier types, LOINC beside local codes) follow what lab and EHR interfaces send.

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const V3_INTERPRETATION = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const PDF_BASE64 = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n').toString('base64');

const uuid = (n: number) => `urn:uuid:5f0c3a1e-7d2b-4c8e-9a41-0000000000${String(n).padStart(2, '0')}`;

/** A reference lab's result transaction: everything by urn:uuid, the order echoed as context. */
function labcorpTransaction() {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    identifier: { system: 'urn:oid:2.16.840.1.113883.3.1234.5', value: 'LC-TX-20261122-0001' },
    entry: [
      {
        fullUrl: uuid(1),
        resource: {
          resourceType: 'Patient',
          identifier: [
            {
              type: { coding: [{ system: V2_0203, code: 'MR' }] },
              system: 'urn:oid:2.16.840.1.113883.19.5',
              value: 'MRN0042',
            },
            { system: 'urn:labcorp:patient', value: 'LC88812345' },
          ],
          name: [
            { use: 'nickname', given: ['Mia'] },
            { use: 'official', family: 'Garcia', given: ['Maria', 'L'] },
          ],
          gender: 'female',
          birthDate: '1972-09-04',
          telecom: [
            { system: 'phone', value: '+1 512 555 0100', use: 'old' },
            { system: 'phone', value: '+1 512 555 0199', use: 'mobile' },
            { system: 'email', value: 'maria.garcia@example.org' },
          ],
        },
        request: { method: 'POST', url: 'Patient' },
      },
      {
        fullUrl: uuid(2),
        resource: {
          resourceType: 'Practitioner',
          identifier: [
            { system: 'urn:oid:1.2.3.4.5', value: 'INT-88' },
            { system: 'http://hl7.org/fhir/sid/us-npi', value: '1457300000' },
          ],
          name: [{ family: 'Jones', given: ['Sarah'] }],
        },
        request: { method: 'POST', url: 'Practitioner' },
      },
      {
        fullUrl: uuid(3),
        resource: {
          resourceType: 'ServiceRequest',
          identifier: [
            {
              type: { coding: [{ system: V2_0203, code: 'PLAC' }] },
              system: 'urn:oid:2.16.840.1.113883.19.5.2',
              value: 'ORD-77',
            },
            {
              type: { coding: [{ system: V2_0203, code: 'FILL' }] },
              system: 'urn:labcorp:accession',
              value: '41234567890',
            },
          ],
          status: 'completed',
          intent: 'order',
          code: { coding: [{ system: LOINC, code: '57698-3', display: 'Lipid panel with direct LDL' }] },
          subject: { reference: uuid(1) },
          requester: { reference: uuid(2) },
          specimen: [{ reference: uuid(4) }],
          authoredOn: '2026-11-21T09:30:00-06:00',
        },
        request: { method: 'POST', url: 'ServiceRequest' },
      },
      {
        fullUrl: uuid(4),
        resource: {
          resourceType: 'Specimen',
          accessionIdentifier: { system: 'urn:labcorp:accession', value: '41234567890' },
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0487', code: 'SER' }] },
          subject: { reference: uuid(1) },
          collection: { collectedDateTime: '2026-11-21T07:30:00-06:00' },
        },
        request: { method: 'POST', url: 'Specimen' },
      },
      {
        fullUrl: uuid(5),
        resource: {
          resourceType: 'DiagnosticReport',
          identifier: [
            {
              type: { coding: [{ system: V2_0203, code: 'FILL' }] },
              system: 'urn:labcorp:accession',
              value: '41234567890',
            },
          ],
          basedOn: [{ reference: uuid(3) }],
          status: 'final',
          category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB' }] }],
          code: {
            coding: [
              { system: 'urn:labcorp:test', code: '303756', display: 'Lipid Panel' },
              { system: LOINC, code: '57698-3', display: 'Lipid panel with direct LDL' },
            ],
            text: 'Lipid Panel',
          },
          subject: { reference: uuid(1) },
          issued: '2026-11-22T04:55:00-06:00',
          performer: [{ reference: 'Organization/labcorp-burlington', display: 'LabCorp Burlington' }],
          specimen: [{ reference: uuid(4) }],
          result: [{ reference: uuid(6) }, { reference: uuid(7) }, { reference: uuid(8) }],
          conclusion: 'LDL above goal for primary prevention.',
          presentedForm: [{ contentType: 'application/pdf', data: PDF_BASE64, title: 'Lipid Panel report' }],
        },
        request: { method: 'POST', url: 'DiagnosticReport' },
      },
      {
        fullUrl: uuid(6),
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: {
            coding: [{ system: LOINC, code: '2093-3', display: 'Cholesterol [Mass/volume] in Serum' }],
          },
          subject: { reference: uuid(1) },
          effectiveDateTime: '2026-11-21T07:30:00-06:00',
          valueQuantity: { value: 245, unit: 'mg/dL', system: UCUM, code: 'mg/dL' },
          interpretation: [{ coding: [{ system: V3_INTERPRETATION, code: 'H', display: 'High' }] }],
          referenceRange: [{ high: { value: 200, unit: 'mg/dL' }, text: '<200' }],
        },
        request: { method: 'POST', url: 'Observation' },
      },
      {
        fullUrl: uuid(7),
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: LOINC, code: '2085-9', display: 'HDL Cholesterol' }] },
          subject: { reference: uuid(1) },
          valueQuantity: {
            value: 38,
            comparator: '<',
            unit: 'milligram per deciliter',
            system: UCUM,
            code: 'mg/dL',
          },
          interpretation: [{ coding: [{ system: V3_INTERPRETATION, code: 'L' }] }],
          referenceRange: [{ low: { value: 40 } }],
        },
        request: { method: 'POST', url: 'Observation' },
      },
      {
        fullUrl: uuid(8),
        resource: {
          resourceType: 'Observation',
          status: 'corrected',
          code: { coding: [{ system: LOINC, code: '13457-7', display: 'LDL Cholesterol (calc)' }] },
          subject: { reference: uuid(1) },
          valueQuantity: { value: 178.4, unit: 'mg/dL (calc)' },
          interpretation: [{ coding: [{ system: V3_INTERPRETATION, code: 'HH' }] }],
          referenceRange: [{ text: '0-99' }],
          note: [{ text: 'Desirable range <100 mg/dL for primary prevention.' }, { text: '  ' }],
        },
        request: { method: 'POST', url: 'Observation' },
      },
    ],
  };
}

/** A hospital's collection Bundle from its FHIR server: RESTful fullUrls and relative references. */
function questCollection() {
  const base = 'https://fhir.stmarys.example/r4';
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      {
        fullUrl: `${base}/Patient/p-881`,
        resource: {
          resourceType: 'Patient',
          id: 'p-881',
          identifier: [{ system: 'urn:oid:1.2.840.114350', value: 'E1234567', type: { text: 'MRN' } }],
          name: [{ family: 'Testpatient', given: ['Alpha'] }],
          birthDate: '1955-12',
          gender: 'unknown',
        },
      },
      {
        fullUrl: `${base}/ServiceRequest/sr-1`,
        resource: {
          resourceType: 'ServiceRequest',
          id: 'sr-1',
          identifier: [{ system: 'urn:oid:1.2.840.114350.1.13', value: '1200345' }],
          status: 'active',
          intent: 'order',
          code: { coding: [{ system: LOINC, code: '24356-8', display: 'Urinalysis complete panel' }] },
          subject: { reference: 'Patient/p-881' },
        },
      },
      {
        fullUrl: `${base}/DiagnosticReport/dr-1`,
        resource: {
          resourceType: 'DiagnosticReport',
          id: 'dr-1',
          basedOn: [{ reference: 'ServiceRequest/sr-1' }],
          identifier: [{ system: 'urn:quest:accession', value: 'UA-26-001122' }],
          status: 'partial',
          code: { coding: [{ system: LOINC, code: '24356-8' }], text: 'Urinalysis' },
          subject: { reference: 'Patient/p-881' },
          effectivePeriod: { start: '2026-11-22T09:30:00-05:00', end: '2026-11-22T09:45:00-05:00' },
          result: [
            { reference: 'Observation/ua-color' },
            { reference: `${base}/Observation/ua-appearance` },
            { reference: 'Observation/ua-le/_history/2' },
          ],
        },
      },
      {
        fullUrl: `${base}/Observation/ua-color`,
        resource: {
          resourceType: 'Observation',
          id: 'ua-color',
          status: 'final',
          code: { coding: [{ system: LOINC, code: '5778-6', display: 'Color of Urine' }] },
          subject: { reference: 'Patient/p-881' },
          valueCodeableConcept: {
            coding: [{ system: 'http://snomed.info/sct', code: '371244009', display: 'Yellow' }],
          },
        },
      },
      {
        fullUrl: `${base}/Observation/ua-appearance`,
        resource: {
          resourceType: 'Observation',
          id: 'ua-appearance',
          status: 'preliminary',
          code: { coding: [{ system: LOINC, code: '5767-9', display: 'Appearance of Urine' }] },
          valueString: 'Cloudy',
          interpretation: [{ coding: [{ system: V3_INTERPRETATION, code: 'A' }] }],
          referenceRange: [{ text: 'Clear' }],
        },
      },
      {
        fullUrl: `${base}/Observation/ua-le`,
        resource: {
          resourceType: 'Observation',
          id: 'ua-le',
          status: 'final',
          code: { coding: [{ system: LOINC, code: '5799-2', display: 'Leukocyte esterase' }] },
          valueCodeableConcept: { coding: [{ system: 'urn:quest:result', code: 'POS2' }] },
        },
      },
    ],
  };
}

/** One line per result, as a reviewer reads a lab report. */
function resultLine(o: ObservationResult): string {
  const value =
    o.valueType === 'quantity' ? `${o.comparator ?? ''}${o.numericValue}` : JSON.stringify(o.textValue);
  const range = o.referenceRange
    ? ` [${o.referenceRange.low ?? ''}..${o.referenceRange.high ?? ''} ${JSON.stringify(o.referenceRange.text)}]`
    : '';
  return `${o.sequence} ${o.code.code} ${o.valueType} ${value} ${o.unit ?? '-'}${range} ${o.sourceFlags.join(',') || '-'} ${o.status}`;
}

function onlyReport(intake: FhirIntake): LabReport {
  expect(intake.results).toHaveLength(1);
  expect(intake.results[0]!.reports).toHaveLength(1);
  return intake.results[0]!.reports[0]!;
}

/** The FhirIntakeError a body is refused with. */
function refusal(body: unknown, options?: { fhirVersion?: string | null }): FhirIntakeError {
  try {
    parseFhirIntake(body, options);
  } catch (error) {
    if (error instanceof FhirIntakeError) return error;
    throw error;
  }
  throw new Error('the body was accepted');
}

function issuesOf(error: FhirIntakeError): { code: string; expression: string | undefined }[] {
  return error.outcome.issue.map((i) => ({ code: i.code, expression: i.expression?.[0] }));
}

describe('a reference lab transaction (urn:uuid references)', () => {
  const intake = parseFhirIntake(labcorpTransaction(), { fhirVersion: '4.0' });

  test('is one result message for the patient, with demographics from the official name', () => {
    expect(intake.kind).toBe('transaction');
    expect(intake.bundleIdentifier).toBe('urn:oid:2.16.840.1.113883.3.1234.5|LC-TX-20261122-0001');
    expect(intake.results[0]!.patient).toEqual({
      identifiers: [
        { system: 'urn:oid:2.16.840.1.113883.19.5', value: 'MRN0042', type: 'MR' },
        { system: 'urn:labcorp:patient', value: 'LC88812345', type: null },
      ],
      familyName: 'Garcia',
      givenNames: ['Maria', 'L'],
      birthDate: '1972-09-04',
      sex: 'female',
      email: 'maria.garcia@example.org',
      phone: '+1 512 555 0199',
    });
  });

  test('reads the report: order numbers from PLAC/FILL, LOINC code, requester, specimen time, PDF', () => {
    const { observations, ...report } = onlyReport(intake);
    expect(report).toEqual({
      placerOrderNumber: 'ORD-77',
      fillerOrderNumber: '41234567890',
      placerAuthority: 'urn:oid:2.16.840.1.113883.19.5.2',
      code: { system: LOINC, code: '57698-3', display: 'Lipid panel with direct LDL' },
      status: 'final',
      orderingProvider: { id: '1457300000', familyName: 'Jones', givenNames: ['Sarah'] },
      // No effective[x] on the report: the specimen's collection time stands for it.
      effectiveAt: '2026-11-21T13:30:00.000Z',
      issuedAt: '2026-11-22T10:55:00.000Z',
      notes: ['LDL above goal for primary prevention.'],
      documents: [{ contentType: 'application/pdf', dataBase64: PDF_BASE64, title: 'Lipid Panel report' }],
    });
    expect(observations.map(resultLine)).toEqual([
      '1 2093-3 quantity 245 mg/dL [..200 "<200"] H final',
      '2 2085-9 quantity <38 mg/dL [40.. null] L final',
      '3 13457-7 quantity 178.4 mg/dL (calc) [0..99 "0-99"] HH corrected',
    ]);
    expect(observations[0]!.effectiveAt).toBe('2026-11-21T13:30:00.000Z');
    expect(observations[2]!.notes).toEqual(['Desirable range <100 mg/dL for primary prevention.']);
  });

  test('the echoed ServiceRequest is context for the result, not an order; nothing is a lone patient', () => {
    expect(intake.orders).toEqual([]);
    expect(intake.patients).toEqual([]);
  });

  test('answers one entry per Bundle entry: 201 for content, 200 for context read only', () => {
    expect(intake.entries.map((e) => `${e.resourceType} ${e.fullUrl} ${e.status}`)).toEqual([
      `Patient ${uuid(1)} 201 Created`,
      `Practitioner ${uuid(2)} 200 OK`,
      `ServiceRequest ${uuid(3)} 201 Created`,
      `Specimen ${uuid(4)} 201 Created`,
      `DiagnosticReport ${uuid(5)} 201 Created`,
      `Observation ${uuid(6)} 201 Created`,
      `Observation ${uuid(7)} 201 Created`,
      `Observation ${uuid(8)} 201 Created`,
    ]);
  });
});

describe('a collection Bundle with relative references', () => {
  const intake = parseFhirIntake(questCollection());

  test('resolves Patient/x, Observation/x, absolute URLs and _history against the entries', () => {
    expect(intake.kind).toBe('collection');
    expect(intake.bundleIdentifier).toBeNull();
    const patient = intake.results[0]!.patient;
    // The sender's Patient.id is its own id, never ours.
    expect(patient.internalId).toBeUndefined();
    expect(patient.identifiers).toEqual([
      { system: 'urn:oid:1.2.840.114350', value: 'E1234567', type: 'MRN' },
    ]);
    expect(patient.birthDate).toBe('1955-12');
    expect(patient.sex).toBe('unknown');
    const report = onlyReport(intake);
    expect(report.observations.map(resultLine)).toEqual([
      '1 5778-6 coded "Yellow" - - final',
      '2 5767-9 text "Cloudy" - [.. "Clear"] A preliminary',
      '3 5799-2 coded "POS2" - - final',
    ]);
  });

  test('partial is preliminary; effectivePeriod.start; an untyped order identifier is the placer', () => {
    const report = onlyReport(intake);
    expect(report.status).toBe('preliminary');
    expect(report.effectiveAt).toBe('2026-11-22T14:30:00.000Z');
    expect(report.placerOrderNumber).toBe('1200345');
    expect(report.placerAuthority).toBe('urn:oid:1.2.840.114350.1.13');
    // The report's own untyped identifier is the lab's accession.
    expect(report.fillerOrderNumber).toBe('UA-26-001122');
    expect(report.code).toEqual({ system: LOINC, code: '24356-8', display: 'Urinalysis' });
    expect(intake.orders).toEqual([]);
    expect(intake.entries.every((e) => e.status === '201 Created')).toBe(true);
  });
});

describe('a message Bundle', () => {
  function message(focus: { reference: string }[]) {
    return {
      resourceType: 'Bundle',
      type: 'message',
      identifier: { value: 'MSG-4471' },
      entry: [
        {
          fullUrl: uuid(10),
          resource: {
            resourceType: 'MessageHeader',
            eventCoding: { system: 'http://example.org/fhir/message-events', code: 'observation-provide' },
            source: { endpoint: 'https://lis.example/fhir' },
            focus,
          },
        },
        {
          fullUrl: uuid(11),
          resource: {
            resourceType: 'Patient',
            identifier: [{ system: 'urn:lis:mrn', value: 'M-5' }],
          },
        },
        {
          fullUrl: uuid(12),
          resource: {
            resourceType: 'DiagnosticReport',
            identifier: [{ system: 'urn:lis:acc', value: 'ACC-5', type: { coding: [{ code: 'FILL' }] } }],
            status: 'amended',
            code: { coding: [{ system: LOINC, code: '2823-3', display: 'Potassium' }] },
            subject: { reference: uuid(11) },
            effectiveDateTime: '2026-11-22',
            result: [{ reference: uuid(13) }],
          },
        },
        {
          fullUrl: uuid(13),
          resource: {
            resourceType: 'Observation',
            status: 'amended',
            code: { coding: [{ system: LOINC, code: '2823-3' }] },
            valueQuantity: { value: 6.9, unit: 'mmol/L', system: UCUM, code: 'mmol/L' },
          },
        },
        {
          fullUrl: uuid(14),
          resource: {
            resourceType: 'ServiceRequest',
            identifier: [{ system: 'urn:lis:orders', value: 'O-5' }],
            status: 'active',
            intent: 'original-order',
            code: { coding: [{ system: LOINC, code: '24323-8' }] },
            subject: { reference: uuid(11) },
          },
        },
      ],
    };
  }

  test('takes the content MessageHeader.focus names, and only that', () => {
    const intake = parseFhirIntake(message([{ reference: uuid(12) }]));
    expect(intake.kind).toBe('message');
    expect(intake.bundleIdentifier).toBe('|MSG-4471');
    const report = onlyReport(intake);
    expect(report.fillerOrderNumber).toBe('ACC-5');
    expect(report.placerOrderNumber).toBeNull();
    expect(report.status).toBe('amended');
    expect(report.effectiveAt).toBe('2026-11-22T00:00:00.000Z');
    expect(report.observations.map(resultLine)).toEqual(['1 2823-3 quantity 6.9 mmol/L - amended']);
    // The ServiceRequest is in the Bundle but not the focus: not an order.
    expect(intake.orders).toEqual([]);
    expect(intake.entries.map((e) => e.status)).toEqual([
      '200 OK',
      '201 Created',
      '201 Created',
      '201 Created',
      '201 Created',
    ]);
  });

  test('a focus on the ServiceRequest places the order', () => {
    const intake = parseFhirIntake(message([{ reference: uuid(14) }]));
    expect(intake.results).toEqual([]);
    expect(intake.orders).toHaveLength(1);
    expect(intake.orders[0]!.patient.identifiers).toEqual([
      { system: 'urn:lis:mrn', value: 'M-5', type: null },
    ]);
    expect(intake.orders[0]!.orders.map((o) => [o.placerOrderNumber, o.action, o.code.code])).toEqual([
      ['O-5', 'new', '24323-8'],
    ]);
  });
});

describe('a batch of orders from an EHR', () => {
  const batch = {
    resourceType: 'Bundle',
    type: 'batch',
    entry: [
      {
        fullUrl: uuid(20),
        resource: {
          resourceType: 'Patient',
          identifier: [{ system: 'urn:ehr:mrn', value: 'A-1' }],
          name: [{ family: 'Able', given: ['Ann'] }],
        },
        request: { method: 'POST', url: 'Patient' },
      },
      {
        fullUrl: uuid(21),
        resource: {
          resourceType: 'PractitionerRole',
          practitioner: { reference: '#dr' },
          contained: [
            {
              resourceType: 'Practitioner',
              id: 'dr',
              identifier: [{ system: 'urn:ehr:staff', value: 'S-9' }],
              name: [{ family: 'House', given: ['Gregory'] }],
            },
          ],
        },
        request: { method: 'POST', url: 'PractitionerRole' },
      },
      {
        resource: {
          resourceType: 'ServiceRequest',
          identifier: [
            {
              system: 'urn:ehr:orders',
              value: 'ORD-1',
              type: { coding: [{ system: V2_0203, code: 'PLAC' }] },
            },
          ],
          status: 'active',
          intent: 'order',
          priority: 'stat',
          code: { coding: [{ system: LOINC, code: '2524-7', display: 'Lactate' }] },
          subject: { reference: uuid(20) },
          requester: { reference: uuid(21) },
          authoredOn: '2026-11-22T09:30:00Z',
          locationCode: [{ coding: [{ system: 'urn:ehr:location', code: 'ED' }] }],
          note: [{ text: 'Draw on ice.' }],
          specimen: [{ reference: '#s1' }],
          contained: [
            {
              resourceType: 'Specimen',
              id: 's1',
              identifier: [{ system: 'urn:ehr:specimen', value: 'SP-1' }],
              type: {
                coding: [{ system: 'http://snomed.info/sct', code: '122555007', display: 'Venous blood' }],
              },
              collection: { collectedPeriod: { start: '2026-11-22T09:35:00Z' } },
            },
          ],
        },
        request: { method: 'PUT', url: 'ServiceRequest?identifier=urn:ehr:orders|ORD-1' },
      },
      {
        resource: {
          resourceType: 'ServiceRequest',
          identifier: [{ system: 'urn:ehr:orders', value: 'ORD-2' }],
          status: 'revoked',
          intent: 'order',
          code: { coding: [{ system: LOINC, code: '2345-7' }] },
          subject: { reference: 'Patient/7f3e2b10' },
        },
        request: { method: 'POST', url: 'ServiceRequest' },
      },
      {
        resource: {
          resourceType: 'Patient',
          identifier: [{ system: 'urn:ehr:mrn', value: 'B-2' }],
          telecom: [{ system: 'email', value: 'b2@example.org' }],
        },
        request: { method: 'PUT', url: 'Patient?identifier=urn:ehr:mrn|B-2' },
      },
    ],
  };
  const intake = parseFhirIntake(batch);

  test('places, updates (PUT) and cancels (revoked) orders, one order message per patient', () => {
    expect(intake.kind).toBe('batch');
    expect(intake.results).toEqual([]);
    expect(
      intake.orders.map((m) => m.patient.identifiers[0]?.value ?? `our ${m.patient.internalId}`),
    ).toEqual(['A-1', 'our 7f3e2b10']);
    expect(intake.orders[0]!.orders).toEqual([
      {
        placerOrderNumber: 'ORD-1',
        fillerOrderNumber: null,
        placerAuthority: 'urn:ehr:orders',
        code: { system: LOINC, code: '2524-7', display: 'Lactate' },
        action: 'update',
        priority: 'stat',
        orderingProvider: { id: 'S-9', familyName: 'House', givenNames: ['Gregory'] },
        orderedAt: '2026-11-22T09:30:00.000Z',
        specimen: {
          id: 'SP-1',
          type: { system: 'http://snomed.info/sct', code: '122555007', display: 'Venous blood' },
          collectedAt: '2026-11-22T09:35:00.000Z',
        },
        notes: ['Draw on ice.'],
        locationId: 'ED',
      },
    ]);
    expect(intake.orders[1]!.orders.map((o) => [o.placerOrderNumber, o.action])).toEqual([
      ['ORD-2', 'cancel'],
    ]);
  });

  test('a Patient nothing refers to is a patient to create or update', () => {
    expect(intake.patients).toEqual([
      {
        identifiers: [{ system: 'urn:ehr:mrn', value: 'B-2', type: null }],
        familyName: null,
        givenNames: [],
        birthDate: null,
        sex: null,
        email: 'b2@example.org',
        phone: null,
      },
    ]);
    expect(intake.entries.map((e) => e.status)).toEqual([
      '201 Created',
      '200 OK',
      '201 Created',
      '201 Created',
      '201 Created',
    ]);
  });
});

describe('single resources', () => {
  const containedReport = {
    resourceType: 'DiagnosticReport',
    contained: [
      {
        resourceType: 'Patient',
        id: 'pat',
        identifier: [{ system: 'urn:clinic:mrn', value: 'C-77' }],
        name: [{ family: 'Contained', given: ['Cara'] }],
      },
      {
        resourceType: 'Observation',
        id: 'glu',
        status: 'final',
        code: { coding: [{ system: LOINC, code: '2345-7', display: 'Glucose' }] },
        subject: { reference: '#pat' },
        valueQuantity: { value: 87, unit: 'mg/dL', system: UCUM, code: 'mg/dL' },
        referenceRange: [{ low: { value: 65 }, high: { value: 99 } }],
        interpretation: [{ coding: [{ system: V3_INTERPRETATION, code: 'N' }] }],
      },
      {
        resourceType: 'Observation',
        id: 'ph',
        status: 'final',
        code: { coding: [{ system: LOINC, code: '2756-5' }] },
        valueInteger: 6,
      },
    ],
    identifier: [{ system: 'urn:clinic:acc', value: 'A-100' }],
    status: 'final',
    code: { coding: [{ system: LOINC, code: '24323-8' }] },
    subject: { reference: '#pat' },
    effectiveDateTime: '2026-11-22T08:00:00+01:00',
    result: [{ reference: '#glu' }, { reference: '#ph' }],
  };

  test.each([
    {
      name: 'a DiagnosticReport with contained Patient and Observations',
      body: containedReport,
      expected: {
        results: [
          ['C-77', '1 2345-7 quantity 87 mg/dL [65..99 null] N final', '2 2756-5 quantity 6 - - final'],
        ],
        orders: [],
        patients: [],
      },
    },
    {
      name: 'a DiagnosticReport with no results, for our patient by id',
      body: {
        resourceType: 'DiagnosticReport',
        basedOn: [{ identifier: { system: 'urn:ehr:orders', value: 'ORD-9' } }],
        status: 'registered',
        code: { text: 'Send-out: Quantiferon' },
        subject: { reference: 'Patient/0b7d4e2a-1c33-4f5e-8a9b-112233445566' },
      },
      expected: {
        results: [['our 0b7d4e2a-1c33-4f5e-8a9b-112233445566']],
        orders: [],
        patients: [],
      },
    },
    {
      name: 'an Observation on its own, the patient by identifier',
      body: {
        resourceType: 'Observation',
        identifier: [{ system: 'urn:poc:results', value: 'POC-1' }],
        status: 'final',
        code: { coding: [{ system: LOINC, code: '4548-4', display: 'Hemoglobin A1c' }] },
        subject: { identifier: { system: 'urn:clinic:mrn', value: 'C-78' } },
        valueQuantity: { value: 7.1, unit: '%', system: UCUM, code: '%' },
      },
      expected: { results: [['C-78', '1 4548-4 quantity 7.1 % - final']], orders: [], patients: [] },
    },
    {
      name: 'a ServiceRequest on its own',
      body: {
        resourceType: 'ServiceRequest',
        identifier: [{ system: 'urn:ehr:orders', value: 'ORD-10' }],
        status: 'draft',
        intent: 'order',
        code: { coding: [{ system: LOINC, code: '58410-2' }] },
        subject: { reference: 'Patient/42' },
      },
      expected: { results: [], orders: [['our 42', 'ORD-10 new']], patients: [] },
    },
    {
      name: 'a Patient on its own (its id is the sender’s, not ours)',
      body: {
        resourceType: 'Patient',
        id: 'sender-17',
        identifier: [{ system: 'urn:ehr:mrn', value: 'P-17' }],
      },
      expected: { results: [], orders: [], patients: ['P-17'] },
    },
  ])('$name', ({ body, expected }) => {
    const intake = parseFhirIntake(body);
    const who = (p: { identifiers: { value: string }[]; internalId?: string | null }) =>
      p.identifiers[0]?.value ?? `our ${p.internalId}`;
    expect(intake.kind).toBe('resource');
    expect(intake.entries).toEqual([
      { resourceType: body.resourceType, fullUrl: null, status: '201 Created' },
    ]);
    expect({
      results: intake.results.map((m) => [
        who(m.patient),
        ...m.reports.flatMap((r) => r.observations.map(resultLine)),
      ]),
      orders: intake.orders.map((m) => [
        who(m.patient),
        ...m.orders.map((o) => `${o.placerOrderNumber} ${o.action}`),
      ]),
      patients: intake.patients.map(who),
    }).toEqual(expected);
  });

  test('a report coded by text alone keeps the text as its code', () => {
    const intake = parseFhirIntake({
      resourceType: 'DiagnosticReport',
      identifier: [{ value: 'X-1' }],
      status: 'final',
      code: { text: 'Send-out: Quantiferon' },
      subject: { reference: 'Patient/42' },
    });
    expect(onlyReport(intake).code).toEqual({
      system: null,
      code: 'Send-out: Quantiferon',
      display: 'Send-out: Quantiferon',
    });
    expect(onlyReport(intake).placerAuthority).toBeNull();
  });
});

describe('observations', () => {
  function reportWith(...observations: Record<string, unknown>[]) {
    return {
      resourceType: 'DiagnosticReport',
      identifier: [{ system: 'urn:lab:acc', value: 'A-1' }],
      status: 'final',
      code: { coding: [{ system: LOINC, code: '24323-8' }] },
      subject: { reference: 'Patient/1' },
      contained: observations.map((o, i) => ({
        resourceType: 'Observation',
        id: `o${i}`,
        status: 'final',
        code: { coding: [{ system: LOINC, code: `c${i}` }] },
        ...o,
      })),
      result: observations.map((_, i) => ({ reference: `#o${i}` })),
    };
  }

  test.each([
    [
      'a UCUM code is preferred to the printed unit',
      { valueQuantity: { value: 5.4, unit: 'K/uL', system: UCUM, code: '10*3/uL' } },
      'quantity 5.4 10*3/uL',
    ],
    [
      'a non-UCUM unit is kept as printed',
      { valueQuantity: { value: 12, unit: 'IU/L', system: 'urn:lab:units', code: 'IUL' } },
      'quantity 12 IU/L',
    ],
    ['a comparator is kept', { valueQuantity: { value: 0.01, comparator: '<=' } }, 'quantity <=0.01 -'],
    ['a boolean is text', { valueBoolean: true }, 'text "true" -'],
    [
      'a titer (Ratio) is text',
      { valueRatio: { numerator: { value: 1 }, denominator: { value: 64 } } },
      'text "1:64" -',
    ],
    [
      'a Range is text with its unit',
      { valueRange: { low: { value: 10, unit: '/[HPF]' }, high: { value: 20, unit: '/[HPF]' } } },
      'text "10-20" /[HPF]',
    ],
    ['a time is text', { valueTime: '08:15:00' }, 'text "08:15:00" -'],
    ['no value at all is an empty text result', {}, 'text null -'],
  ])('%s', (_name, observation, expected) => {
    const [obs] = onlyReport(parseFhirIntake(reportWith(observation))).observations;
    const value =
      obs!.valueType === 'quantity'
        ? `${obs!.comparator ?? ''}${obs!.numericValue}`
        : JSON.stringify(obs!.textValue);
    expect(`${obs!.valueType} ${value} ${obs!.unit ?? '-'}`).toBe(expected);
  });

  test('dataAbsentReason becomes a note; several interpretation codes are all kept, once each', () => {
    const [obs] = onlyReport(
      parseFhirIntake(
        reportWith({
          dataAbsentReason: { coding: [{ code: 'error', display: 'Error' }] },
          interpretation: [
            { coding: [{ system: V3_INTERPRETATION, code: 'A' }] },
            { coding: [{ system: V3_INTERPRETATION, code: 'AA' }, { code: 'A' }] },
          ],
        }),
      ),
    ).observations;
    expect(obs!.notes).toEqual(['no value: Error']);
    expect(obs!.sourceFlags).toEqual(['A', 'AA']);
  });

  test('a panel (hasMember) listed by a report is read as its members; a member is listed once', () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        {
          fullUrl: uuid(30),
          resource: {
            resourceType: 'DiagnosticReport',
            identifier: [{ system: 'urn:lab:acc', value: 'CBC-1' }],
            status: 'final',
            code: { coding: [{ system: LOINC, code: '58410-2' }] },
            subject: { reference: 'Patient/9' },
            result: [{ reference: uuid(31) }, { reference: uuid(33) }],
          },
        },
        {
          fullUrl: uuid(31),
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: LOINC, code: '57021-8', display: 'CBC W Auto Differential panel' }] },
            hasMember: [{ reference: uuid(32) }, { reference: uuid(33) }],
          },
        },
        {
          fullUrl: uuid(32),
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: LOINC, code: '6690-2' }] },
            valueQuantity: { value: 1.4, system: UCUM, code: '10*3/uL' },
            interpretation: [{ coding: [{ system: V3_INTERPRETATION, code: 'LL' }] }],
          },
        },
        {
          fullUrl: uuid(33),
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: LOINC, code: '718-7' }] },
            valueQuantity: { value: 13.1, system: UCUM, code: 'g/dL' },
          },
        },
      ],
    };
    const report = onlyReport(parseFhirIntake(bundle));
    expect(report.observations.map(resultLine)).toEqual([
      '1 6690-2 quantity 1.4 10*3/uL LL final',
      '2 718-7 quantity 13.1 g/dL - final',
    ]);
  });

  test('Observations no report lists are reports of their own, grouped by patient', () => {
    const standalone = (n: number, patient: string, code: string, value: number) => ({
      fullUrl: uuid(n),
      resource: {
        resourceType: 'Observation',
        identifier: [{ system: 'urn:poc:results', value: `POC-${n}` }],
        basedOn: [{ identifier: { system: 'urn:ehr:orders', value: `ORD-${n}` } }],
        status: 'final',
        code: { coding: [{ system: LOINC, code }] },
        subject: { reference: patient },
        effectiveDateTime: '2026-11-22T10:00:00Z',
        issued: '2026-11-22T10:05:00Z',
        valueQuantity: { value },
      },
    });
    const intake = parseFhirIntake({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        { fullUrl: uuid(40), resource: { resourceType: 'Patient', identifier: [{ value: 'P-40' }] } },
        standalone(41, uuid(40), '2345-7', 101),
        standalone(42, 'Patient/77', '4548-4', 6.2),
        standalone(43, uuid(40), '2823-3', 4.1),
      ],
    });
    expect(
      intake.results.map((m) => [
        m.patient.identifiers[0]?.value ?? m.patient.internalId,
        m.reports.map((r) => `${r.placerOrderNumber}/${r.fillerOrderNumber} ${r.code.code} ${r.issuedAt}`),
      ]),
    ).toEqual([
      [
        'P-40',
        ['ORD-41/POC-41 2345-7 2026-11-22T10:05:00.000Z', 'ORD-43/POC-43 2823-3 2026-11-22T10:05:00.000Z'],
      ],
      ['77', ['ORD-42/POC-42 4548-4 2026-11-22T10:05:00.000Z']],
    ]);
    expect(intake.patients).toEqual([]);
  });

  test('a report of one patient and another of a second are two result messages', () => {
    const bundle = labcorpTransaction();
    const second = structuredClone(bundle.entry[4]!);
    second.fullUrl = uuid(50);
    Object.assign(second.resource, {
      subject: { reference: 'Patient/other-1' },
      result: [],
      identifier: [{ system: 'urn:labcorp:accession', value: '999' }],
      basedOn: [],
      presentedForm: [],
    });
    bundle.entry.push(second);
    const intake = parseFhirIntake(bundle);
    expect(
      intake.results.map((m) => [m.patient.internalId ?? m.patient.familyName, m.reports.length]),
    ).toEqual([
      ['Garcia', 1],
      ['other-1', 1],
    ]);
  });
});

describe('dates', () => {
  test.each([
    ['2026-11-22T07:00:00-05:00', '2026-11-22T12:00:00.000Z'],
    ['2026-11-22T07:00:00.123456Z', '2026-11-22T07:00:00.123Z'],
    ['2026-11-22', '2026-11-22T00:00:00.000Z'],
    ['2026-11', '2026-11-01T00:00:00.000Z'],
    ['2024-02-29T23:59:59+14:00', '2024-02-29T09:59:59.000Z'],
  ])('effectiveDateTime %s is read as %s', (raw, iso) => {
    const report = onlyReport(
      parseFhirIntake({
        resourceType: 'DiagnosticReport',
        identifier: [{ value: 'A' }],
        status: 'final',
        code: { text: 'x' },
        subject: { reference: 'Patient/1' },
        effectiveDateTime: raw,
      }),
    );
    expect(report.effectiveAt).toBe(iso);
  });

  test.each([
    ['2026-13-01', 'effectiveDateTime'],
    ['2026-02-30', 'effectiveDateTime'],
    ['2026-11-22T07:00:00', 'effectiveDateTime'],
    ['2026-11-22T07:00Z', 'effectiveDateTime'],
    ['22/11/2026', 'effectiveDateTime'],
    ['0000-01-01', 'effectiveDateTime'],
    ['2026-11-22', 'issued'],
  ])('%s is not a FHIR date for %s', (raw, element) => {
    const error = refusal({
      resourceType: 'DiagnosticReport',
      identifier: [{ value: 'A' }],
      status: 'final',
      code: { text: 'x' },
      subject: { reference: 'Patient/1' },
      [element]: raw,
    });
    expect(error.httpStatus).toBe(400);
    expect(issuesOf(error)).toEqual([{ code: 'value', expression: `DiagnosticReport.${element}` }]);
    expect(error.outcome.issue[0]!.diagnostics).toContain(JSON.stringify(raw));
  });
});

// ---------------------------------------------------------------------------------------------
// Refusals: each names the element and the FHIR IssueType.

const DR_BASE = {
  resourceType: 'DiagnosticReport',
  identifier: [{ value: 'A-1' }],
  status: 'final',
  code: { coding: [{ system: LOINC, code: '24323-8' }] },
  subject: { reference: 'urn:uuid:p' },
};
const OBS_BASE = {
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: LOINC, code: '2823-3' }] },
  valueQuantity: { value: 4 },
};
/** An Observation no report lists: it needs its patient and an order number. */
const OBS_ROOT = { ...OBS_BASE, subject: { reference: 'urn:uuid:p' }, identifier: [{ value: 'r' }] };
const SR_BASE = {
  resourceType: 'ServiceRequest',
  identifier: [{ value: 'O-1' }],
  status: 'active',
  intent: 'order',
  code: { coding: [{ system: LOINC, code: '24323-8' }] },
  subject: { reference: 'Patient/1' },
};
const PATIENT_ENTRY = {
  fullUrl: 'urn:uuid:p',
  resource: { resourceType: 'Patient', identifier: [{ value: 'P' }] },
};

/** A collection Bundle: the Patient first, then `resources` as entries 1, 2, … */
function collection(...resources: Record<string, unknown>[]) {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [PATIENT_ENTRY, ...resources.map((resource, i) => ({ fullUrl: `urn:uuid:e${i + 1}`, resource }))],
  };
}

const without = (o: Record<string, unknown>, key: string) =>
  Object.fromEntries(Object.entries(o).filter(([k]) => k !== key));

describe('refusals name each failing element', () => {
  test.each([
    ['the body is not an object', [DR_BASE], 400, 'structure', undefined],
    ['resourceType is missing', { type: 'transaction' }, 400, 'required', 'resourceType'],
    ['resourceType is not a string', { resourceType: 7 }, 400, 'structure', 'resourceType'],
    [
      'Bundle.type is missing',
      { resourceType: 'Bundle', entry: [PATIENT_ENTRY] },
      400,
      'required',
      'Bundle.type',
    ],
    [
      'Bundle.type searchset',
      { resourceType: 'Bundle', type: 'searchset', entry: [PATIENT_ENTRY] },
      422,
      'not-supported',
      'Bundle.type',
    ],
    [
      'Bundle.type history',
      { resourceType: 'Bundle', type: 'history', entry: [PATIENT_ENTRY] },
      422,
      'not-supported',
      'Bundle.type',
    ],
    [
      'Bundle.type document',
      { resourceType: 'Bundle', type: 'document', entry: [PATIENT_ENTRY] },
      422,
      'not-supported',
      'Bundle.type',
    ],
    [
      'Bundle.type is no bundle type',
      { resourceType: 'Bundle', type: 'pile', entry: [PATIENT_ENTRY] },
      400,
      'value',
      'Bundle.type',
    ],
    [
      'a Bundle without entries',
      { resourceType: 'Bundle', type: 'batch', entry: [] },
      422,
      'required',
      'Bundle.entry',
    ],
    [
      'Bundle.entry is not an array',
      { resourceType: 'Bundle', type: 'batch', entry: {} },
      400,
      'structure',
      'Bundle.entry',
    ],
    [
      'an entry without a resource',
      { resourceType: 'Bundle', type: 'collection', entry: [PATIENT_ENTRY, { fullUrl: 'urn:uuid:x' }] },
      400,
      'required',
      'Bundle.entry[1].resource',
    ],
    [
      'an entry resource without resourceType',
      collection({ status: 'final' }),
      400,
      'required',
      'Bundle.entry[1].resource.resourceType',
    ],
    [
      'an unknown resource type',
      collection({ resourceType: 'Medication' }),
      422,
      'not-supported',
      'Bundle.entry[1].resource.resourceType',
    ],
    [
      'resourceType __proto__',
      collection({ resourceType: '__proto__' }),
      422,
      'not-supported',
      'Bundle.entry[1].resource.resourceType',
    ],
    [
      'resourceType constructor',
      collection({ resourceType: 'constructor' }),
      422,
      'not-supported',
      'Bundle.entry[1].resource.resourceType',
    ],
    ['a Specimen on its own', { resourceType: 'Specimen' }, 422, 'not-supported', 'resourceType'],
    [
      'a MessageHeader in a collection',
      collection({ resourceType: 'MessageHeader', focus: [] }),
      422,
      'not-supported',
      'Bundle.entry[1].resource.resourceType',
    ],
    [
      'DiagnosticReport.status missing',
      collection(without(DR_BASE, 'status')),
      400,
      'required',
      'Bundle.entry[1].resource.status',
    ],
    [
      'DiagnosticReport.status not a code',
      collection({ ...DR_BASE, status: 'done' }),
      400,
      'value',
      'Bundle.entry[1].resource.status',
    ],
    [
      'DiagnosticReport.status toString',
      collection({ ...DR_BASE, status: 'toString' }),
      400,
      'value',
      'Bundle.entry[1].resource.status',
    ],
    [
      'DiagnosticReport.status unknown',
      collection({ ...DR_BASE, status: 'unknown' }),
      422,
      'not-supported',
      'Bundle.entry[1].resource.status',
    ],
    [
      'DiagnosticReport.code missing',
      collection(without(DR_BASE, 'code')),
      400,
      'required',
      'Bundle.entry[1].resource.code',
    ],
    [
      'a requester given as a list',
      collection({ ...SR_BASE, requester: [{ reference: 'urn:uuid:p' }] }),
      400,
      'structure',
      'Bundle.entry[1].resource.requester',
    ],
    [
      'DiagnosticReport.code not an object',
      collection({ ...DR_BASE, code: '24323-8' }),
      400,
      'structure',
      'Bundle.entry[1].resource.code',
    ],
    [
      'DiagnosticReport.code empty',
      collection({ ...DR_BASE, code: { coding: [] } }),
      400,
      'required',
      'Bundle.entry[1].resource.code.coding',
    ],
    [
      'a coding code that is a number',
      collection({ ...DR_BASE, code: { coding: [{ code: 42 }] } }),
      400,
      'structure',
      'Bundle.entry[1].resource.code.coding[0].code',
    ],
    [
      'DiagnosticReport.subject missing',
      collection(without(DR_BASE, 'subject')),
      422,
      'required',
      'Bundle.entry[1].resource.subject',
    ],
    [
      'DiagnosticReport.subject a Group',
      collection({ ...DR_BASE, subject: { reference: 'Group/g1' } }),
      422,
      'not-supported',
      'Bundle.entry[1].resource.subject',
    ],
    [
      'DiagnosticReport.subject a urn not in the Bundle',
      collection({ ...DR_BASE, subject: { reference: 'urn:uuid:gone' } }),
      422,
      'not-found',
      'Bundle.entry[1].resource.subject.reference',
    ],
    [
      'DiagnosticReport.subject an absolute URL elsewhere',
      collection({ ...DR_BASE, subject: { reference: 'https://ehr.example/fhir/Patient/1' } }),
      422,
      'not-found',
      'Bundle.entry[1].resource.subject.reference',
    ],
    [
      'DiagnosticReport.subject not a reference',
      collection({ ...DR_BASE, subject: { reference: 'patient one' } }),
      400,
      'value',
      'Bundle.entry[1].resource.subject.reference',
    ],
    [
      'a report without an order number',
      collection(without(DR_BASE, 'identifier')),
      422,
      'required',
      'Bundle.entry[1].resource.identifier',
    ],
    [
      'an order number over 199 characters',
      collection({ ...DR_BASE, identifier: [{ value: 'x'.repeat(200) }] }),
      422,
      'too-long',
      'Bundle.entry[1].resource.identifier[0].value',
    ],
    [
      'a result not in the Bundle',
      collection({ ...DR_BASE, result: [{ reference: 'Observation/o-9' }] }),
      422,
      'not-found',
      'Bundle.entry[1].resource.result[0].reference',
    ],
    [
      'a result that is a Patient',
      collection({ ...DR_BASE, result: [{ reference: 'urn:uuid:p' }] }),
      422,
      'invalid',
      'Bundle.entry[1].resource.result[0]',
    ],
    [
      'a result by identifier only',
      collection({ ...DR_BASE, result: [{ identifier: { value: 'o' } }] }),
      422,
      'not-supported',
      'Bundle.entry[1].resource.result[0]',
    ],
    [
      'a contained result that is not there',
      collection({ ...DR_BASE, result: [{ reference: '#nope' }] }),
      422,
      'not-found',
      'Bundle.entry[1].resource.result[0].reference',
    ],
    [
      'a result list that is not an array',
      collection({ ...DR_BASE, result: { reference: 'urn:uuid:e2' } }),
      400,
      'structure',
      'Bundle.entry[1].resource.result',
    ],
    [
      'a basedOn ServiceRequest not in the Bundle',
      collection({ ...DR_BASE, basedOn: [{ reference: 'ServiceRequest/sr-404' }] }),
      422,
      'not-found',
      'Bundle.entry[1].resource.basedOn[0].reference',
    ],
    [
      'a specimen not in the Bundle',
      collection({ ...DR_BASE, specimen: [{ reference: 'Specimen/s-404' }] }),
      422,
      'not-found',
      'Bundle.entry[1].resource.specimen[0].reference',
    ],
    [
      'presentedForm that is not base64',
      collection({ ...DR_BASE, presentedForm: [{ contentType: 'application/pdf', data: 'not base64!' }] }),
      400,
      'value',
      'Bundle.entry[1].resource.presentedForm[0].data',
    ],
    [
      'presentedForm by url',
      collection({
        ...DR_BASE,
        presentedForm: [{ contentType: 'application/pdf', url: 'https://lab.example/r.pdf' }],
      }),
      422,
      'not-supported',
      'Bundle.entry[1].resource.presentedForm[0].url',
    ],
    [
      'presentedForm without contentType',
      collection({ ...DR_BASE, presentedForm: [{ data: PDF_BASE64 }] }),
      422,
      'required',
      'Bundle.entry[1].resource.presentedForm[0].contentType',
    ],
    [
      'Observation.status missing',
      collection(without(OBS_ROOT, 'status')),
      400,
      'required',
      'Bundle.entry[1].resource.status',
    ],
    [
      'Observation.code missing',
      collection(without(OBS_ROOT, 'code')),
      400,
      'required',
      'Bundle.entry[1].resource.code',
    ],
    [
      'a standalone Observation without subject',
      collection({ ...OBS_BASE, identifier: [{ value: 'r' }] }),
      422,
      'required',
      'Bundle.entry[1].resource.subject',
    ],
    [
      'valueQuantity.value a string',
      collection({ ...OBS_ROOT, valueQuantity: { value: '4.2' } }),
      400,
      'value',
      'Bundle.entry[1].resource.valueQuantity.value',
    ],
    [
      'valueQuantity.comparator not a comparator',
      collection({ ...OBS_ROOT, valueQuantity: { value: 4, comparator: '~' } }),
      400,
      'value',
      'Bundle.entry[1].resource.valueQuantity.comparator',
    ],
    [
      'two value[x]',
      collection({ ...OBS_ROOT, valueString: '4' }),
      400,
      'structure',
      'Bundle.entry[1].resource.valueString',
    ],
    [
      'an unknown value[x]',
      collection({ ...without(OBS_ROOT, 'valueQuantity'), valueMoney: { value: 4 } }),
      400,
      'structure',
      'Bundle.entry[1].resource.valueMoney',
    ],
    [
      'a valuePeriod result',
      collection({ ...without(OBS_ROOT, 'valueQuantity'), valuePeriod: { start: '2026-01-01' } }),
      422,
      'not-supported',
      'Bundle.entry[1].resource.valuePeriod',
    ],
    [
      'a referenceRange bound that is a string',
      collection({ ...OBS_ROOT, referenceRange: [{ low: { value: '3.5' } }] }),
      400,
      'value',
      'Bundle.entry[1].resource.referenceRange[0].low.value',
    ],
    [
      'ServiceRequest.intent missing',
      collection(without(SR_BASE, 'intent')),
      400,
      'required',
      'Bundle.entry[1].resource.intent',
    ],
    [
      'ServiceRequest.intent not a code',
      collection({ ...SR_BASE, intent: 'wish' }),
      400,
      'value',
      'Bundle.entry[1].resource.intent',
    ],
    [
      'ServiceRequest.status missing',
      collection(without(SR_BASE, 'status')),
      400,
      'required',
      'Bundle.entry[1].resource.status',
    ],
    [
      'ServiceRequest.subject missing',
      collection(without(SR_BASE, 'subject')),
      400,
      'required',
      'Bundle.entry[1].resource.subject',
    ],
    [
      'ServiceRequest.code missing',
      collection(without(SR_BASE, 'code')),
      422,
      'required',
      'Bundle.entry[1].resource.code',
    ],
    [
      'ServiceRequest.priority not a code',
      collection({ ...SR_BASE, priority: 'high' }),
      400,
      'value',
      'Bundle.entry[1].resource.priority',
    ],
    [
      'a completed ServiceRequest to place',
      collection({ ...SR_BASE, status: 'completed' }),
      422,
      'not-supported',
      'Bundle.entry[1].resource.status',
    ],
    [
      'an order without an identifier',
      collection(without(SR_BASE, 'identifier')),
      422,
      'required',
      'Bundle.entry[1].resource.identifier',
    ],
    [
      'a requester not in the Bundle',
      collection({ ...SR_BASE, requester: { reference: 'Practitioner/dr-404' } }),
      422,
      'not-found',
      'Bundle.entry[1].resource.requester.reference',
    ],
    [
      'Patient.gender not a code',
      collection({ resourceType: 'Patient', identifier: [{ value: 'Q' }], gender: 'F' }),
      400,
      'value',
      'Bundle.entry[1].resource.gender',
    ],
    [
      'Patient.birthDate not a date',
      collection({ resourceType: 'Patient', identifier: [{ value: 'Q' }], birthDate: '1990-7-4' }),
      400,
      'value',
      'Bundle.entry[1].resource.birthDate',
    ],
    [
      'Patient.name.given not a list',
      collection({ resourceType: 'Patient', identifier: [{ value: 'Q' }], name: [{ given: 'Ann' }] }),
      400,
      'structure',
      'Bundle.entry[1].resource.name[0].given',
    ],
    [
      'a Patient that cannot be matched',
      collection({ resourceType: 'Patient', name: [{ family: 'Nobody' }] }),
      422,
      'required',
      'Bundle.entry[1].resource.identifier',
    ],
    [
      'a code longer than the string cap',
      collection({ ...DR_BASE, code: { coding: [{ code: 'x'.repeat(5000) }] } }),
      422,
      'too-long',
      'Bundle.entry[1].resource.code.coding[0].code',
    ],
    [
      'a contained resource without id',
      collection({ ...DR_BASE, contained: [{ ...OBS_BASE }] }),
      400,
      'required',
      'Bundle.entry[1].resource.contained[0].id',
    ],
    [
      'a contained resource with contained resources',
      collection({ ...DR_BASE, contained: [{ ...OBS_BASE, id: 'o', contained: [] }] }),
      400,
      'invalid',
      'Bundle.entry[1].resource.contained[0].contained',
    ],
    [
      'a duplicate fullUrl',
      { resourceType: 'Bundle', type: 'collection', entry: [PATIENT_ENTRY, PATIENT_ENTRY] },
      400,
      'invalid',
      'Bundle.entry[1].fullUrl',
    ],
    [
      'a result about another patient',
      {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          PATIENT_ENTRY,
          { fullUrl: 'urn:uuid:p2', resource: { resourceType: 'Patient', identifier: [{ value: 'P2' }] } },
          { fullUrl: 'urn:uuid:o', resource: { ...OBS_BASE, subject: { reference: 'urn:uuid:p2' } } },
          { resource: { ...DR_BASE, result: [{ reference: 'urn:uuid:o' }] } },
        ],
      },
      422,
      'invalid',
      'Bundle.entry[2].resource.subject',
    ],
  ])('%s', (_name, body, status, code, expression) => {
    const error = refusal(body);
    expect(error.httpStatus).toBe(status);
    expect(issuesOf(error)).toEqual([{ code, expression }]);
    expect(error.outcome.issue[0]!.severity).toBe('error');
    expect(error.outcome.issue[0]!.diagnostics).toMatch(/\w+ \w+/);
  });

  test.each([
    ['DELETE', 422, 'not-supported'],
    ['GET', 422, 'not-supported'],
    ['PATCH', 422, 'not-supported'],
    ['FETCH', 400, 'value'],
  ])('a transaction entry with request.method %s is refused', (method, status, code) => {
    const error = refusal({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { ...PATIENT_ENTRY, request: { method: 'POST', url: 'Patient' } },
        { request: { method, url: 'Patient/123' } },
      ],
    });
    expect(error.httpStatus).toBe(status);
    expect(issuesOf(error)).toEqual([{ code, expression: 'Bundle.entry[1].request.method' }]);
  });

  test('a transaction entry with a request but no url', () => {
    const error = refusal({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ ...PATIENT_ENTRY, request: { method: 'POST' } }],
    });
    expect(issuesOf(error)).toEqual([{ code: 'required', expression: 'Bundle.entry[0].request.url' }]);
  });

  test('a message Bundle must start with its MessageHeader, and the header must name a focus', () => {
    const noHeader = refusal({ resourceType: 'Bundle', type: 'message', entry: [PATIENT_ENTRY] });
    expect(noHeader.httpStatus).toBe(400);
    expect(issuesOf(noHeader)).toEqual([{ code: 'invalid', expression: 'Bundle.entry[0].resource' }]);
    const noFocus = refusal({
      resourceType: 'Bundle',
      type: 'message',
      entry: [{ resource: { resourceType: 'MessageHeader' } }, PATIENT_ENTRY],
    });
    expect(noFocus.httpStatus).toBe(422);
    expect(issuesOf(noFocus)).toEqual([{ code: 'required', expression: 'Bundle.entry[0].resource.focus' }]);
    const specimenFocus = refusal({
      resourceType: 'Bundle',
      type: 'message',
      entry: [
        { resource: { resourceType: 'MessageHeader', focus: [{ reference: 'urn:uuid:s' }] } },
        { fullUrl: 'urn:uuid:s', resource: { resourceType: 'Specimen' } },
      ],
    });
    expect(issuesOf(specimenFocus)).toEqual([
      { code: 'not-supported', expression: 'Bundle.entry[0].resource.focus[0]' },
    ]);
  });

  test('every problem is listed at once; one 400 problem makes the answer 400', () => {
    const error = refusal(
      collection(
        without(DR_BASE, 'subject'),
        { ...OBS_BASE, status: 'done', subject: { reference: 'urn:uuid:p' }, identifier: [{ value: 'r' }] },
        { ...SR_BASE, subject: { reference: 'urn:uuid:missing' } },
      ),
    );
    expect(error.httpStatus).toBe(400);
    expect(issuesOf(error)).toEqual([
      { code: 'required', expression: 'Bundle.entry[1].resource.subject' },
      { code: 'value', expression: 'Bundle.entry[2].resource.status' },
      { code: 'not-found', expression: 'Bundle.entry[3].resource.subject.reference' },
    ]);
    expect(error.message).toContain('DiagnosticReport.subject is required');
    expect(error.name).toBe('FhirIntakeError');
    expect(error).toBeInstanceOf(Error);
  });

  test('more than 100 problems: the first 100 and a count of the rest', () => {
    const entries = Array.from({ length: 130 }, (_, i) => ({
      fullUrl: `urn:uuid:m${i}`,
      resource: { resourceType: 'Medication' },
    }));
    const error = refusal({ resourceType: 'Bundle', type: 'batch', entry: entries });
    expect(error.outcome.issue).toHaveLength(101);
    expect(error.outcome.issue[99]!.expression).toEqual(['Bundle.entry[99].resource.resourceType']);
    expect(error.outcome.issue[100]!.diagnostics).toBe('30 more problems are not listed');
  });

  test('at most 10,000 entries in a Bundle', () => {
    const entry = Array.from({ length: 10_001 }, () => ({}));
    const error = refusal({ resourceType: 'Bundle', type: 'batch', entry });
    expect(error.httpStatus).toBe(422);
    expect(issuesOf(error)).toEqual([{ code: 'too-long', expression: 'Bundle.entry' }]);
    expect(error.outcome.issue[0]!.diagnostics).toContain('10001 entries');
  });

  test('at most 1,000 observations in a report', () => {
    const contained = Array.from({ length: 1001 }, (_, i) => ({ ...OBS_BASE, id: `o${i}` }));
    const error = refusal({
      ...DR_BASE,
      subject: { reference: 'Patient/1' },
      contained,
      result: contained.map((o) => ({ reference: `#${o.id}` })),
    });
    expect(error.httpStatus).toBe(422);
    expect(issuesOf(error)).toEqual([{ code: 'too-long', expression: 'DiagnosticReport.result' }]);
  });

  test('exactly 1,000 observations in a report are accepted', () => {
    const contained = Array.from({ length: 1000 }, (_, i) => ({ ...OBS_BASE, id: `o${i}` }));
    const report = onlyReport(
      parseFhirIntake({
        ...DR_BASE,
        subject: { reference: 'Patient/1' },
        contained,
        result: contained.map((o) => ({ reference: `#${o.id}` })),
      }),
    );
    expect(report.observations).toHaveLength(1000);
    expect(report.observations[999]!.sequence).toBe(1000);
  });

  test('a __proto__ key in the JSON is an element like any other, never an inherited value', () => {
    const body = JSON.parse(
      '{"resourceType":"Patient","identifier":[{"system":"s","value":"1"}],"__proto__":{"gender":"male","birthDate":"1900"}}',
    ) as unknown;
    const intake = parseFhirIntake(body);
    expect(intake.patients[0]!.sex).toBeNull();
    expect(intake.patients[0]!.birthDate).toBeNull();
    expect(({} as Record<string, unknown>).gender).toBeUndefined();
  });

  test('elements a body only inherits (from its prototype) are not read', () => {
    const inherited = Object.create({ gender: 'male', status: 'final' }) as Record<string, unknown>;
    Object.assign(inherited, { resourceType: 'Patient', identifier: [{ value: '1' }] });
    expect(parseFhirIntake(inherited).patients[0]!.sex).toBeNull();
    const report = Object.create({ status: 'final' }) as Record<string, unknown>;
    Object.assign(report, without(DR_BASE, 'status'), { subject: { reference: 'Patient/1' } });
    expect(issuesOf(refusal(report))).toEqual([{ code: 'required', expression: 'DiagnosticReport.status' }]);
  });
});

describe('another FHIR version is refused before anything else is read', () => {
  test.each([
    [
      'fhirVersion=5.0',
      { resourceType: 'Patient', identifier: [{ value: '1' }] },
      '5.0',
      undefined,
      /got R5 \(5\.0\)/,
    ],
    [
      'fhirVersion=3.0',
      { resourceType: 'Patient', identifier: [{ value: '1' }] },
      '"3.0"',
      undefined,
      /got STU3 \(3\.0\)/,
    ],
    [
      'fhirVersion=4.3',
      { resourceType: 'Patient', identifier: [{ value: '1' }] },
      '4.3',
      undefined,
      /got R4B \(4\.3\)/,
    ],
    [
      'an R5 versioned profile',
      {
        resourceType: 'Patient',
        meta: { profile: ['http://hl7.org/fhir/StructureDefinition/Patient|5.0.0'] },
      },
      null,
      'Patient.meta.profile[0]',
      /got R5 \(5\.0\.0\)/,
    ],
    [
      'an STU3 core profile path',
      {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          {
            resource: {
              resourceType: 'Observation',
              meta: { profile: ['http://hl7.org/fhir/STU3/StructureDefinition/Observation'] },
            },
          },
        ],
      },
      null,
      'Bundle.entry[0].resource.meta.profile[0]',
      /got STU3/,
    ],
    [
      'R5 Bundle.issues',
      {
        resourceType: 'Bundle',
        type: 'transaction',
        issues: { resourceType: 'OperationOutcome' },
        entry: [],
      },
      null,
      'Bundle.issues',
      /got R5: Bundle\.issues exists only in R5/,
    ],
    [
      'an STU3 ProcedureRequest',
      {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ resource: { resourceType: 'ProcedureRequest' } }],
      },
      null,
      'Bundle.entry[0].resource.resourceType',
      /ProcedureRequest is a STU3 resource type/,
    ],
    [
      'a DSTU2 DiagnosticOrder on its own',
      { resourceType: 'DiagnosticOrder' },
      null,
      'DiagnosticOrder.resourceType',
      /DSTU2/,
    ],
    [
      'an R5 Transport',
      { resourceType: 'Bundle', type: 'batch', entry: [{ resource: { resourceType: 'Transport' } }] },
      null,
      'Bundle.entry[0].resource.resourceType',
      /R5/,
    ],
    [
      'R5 DiagnosticReport.note',
      { ...DR_BASE, note: [{ text: 'x' }] },
      null,
      'DiagnosticReport.note',
      /DiagnosticReport\.note exists only in R5/,
    ],
    [
      'STU3 Observation.comment in a contained result',
      { ...DR_BASE, contained: [{ ...OBS_BASE, id: 'o', comment: 'x' }] },
      null,
      'DiagnosticReport.contained[0].comment',
      /STU3/,
    ],
    [
      'R5 ServiceRequest.code as a CodeableReference',
      { ...SR_BASE, code: { concept: { coding: [{ code: 'x' }] } } },
      null,
      'ServiceRequest.code',
      /CodeableReference/,
    ],
  ])('%s', (_name, body, fhirVersion, expression, diagnostics) => {
    const error = refusal(body, { fhirVersion });
    expect(error.httpStatus).toBe(422);
    expect(issuesOf(error)).toEqual([{ code: 'not-supported', expression }]);
    expect(error.outcome.issue[0]!.diagnostics).toMatch(/^FHIR R4 \(4\.0\.x\) expected, got /);
    expect(error.outcome.issue[0]!.diagnostics).toMatch(diagnostics);
  });

  test.each(['4.0', '4.0.1', '4.0.0', '', null, undefined])('fhirVersion %s is R4', (fhirVersion) => {
    const intake = parseFhirIntake(
      {
        resourceType: 'Patient',
        identifier: [{ value: '1' }],
        meta: { profile: ['http://hl7.org/fhir/StructureDefinition/Patient|4.0.1'] },
      },
      { fhirVersion },
    );
    expect(intake.patients).toHaveLength(1);
  });
});

test('operationOutcome builds an OperationOutcome from its issues', () => {
  expect(
    operationOutcome([
      { severity: 'information', code: 'informational', diagnostics: 'accepted: 1 report(s)' },
    ]),
  ).toEqual({
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'information', code: 'informational', diagnostics: 'accepted: 1 report(s)' }],
  });
});
