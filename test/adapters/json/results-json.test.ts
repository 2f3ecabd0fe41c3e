import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import {
  SIMPLE_RESULTS_EXAMPLE,
  SimpleResultsSchema,
  simpleResultsToResultMessage,
  type SimpleResults,
} from '../../../adapters/json/results-json.ts';
import { flagObservation } from '../../../domain/flags.ts';
import { DEFAULT_CRITICAL_TABLE } from '../../../domain/critical-values.ts';

const LOINC = 'http://loinc.org';

/** The smallest body the format accepts. */
const minimal = (): Record<string, unknown> => ({
  patient: { externalPatientId: 'EXT-1' },
  report: { code: { code: 'BMP' } },
  results: [{ code: { code: '2823-3' }, value: 4.1 }],
});

/** The documented example with one change applied by `edit`. */
function exampleWith(edit: (body: any) => void): unknown {
  const body = structuredClone(SIMPLE_RESULTS_EXAMPLE) as any;
  edit(body);
  return body;
}

function parse(body: unknown): SimpleResults {
  return SimpleResultsSchema.parse(body);
}

const issuesOf = (body: unknown) =>
  (SimpleResultsSchema.safeParse(body).error?.issues ?? []).map((i) => ({
    path: i.path.join('.'),
    message: i.message,
  }));

describe('SimpleResultsSchema', () => {
  test('accepts the documented example and the smallest body', () => {
    expect(SimpleResultsSchema.safeParse(SIMPLE_RESULTS_EXAMPLE).success).toBe(true);
    expect(SimpleResultsSchema.safeParse(minimal()).success).toBe(true);
  });

  test.each<[string, (body: any) => void, string, RegExp]>([
    [
      'a patient without any id',
      (b) => (b.patient = { familyName: 'Doe', birthDate: '1980-01-15' }),
      'patient',
      /give at least one of id, externalPatientId or identifiers/,
    ],
    ['an empty identifier list', (b) => (b.patient.identifiers = []), 'patient.identifiers', /./],
    ['an unknown top-level field', (b) => (b.priority = 'stat'), '', /unknown field\(s\) "priority"/],
    [
      'an unknown patient field',
      (b) => (b.patient.nickname = 'JD'),
      'patient',
      /unknown field\(s\) "nickname": not part of the simple result format/,
    ],
    ['an unknown result field', (b) => (b.results[0].valueQuantity = 6.8), 'results.0', /"valueQuantity"/],
    [
      'a __proto__ key',
      (b) => Object.defineProperty(b.report, '__proto__', { value: {}, enumerable: true }),
      'report',
      /"__proto__"/,
    ],
    ['a patient id that is not a UUID', (b) => (b.patient.id = 'patient-1'), 'patient.id', /./],
    ['an impossible birth date', (b) => (b.patient.birthDate = '1980-02-30'), 'patient.birthDate', /date/i],
    ['a birth date in year 0', (b) => (b.patient.birthDate = '0000-01-01'), 'patient.birthDate', /year 0000/],
    ['a US birth date', (b) => (b.patient.birthDate = '01/15/1980'), 'patient.birthDate', /date/i],
    ['an unknown sex', (b) => (b.patient.sex = 'F'), 'patient.sex', /./],
    ['an e-mail without @', (b) => (b.patient.email = 'jane.example.org'), 'patient.email', /./],
    [
      'a family name over 200 characters',
      (b) => (b.patient.familyName = 'D'.repeat(201)),
      'patient.familyName',
      /./,
    ],
    [
      'a collection time without an offset',
      (b) => (b.report.effectiveAt = '2026-11-22T07:00:00'),
      'report.effectiveAt',
      /datetime/i,
    ],
    ['an unknown report status', (b) => (b.report.status = 'amended'), 'report.status', /./],
    ['an empty report code', (b) => (b.report.code.code = '  '), 'report.code.code', /./],
    ['no results', (b) => (b.results = []), 'results', /./],
    [
      'more than 1000 results',
      (b) => (b.results = Array.from({ length: 1001 }, () => ({ code: { code: 'X' }, value: 1 }))),
      'results',
      /./,
    ],
    ['an empty text value', (b) => (b.results[0].value = ''), 'results.0.value', /./],
    ['a value that is neither number nor text', (b) => (b.results[0].value = true), 'results.0.value', /./],
    [
      'a comparator on a text value',
      (b) => Object.assign(b.results[0], { value: 'positive', comparator: '<' }),
      'results.0.comparator',
      /a comparator needs a numeric value/,
    ],
    [
      'two different comparators',
      (b) => Object.assign(b.results[0], { value: '>5', comparator: '<' }),
      'results.0.comparator',
      /the value says > and the comparator <: give it once/,
    ],
    [
      'a reference range upside down',
      (b) => (b.results[0].referenceRange = { low: 5.1, high: 3.5 }),
      'results.0.referenceRange',
      /low is above high/,
    ],
    ['six flags', (b) => (b.results[0].flags = ['H', 'H', 'H', 'H', 'H', 'H']), 'results.0.flags', /./],
    ['a unit over 50 characters', (b) => (b.results[0].unit = 'm'.repeat(51)), 'results.0.unit', /./],
    ['21 notes', (b) => (b.report.notes = Array.from({ length: 21 }, () => 'n')), 'report.notes', /./],
  ])('refuses %s, naming where', (_name, edit, path, message) => {
    const issues = issuesOf(exampleWith(edit));

    expect(issues.length).toBeGreaterThan(0);
    expect(issues).toContainEqual({ path, message: expect.stringMatching(message) });
  });

  test('describes every field, for the OpenAPI document', () => {
    const schema = z.toJSONSchema(SimpleResultsSchema, { io: 'input', unrepresentable: 'any' }) as any;
    const undescribed: string[] = [];
    const walk = (node: any, path: string) => {
      if (!node || typeof node !== 'object') return;
      for (const [key, child] of Object.entries<any>(node.properties ?? {})) {
        if (!child.description) undescribed.push(`${path}${key}`);
        walk(child, `${path}${key}.`);
        walk(child.items, `${path}${key}[].`);
      }
    };
    walk(schema, '');

    expect(schema.description).toMatch(/one patient/i);
    expect(schema.properties.patient.description).toBeTruthy();
    expect(undescribed).toEqual([]);
  });
});

describe('simpleResultsToResultMessage', () => {
  test('maps the documented example: a critical potassium the flagging rules see as critical', () => {
    const message = simpleResultsToResultMessage(parse(SIMPLE_RESULTS_EXAMPLE));

    expect(message.patient).toEqual({
      identifiers: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: 'MRN123456', type: 'MR' }],
      familyName: 'Doe',
      givenNames: ['Jane'],
      birthDate: '1980-01-15',
      sex: 'female',
      internalId: null,
      // The sender's id is the external id only, not also an identifier.
      externalId: 'EHR-100234',
      email: 'jane.doe@example.org',
      phone: null,
    });
    expect(message.reports).toHaveLength(1);
    const report = message.reports[0]!;
    expect(report).toMatchObject({
      placerOrderNumber: 'ORD-1001',
      placerAuthority: 'urn:oid:2.16.840.1.113883.19.5.2',
      fillerOrderNumber: 'ACC-26-0012',
      code: { system: LOINC, code: '24323-8', display: 'Comprehensive metabolic panel' },
      status: 'final',
      orderingProvider: { id: '1234567893', familyName: 'Welby', givenNames: ['Marcus'] },
      effectiveAt: '2026-11-22T12:00:00.000Z',
      issuedAt: '2026-11-22T13:25:00.000Z',
    });
    expect(report.notes).toBeUndefined();
    const potassium = report.observations[0]!;
    expect(potassium).toEqual({
      sequence: 1,
      code: { system: LOINC, code: '2823-3', display: 'Potassium' },
      valueType: 'quantity',
      numericValue: 6.8,
      comparator: null,
      textValue: '6.8',
      unit: 'mmol/L',
      referenceRange: { low: 3.5, high: 5.1, text: '3.5-5.1' },
      sourceFlags: ['HH'],
      status: 'final',
      effectiveAt: '2026-11-22T12:00:00.000Z',
      notes: ['Specimen not hemolyzed.'],
    });
    expect(report.observations[1]).toMatchObject({
      sequence: 2,
      numericValue: 139,
      referenceRange: { text: null },
    });
    expect(flagObservation(potassium, DEFAULT_CRITICAL_TABLE).critical).toBe(true);
  });

  test('maps the smallest body with nothing invented', () => {
    const message = simpleResultsToResultMessage(parse(minimal()));

    expect(message.patient).toEqual({
      identifiers: [],
      familyName: null,
      givenNames: [],
      birthDate: null,
      sex: null,
      internalId: null,
      externalId: 'EXT-1',
      email: null,
      phone: null,
    });
    expect(message.reports[0]).toEqual({
      placerOrderNumber: null,
      placerAuthority: null,
      fillerOrderNumber: null,
      code: { system: null, code: 'BMP', display: null },
      status: 'final',
      orderingProvider: null,
      effectiveAt: null,
      issuedAt: null,
      observations: [
        {
          sequence: 1,
          code: { system: null, code: '2823-3', display: null },
          valueType: 'quantity',
          numericValue: 4.1,
          comparator: null,
          textValue: '4.1',
          unit: null,
          referenceRange: null,
          sourceFlags: [],
          status: 'final',
          effectiveAt: null,
        },
      ],
    });
  });

  test('keeps our patient id as the internal id', () => {
    const id = '0b7d6a3e-2f4c-4a8e-9d61-5c3b2a1f0e9d';
    const message = simpleResultsToResultMessage(parse({ ...minimal(), patient: { id } }));

    expect(message.patient.internalId).toBe(id);
    expect(message.patient.externalId).toBeNull();
  });

  test.each<[string, number | string, string | undefined, Record<string, unknown>]>([
    [
      'a number',
      6.8,
      undefined,
      { valueType: 'quantity', numericValue: 6.8, comparator: null, textValue: '6.8' },
    ],
    ['a number as text', ' 6.8 ', undefined, { valueType: 'quantity', numericValue: 6.8, textValue: '6.8' }],
    ['a bound in the text', '<0.01', undefined, { numericValue: 0.01, comparator: '<', textValue: '<0.01' }],
    ['a bound in comparator', 0.01, '<', { numericValue: 0.01, comparator: '<', textValue: '<0.01' }],
    ['a bound given twice alike', '>=60', '>=', { numericValue: 60, comparator: '>=', textValue: '>=60' }],
    [
      'a comparator on numeric text',
      '1000',
      '>',
      { numericValue: 1000, comparator: '>', textValue: '>1000' },
    ],
    ['a negative number', -2.5, undefined, { numericValue: -2.5, textValue: '-2.5' }],
    [
      'text',
      'Positive',
      undefined,
      { valueType: 'text', numericValue: null, comparator: null, textValue: 'Positive' },
    ],
  ])('reads %s as a value', (_name, value, comparator, expected) => {
    const body = minimal();
    body.results = [{ code: { code: 'X' }, value, ...(comparator ? { comparator } : {}) }];
    const observation = simpleResultsToResultMessage(parse(body)).reports[0]!.observations[0];

    expect(observation).toMatchObject(expected);
  });

  test.each([
    ['LN', LOINC],
    ['loinc', LOINC],
    ['http://loinc.org', LOINC],
    ['http://snomed.info/sct', 'http://snomed.info/sct'],
  ])('reads code system %s as %s', (system, expected) => {
    const body = minimal();
    body.results = [{ code: { system, code: '2823-3' }, value: 1 }];

    expect(simpleResultsToResultMessage(parse(body)).reports[0]!.observations[0]!.code.system).toBe(expected);
  });

  test('gives results the report status and time unless they have their own', () => {
    const body = exampleWith((b) => {
      b.report.status = 'preliminary';
      b.results[1].status = 'final';
      b.results[1].effectiveAt = '2026-11-22T08:00:00Z';
    });
    const report = simpleResultsToResultMessage(parse(body)).reports[0]!;

    expect(report.status).toBe('preliminary');
    expect(report.observations.map((o) => [o.status, o.effectiveAt])).toEqual([
      ['preliminary', '2026-11-22T12:00:00.000Z'],
      ['final', '2026-11-22T08:00:00.000Z'],
    ]);
  });

  test('reads the bounds of a range given only as text, and upper-cases flags', () => {
    const body = exampleWith((b) => {
      b.results[0].referenceRange = { text: '<200' };
      b.results[0].flags = ['h'];
    });
    const observation = simpleResultsToResultMessage(parse(body)).reports[0]!.observations[0]!;

    expect(observation.referenceRange).toEqual({ low: null, high: 200, text: '<200' });
    expect(observation.sourceFlags).toEqual(['H']);
  });

  test('keeps identifiers as given and notes on the report', () => {
    const body = exampleWith((b) => {
      b.patient.identifiers.push({ system: 'urn:acme', value: 'A-1' });
      b.report.notes = ['Fasting specimen.'];
    });
    const message = simpleResultsToResultMessage(parse(body));

    expect(message.patient.identifiers).toEqual([
      { system: 'urn:oid:2.16.840.1.113883.19.5', value: 'MRN123456', type: 'MR' },
      { system: 'urn:acme', value: 'A-1', type: null },
    ]);
    expect(message.reports[0]!.notes).toEqual(['Fasting specimen.']);
  });
});
