import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import {
  CSV_COLUMNS,
  CSV_FORMAT_ERROR,
  CsvFormatError,
  CsvHeaderError,
  csvDateTime,
  readCsvResults,
  type CsvBatch,
  type CsvInput,
  type CsvReadOptions,
} from '../../../adapters/csv/results-csv.ts';
import type { ObservationResult, ResultMessage } from '../../../domain/model.ts';

const LOINC = 'http://loinc.org';

/** A lab's export as Excel saves it: BOM, CRLF, spaced header names, quoted fields. */
const LAB_EXPORT =
  '\uFEFF' +
  [
    'Patient ID,Patient-ID-System,MRN,MRN System,Family Name,Given Name,Birth Date,Sex,Email,Order Number,Order Number System,Filler Order Number,Test Code,Test System,Test Name,Panel Code,Panel Name,Value,Unit,Reference Range,Flag,Status,Collected At,Resulted At,Ordering Provider ID,Ordering Provider Name,Comment',
    'EHR-100234,urn:oid:1.2.3,MRN123456,STMARYS,Doe,Jane Q,1980-01-15,F,jane.doe@example.org,ORD-1001,STMARYS-ORD,ACC-26-0012,2823-3,LN,Potassium,24321-2,Basic metabolic panel,6.8,mmol/L,3.5-5.1,HH,F,2026-11-22T07:00:00-05:00,2026-11-22 13:25,1234,"Welby, Marcus","Called to Dr Welby, read back ""6.8"".\nHemolysis: none."',
    'EHR-100234,urn:oid:1.2.3,MRN123456,STMARYS,Doe,Jane Q,1980-01-15,F,jane.doe@example.org,ORD-1001,STMARYS-ORD,ACC-26-0012,2951-2,LOINC,Sodium,24321-2,Basic metabolic panel,139,mmol/L,135-145,,F,2026-11-22T07:00:00-05:00,2026-11-22 13:20,1234,"Welby, Marcus",',
    'EHR-100234,urn:oid:1.2.3,MRN123456,STMARYS,Doe,Jane Q,1980-01-15,F,jane.doe@example.org,ORD-1001,STMARYS-ORD,ACC-26-0012,2345-7,http://loinc.org,"Glucose, fasting",24321-2,Basic metabolic panel,<40,mg/dL,70-99,LL,P,2026-11-22T07:00:00-05:00,2026-11-22 13:30,1234,"Welby, Marcus",',
    'EHR-200777,urn:oid:1.2.3,,,Roe,Richard,1955-12-31,male,,ORD-1002,STMARYS-ORD,,5778-6,LN,Color of urine,,,"Yellow, clear",,,,final,2026-11-22 08:15,,,,',
  ].join('\r\n') +
  '\r\n';

interface ReadAll {
  batches: CsvBatch[];
  results: ResultMessage[];
  rejected: { row: number; message: string }[];
  warnings: string[];
  accepted: number;
  rowsRead: number;
}

async function readAll(input: CsvInput, options?: CsvReadOptions): Promise<ReadAll> {
  const batches: CsvBatch[] = [];
  for await (const batch of readCsvResults(input, options)) batches.push(batch);
  return {
    batches,
    results: batches.flatMap((b) => b.results),
    rejected: batches.flatMap((b) => b.rejected),
    warnings: batches.flatMap((b) => b.warnings),
    accepted: batches.reduce((n, b) => n + b.accepted, 0),
    rowsRead: batches.at(-1)?.rowsRead ?? 0,
  };
}

/** Reads until the reader throws; answers the batches before it and the error. */
async function readUntilError(input: CsvInput, options?: CsvReadOptions) {
  const batches: CsvBatch[] = [];
  try {
    for await (const batch of readCsvResults(input, options)) batches.push(batch);
  } catch (error) {
    return { batches, error };
  }
  throw new Error('expected readCsvResults to throw');
}

const observations = (results: ResultMessage[]): ObservationResult[] =>
  results.flatMap((m) => m.reports.flatMap((r) => r.observations));

/** A small upload with the columns given, the header first. */
function csvOf(header: string[], rows: string[][], eol = '\n'): string {
  return [header, ...rows].map((r) => r.join(',')).join(eol) + eol;
}

const BASIC_HEADER = ['patient_id', 'patient_id_system', 'test_code', 'test_system', 'value', 'unit'];
const basicRow = (patient: string, code: string, value: string, unit = 'mmol/L') => [
  patient,
  'urn:acme',
  code,
  'LN',
  value,
  unit,
];

describe('readCsvResults: a lab export', () => {
  test('maps patient, reports and results, with BOM, CRLF and quoted commas, quotes and line breaks', async () => {
    const { results, rejected, accepted, rowsRead, batches } = await readAll(LAB_EXPORT);

    expect(rejected).toEqual([]);
    expect(accepted).toBe(4);
    expect(rowsRead).toBe(4);
    expect(batches).toHaveLength(1);
    expect(results).toHaveLength(2);
    const [jane, richard] = results as [ResultMessage, ResultMessage];
    expect(jane.patient).toEqual({
      identifiers: [
        { system: 'urn:oid:1.2.3', value: 'EHR-100234', type: 'PI' },
        { system: 'STMARYS', value: 'MRN123456', type: 'MR' },
      ],
      familyName: 'Doe',
      givenNames: ['Jane', 'Q'],
      birthDate: '1980-01-15',
      sex: 'female',
      externalId: 'EHR-100234',
      email: 'jane.doe@example.org',
      phone: null,
    });
    expect(jane.reports).toHaveLength(1);
    const bmp = jane.reports[0]!;
    expect(bmp).toMatchObject({
      placerOrderNumber: 'ORD-1001',
      placerAuthority: 'STMARYS-ORD',
      fillerOrderNumber: 'ACC-26-0012',
      code: { system: null, code: '24321-2', display: 'Basic metabolic panel' },
      // One preliminary result keeps the report preliminary.
      status: 'preliminary',
      orderingProvider: { id: '1234', familyName: 'Welby', givenNames: ['Marcus'] },
      effectiveAt: '2026-11-22T12:00:00.000Z',
      // The latest release of its results.
      issuedAt: '2026-11-22T13:30:00.000Z',
    });
    expect(bmp.observations.map((o) => o.sequence)).toEqual([1, 2, 3]);
    expect(bmp.observations[0]).toEqual({
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
      notes: ['Called to Dr Welby, read back "6.8".\nHemolysis: none.'],
    });
    expect(bmp.observations[1]).toMatchObject({ code: { system: LOINC, code: '2951-2' }, numericValue: 139 });
    expect(bmp.observations[1]!.notes).toBeUndefined();
    expect(bmp.observations[2]).toMatchObject({
      code: { system: LOINC, code: '2345-7', display: 'Glucose, fasting' },
      numericValue: 40,
      comparator: '<',
      textValue: '<40',
      sourceFlags: ['LL'],
      status: 'preliminary',
    });
    expect(richard.patient).toMatchObject({
      identifiers: [{ system: 'urn:oid:1.2.3', value: 'EHR-200777', type: 'PI' }],
      sex: 'male',
      birthDate: '1955-12-31',
    });
    // Without a panel the report is the test itself.
    expect(richard.reports[0]).toMatchObject({
      code: { system: LOINC, code: '5778-6', display: 'Color of urine' },
      status: 'final',
      effectiveAt: '2026-11-22T08:15:00.000Z',
      issuedAt: null,
      orderingProvider: null,
    });
    expect(richard.reports[0]!.observations[0]).toMatchObject({
      valueType: 'text',
      textValue: 'Yellow, clear',
      numericValue: null,
      unit: null,
      referenceRange: null,
    });
  });

  test('documents every column it reads, once, each with a description', () => {
    const names = CSV_COLUMNS.map((c) => c.name);

    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(['patient_id', 'mrn', 'test_code', 'value', 'comment']));
    for (const c of CSV_COLUMNS) expect(c.description.length).toBeGreaterThan(5);
  });
});

describe('readCsvResults: the header', () => {
  test.each([
    ['mixed case and spaces', 'Patient ID,Test Code,Value'],
    ['hyphens', 'patient-id,test-code,VALUE'],
    ['padding and quotes', ' "patient_id" , "test_code" ,  value '],
  ])('reads column names with %s', async (_name, header) => {
    const { accepted, rejected } = await readAll(`${header}\nP-1,2823-3,4.1\n`);

    expect(rejected).toEqual([]);
    expect(accepted).toBe(1);
  });

  test.each([
    ['no test_code', 'patient_id,value', /lacks the required column\(s\) test_code\.?/],
    ['no value', 'patient_id,test_code', /lacks the required column\(s\) value/],
    [
      'no patient identifier',
      'family_name,test_code,value',
      /lacks the required column\(s\) patient_id or mrn/,
    ],
    ['nothing required', 'a,b,c', /test_code, value, patient_id or mrn\. None of its columns is known/],
    ['a column twice', 'patient_id,test_code,value,Value', /names value more than once/],
    ['semicolons', 'patient_id;test_code;value', /separated by ";": LabRelay reads comma-separated/],
    ['tabs', 'patient_id\ttest_code\tvalue', /separated by tabs/],
  ])('refuses the whole upload for %s', async (_name, header, message) => {
    const { batches, error } = await readUntilError(`${header}\nP-1,2823-3,4.1\n`);

    expect(batches).toEqual([]);
    expect(error).toBeInstanceOf(CsvHeaderError);
    expect((error as CsvHeaderError).message).toMatch(message);
    expect((error as CsvHeaderError).row).toBe(1);
  });

  test.each([
    ['an empty body', ''],
    ['only a byte-order mark', '\uFEFF'],
    ['only blank lines', '\r\n\r\n  \r\n'],
  ])('refuses %s: there is no header', async (_name, text) => {
    const { error } = await readUntilError(text);

    expect(error).toBeInstanceOf(CsvHeaderError);
    expect((error as Error).message).toMatch(/the file is empty/);
  });

  test('ignores unknown and unnamed columns, and says so in the first batch only', async () => {
    const text = csvOf(
      ['patient_id', 'Specimen Type', 'test_code', 'value', '', 'lab_site'],
      [
        ['P-1', 'serum', '2823-3', '4.1', 'x', 'North'],
        ['P-1', 'serum', '2951-2', '140', 'y', 'North'],
      ],
    );
    const { batches, accepted } = await readAll(text, { batchRows: 1 });

    expect(accepted).toBe(2);
    expect(batches[0]!.warnings).toEqual([
      'column(s) Specimen Type, lab_site are not LabRelay columns and were ignored',
      'column(s) 5 have no name and were ignored',
      'there is no test_system column: a test code in the form of LOINC with a valid check digit is read as LOINC; any other code is not checked against the critical limits',
    ]);
    expect(batches[1]!.warnings).toEqual([]);
    expect(observations(batches[0]!.results)[0]!.code.system).toBeNull();
  });

  test('warns that an mrn without its assigning authority never matches a patient', async () => {
    const { warnings } = await readAll('mrn,test_code,test_system,value\nM-1,2823-3,LN,4.1\n');

    expect(warnings).toEqual([
      'there is no mrn_system column: an mrn without its assigning authority never matches a patient',
    ]);
  });

  test('answers one empty batch for a header without rows, with the header warnings', async () => {
    const { batches } = await readAll('patient_id,test_code,value,extra\r\n');

    expect(batches).toEqual([
      {
        results: [],
        accepted: 0,
        rejected: [],
        rowsRead: 0,
        warnings: [
          'column(s) extra are not LabRelay columns and were ignored',
          'there is no test_system column: a test code in the form of LOINC with a valid check digit is read as LOINC; any other code is not checked against the critical limits',
        ],
      },
    ]);
  });
});

describe('readCsvResults: rows', () => {
  const HEADER = [
    'patient_id',
    'patient_id_system',
    'mrn',
    'birth_date',
    'sex',
    'email',
    'phone',
    'test_code',
    'test_system',
    'value',
    'flag',
    'status',
    'collected_at',
    'comment',
  ];
  const GOOD = ['P-1', 'urn:acme', '', '1980-01-15', 'F', '', '', '2823-3', 'LN', '4.1', '', '', '', ''];
  const withField = (column: string, value: string) => {
    const row = [...GOOD];
    row[HEADER.indexOf(column)] = value;
    return row;
  };

  test.each([
    ['no patient id', withField('patient_id', ''), 'the row has no patient_id and no mrn'],
    ['no test code', withField('test_code', ''), 'test_code is empty'],
    ['no value', withField('value', ' '), 'value is empty'],
    [
      'an impossible birth date',
      withField('birth_date', '1980-02-30'),
      'birth_date "1980-02-30" is not a date',
    ],
    [
      'a US birth date',
      withField('birth_date', '01/15/1980'),
      'birth_date "01/15/1980" is not a date (YYYY-MM-DD)',
    ],
    ['an unknown sex', withField('sex', 'X'), 'sex "X" is not M, F, O or U'],
    [
      'an e-mail without @',
      withField('email', 'jane.example.org'),
      'email "jane.example.org" is not an e-mail',
    ],
    ['a phone without digits', withField('phone', 'call me'), 'phone "call me" is not a phone number'],
    ['an unknown status', withField('status', 'Z'), 'status "Z" is not F, P, C or X'],
    ['an unknown flag', withField('flag', 'HIGH'), 'flag "HIGH" is not H, L, HH, LL, A, AA or N'],
    [
      'a collection time that is not a time',
      withField('collected_at', '22/11/2026 07:00'),
      'collected_at "22/11/2026 07:00" is not a date-time',
    ],
    [
      'more fields than the header',
      [...GOOD, 'Jane'],
      'the row has 15 fields but the header has 14: is a comma inside an unquoted value?',
    ],
    [
      'a line break outside the comment',
      withField('value', '"4.1\n5.2"'),
      'value holds a line break: is a quote left open on this row?',
    ],
    [
      'an identifier over 199 characters',
      withField('patient_id', 'P'.repeat(200)),
      'patient_id is longer than 199',
    ],
  ])('refuses a row with %s, naming its row, and keeps its neighbours', async (_name, bad, message) => {
    const text = csvOf(HEADER, [GOOD, bad, GOOD]);
    const { rejected, accepted, rowsRead } = await readAll(text);

    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.row).toBe(3);
    expect(rejected[0]!.message).toContain(message);
    expect(accepted).toBe(2);
    expect(rowsRead).toBe(3);
  });

  test('lists every problem of a refused row', async () => {
    const text = csvOf(HEADER, [
      withField('sex', 'X').map((v, i) => (i === HEADER.indexOf('value') ? '' : v)),
    ]);
    const { rejected } = await readAll(text);

    expect(rejected).toEqual([{ row: 2, message: 'value is empty; sex "X" is not M, F, O or U' }]);
  });

  test('accepts trailing empty fields beyond the header and rows shorter than it', async () => {
    const text = 'patient_id,test_code,value,unit\nP-1,2823-3,4.1,mmol/L,,\nP-1,2951-2,140\n';
    const { rejected, results } = await readAll(text);

    expect(rejected).toEqual([]);
    expect(observations(results).map((o) => o.unit)).toEqual(['mmol/L', null]);
  });

  test('refuses a field longer than maxFieldBytes, counting UTF-8 bytes', async () => {
    // 30 characters but 60 bytes.
    const text = csvOf(HEADER, [GOOD, withField('comment', 'é'.repeat(30))]);
    const { rejected, accepted } = await readAll(text, { maxFieldBytes: 50 });

    expect(rejected).toEqual([{ row: 3, message: 'comment is longer than 50 bytes' }]);
    expect(accepted).toBe(1);
  });

  test.each([
    ['6.8', { valueType: 'quantity', numericValue: 6.8, comparator: null }],
    ['<0.01', { valueType: 'quantity', numericValue: 0.01, comparator: '<' }],
    ['>1000', { valueType: 'quantity', numericValue: 1000, comparator: '>' }],
    ['>= 60', { valueType: 'quantity', numericValue: 60, comparator: '>=' }],
    ['<=5', { valueType: 'quantity', numericValue: 5, comparator: '<=' }],
    ['-2.5', { valueType: 'quantity', numericValue: -2.5, comparator: null }],
    ['.5', { valueType: 'quantity', numericValue: 0.5, comparator: null }],
    ['1.2e3', { valueType: 'quantity', numericValue: 1200, comparator: null }],
    ['Positive', { valueType: 'text', numericValue: null, comparator: null }],
    ['1,000', { valueType: 'text', numericValue: null, comparator: null }],
    ['6.8 H', { valueType: 'text', numericValue: null, comparator: null }],
  ])('reads the value %j', async (value, expected) => {
    const { results } = await readAll(csvOf(BASIC_HEADER, [basicRow('P-1', '2823-3', `"${value}"`)]));

    expect(observations(results)[0]).toMatchObject({ ...expected, textValue: value });
  });

  test.each([
    ['F', 'final'],
    ['p', 'preliminary'],
    ['Corrected', 'corrected'],
    ['X', 'cancelled'],
    ['cancelled', 'cancelled'],
    ['', 'final'],
  ])('reads status %j as %s', async (status, expected) => {
    const { results } = await readAll(csvOf(HEADER, [withField('status', status)]));

    expect(observations(results)[0]!.status).toBe(expected);
    expect(results[0]!.reports[0]!.status).toBe(expected);
  });

  test.each([
    ['M', 'male'],
    ['f', 'female'],
    ['Other', 'other'],
    ['U', 'unknown'],
    ['', null],
  ])('reads sex %j as %s', async (sex, expected) => {
    const { results } = await readAll(csvOf(HEADER, [withField('sex', sex)]));

    expect(results[0]!.patient.sex).toBe(expected);
  });

  test.each([
    ['LN', LOINC],
    ['loinc', LOINC],
    ['http://loinc.org', LOINC],
    ['SCT', 'SCT'],
    ['urn:acme:tests', 'urn:acme:tests'],
    ['', null],
  ])('reads test_system %j as %s', async (system, expected) => {
    const { results } = await readAll(csvOf(HEADER, [withField('test_system', system)]));

    expect(observations(results)[0]!.code.system).toBe(expected);
  });

  test.each([
    ['l', ['L']],
    ['HH', ['HH']],
    ['n', ['N']],
    ['', []],
  ])('reads flag %j', async (flag, expected) => {
    const { results } = await readAll(csvOf(HEADER, [withField('flag', flag)]));

    expect(observations(results)[0]!.sourceFlags).toEqual(expected);
  });

  test.each([
    ['Welby, Marcus', { familyName: 'Welby', givenNames: ['Marcus'] }],
    ['Marcus A Welby', { familyName: 'Welby', givenNames: ['Marcus', 'A'] }],
    ['Welby', { familyName: 'Welby', givenNames: [] }],
  ])('reads ordering provider %j', async (name, expected) => {
    const text = csvOf(
      ['patient_id', 'test_code', 'value', 'ordering_provider_id', 'ordering_provider_name'],
      [['P-1', '2823-3', '4.1', '', `"${name}"`]],
    );
    const { results } = await readAll(text);

    expect(results[0]!.reports[0]!.orderingProvider).toEqual({ id: null, ...expected });
  });

  test('keeps an mrn as an MR identifier with its system, and no external id without patient_id', async () => {
    const { results } = await readAll('mrn,mrn_system,test_code,value\nM-77,STMARYS,2823-3,4.1\n');

    expect(results[0]!.patient.identifiers).toEqual([{ system: 'STMARYS', value: 'M-77', type: 'MR' }]);
    expect(results[0]!.patient.externalId).toBeNull();
  });
});

describe('csvDateTime', () => {
  test.each([
    ['2026-11-22T07:00:00-05:00', '2026-11-22T12:00:00.000Z'],
    ['2026-11-22T07:00:00Z', '2026-11-22T07:00:00.000Z'],
    ['2026-11-22T07:00Z', '2026-11-22T07:00:00.000Z'],
    ['2026-11-22T07:00:00.123+0100', '2026-11-22T06:00:00.123Z'],
    ['2026-11-22 07:00', '2026-11-22T07:00:00.000Z'],
    ['2026-11-22 07:00:30', '2026-11-22T07:00:30.000Z'],
    ['2026-11-22t07:00z', '2026-11-22T07:00:00.000Z'],
    ['2026-11-22', '2026-11-22T00:00:00.000Z'],
    ['2024-02-29 00:00', '2024-02-29T00:00:00.000Z'],
  ])('reads %s', (text, expected) => {
    expect(csvDateTime(text)).toBe(expected);
  });

  test.each([
    '2026-13-01 07:00',
    '2026-02-29 07:00',
    '2026-11-31',
    '2026-11-22 24:00',
    '2026-11-22 07:60',
    '2026-11-22T07:00+15:00',
    '22/11/2026 07:00',
    '2026-11-22 7:00',
    '0000-01-01',
    'yesterday',
  ])('refuses %s', (text) => {
    expect(csvDateTime(text)).toBeNull();
  });
});

describe('readCsvResults: grouping', () => {
  const HEADER = [
    'patient_id',
    'patient_id_system',
    'family_name',
    'order_number',
    'panel_code',
    'test_code',
    'value',
    'collected_at',
  ];

  test('groups rows by patient, and by order number and panel into reports', async () => {
    const text = csvOf(HEADER, [
      ['P-1', 'urn:a', 'Doe', 'O-1', 'BMP', '2823-3', '4.1', ''],
      ['P-2', 'urn:a', 'Roe', 'O-9', 'BMP', '2823-3', '3.9', ''],
      ['P-1', 'urn:a', 'Doe', 'O-1', 'BMP', '2951-2', '140', ''],
      ['P-1', 'urn:a', 'Doe', 'O-1', 'CBC', '718-7', '13.1', ''],
      ['P-1', 'urn:a', 'Doe', 'O-2', 'BMP', '2823-3', '4.4', ''],
      // The same value under another assigning authority is another patient.
      ['P-1', 'urn:b', 'Doe', 'O-1', 'BMP', '2823-3', '5.0', ''],
    ]);
    const { results } = await readAll(text);

    expect(
      results.map((m) => m.patient.identifiers[0]!.system + '|' + m.patient.identifiers[0]!.value),
    ).toEqual(['urn:a|P-1', 'urn:a|P-2', 'urn:b|P-1']);
    expect(results[0]!.reports.map((r) => [r.placerOrderNumber, r.code.code, r.observations.length])).toEqual(
      [
        ['O-1', 'BMP', 2],
        ['O-1', 'CBC', 1],
        ['O-2', 'BMP', 1],
      ],
    );
    expect(results[0]!.reports[0]!.observations.map((o) => [o.sequence, o.code.code])).toEqual([
      [1, '2823-3'],
      [2, '2951-2'],
    ]);
  });

  test('without an order number, groups by collection time and panel', async () => {
    const text = csvOf(HEADER, [
      ['P-1', 'urn:a', 'Doe', '', 'BMP', '2823-3', '4.1', '2026-11-22 07:00'],
      ['P-1', 'urn:a', 'Doe', '', 'BMP', '2951-2', '140', '2026-11-22T07:00:00Z'],
      ['P-1', 'urn:a', 'Doe', '', 'BMP', '2823-3', '4.6', '2026-11-23 07:00'],
    ]);
    const { results } = await readAll(text);

    expect(results).toHaveLength(1);
    expect(results[0]!.reports.map((r) => [r.effectiveAt, r.observations.length])).toEqual([
      ['2026-11-22T07:00:00.000Z', 2],
      ['2026-11-23T07:00:00.000Z', 1],
    ]);
  });

  test('keeps rows that give one identifier different demographics as separate patients, with a warning', async () => {
    const text = csvOf(HEADER, [
      ['P-1', 'urn:a', 'Doe', 'O-1', 'BMP', '2823-3', '4.1', ''],
      ['P-1', 'urn:a', 'Doe', 'O-1', 'BMP', '2951-2', '140', ''],
      ['P-1', 'urn:a', 'Smith', 'O-1', 'BMP', '2345-7', '90', ''],
    ]);
    const { results, warnings } = await readAll(text);

    expect(results.map((m) => [m.patient.familyName, observations([m]).length])).toEqual([
      ['Doe', 2],
      ['Smith', 1],
    ]);
    expect(warnings.filter((w) => w.startsWith('rows'))).toEqual([
      'rows 2 and 4 give the same patient identifier different demographics: they are kept as separate patients for review',
    ]);
  });

  test('groups within a batch only: the same patient in two batches is two messages', async () => {
    const text = csvOf(HEADER, [
      ['P-1', 'urn:a', 'Doe', 'O-1', 'BMP', '2823-3', '4.1', ''],
      ['P-1', 'urn:a', 'Doe', 'O-1', 'BMP', '2951-2', '140', ''],
      ['P-1', 'urn:a', 'Doe', 'O-1', 'BMP', '2345-7', '90', ''],
    ]);
    const { batches } = await readAll(text, { batchRows: 2 });

    expect(batches.map((b) => [b.results.length, b.accepted, b.rowsRead])).toEqual([
      [1, 2, 2],
      [1, 1, 3],
    ]);
  });
});

describe('readCsvResults: row numbers and line endings', () => {
  test('numbers rows as a spreadsheet does: records, not lines; blank lines count', async () => {
    const text = [
      'patient_id,test_code,value,comment',
      'P-1,2823-3,4.1,"three\nline\ncomment"',
      '',
      'P-1,,4.2,',
      'P-1,2951-2,,',
    ].join('\n');
    const { rejected, accepted, rowsRead } = await readAll(text);

    expect(rejected).toEqual([
      { row: 4, message: 'test_code is empty' },
      { row: 5, message: 'value is empty' },
    ]);
    expect(accepted).toBe(1);
    // The blank row is numbered but not read.
    expect(rowsRead).toBe(3);
  });

  test('numbers from the header even when blank lines come before it', async () => {
    const { rejected } = await readAll('\n\npatient_id,test_code,value\nP-1,,4.1\n');

    expect(rejected).toEqual([{ row: 4, message: 'test_code is empty' }]);
  });

  test.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ])('reads rows ended by %s', async (_name, eol) => {
    const text = csvOf(
      BASIC_HEADER,
      [basicRow('P-1', '2823-3', '4.1'), basicRow('P-1', '2951-2', ''), basicRow('P-2', '2823-3', '5.5')],
      eol,
    );
    const { rejected, results } = await readAll(text);

    expect(rejected).toEqual([{ row: 3, message: 'value is empty' }]);
    expect(observations(results).map((o) => o.numericValue)).toEqual([4.1, 5.5]);
    // No stray CR left on the last field.
    expect(observations(results).map((o) => o.unit)).toEqual(['mmol/L', 'mmol/L']);
  });

  test('reads a file whose line endings change half-way (two exports concatenated)', async () => {
    const text =
      BASIC_HEADER.join(',') +
      '\r\n' +
      basicRow('P-1', '2823-3', '4.1').join(',') +
      '\r\n' +
      basicRow('P-2', '2823-3', '4.2').join(',') +
      '\n' +
      basicRow('P-3', '2823-3', '4.3').join(',') +
      '\n';
    const { rejected, accepted } = await readAll(text);

    expect(rejected).toEqual([]);
    expect(accepted).toBe(3);
  });

  test('keeps a stray quote inside an unquoted value, as spreadsheets do', async () => {
    const { results, rejected } = await readAll('patient_id,test_code,value\nP-1,X-1,12" tube\n');

    expect(rejected).toEqual([]);
    expect(observations(results)[0]!.textValue).toBe('12" tube');
  });
});

describe('readCsvResults: input', () => {
  const TEXT =
    '\uFEFFpatient_id,family_name,test_code,value,comment\r\nP-1,Müller,2823-3,4.1,"a, ""b""\r\nc"\r\nP-2,Øster,2951-2,140,\r\n';
  const bytes = new TextEncoder().encode(TEXT);

  test.each<[string, () => CsvInput]>([
    ['a string', () => TEXT],
    ['a Uint8Array', () => bytes],
    ['an array of Buffers', () => [Buffer.from(bytes.subarray(0, 7)), Buffer.from(bytes.subarray(7))]],
    [
      'one-byte chunks (BOM, CRLF and UTF-8 characters split)',
      () => [...bytes].map((b) => new Uint8Array([b])),
    ],
    ['a Node stream', () => Readable.from([Buffer.from(bytes)])],
    [
      'an async generator of strings',
      () =>
        (async function* () {
          for (let i = 0; i < TEXT.length; i += 5) yield TEXT.slice(i, i + 5);
        })(),
    ],
  ])('reads %s', async (_name, input) => {
    const { results, rejected } = await readAll(input());

    expect(rejected).toEqual([]);
    expect(results.map((m) => m.patient.familyName)).toEqual(['Müller', 'Øster']);
    expect(observations(results)[0]!.notes).toEqual(['a, "b"\r\nc']);
  });

  test('passes on an error of the source after handing out the batches before it', async () => {
    async function* broken() {
      // Two whole rows and the start of a third: the parser holds the end of a chunk until it knows
      // the line ending, so only rows followed by more text are complete.
      yield (
        csvOf(BASIC_HEADER, [basicRow('P-1', '2823-3', '4.1'), basicRow('P-2', '2823-3', '4.2')]) + 'P-3,urn'
      );
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw new Error('connection reset');
    }
    const { batches, error } = await readUntilError(broken(), { batchRows: 1 });

    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('connection reset');
    expect(batches.map((b) => b.rowsRead)).toEqual([1, 2]);
  });

  test('stops reading the source when the caller stops early', async () => {
    let produced = 0;
    let closed = false;
    async function* source() {
      try {
        yield BASIC_HEADER.join(',') + '\n';
        for (let i = 0; i < 10_000; i++) {
          produced++;
          yield basicRow(`P-${i}`, '2823-3', '4.1').join(',') + '\n';
        }
      } finally {
        closed = true;
      }
    }
    for await (const batch of readCsvResults(source(), { batchRows: 10 })) {
      expect(batch.accepted).toBe(10);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));

    expect(closed).toBe(true);
    // What the stream buffers read ahead (about 16 KiB of text and a few chunks), not the 10,000 rows.
    expect(produced).toBeLessThan(3000);
  });
});

describe('readCsvResults: malformed files', () => {
  test('hands out the rows before a quote that is never closed, then names its row', async () => {
    const text = csvOf(BASIC_HEADER, [
      basicRow('P-1', '2823-3', '4.1'),
      basicRow('P-2', '2823-3', '4.2'),
      basicRow('P-3', '2823-3', '"4.3'),
      basicRow('P-4', '2823-3', '4.4'),
    ]);
    const { batches, error } = await readUntilError(text);

    expect(batches.map((b) => b.accepted)).toEqual([2]);
    expect(error).toBeInstanceOf(CsvFormatError);
    expect(error).toMatchObject({ row: 4, code: CSV_FORMAT_ERROR.quoteNotClosed });
    expect((error as Error).message).toMatch(/^row 4: a quoted value is never closed/);
  });

  test('stops at a record longer than 64 × maxFieldBytes instead of reading on', async () => {
    const text =
      csvOf(BASIC_HEADER, [basicRow('P-1', '2823-3', '4.1')]) +
      'P-2,urn:acme,2823-3,LN,"' +
      'x'.repeat(5000) +
      '\n';
    const { batches, error } = await readUntilError(text, { maxFieldBytes: 64 });

    expect(batches.map((b) => b.accepted)).toEqual([1]);
    expect(error).toMatchObject({ row: 3, code: CSV_FORMAT_ERROR.recordTooLarge });
    expect((error as Error).message).toContain('longer than 4096 bytes');
  });

  test('refuses a quote never closed in the header as a format error of row 1', async () => {
    const { batches, error } = await readUntilError('patient_id,"test_code,value\nP-1,2823-3,4.1\n');

    expect(batches).toEqual([]);
    expect(error).toMatchObject({ row: 1, code: CSV_FORMAT_ERROR.quoteNotClosed });
  });

  test('stops after maxRows data rows, handing out those before', async () => {
    const rows = [1, 2, 3, 4, 5].map((i) => basicRow(`P-${i}`, '2823-3', '4.1'));
    const { batches, error } = await readUntilError(csvOf(BASIC_HEADER, rows), { maxRows: 3, batchRows: 2 });

    expect(batches.map((b) => b.rowsRead)).toEqual([2, 3]);
    expect(error).toBeInstanceOf(CsvFormatError);
    expect(error).toMatchObject({ row: 5, code: CSV_FORMAT_ERROR.tooManyRows });
    expect((error as Error).message).toContain('more than 3 data rows');
  });
});

describe('readCsvResults: streaming', () => {
  test('reads 100,000 rows in batches without reading the whole input first', async () => {
    const ROWS = 100_000;
    const ROWS_PER_CHUNK = 100;
    const CHUNKS = ROWS / ROWS_PER_CHUNK;
    let consumed = 0;
    let finished = false;
    async function* upload(): AsyncGenerator<Uint8Array> {
      const encoder = new TextEncoder();
      yield encoder.encode(
        '\uFEFFpatient_id,patient_id_system,test_code,test_system,value,unit,order_number\r\n',
      );
      for (let c = 0; c < CHUNKS; c++) {
        let chunk = '';
        for (let i = 0; i < ROWS_PER_CHUNK; i++) {
          const n = c * ROWS_PER_CHUNK + i;
          chunk += `P-${Math.floor(n / 10)},urn:acme,2823-3,LN,${(3 + (n % 40) / 10).toFixed(1)},mmol/L,O-${Math.floor(n / 10)}\r\n`;
        }
        consumed++;
        yield encoder.encode(chunk);
      }
      finished = true;
    }

    let accepted = 0;
    let batches = 0;
    let consumedAtFirstBatch = -1;
    let largestReadAhead = 0;
    let lastRowsRead = 0;
    for await (const batch of readCsvResults(upload(), { batchRows: 500 })) {
      if (batches === 0) consumedAtFirstBatch = consumed;
      batches++;
      accepted += batch.accepted;
      expect(batch.rejected).toEqual([]);
      expect(batch.rowsRead - lastRowsRead).toBeLessThanOrEqual(500);
      lastRowsRead = batch.rowsRead;
      // Rows read from the source but not yet handed out: bounded, whatever the upload's size.
      largestReadAhead = Math.max(largestReadAhead, consumed * ROWS_PER_CHUNK - batch.rowsRead);
    }

    expect(accepted).toBe(ROWS);
    expect(lastRowsRead).toBe(ROWS);
    expect(batches).toBe(ROWS / 500);
    expect(finished).toBe(true);
    expect(consumedAtFirstBatch).toBeGreaterThan(0);
    expect(consumedAtFirstBatch).toBeLessThan(CHUNKS / 20);
    expect(largestReadAhead).toBeLessThan(5_000);
  });
});
