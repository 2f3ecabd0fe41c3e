import { randomBytes } from 'node:crypto';
import { PDFDocument } from 'pdf-lib';
import { describe, expect, test } from 'vitest';
import { HL7_ERROR } from '../../../adapters/hl7v2/ack.ts';
import { parseHl7 } from '../../../adapters/hl7v2/message.ts';
import {
  encapsulatedContentType,
  Hl7ContentError,
  hl7DateOnly,
  hl7TimestampToIso,
  oruToResultMessage,
} from '../../../adapters/hl7v2/oru.ts';
import { pathologyReportWithPdf, tinyPdf } from '../../fixtures/hl7.ts';
import type {
  LabReport,
  ObservationResult,
  PatientDemographics,
  ResultMessage,
} from '../../../domain/model.ts';

// Vendor-shaped ORU^R01 messages. Identifiers and people are invented; the shapes (which fields each
// vendor fills, how it codes tests and units) follow what these senders put on the wire.

const QUEST = [
  'MSH|^~\\&|LAB|QUEST DIAGNOSTICS-WOOD DALE^05D0642827^CLIA|LABRELAY|STMARYS|20261122083000-0600||ORU^R01|QD20261122083000123|P|2.3.1',
  'PID|1|WD123456A|987654321^^^STMARYS^MR~WD123456A^^^QUEST^PI||SMITH^JOHN^A||19650312|M|||123 ELM ST^^CHICAGO^IL^60601',
  'ORC|RE|ORD448811|WD123456A||CM||||20261121093000-0600|||1234567890^WELBY^MARCUS^^^^^^NPI',
  'OBR|1|ORD448811|WD123456A|7600^LIPID PANEL^99QDI^57698-3^Lipid panel with direct LDL^LN|||20261121093000-0600|||||||20261121120000-0600||1234567890^WELBY^MARCUS||||||20261122081500-0600|||F',
  'OBX|1|NM|2093-3^CHOLESTEROL, TOTAL^LN||245|mg/dL|<200|H|||F|||20261122070000-0600',
  'OBX|2|NM|2085-9^HDL CHOLESTEROL^LN||38|mg/dL|>=40|L|||F|||20261122070000-0600',
  'OBX|3|NM|2571-8^TRIGLYCERIDES^LN||142|mg/dL|<150|N|||F|||20261122070000-0600',
  'OBX|4|NM|13457-7^LDL-CHOLESTEROL^LN||178|mg/dL (calc)|<100|H|||F|||20261122070000-0600',
  'NTE|1|L|Desirable range <100 mg/dL for primary prevention;',
  'NTE|2|L|<70 mg/dL for patients with CHD or diabetic patients with >=2 CHD risk factors.',
].join('\r');

const LABCORP = [
  'MSH|^~\\&|LAB|LABCORP^34D0655059^CLIA|LABRELAY|STMARYS|202611220455||ORU^R01|LC000123456789|P|2.3',
  'PID|1|MRN0042|MRN0042^^^STMARYS^MR~LC88812345^^^LABCORP^PI||GARCIA^MARIA^L||19720904|F|||45 OAK AVE^^AUSTIN^TX^78701',
  'ORC|RE|ORD-77|41234567890||CM',
  'OBR|1|ORD-77|41234567890|005009^CBC With Differential/Platelet^L|||202611210730|||||||202611211530||1457300000^JONES^SARAH||||||202611220455|||F',
  'OBX|1|NM|6690-2^WBC^LN|1|1.4|x10E3/uL|3.4-10.8|LL||N|F|||202611220314|01^LabCorp Burlington',
  'OBX|2|NM|718-7^Hemoglobin^LN|1|13.1|g/dL|11.1-15.9|||N|F|||202611220314|01^LabCorp Burlington',
  'OBX|3|NM|777-3^Platelets^LN|1|212|x10E3/uL|150-450|||N|F|||202611220314|01^LabCorp Burlington',
  'NTE|1|L|Results verified by repeat analysis.',
  'OBR|2|ORD-77|41234567891|322000^Comp. Metabolic Panel (14)^L|||202611210730|||||||202611211530||1457300000^JONES^SARAH||||||202611220455|||P',
  'OBX|1|NM|2345-7^Glucose^LN|1|87|mg/dL|65-99|||N|F|||202611220314|01^LabCorp Burlington',
  'OBX|2|NM|2823-3^Potassium^LN|1||mmol/L|3.5-5.2|||N|I|||202611220314|01^LabCorp Burlington',
].join('\r');

const EPIC_BEAKER = [
  'MSH|^~\\&|EPIC|BEAKER|LABRELAY|STMARYS|20261122143005-0500||ORU^R01^ORU_R01|800123|P|2.5.1|||AL|NE',
  'PID|1||E1234567^^^EPI^MR~4567890123^^^&2.16.840.1.113883.19.5&ISO^PI||TESTPATIENT^ALPHA^B||19551231|F',
  'PV1|1|I|4W^412^A^STMARYS',
  'ORC|RE|1200345^EPC|26BK-327C0012^Beaker||CM||||20261122120000-0500|||1111111111^CARE^PROVIDER^^^^^^NPI',
  'OBR|1|1200345^EPC|26BK-327C0012^Beaker|LAB44^BASIC METABOLIC PANEL^EAP^24321-2^Basic metabolic 2000 panel^LN|||20261122120000-0500|||||||||1111111111^CARE^PROVIDER||||||20261122143000-0500||Lab|F',
  'OBX|1|NM|LAB123^POTASSIUM^EAP^2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||6.9|mmol/L|3.5 - 5.1|HH|||F|||20261122120000-0500',
  'NTE|1||Critical result called to and read back by RN A. Smith 11/22/2026 14:28.',
  'OBX|2|NM|LAB127^GLUCOSE^EAP^2345-7^Glucose [Mass/volume] in Serum or Plasma^LN||2.1|mmol/L|3.9 - 5.5|LL|||F|||20261122120000-0500',
  'OBX|3|SN|LAB133^CREATININE^EAP^2160-0^Creatinine [Mass/volume] in Serum or Plasma^LN||<^0.20|mg/dL|0.57 - 1.11|L|||F|||20261122120000-0500',
  'OBX|4|TX|LAB199^LAB COMMENT^EAP||Specimen slightly hemolyzed.\\.br\\Potassium may be falsely elevated.||||||F',
].join('\r');

const CERNER = [
  'MSH|^~\\&|HNAM|CERNER_LAB|LABRELAY|STMARYS|20261122101500||ORU^R01|Q8812345T9912345|P|2.4',
  'PID|1||CN100200^^^STMARYS^MRN~CMRN555^^^CERNER^CMRN||JOHNSON^ROBERT^T^JR||19480702|M',
  'PV1|1|E|ED^^^STMARYS',
  'ORC|RE|9876543^HNAM_ORDERID||||||||||2222222222^HOUSE^GREGORY',
  'OBR|1|9876543^HNAM_ORDERID|UA-26-001122^HNA_ACCN|UAMAC^Urinalysis Macroscopic^HNAM_CS^24356-8^Urinalysis complete panel^LN|||20261122093000|||||||20261122094500||2222222222^HOUSE^GREGORY||||||20261122101400||UA|C',
  'OBX|1|CE|5778-6^Color of Urine^LN||YEL^Yellow^HNAM_CVD||||||F',
  'OBX|2|ST|5767-9^Appearance of Urine^LN||Cloudy||Clear|A|||C',
  'OBX|3|SN|2965-2^Specific gravity of Urine^LN||>=^1.035||1.005-1.030|H|||F',
  'OBX|4|CWE|5799-2^Leukocyte esterase [Presence] in Urine by Test strip^LN||260348001^Present ++^SCT||Negative|A|||F',
  'OBX|5|TX|8251-1^Service comment^LN||Corrected result: appearance previously reported as Clear.~Notified Dr House 10:12.||||||F',
  'ORC|RE|9876544^HNAM_ORDERID||||||||||2222222222^HOUSE^GREGORY',
  'OBR|2|9876544^HNAM_ORDERID|CH-26-004455^HNA_ACCN|LACT^Lactate^HNAM_CS^2524-7^Lactate [Moles/volume] in Blood^LN|||20261122093000|||||||20261122094500||||||||20261122100000||CH|F',
  'OBX|1|NM|2524-7^Lactate^LN||5.2|mmol/L|0.5-2.2|HH|||F',
].join('\r');

/** One line per result, as a reviewer reads a lab report: code = value unit (range) flags status. */
function resultLine(o: ObservationResult): string {
  const value =
    o.valueType === 'quantity' ? `${o.comparator ?? ''}${o.numericValue}` : JSON.stringify(o.textValue);
  const range = o.referenceRange ? `(${o.referenceRange.text})` : '';
  return [o.code.code, '=', value, o.unit ?? '', range, o.sourceFlags.join(','), o.status]
    .filter((s) => s !== '')
    .join(' ');
}

function reportSummary(r: LabReport) {
  return {
    order: `${r.placerOrderNumber} / ${r.fillerOrderNumber}`,
    code: `${r.code.system}|${r.code.code}`,
    status: r.status,
    orderedBy: r.orderingProvider && `${r.orderingProvider.id} ${r.orderingProvider.familyName}`,
    effectiveAt: r.effectiveAt,
    issuedAt: r.issuedAt,
    results: r.observations.map(resultLine),
  };
}

const VENDOR_MESSAGES: {
  vendor: string;
  raw: string;
  patient: PatientDemographics;
  reports: ReturnType<typeof reportSummary>[];
}[] = [
  {
    vendor: 'Quest lipid panel (v2.3.1, LOINC panel code in the OBR-4 alternate, NTEs after the last OBX)',
    raw: QUEST,
    patient: {
      identifiers: [
        { value: '987654321', system: 'STMARYS', type: 'MR' },
        { value: 'WD123456A', system: 'QUEST', type: 'PI' },
      ],
      familyName: 'SMITH',
      givenNames: ['JOHN', 'A'],
      birthDate: '1965-03-12',
      sex: 'male',
      email: null,
      phone: null,
    },
    reports: [
      {
        order: 'ORD448811 / WD123456A',
        code: 'http://loinc.org|57698-3',
        status: 'final',
        orderedBy: '1234567890 WELBY',
        effectiveAt: '2026-11-21T15:30:00.000Z',
        issuedAt: '2026-11-22T14:15:00.000Z',
        results: [
          '2093-3 = 245 mg/dL (<200) H final',
          '2085-9 = 38 mg/dL (>=40) L final',
          '2571-8 = 142 mg/dL (<150) N final',
          '13457-7 = 178 mg/dL (calc) (<100) H final',
        ],
      },
    ],
  },
  {
    vendor:
      'LabCorp CBC and CMP (v2.3, two OBR groups, local order codes, OBX-4 sub-ids, a result still in process)',
    raw: LABCORP,
    patient: {
      identifiers: [
        { value: 'MRN0042', system: 'STMARYS', type: 'MR' },
        { value: 'LC88812345', system: 'LABCORP', type: 'PI' },
      ],
      familyName: 'GARCIA',
      givenNames: ['MARIA', 'L'],
      birthDate: '1972-09-04',
      sex: 'female',
      email: null,
      phone: null,
    },
    reports: [
      {
        order: 'ORD-77 / 41234567890',
        code: 'urn:labrelay:local|005009',
        status: 'final',
        orderedBy: '1457300000 JONES',
        effectiveAt: '2026-11-21T07:30:00.000Z',
        issuedAt: '2026-11-22T04:55:00.000Z',
        results: [
          '6690-2 = 1.4 x10E3/uL (3.4-10.8) LL final',
          '718-7 = 13.1 g/dL (11.1-15.9) final',
          '777-3 = 212 x10E3/uL (150-450) final',
        ],
      },
      {
        order: 'ORD-77 / 41234567891',
        code: 'urn:labrelay:local|322000',
        status: 'preliminary',
        orderedBy: '1457300000 JONES',
        effectiveAt: '2026-11-21T07:30:00.000Z',
        issuedAt: '2026-11-22T04:55:00.000Z',
        results: ['2345-7 = 87 mg/dL (65-99) final', '2823-3 = null mmol/L (3.5-5.2) registered'],
      },
    ],
  },
  {
    vendor:
      'Epic Beaker BMP (v2.5.1, local codes with LOINC alternates, an OID as assigning authority, SN and TX)',
    raw: EPIC_BEAKER,
    patient: {
      identifiers: [
        { value: 'E1234567', system: 'EPI', type: 'MR' },
        { value: '4567890123', system: '2.16.840.1.113883.19.5', type: 'PI' },
      ],
      familyName: 'TESTPATIENT',
      givenNames: ['ALPHA', 'B'],
      birthDate: '1955-12-31',
      sex: 'female',
      email: null,
      phone: null,
    },
    reports: [
      {
        order: '1200345 / 26BK-327C0012',
        code: 'http://loinc.org|24321-2',
        status: 'final',
        orderedBy: '1111111111 CARE',
        effectiveAt: '2026-11-22T17:00:00.000Z',
        issuedAt: '2026-11-22T19:30:00.000Z',
        results: [
          '2823-3 = 6.9 mmol/L (3.5 - 5.1) HH final',
          '2345-7 = 2.1 mmol/L (3.9 - 5.5) LL final',
          '2160-0 = <0.2 mg/dL (0.57 - 1.11) L final',
          'LAB199 = "Specimen slightly hemolyzed.\\nPotassium may be falsely elevated." final',
        ],
      },
    ],
  },
  {
    vendor: 'Cerner urinalysis and lactate (v2.4, ORC before each OBR, CE/CWE/ST/SN/TX, a corrected report)',
    raw: CERNER,
    patient: {
      identifiers: [
        { value: 'CN100200', system: 'STMARYS', type: 'MRN' },
        { value: 'CMRN555', system: 'CERNER', type: 'CMRN' },
      ],
      familyName: 'JOHNSON',
      givenNames: ['ROBERT', 'T'],
      birthDate: '1948-07-02',
      sex: 'male',
      email: null,
      phone: null,
    },
    reports: [
      {
        order: '9876543 / UA-26-001122',
        code: 'http://loinc.org|24356-8',
        status: 'corrected',
        orderedBy: '2222222222 HOUSE',
        effectiveAt: '2026-11-22T09:30:00.000Z',
        issuedAt: '2026-11-22T10:14:00.000Z',
        results: [
          '5778-6 = "Yellow" final',
          '5767-9 = "Cloudy" (Clear) A corrected',
          '2965-2 = >=1.035 (1.005-1.030) H final',
          '5799-2 = "Present ++" (Negative) A final',
          '8251-1 = "Corrected result: appearance previously reported as Clear.\\nNotified Dr House 10:12." final',
        ],
      },
      {
        order: '9876544 / CH-26-004455',
        code: 'http://loinc.org|2524-7',
        status: 'final',
        // OBR-16 is empty here: the ordering provider comes from this order's ORC-12.
        orderedBy: '2222222222 HOUSE',
        effectiveAt: '2026-11-22T09:30:00.000Z',
        issuedAt: '2026-11-22T10:00:00.000Z',
        results: ['2524-7 = 5.2 mmol/L (0.5-2.2) HH final'],
      },
    ],
  },
];

describe('oruToResultMessage on vendor messages', () => {
  test.each(VENDOR_MESSAGES)('$vendor', ({ raw, patient, reports }) => {
    const result = oruToResultMessage(parseHl7(raw));

    expect(result.patient).toEqual(patient);
    expect(result.reports.map(reportSummary)).toEqual(reports);
  });

  test.each(VENDOR_MESSAGES)('$vendor: reads the same with LF line endings', ({ raw }) => {
    expect(oruToResultMessage(parseHl7(raw.replaceAll('\r', '\n')))).toEqual(
      oruToResultMessage(parseHl7(raw)),
    );
  });
});

// A minimal message around the segments a test cares about.
const MSH = (type = 'ORU^R01', version = '2.5.1') =>
  `MSH|^~\\&|LIS|ACME_LAB|LABRELAY|STMARYS|20261122083000||${type}|MSG00001|P|${version}`;
const PID = 'PID|1||MRN123456^^^STMARYS^MR||DOE^JANE||19800115|F';
const OBR = () => 'OBR|1|ORD-1001|FIL-2001|24321-2^Basic metabolic panel^LN';
/** A segment with fields set by number (the spec's numbering), e.g. `seg('OBX', { 3: '2823-3^K^LN', 11: 'F' })`. */
function seg(name: string, fields: Record<number, string>): string {
  const last = Math.max(...Object.keys(fields).map(Number));
  return [name, ...Array.from({ length: last }, (_, i) => fields[i + 1] ?? '')].join('|');
}
const oru = (...segments: string[]): ResultMessage =>
  oruToResultMessage(parseHl7([MSH(), ...segments].join('\r')));
const firstResult = (...segments: string[]): ObservationResult =>
  oru(PID, OBR(), ...segments).reports[0]!.observations[0]!;

describe('coded identifiers (OBR-4, OBX-3)', () => {
  test.each([
    ['LOINC as the primary triplet', '2823-3^Potassium^LN', 'http://loinc.org', '2823-3', 'Potassium'],
    [
      'LOINC as the alternate of a local code',
      'LAB123^POTASSIUM^EAP^2823-3^Potassium SerPl-sCnc^LN',
      'http://loinc.org',
      '2823-3',
      'Potassium SerPl-sCnc',
    ],
    [
      'LOINC primary with a local alternate',
      '2823-3^Potassium^LN^K^K+^99LAB',
      'http://loinc.org',
      '2823-3',
      'Potassium',
    ],
    [
      'LOINC as the alternate with no display of its own',
      'K^Potassium^L^2823-3^^LN',
      'http://loinc.org',
      '2823-3',
      'Potassium',
    ],
    [
      'LOINC only in the alternate triplet',
      '^^^2823-3^Potassium^LN',
      'http://loinc.org',
      '2823-3',
      'Potassium',
    ],
    ['a local code (L)', 'K^Potassium^L', 'urn:labrelay:local', 'K', 'Potassium'],
    ['a local code (99LOC)', 'K^Potassium^99LOC', 'urn:labrelay:local', 'K', 'Potassium'],
    ["a sender's own coding system", 'K^Potassium^99QDI', '99QDI', 'K', 'Potassium'],
    ['a code with no coding system', '2823-3^Potassium', null, '2823-3', 'Potassium'],
    ['text only', '^Potassium, serum', null, 'Potassium, serum', 'Potassium, serum'],
  ])('reads %s', (_what, identifier, system, code, display) => {
    const result = oru(PID, `OBR|1|ORD-1001||${identifier}`, `OBX|1|NM|${identifier}||4.1|mmol/L`);

    expect(result.reports[0]!.code).toEqual({ system, code, display });
    expect(result.reports[0]!.observations[0]!.code).toEqual({ system, code, display });
  });
});

describe('result values by OBX-2 value type', () => {
  test.each([
    ['NM', 'NM', '6.8', 6.8, null, '6.8'],
    ['NM negative (base excess)', 'NM', '-2.5', -2.5, null, '-2.5'],
    ['NM with a plus sign', 'NM', '+3', 3, null, '+3'],
    ['NM without a leading zero', 'NM', '.5', 0.5, null, '.5'],
    ['NM in exponent form', 'NM', '1.2E3', 1200, null, '1.2E3'],
    ['NM written with a comparator', 'NM', '<0.5', 0.5, '<', '<0.5'],
    ['SN below the limit of detection', 'SN', '<^0.01', 0.01, '<', '<0.01'],
    ['SN at or above the measuring range', 'SN', '>=^5', 5, '>=', '>=5'],
    ['SN at or below', 'SN', '<=^0.5', 0.5, '<=', '<=0.5'],
    ['SN with an explicit equals', 'SN', '=^1.020', 1.02, null, '=1.020'],
    ['SN with no comparator', 'SN', '^42', 42, null, '42'],
    ['SN titer as a ratio (first number kept)', 'SN', '^1^:^128', 1, null, '1:128'],
  ])('reads %s', (_what, type, value, numericValue, comparator, textValue) => {
    const obs = firstResult(`OBX|1|${type}|2345-7^Glucose^LN||${value}|mg/dL|70-99||||F`);

    expect(obs.valueType).toBe('quantity');
    expect(obs.numericValue).toBe(numericValue);
    expect(obs.comparator).toBe(comparator);
    expect(obs.textValue).toBe(textValue);
  });

  test('keeps a numeric result with no value yet (pending) as an empty quantity', () => {
    const obs = firstResult(
      seg('OBX', { 1: '1', 2: 'NM', 3: '2823-3^Potassium^LN', 6: 'mmol/L', 7: '3.5-5.1', 11: 'I' }),
    );

    expect(obs).toMatchObject({
      valueType: 'quantity',
      numericValue: null,
      comparator: null,
      textValue: null,
      status: 'registered',
    });
  });

  test.each([
    ['ST', 'ST', 'Clear', 'text', 'Clear'],
    ['ST with an escaped separator', 'ST', 'Positive \\T\\ confirmed', 'text', 'Positive & confirmed'],
    [
      'TX over several repetitions',
      'TX',
      'Line one.~Line two.~Line three.',
      'text',
      'Line one.\nLine two.\nLine three.',
    ],
    [
      'TX with a \\.br\\ line break',
      'TX',
      'Hemolyzed.\\.br\\Repeat requested.',
      'text',
      'Hemolyzed.\nRepeat requested.',
    ],
    ['FT', 'FT', 'See attached \\H\\report\\N\\.', 'text', 'See attached report.'],
    ['CE with a display', 'CE', '260385009^Negative^SCT', 'coded', 'Negative'],
    ['CWE with only a code', 'CWE', 'POS^^99LAB', 'coded', 'POS'],
    [
      'CWE with a LOINC answer in the alternate',
      'CWE',
      'R^Reactive^L^LA6576-8^Positive^LN',
      'coded',
      'Positive',
    ],
  ])('reads %s', (_what, type, value, valueType, textValue) => {
    const obs = firstResult(
      seg('OBX', { 1: '1', 2: type, 3: '5196-1^HBsAg^LN', 5: value, 7: 'Negative', 11: 'F' }),
    );

    expect(obs.valueType).toBe(valueType);
    expect(obs.numericValue).toBeNull();
    expect(obs.textValue).toBe(textValue);
  });

  test('reads units, reference ranges, abnormal flags and the observation time', () => {
    const obs = firstResult(
      'OBX|1|NM|2823-3^Potassium^LN||6.8|mmol/L^millimole per liter^UCUM|3.5-5.1|HH~A|||F|||20261122070000-0500',
    );

    expect(obs.unit).toBe('mmol/L');
    expect(obs.referenceRange).toEqual({ low: 3.5, high: 5.1, text: '3.5-5.1' });
    expect(obs.sourceFlags).toEqual(['HH', 'A']);
    expect(obs.effectiveAt).toBe('2026-11-22T12:00:00.000Z');
  });

  test('reads a unit given only as text in OBX-6.2', () => {
    expect(firstResult('OBX|1|NM|777-3^Platelets^LN||212|^x10E3/uL|150-450').unit).toBe('x10E3/uL');
  });

  test('keeps two results that share an OBX-1, in order', () => {
    const results = oru(
      PID,
      OBR(),
      'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L',
      'OBX|1|NM|2951-2^Sodium^LN||140|mmol/L',
    ).reports[0]!.observations;

    expect(results.map((o) => o.code.code)).toEqual(['2823-3', '2951-2']);
    expect(new Set(results.map((o) => o.sequence)).size).toBe(2);
  });

  test('numbers results by position when OBX-1 is empty', () => {
    const results = oru(PID, OBR(), 'OBX||NM|2823-3^Potassium^LN||4.1', 'OBX||NM|2951-2^Sodium^LN||140')
      .reports[0]!.observations;

    expect(results.map((o) => o.sequence)).toEqual([1, 2]);
  });
});

describe('orders: ORC, OBR and NTE', () => {
  test('takes the order numbers and ordering provider from the ORC before an OBR that leaves them empty', () => {
    const orc = seg('ORC', { 1: 'RE', 2: 'ORD-9', 3: 'FIL-9', 12: '1234^Welby^Marcus' });
    const report = oru(PID, orc, 'OBR|1|||24321-2^BMP^LN', 'OBX|1|NM|2823-3^K^LN||4.1').reports[0]!;

    expect(report.placerOrderNumber).toBe('ORD-9');
    expect(report.fillerOrderNumber).toBe('FIL-9');
    expect(report.orderingProvider).toEqual({ id: '1234', familyName: 'Welby', givenNames: ['Marcus'] });
  });

  test('prefers OBR-16 over ORC-12, and does not carry an ORC over to the next order', () => {
    const reports = oru(
      PID,
      seg('ORC', { 1: 'RE', 2: 'ORD-1', 12: '1111^Orc^Provider' }),
      seg('OBR', { 1: '1', 2: 'ORD-1', 4: '24321-2^BMP^LN', 16: '2222^Obr^Provider' }),
      'OBR|2||FIL-2|58410-2^CBC^LN',
      'OBX|1|NM|718-7^Hemoglobin^LN||13.1|g/dL',
    ).reports;

    expect(reports[0]!.orderingProvider?.familyName).toBe('Obr');
    expect(reports[1]!.orderingProvider).toBeNull();
    expect(reports[1]!.placerOrderNumber).toBeNull(); // not ORD-1 from the first order's ORC
    expect(reports[1]!.fillerOrderNumber).toBe('FIL-2');
  });

  test('files each OBX under the OBR before it, whatever NTE segments come between', () => {
    const reports = oru(
      PID,
      'NTE|1|P|Patient fasting 12 hours.',
      OBR(),
      'NTE|1|L|Order comment.',
      'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L',
      'NTE|1|L|Result comment.',
      'OBR|2|ORD-1002|FIL-2002|58410-2^CBC^LN',
      'NTE|1|L|Another order comment.',
      'OBX|1|NM|718-7^Hemoglobin^LN||13.1|g/dL',
      'OBX|2|NM|777-3^Platelets^LN||212|10*3/uL',
    ).reports;

    expect(reports.map((r) => r.observations.map((o) => o.code.code))).toEqual([
      ['2823-3'],
      ['718-7', '777-3'],
    ]);
  });

  test('keeps an order that has no results yet', () => {
    const reports = oru(PID, seg('OBR', { 1: '1', 2: 'ORD-1001', 4: '24321-2^BMP^LN', 25: 'O' })).reports;

    expect(reports).toHaveLength(1);
    expect(reports[0]!.observations).toEqual([]);
    expect(reports[0]!.status).toBe('registered');
  });
});

describe('result status', () => {
  // HL7 table 0123, OBR-25.
  test.each([
    ['O', 'registered'],
    ['I', 'registered'],
    ['S', 'registered'],
    ['A', 'preliminary'],
    ['P', 'preliminary'],
    ['R', 'preliminary'],
    ['F', 'final'],
    ['C', 'corrected'],
    ['M', 'amended'],
    ['X', 'cancelled'],
    ['', 'final'],
  ])('maps OBR-25 %j to report status %s', (code, status) => {
    const obr = seg('OBR', { 1: '1', 2: 'ORD-1001', 4: '24321-2^BMP^LN', 7: '20261122070000', 25: code });

    expect(oru(PID, obr).reports[0]!.status).toBe(status);
  });

  // HL7 table 0085, OBX-11.
  test.each([
    ['F', 'final'],
    ['U', 'final'],
    ['P', 'preliminary'],
    ['R', 'preliminary'],
    ['S', 'preliminary'],
    ['I', 'registered'],
    ['O', 'registered'],
    ['C', 'corrected'],
    ['A', 'amended'],
    ['D', 'entered-in-error'],
    ['W', 'entered-in-error'],
    ['X', 'cancelled'],
    ['N', 'cancelled'],
    ['f', 'final'],
    ['', 'final'],
  ])('maps OBX-11 %j to result status %s', (code, status) => {
    const obx = seg('OBX', {
      1: '1',
      2: 'NM',
      3: '2823-3^Potassium^LN',
      5: '4.1',
      6: 'mmol/L',
      7: '3.5-5.1',
      11: code,
    });

    expect(firstResult(obx).status).toBe(status);
  });
});

describe('patient (PID)', () => {
  test.each([
    [
      'an assigning authority namespace',
      'MRN123^^^STMARYS^MR',
      [{ value: 'MRN123', system: 'STMARYS', type: 'MR' }],
    ],
    [
      'an assigning authority given only as an OID',
      'MRN123^^^&1.2.840.114350.1.13.0&ISO^MR',
      [{ value: 'MRN123', system: '1.2.840.114350.1.13.0', type: 'MR' }],
    ],
    ['no assigning authority', 'MRN123', [{ value: 'MRN123', system: '', type: null }]],
    [
      'a check digit (CX-2, CX-3) before the authority',
      '1234567^3^M10^HOSP^MR',
      [{ value: '1234567', system: 'HOSP', type: 'MR' }],
    ],
    [
      'three repetitions, one of them empty',
      'MRN123^^^STMARYS^MR~~999-99-9999^^^SSA^SS',
      [
        { value: 'MRN123', system: 'STMARYS', type: 'MR' },
        { value: '999-99-9999', system: 'SSA', type: 'SS' },
      ],
    ],
  ])('reads PID-3 with %s', (_what, pid3, identifiers) => {
    expect(oru(`PID|1||${pid3}||DOE^JANE`, OBR()).patient.identifiers).toEqual(identifiers);
  });

  test.each([
    ['19800115', '1980-01-15'],
    ['198001', '1980-01'],
    ['1980', '1980'],
    ['198001150830', '1980-01-15'],
    ['', null],
  ])('reads date of birth %j as %j', (dob, birthDate) => {
    expect(oru(`PID|1||MRN1^^^H^MR||DOE^JANE||${dob}|F`, OBR()).patient.birthDate).toBe(birthDate);
  });

  test.each([
    ['M', 'male'],
    ['F', 'female'],
    ['f', 'female'],
    ['O', 'other'],
    ['A', 'other'],
    ['U', 'unknown'],
    ['N', 'unknown'],
    ['', null],
    ['Q', null],
  ])('maps administrative sex %j to %j', (sex, expected) => {
    expect(oru(`PID|1||MRN1^^^H^MR||DOE^JANE||19800115|${sex}`, OBR()).patient.sex).toBe(expected);
  });

  test.each([
    [
      'an e-mail in XTN-4 with use code NET',
      '^NET^Internet^jane.doe@example.org',
      'jane.doe@example.org',
      null,
    ],
    [
      'a phone in XTN-6/7 and an e-mail in a second repetition',
      '^PRN^PH^^1^217^5551234~^NET^Internet^jd@example.org',
      'jd@example.org',
      '1 217 5551234',
    ],
    ['a 2.3-style phone in XTN-1', '(217)555-1234', null, '(217)555-1234'],
    ['nothing', '', null, null],
  ])('reads PID-13 with %s (no e-mail: not notifiable)', (_, pid13, email, phone) => {
    const patient = oru(`PID|1||MRN1^^^H^MR||DOE^JANE||19800115|F|||||${pid13}`, OBR()).patient;
    expect({ email: patient.email, phone: patient.phone }).toEqual({ email, phone });
  });

  test('reads family and given names, escapes decoded', () => {
    const patient = oru("PID|1||MRN1^^^H^MR||O'NEIL\\T\\SONS^MARY^ANNE^JR^MS", OBR()).patient;

    expect(patient.familyName).toBe("O'NEIL&SONS");
    expect(patient.givenNames).toEqual(['MARY', 'ANNE']);
  });
});

function contentError(raw: string): Hl7ContentError {
  try {
    oruToResultMessage(parseHl7(raw));
  } catch (error) {
    expect(error).toBeInstanceOf(Hl7ContentError);
    return error as Hl7ContentError;
  }
  throw new Error('expected oruToResultMessage to throw');
}

describe('messages that cannot be accepted', () => {
  test.each([
    {
      what: 'HL7 version 2.2',
      segments: [MSH('ORU^R01', '2.2'), PID, OBR()],
      code: HL7_ERROR.unsupportedVersionId,
      location: 'MSH-12',
    },
    {
      what: 'HL7 version 3.0',
      segments: [MSH('ORU^R01', '3.0'), PID, OBR()],
      code: HL7_ERROR.unsupportedVersionId,
      location: 'MSH-12',
    },
    {
      what: 'an ADT^A01',
      segments: [MSH('ADT^A01'), PID],
      code: HL7_ERROR.unsupportedMessageType,
      location: 'MSH-9',
    },
    {
      what: 'an ORM^O01 order',
      segments: [MSH('ORM^O01'), PID, OBR()],
      code: HL7_ERROR.unsupportedMessageType,
      location: 'MSH-9',
    },
    {
      what: 'an ORU^R30 (point of care)',
      segments: [MSH('ORU^R30'), PID, OBR()],
      code: HL7_ERROR.unsupportedEventCode,
      location: 'MSH-9',
    },
    {
      what: 'an ORU with no trigger event',
      segments: [MSH('ORU'), PID, OBR()],
      code: HL7_ERROR.unsupportedEventCode,
      location: 'MSH-9',
    },
  ])('refuses $what with reject=true, code $code at $location', ({ segments, code, location }) => {
    const error = contentError(segments.join('\r'));

    expect(error.reject).toBe(true);
    expect(error.errors).toEqual([{ code, location, message: expect.any(String) }]);
  });

  test.each([
    {
      what: 'no PID segment',
      segments: [OBR(), 'OBX|1|NM|2823-3^K^LN||4.1'],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'PID',
    },
    { what: 'no OBR segment', segments: [PID], code: HL7_ERROR.requiredFieldMissing, location: 'OBR' },
    {
      what: 'an empty PID-3',
      segments: ['PID|1||||DOE^JANE||19800115|F', OBR()],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'PID-3',
    },
    {
      what: 'a PID-3 with an authority but no id',
      segments: ['PID|1||^^^STMARYS^MR||DOE^JANE', OBR()],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'PID-3',
    },
    {
      what: 'a date of birth with month 13',
      segments: ['PID|1||MRN1^^^H^MR||DOE^JANE||19801301|F', OBR()],
      code: HL7_ERROR.dataType,
      location: 'PID-7',
    },
    {
      what: 'a date of birth of 30 February',
      segments: ['PID|1||MRN1^^^H^MR||DOE^JANE||19800230|F', OBR()],
      code: HL7_ERROR.dataType,
      location: 'PID-7',
    },
    {
      what: 'a date of birth written ISO-style',
      segments: ['PID|1||MRN1^^^H^MR||DOE^JANE||1980-01-15|F', OBR()],
      code: HL7_ERROR.dataType,
      location: 'PID-7',
    },
    {
      what: 'an OBX before any OBR',
      segments: [PID, 'OBX|1|NM|2823-3^K^LN||4.1', OBR()],
      code: HL7_ERROR.segmentSequence,
      location: 'OBX',
    },
    {
      what: 'an order with neither placer nor filler number',
      segments: [PID, 'OBR|1|||24321-2^BMP^LN'],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'OBR-2',
    },
    {
      what: 'an empty OBR-4',
      segments: [PID, 'OBR|1|ORD-1|FIL-1|'],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'OBR-4',
    },
    {
      what: 'an empty OBR-4 on the second order',
      segments: [PID, OBR(), 'OBR|2|ORD-2|FIL-2|'],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'OBR-4 (order 2)',
    },
    {
      what: 'an OBR-7 of 31 April',
      segments: [PID, seg('OBR', { 1: '1', 2: 'ORD-1', 4: '24321-2^BMP^LN', 7: '20260431083000' })],
      code: HL7_ERROR.dataType,
      location: 'OBR-7',
    },
    {
      what: 'an OBR-22 at hour 24',
      segments: [PID, seg('OBR', { 1: '1', 2: 'ORD-1', 4: '24321-2^BMP^LN', 22: '20261122240000' })],
      code: HL7_ERROR.dataType,
      location: 'OBR-22',
    },
    {
      what: 'an OBR-25 not in table 0123',
      segments: [PID, seg('OBR', { 1: '1', 2: 'ORD-1', 4: '24321-2^BMP^LN', 25: 'Q' })],
      code: HL7_ERROR.tableValueNotFound,
      location: 'OBR-25',
    },
    {
      what: 'an empty OBX-3',
      segments: [PID, OBR(), 'OBX|1|NM|||4.1|mmol/L'],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'OBX-3',
    },
    {
      what: 'an NM value that is text',
      segments: [PID, OBR(), 'OBX|1|NM|2823-3^K^LN||Hemolyzed|mmol/L'],
      code: HL7_ERROR.dataType,
      location: 'OBX-5',
    },
    {
      what: 'an NM value with a decimal comma',
      segments: [PID, OBR(), 'OBX|1|NM|2823-3^K^LN||4,1|mmol/L'],
      code: HL7_ERROR.dataType,
      location: 'OBX-5',
    },
    {
      what: 'an NM value with its unit run in',
      segments: [PID, OBR(), 'OBX|1|NM|2823-3^K^LN||4.1 mmol/L'],
      code: HL7_ERROR.dataType,
      location: 'OBX-5',
    },
    {
      what: 'an SN value with an unknown comparator',
      segments: [PID, OBR(), 'OBX|1|SN|2823-3^K^LN||approx^4.1'],
      code: HL7_ERROR.dataType,
      location: 'OBX-5',
    },
    {
      what: 'an SN value whose number is text',
      segments: [PID, OBR(), 'OBX|1|SN|2823-3^K^LN||<^trace'],
      code: HL7_ERROR.dataType,
      location: 'OBX-5',
    },
    {
      what: 'an OBX-11 not in table 0085',
      segments: [PID, OBR(), seg('OBX', { 1: '1', 2: 'NM', 3: '2823-3^K^LN', 5: '4.1', 11: 'Q' })],
      code: HL7_ERROR.tableValueNotFound,
      location: 'OBX-11',
    },
    {
      what: 'an OBX-14 of 30 February',
      segments: [
        PID,
        OBR(),
        seg('OBX', { 1: '1', 2: 'NM', 3: '2823-3^K^LN', 5: '4.1', 11: 'F', 14: '20260230' }),
      ],
      code: HL7_ERROR.dataType,
      location: 'OBX-14',
    },
  ])('answers $what with code $code at $location', ({ segments, code, location }) => {
    const error = contentError([MSH(), ...segments].join('\r'));

    expect(error.reject).toBe(false);
    expect(error.errors).toEqual([{ code, location, message: expect.any(String) }]);
    expect(error.message).toBe(error.errors[0]!.message);
  });

  test('lists every problem in one answer, each with its location', () => {
    const error = contentError(
      [
        MSH(),
        'PID|1||||DOE^JANE||19801301|F',
        'OBR|1|ORD-1|FIL-1|24321-2^BMP^LN',
        'OBX|1|NM|2823-3^Potassium^LN||high|mmol/L',
        'OBX|2|NM|2951-2^Sodium^LN||140|mmol/L',
        'OBX|3|NM|2345-7^Glucose^LN||pending|mg/dL',
      ].join('\r'),
    );

    expect(error.errors.map((e) => [e.code, e.location])).toEqual([
      ['101', 'PID-3'],
      ['102', 'PID-7'],
      ['102', 'OBX-5'],
      ['102', 'OBX-5'],
    ]);
    expect(error.errors[2]!.message).toContain('result 1');
    expect(error.errors[3]!.message).toContain('result 3');
  });
});

describe('hl7TimestampToIso', () => {
  test.each([
    ['2026', '2026-01-01T00:00:00.000Z'],
    ['202611', '2026-11-01T00:00:00.000Z'],
    ['20261122', '2026-11-22T00:00:00.000Z'],
    ['2026112214', '2026-11-22T14:00:00.000Z'],
    ['202611221430', '2026-11-22T14:30:00.000Z'],
    ['20261122143005', '2026-11-22T14:30:05.000Z'],
    ['20261122143005.5', '2026-11-22T14:30:05.500Z'],
    ['20261122143005.1234', '2026-11-22T14:30:05.123Z'],
    ['202611221430-0500', '2026-11-22T19:30:00.000Z'],
    ['20261122143005+0530', '2026-11-22T09:00:05.000Z'],
    ['20261122143005.12+0100', '2026-11-22T13:30:05.120Z'],
    ['20261231230000-0500', '2027-01-01T04:00:00.000Z'],
    ['20260101003000+0100', '2025-12-31T23:30:00.000Z'],
    ['20261122143005-0000', '2026-11-22T14:30:05.000Z'],
    ['20240229', '2024-02-29T00:00:00.000Z'],
    ['20000229', '2000-02-29T00:00:00.000Z'],
    [' 20261122 ', '2026-11-22T00:00:00.000Z'],
  ])('reads %j as %s', (raw, iso) => {
    expect(hl7TimestampToIso(raw)).toBe(iso);
  });

  test.each([
    ['empty', ''],
    ['an odd number of digits', '2026112'],
    ['month 13', '20261322'],
    ['month 00', '20260022'],
    ['day 00', '20261100'],
    ['30 February', '20260230'],
    ['29 February in a common year', '20250229'],
    ['29 February 1900', '19000229'],
    ['31 November', '20261131'],
    ['hour 24', '20261122240000'],
    ['minute 60', '20261122236000'],
    ['second 60', '20261122235960'],
    ['an ISO 8601 date', '2026-11-22'],
    ['an ISO 8601 instant', '2026-11-22T14:30:00Z'],
    ['an offset of 25 hours', '20261122143005+2500'],
    ['an offset without minutes', '20261122143005+05'],
    ['text', 'yesterday'],
  ])('refuses %s (%j)', (_what, raw) => {
    expect(hl7TimestampToIso(raw)).toBeNull();
  });
});

describe('hl7DateOnly', () => {
  test.each([
    ['19800115', '1980-01-15'],
    ['198001', '1980-01'],
    ['1980', '1980'],
    ['19800115083000-0500', '1980-01-15'],
    ['20240229', '2024-02-29'],
    ['19800230', null],
    ['19801301', null],
    ['1980-01-15', null],
    ['', null],
  ])('reads %j as %j', (raw, date) => {
    expect(hl7DateOnly(raw)).toBe(date);
  });
});

describe('a pathology report with comments, formatted text, a coded result, a PDF and a Z-segment', () => {
  const pdf = tinyPdf();
  const result = oruToResultMessage(parseHl7(pathologyReportWithPdf({ pdfBase64: pdf.toString('base64') })));
  const report = result.reports[0]!;

  test('files the NTEs after the OBR as comments on the report', () => {
    expect(report.notes).toEqual([
      'Report reviewed by the signing pathologist.',
      'Specimen received in formalin.',
    ]);
  });

  test('reads the FT diagnosis with its \\.br\\ line breaks, and the CWE result with its comment', () => {
    expect(report.observations.map((o) => [o.code.code, o.valueType, o.textValue, o.notes])).toEqual([
      [
        '22637-3',
        'text',
        'SKIN, LEFT FOREARM, SHAVE BIOPSY:\n- Seborrheic keratosis.\n\nMargins: clear.',
        undefined,
      ],
      ['59847-4', 'coded', 'Squamous papilloma', ['Coded by the tumour registrar.']],
    ]);
  });

  test('keeps the PDF as a document of the report, not as a result', () => {
    expect(report.documents).toEqual([
      {
        contentType: 'application/pdf',
        dataBase64: pdf.toString('base64'),
        title: 'Signed pathology report',
      },
    ]);
    expect(report.observations.map((o) => o.code.code)).not.toContain('PDF');
  });

  test('carries a PDF that a PDF reader opens', async () => {
    const bytes = Buffer.from(report.documents![0]!.dataBase64, 'base64');
    const document = await PDFDocument.load(bytes);

    expect(bytes.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(document.getPageCount()).toBe(1);
  });

  test('keeps the Z-segment as sent and reads the placer authority from OBR-2.2', () => {
    expect(result.extraSegments).toEqual(['ZPS|1|ACME_LAB|Anatomic Pathology^AP|Reviewed^Y']);
    expect(report.placerAuthority).toBe('STMARYS');
  });
});

describe('NTE comments', () => {
  const K = 'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L';
  const NA = 'OBX|2|NM|2951-2^Sodium^LN||140|mmol/L';
  test.each<{ what: string; segments: string[]; report: string[] | undefined; results: unknown[] }>([
    {
      what: 'after the OBR: on the report',
      segments: [OBR(), 'NTE|1|L|Hemolyzed specimen.', K],
      report: ['Hemolyzed specimen.'],
      results: [undefined],
    },
    {
      what: 'after an OBX: on that result only',
      segments: [OBR(), K, 'NTE|1|L|Repeated, confirmed.', NA],
      report: undefined,
      results: [['Repeated, confirmed.'], undefined],
    },
    {
      what: 'several after one OBX, in order',
      segments: [OBR(), K, NA, 'NTE|1|L|First.', 'NTE|2|L|Second.'],
      report: undefined,
      results: [undefined, ['First.', 'Second.']],
    },
    {
      what: 'after the PID: not filed under any report',
      segments: ['NTE|1|P|Patient fasting 12 hours.', OBR(), K],
      report: undefined,
      results: [undefined],
    },
    {
      what: 'after the ORC, before its OBR: not filed',
      segments: ['ORC|RE|ORD-1001', 'NTE|1||Order control comment.', OBR(), K],
      report: undefined,
      results: [undefined],
    },
    {
      what: 'with NTE-3 repetitions: one comment, one line per repetition',
      segments: [OBR(), 'NTE|1|L|Line one.~Line two.', K],
      report: ['Line one.\nLine two.'],
      results: [undefined],
    },
    {
      what: 'with \\.br\\ and an escaped separator',
      segments: [OBR(), K, 'NTE|1|L|Fasting \\T\\ non-fasting ranges differ.\\.br\\See the lab manual.'],
      report: undefined,
      results: [['Fasting & non-fasting ranges differ.\nSee the lab manual.']],
    },
    {
      what: 'with an unescaped component separator: kept as text',
      segments: [OBR(), 'NTE|1|L|Ratio 1^4 (screen)', K],
      report: ['Ratio 1^4 (screen)'],
      results: [undefined],
    },
    {
      what: 'blank spacer lines: skipped',
      segments: [OBR(), 'NTE|1|L|Comment.', 'NTE|2|L|   ', 'NTE|3|L|', K],
      report: ['Comment.'],
      results: [undefined],
    },
    {
      what: 'after a Z-segment that follows an OBX: still on that result',
      segments: [OBR(), K, 'ZRS|1|internal', 'NTE|1|L|Verified.'],
      report: undefined,
      results: [['Verified.']],
    },
    {
      what: 'after a segment an NTE cannot comment on (a specimen SPM): not filed under the result before it',
      segments: [OBR(), K, 'SPM|1|S-1||SER^Serum^HL70487', 'NTE|1|L|Out of structure.'],
      report: undefined,
      results: [undefined],
    },
    {
      what: 'after an ED (document) OBX: on the report',
      segments: [OBR(), K, 'OBX|2|ED|PDF^Report^L||^AP^PDF^Base64^JVBERi0=', 'NTE|1|L|Signed copy attached.'],
      report: ['Signed copy attached.'],
      results: [undefined],
    },
  ])('$what', ({ segments, report, results }) => {
    const read = oru(PID, ...segments).reports[0]!;

    expect(read.notes).toEqual(report);
    expect(read.observations.map((o) => o.notes)).toEqual(results);
  });

  test('goes to the OBR of its own group when there are several', () => {
    const reports = oru(
      PID,
      OBR(),
      'NTE|1|L|First order.',
      K,
      'OBR|2|ORD-1002|FIL-2002|58410-2^CBC^LN',
      'NTE|1|L|Second order.',
      'OBX|1|NM|718-7^Hemoglobin^LN||13.1|g/dL',
      'NTE|1|L|Second order, first result.',
    ).reports;

    expect(reports.map((r) => r.notes)).toEqual([['First order.'], ['Second order.']]);
    expect(reports.map((r) => r.observations.map((o) => o.notes))).toEqual([
      [undefined],
      [['Second order, first result.']],
    ]);
  });
});

describe('encapsulated data (OBX-2 ED)', () => {
  const pdf = tinyPdf();
  const b64 = pdf.toString('base64');
  const text = 'Final report: see attached.';
  test.each([
    [
      'Application^PDF, Base64 (Sunquest, Beaker)',
      `LIS^Application^PDF^Base64^${b64}`,
      'application/pdf',
      pdf,
    ],
    ['AP^PDF, Base64 (table 0191 / 0291 codes)', `^AP^PDF^Base64^${b64}`, 'application/pdf', pdf],
    ['a MIME type in ED-3', `^^application/pdf^Base64^${b64}`, 'application/pdf', pdf],
    ['a MIME type in ED-2', `^application/pdf^^base64^${b64}`, 'application/pdf', pdf],
    ['lower-case names', `^application^pdf^base64^${b64}`, 'application/pdf', pdf],
    [
      'base64 wrapped with \\.br\\ every 76 characters',
      `^AP^PDF^Base64^${b64.match(/.{1,76}/g)!.join('\\.br\\')}`,
      'application/pdf',
      pdf,
    ],
    ['base64 without its padding', `^AP^PDF^Base64^${b64.replace(/=+$/, '')}`, 'application/pdf', pdf],
    ['a JPEG image', '^IM^JPEG^Base64^/9j/4AAQ', 'image/jpeg', Buffer.from('/9j/4AAQ', 'base64')],
    [
      'a PNG image (MIME top-level type)',
      '^Image^PNG^Base64^iVBORw0K',
      'image/png',
      Buffer.from('iVBORw0K', 'base64'),
    ],
    ['hex-encoded PDF bytes', `^AP^PDF^Hex^${pdf.toString('hex').toUpperCase()}`, 'application/pdf', pdf],
    [
      'plain text (encoding A), escapes decoded',
      '^TEXT^^A^Line one\\.br\\Line two',
      'text/plain',
      Buffer.from('Line one\nLine two'),
    ],
    ['an HTML text document', `^TEXT^HTML^A^<p>${text}</p>`, 'text/html', Buffer.from(`<p>${text}</p>`)],
    [
      'an unknown subtype of application data',
      '^AP^^Base64^AAEC',
      'application/octet-stream',
      Buffer.from([0, 1, 2]),
    ],
  ])('reads %s', (_what, value, contentType, bytes) => {
    const report = oru(PID, OBR(), `OBX|1|ED|11526-1^Pathology study^LN||${value}||||||F`).reports[0]!;

    expect(report.observations).toEqual([]);
    expect(report.documents).toHaveLength(1);
    expect(report.documents![0]!.contentType).toBe(contentType);
    expect(Buffer.from(report.documents![0]!.dataBase64, 'base64')).toEqual(bytes);
    expect(report.documents![0]!.dataBase64).toBe(Buffer.from(bytes).toString('base64'));
    expect(report.documents![0]!.title).toBe('Pathology study');
  });

  test('keeps results and documents of one report apart, one document per OBX-5 repetition', () => {
    const report = oru(
      PID,
      OBR(),
      'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L',
      `OBX|2|ED|PDF^Report^L||^AP^PDF^Base64^${b64}~^IM^JPEG^Base64^/9j/4AAQ||||||F`,
      'OBX|3|NM|2951-2^Sodium^LN||140|mmol/L',
    ).reports[0]!;

    expect(report.observations.map((o) => [o.sequence, o.code.code])).toEqual([
      [1, '2823-3'],
      [3, '2951-2'],
    ]);
    expect(report.documents!.map((d) => [d.contentType, d.title])).toEqual([
      ['application/pdf', 'Report'],
      ['image/jpeg', 'Report'],
    ]);
  });

  test('takes the title from the OBX-3 text, else the code', () => {
    const report = oru(PID, OBR(), `OBX|1|ED|RPT-PDF||^AP^PDF^Base64^${b64}`).reports[0]!;

    expect(report.documents![0]!.title).toBe('RPT-PDF');
  });

  test('a report without documents or comments has neither field', () => {
    const report = oru(PID, OBR(), 'OBX|1|NM|2823-3^Potassium^LN||4.1').reports[0]!;

    expect(Object.keys(report)).not.toContain('documents');
    expect(Object.keys(report)).not.toContain('notes');
  });

  test.each([
    ['a character outside the base64 alphabet', '^AP^PDF^Base64^JVBER*i0=', HL7_ERROR.dataType],
    ['a length no base64 can have', '^AP^PDF^Base64^JVBERi0xL', HL7_ERROR.dataType],
    ['padding in the middle', '^AP^PDF^Base64^JV==BERi', HL7_ERROR.dataType],
    ['only padding', '^AP^PDF^Base64^====', HL7_ERROR.dataType],
    ['an odd number of hex digits', '^AP^PDF^Hex^255044462', HL7_ERROR.dataType],
    ['a letter that is not a hex digit', '^AP^PDF^Hex^25504G46', HL7_ERROR.dataType],
    ['an encoding not in table 0299', '^AP^PDF^UUENCODE^begin 644', HL7_ERROR.tableValueNotFound],
    ['no encoding at all', '^AP^PDF^^JVBERi0=', HL7_ERROR.tableValueNotFound],
  ])('answers AE at OBX-5 for %s', (_what, value, code) => {
    const error = contentError([MSH(), PID, OBR(), `OBX|1|ED|PDF^Report^L||${value}`].join('\r'));

    expect(error.reject).toBe(false);
    expect(error.errors).toEqual([{ code, location: 'OBX-5', message: expect.stringContaining('result 1') }]);
  });

  test('maps a 12 MB PDF in linear time, without copying it more than it must', () => {
    const big = randomBytes(9 * 1024 * 1024).toString('base64');
    const started = performance.now();
    const report = oruToResultMessage(parseHl7(pathologyReportWithPdf({ pdfBase64: big }))).reports[0]!;
    const elapsed = performance.now() - started;

    expect(report.documents![0]!.dataBase64).toBe(big);
    // About 0.15 s on a laptop; a quadratic step would take minutes.
    expect(elapsed).toBeLessThan(5_000);
  });
});

describe('encapsulatedContentType', () => {
  test.each([
    ['Application', 'PDF', 'application/pdf'],
    ['AP', 'PDF', 'application/pdf'],
    ['', 'application/pdf', 'application/pdf'],
    ['IM', 'TIFF', 'image/tiff'],
    ['SD', 'TIFF', 'image/tiff'],
    ['AU', 'BASIC', 'audio/basic'],
    ['TEXT', 'XML', 'application/xml'],
    ['TEXT', '', 'text/plain'],
    ['AP', 'x-hl7-cda-level-one', 'application/x-hl7-cda-level-one'],
    ['', '', 'application/octet-stream'],
    ['XYZ', 'PDQ', 'application/octet-stream'],
    ['AP', 'pdf; name="x.exe"', 'application/octet-stream'],
    ['', 'text/html\r\nX-Injected: 1', 'application/octet-stream'],
  ])('reads ED-2 %j and ED-3 %j as %s', (type, subtype, mime) => {
    expect(encapsulatedContentType(type, subtype)).toBe(mime);
  });
});

describe('OBX-2 value types', () => {
  test.each([
    ['DT (a date), as sent', 'DT', '20261122', 'text', '20261122'],
    ['TS (a time stamp), as sent', 'TS', '20261122040000-0500', 'text', '20261122040000-0500'],
    [
      'CWE with only its original text (CWE-9)',
      'CWE',
      '^^^^^^^^Trace amount seen',
      'coded',
      'Trace amount seen',
    ],
    ['CE with a code and no text', 'CE', 'NEG^^HL70078', 'coded', 'NEG'],
    [
      'RP (a reference pointer), kept as text',
      'RP',
      'https://lab.example/r/1^ACME^AP^PDF',
      'text',
      'https://lab.example/r/1 ACME AP PDF',
    ],
    ['lower-case st', 'st', 'Clear', 'text', 'Clear'],
  ])('reads %s', (_what, type, value, valueType, textValue) => {
    const obs = firstResult(seg('OBX', { 1: '1', 2: type, 3: '5196-1^HBsAg^LN', 5: value, 11: 'F' }));

    expect(obs.valueType).toBe(valueType);
    expect(obs.textValue).toBe(textValue);
  });

  test('keeps a result with neither a value type nor a value (not yet resulted)', () => {
    const obs = firstResult('OBX|1||2823-3^Potassium^LN||||||||I');

    expect(obs).toMatchObject({ valueType: 'text', textValue: null, status: 'registered' });
  });

  test.each([
    ['a value type outside table 0125', 'OBX|1|XYZ|2823-3^K^LN||4.1', HL7_ERROR.tableValueNotFound],
    ['a value type spelled out', 'OBX|1|NUMERIC|2823-3^K^LN||4.1', HL7_ERROR.tableValueNotFound],
    ['a value with no value type', 'OBX|1||2823-3^K^LN||4.1', HL7_ERROR.requiredFieldMissing],
  ])('answers AE at OBX-2 for %s', (_what, obx, code) => {
    const error = contentError([MSH(), PID, OBR(), obx].join('\r'));

    expect(error.errors).toEqual([{ code, location: 'OBX-2', message: expect.stringContaining('OBX-2') }]);
  });

  test.each([
    ['a line break inside a number', 'NM', '4\\.br\\1'],
    ['300,000 digits and a letter', 'NM', `${'1'.repeat(300_000)}x`],
    ['300,000 spaces and a line break', 'NM', `${' '.repeat(300_000)}\\.br\\x`],
  ])('answers AE at OBX-5, promptly, for %s', (_what, type, value) => {
    const started = performance.now();
    const error = contentError([MSH(), PID, OBR(), `OBX|1|${type}|2823-3^K^LN||${value}|mmol/L`].join('\r'));

    expect(error.errors.map((e) => [e.code, e.location])).toEqual([[HL7_ERROR.dataType, 'OBX-5']]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  test('keeps an over-long reference range as text without parsing it', () => {
    const range = `${'1'.repeat(300_000)}x`;
    const started = performance.now();
    const obs = firstResult(`OBX|1|NM|2823-3^K^LN||4.1|mmol/L|${range}`);

    expect(obs.referenceRange).toEqual({ low: null, high: null, text: range });
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe('Z-segments', () => {
  test('are kept as sent, in order, wherever they are', () => {
    const result = oru(
      PID,
      'ZPD|1|VIP^Y|Confidential\\T\\restricted',
      OBR(),
      'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L',
      'ZRS|1|QC-LOT-4471||',
    );

    expect(result.extraSegments).toEqual(['ZPD|1|VIP^Y|Confidential\\T\\restricted', 'ZRS|1|QC-LOT-4471||']);
    expect(result.reports[0]!.observations).toHaveLength(1);
  });

  test('are re-joined with the field separator of the message', () => {
    const result = oruToResultMessage(
      parseHl7(
        [
          'MSH#$*@%#LIS#ACME#LABRELAY#STMARYS#20261122083000##ORU$R01#MSG1#P#2.5.1',
          'PID#1##MRN1$$$H$MR',
          'OBR#1#ORD-1##24321-2$BMP$LN',
          'ZXT#1#a$b*c#|not a separator here|',
        ].join('\r'),
      ),
    );

    expect(result.extraSegments).toEqual(['ZXT#1#a$b*c#|not a separator here|']);
  });

  test('leave no extraSegments field when there are none', () => {
    expect(Object.keys(oru(PID, OBR()))).not.toContain('extraSegments');
  });
});

describe('placer authority', () => {
  test.each([
    ['OBR-2.2', 'OBR|1|1200345^EPC|F-1|24321-2^BMP^LN', undefined, 'EPC'],
    ['ORC-2.2 when OBR-2 has no namespace', 'OBR|1|1200345|F-1|24321-2^BMP^LN', 'ORC|RE|1200345^EPC', 'EPC'],
    [
      'ORC-2.2 when OBR-2 is empty',
      'OBR|1||F-1|24321-2^BMP^LN',
      'ORC|RE|1200345^HNAM_ORDERID',
      'HNAM_ORDERID',
    ],
    ['OBR-2.2 over ORC-2.2', 'OBR|1|1200345^EPC|F-1|24321-2^BMP^LN', 'ORC|RE|1200345^OTHER', 'EPC'],
    [
      'the universal id (EI-3) when there is no namespace',
      'OBR|1|1200345^^1.2.840.114350^ISO||24321-2^BMP^LN',
      undefined,
      '1.2.840.114350',
    ],
    ['none', 'OBR|1|1200345|F-1|24321-2^BMP^LN', 'ORC|RE|1200345', null],
  ])('comes from %s', (_what, obr, orc, authority) => {
    const report = oru(PID, ...(orc ? [orc] : []), obr).reports[0]!;

    expect(report.placerAuthority).toBe(authority);
    expect(report.placerOrderNumber).toBe('1200345');
  });
});
