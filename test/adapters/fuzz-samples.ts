import fc from 'fast-check';

/** Realistic samples and the mutations the fuzz tests apply to them. */

export function ormMessage(controlId = 'ORM-FUZZ'): string {
  return [
    `MSH|^~\\&|EPIC|STMARYS|LABRELAY|ACME_LAB|20261122060000||ORM^O01|${controlId}|P|2.5.1`,
    'PID|1||ORM-MRN^^^STMARYS^MR||Order^Olga||19800101|F',
    'ORC|NW|ORD-A^STMARYS||||||||||1234^Welby^Marcus',
    'OBR|1|ORD-A^STMARYS||2823-3^Potassium^LN|||20261122055000',
    'NTE|1||fasting',
  ].join('\r');
}

export function fhirTransaction(): Record<string, unknown> {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000001',
        resource: {
          resourceType: 'Patient',
          identifier: [{ system: 'urn:fuzz', value: 'P-1' }],
          name: [{ family: 'Fuzz', given: ['Frank'] }],
          birthDate: '1970-01-01',
        },
        request: { method: 'POST', url: 'Patient' },
      },
      {
        fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000002',
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '2823-3' }] },
          subject: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000001' },
          valueQuantity: { value: 4.2, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
        },
        request: { method: 'POST', url: 'Observation' },
      },
      {
        fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000003',
        resource: {
          resourceType: 'DiagnosticReport',
          status: 'final',
          identifier: [{ system: 'urn:fuzz:reports', value: 'R-1' }],
          code: { coding: [{ system: 'http://loinc.org', code: '24323-8' }] },
          subject: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000001' },
          result: [{ reference: 'urn:uuid:00000000-0000-4000-8000-000000000002' }],
        },
        request: { method: 'POST', url: 'DiagnosticReport' },
      },
    ],
  };
}

export const SAMPLE_JSON = () => ({
  patient: { externalPatientId: 'EXT-F', familyName: 'Fuzz', birthDate: '1970-01-01' },
  order: { placerOrderNumber: 'F-1' },
  report: { code: { system: 'http://loinc.org', code: '24323-8' } },
  results: [{ code: { system: 'http://loinc.org', code: '2823-3' }, value: 4.2, unit: 'mmol/L' }],
});

export const SAMPLE_CSV =
  'patient_id,patient_id_system,family_name,birth_date,order_number,test_code,test_system,value,unit,reference_range\r\n' +
  'F-1,urn:fuzz,Fuzz,1970-01-01,FO-1,2823-3,LN,4.2,mmol/L,3.5-5.1\r\n' +
  'F-1,urn:fuzz,Fuzz,1970-01-01,FO-1,2951-2,LN,"140",mmol/L,135-145\r\n';

const HL7_NOISE = [
  '|',
  '^',
  '~',
  '\\',
  '&',
  '\r',
  '\n',
  '\\X00\\',
  '\\E\\',
  'ZZZ|',
  'OBX|',
  'MSH|',
  '\u0000',
  '\uFFFF',
  '9'.repeat(40),
];

/** Edits of a text: insert, delete or replace a slice with noise (delimiters, escapes, junk). */
const textEdit = (noise: fc.Arbitrary<string>) =>
  fc.tuple(fc.nat(), fc.nat({ max: 20 }), noise).map(([at, length, insert]) => (text: string) => {
    const i = text.length === 0 ? 0 : at % text.length;
    return text.slice(0, i) + insert + text.slice(i + length);
  });

const JSON_NOISE: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.string({ maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant({}),
  fc.constant([]),
  fc.constant('__proto__'),
  fc.constant({ reference: 'urn:uuid:nowhere' }),
  fc.constant({ resourceType: 'Observation' }),
);

/** An edit of a JSON value: replace or delete a value somewhere in the tree. */
const jsonEdit = fc
  .tuple(fc.nat(), fc.boolean(), JSON_NOISE)
  .map(([pick, remove, value]) => (root: unknown) => {
    const copy = structuredClone(root) as unknown;
    const slots: [Record<string, unknown> | unknown[], string | number][] = [];
    const walk = (node: unknown) => {
      if (Array.isArray(node))
        node.forEach((child, i) => {
          slots.push([node, i]);
          walk(child);
        });
      else if (node && typeof node === 'object')
        for (const [k, v] of Object.entries(node)) {
          slots.push([node as Record<string, unknown>, k]);
          walk(v);
        }
    };
    walk(copy);
    if (slots.length === 0) return value;
    const [parent, key] = slots[pick % slots.length]!;
    if (remove && !Array.isArray(parent)) delete (parent as Record<string, unknown>)[key as string];
    else (parent as Record<string | number, unknown>)[key] = value;
    return copy;
  });

export const mutate = {
  hl7: textEdit(fc.oneof(fc.constantFrom(...HL7_NOISE), fc.string({ maxLength: 10 }))),
  text: textEdit(
    fc.oneof(
      fc.constantFrom(',', '"', '\r\n', '\n', '\uFEFF', '""', ',,,,', 'abc'),
      fc.string({ maxLength: 10 }),
    ),
  ),
  json: jsonEdit,
};
