import { describe, expect, test } from 'vitest';
import { DEFAULT_CRITICAL_TABLE } from '../../domain/critical-values.ts';
import { flagObservation, isLoincCode, parseReferenceRange } from '../../domain/flags.ts';
import type { ObservationResult } from '../../domain/model.ts';

const LOINC = 'http://loinc.org';

/** A numeric result as the HL7 and FHIR adapters hand it over. */
function result(
  loinc: string,
  value: number | null,
  unit: string | null,
  {
    range = null as string | null,
    flags = [] as string[],
    comparator = null as string | null,
    system = LOINC as string | null,
  } = {},
): ObservationResult {
  return {
    sequence: 1,
    code: { system, code: loinc, display: null },
    valueType: 'quantity',
    numericValue: value,
    comparator,
    textValue: value === null ? null : `${comparator ?? ''}${value}`,
    unit,
    referenceRange: range === null ? null : parseReferenceRange(range),
    sourceFlags: flags,
    status: 'final',
    effectiveAt: null,
  };
}

const flag = (obs: ObservationResult) => flagObservation(obs, DEFAULT_CRITICAL_TABLE);

// Analytes that are not in the critical table, to look at the reference range alone.
const ALT = '1742-6';
const EGFR = '33914-3';
const BASE_EXCESS = '1925-7';

describe('parseReferenceRange', () => {
  test.each([
    ['3.5-5.1', 3.5, 5.1],
    ['3.5 - 5.1', 3.5, 5.1],
    ['3.5–5.1', 3.5, 5.1],
    ['3.5 to 5.1', 3.5, 5.1],
    ['.5-1.0', 0.5, 1],
    ['-2.0-2.0', -2, 2],
    ['-2.0 - +2.0', -2, 2],
    ['-5--1', -5, -1],
    ['<200', null, 200],
    ['< 200', null, 200],
    ['<=0.04', null, 0.04],
    ['>=60', 60, null],
    ['>60', 60, null],
    [' 135-145 ', 135, 145],
  ])('reads %j as low %j, high %j', (text, low, high) => {
    expect(parseReferenceRange(text)).toEqual({ low, high, text: text.trim() });
  });

  test.each(['Negative', 'Non-reactive', 'See note', 'Clear', '3.5-5.1 mmol/L', 'Adult: 3.5-5.1'])(
    'keeps %j as text with no numeric bounds',
    (text) => {
      expect(parseReferenceRange(text)).toEqual({ low: null, high: null, text });
    },
  );

  test('reads an empty range as no range at all', () => {
    expect(parseReferenceRange('  ')).toEqual({ low: null, high: null, text: null });
  });
});

describe('flagObservation: reference range', () => {
  test.each([
    ['ALT inside its range', ALT, 25, 'U/L', '7-56', 'N', []],
    ['ALT on the lower bound', ALT, 7, 'U/L', '7-56', 'N', []],
    ['ALT on the upper bound', ALT, 56, 'U/L', '7-56', 'N', []],
    ['ALT below its range', ALT, 5, 'U/L', '7-56', 'L', ['below the reference range 7-56']],
    ['ALT above its range', ALT, 80, 'U/L', '7-56', 'H', ['above the reference range 7-56']],
    [
      'eGFR under a lower limit (>=60)',
      EGFR,
      45,
      'mL/min/{1.73_m2}',
      '>=60',
      'L',
      ['below the reference range >=60'],
    ],
    ['eGFR on a lower limit (>=60)', EGFR, 60, 'mL/min/{1.73_m2}', '>=60', 'N', []],
    [
      'cholesterol over an upper limit (<200)',
      '2093-3',
      245,
      'mg/dL',
      '<200',
      'H',
      ['above the reference range <200'],
    ],
    ['cholesterol under an upper limit (<200)', '2093-3', 180, 'mg/dL', '<200', 'N', []],
    [
      'a negative base excess below -2.0-2.0',
      BASE_EXCESS,
      -3.1,
      'mmol/L',
      '-2.0-2.0',
      'L',
      ['below the reference range -2.0-2.0'],
    ],
    ['a negative base excess inside -2.0-2.0', BASE_EXCESS, -1.5, 'mmol/L', '-2.0-2.0', 'N', []],
  ])('%s', (_what, loinc, value, unit, range, interpretation, reasons) => {
    expect(flag(result(loinc, value, unit, { range }))).toEqual({
      interpretation,
      critical: false,
      reasons,
      needsReview: false,
    });
  });

  test.each([
    ['<7 against 7-56 is low', '<', 7, 'L'],
    ['>56 against 7-56 is high', '>', 56, 'H'],
    ['<=7 against 7-56 may be 7, so normal', '<=', 7, 'N'],
    ['<56 against 7-56 is inside', '<', 56, 'N'],
  ])('a value with a comparator: %s', (_what, comparator, value, interpretation) => {
    expect(flag(result(ALT, value, 'U/L', { range: '7-56', comparator })).interpretation).toBe(
      interpretation,
    );
  });

  test('uses the default range when the message gives none, and the message range when it does', () => {
    const defaultRange = { low: 7, high: 56, text: '7-56' };

    expect(flagObservation(result(ALT, 80, 'U/L'), DEFAULT_CRITICAL_TABLE, defaultRange).interpretation).toBe(
      'H',
    );
    expect(
      flagObservation(result(ALT, 80, 'U/L', { range: '10-100' }), DEFAULT_CRITICAL_TABLE, defaultRange)
        .interpretation,
    ).toBe('N');
    // A text-only range ("see note") has no bounds: the default one is used.
    expect(
      flagObservation(result(ALT, 80, 'U/L', { range: 'see note' }), DEFAULT_CRITICAL_TABLE, defaultRange)
        .interpretation,
    ).toBe('H');
  });

  test.each([
    ['H', 'H'],
    ['L', 'L'],
    ['A', 'A'],
    ['N', 'N'],
  ])("trusts the sender's %s when there is no numeric range to judge by", (sourceFlag, interpretation) => {
    const hbsag: ObservationResult = {
      ...result('5196-1', null, null, { range: 'Negative', flags: [sourceFlag] }),
      valueType: 'coded',
      textValue: 'Reactive',
    };

    expect(flag(hbsag)).toEqual({ interpretation, critical: false, reasons: [], needsReview: false });
  });

  test('has no interpretation for a result with neither range nor flag', () => {
    expect(flag(result(ALT, 25, 'U/L')).interpretation).toBeNull();
  });
});

describe('flagObservation: critical values from DEFAULT_CRITICAL_TABLE', () => {
  test.each([
    [
      'potassium 6.8 mmol/L',
      '2823-3',
      6.8,
      'mmol/L',
      '3.5-5.1',
      true,
      'HH',
      'above critical high 6.2 mmol/L',
    ],
    ['potassium 2.5 mmol/L', '2823-3', 2.5, 'mmol/L', '3.5-5.1', true, 'LL', 'below critical low 2.8 mmol/L'],
    ['potassium 6.2 mmol/L (on the limit)', '2823-3', 6.2, 'mmol/L', '3.5-5.1', false, 'H', null],
    ['potassium 5.8 mmol/L', '2823-3', 5.8, 'mmol/L', '3.5-5.1', false, 'H', null],
    [
      'glucose 2.0 mmol/L (36 mg/dL)',
      '2345-7',
      2.0,
      'mmol/L',
      '3.9-5.5',
      true,
      'LL',
      'below critical low 40 mg/dL',
    ],
    ['glucose 2.3 mmol/L (41 mg/dL)', '2345-7', 2.3, 'mmol/L', '3.9-5.5', false, 'L', null],
    [
      'glucose 26 mmol/L (468 mg/dL)',
      '2345-7',
      26,
      'mmol/L',
      '3.9-5.5',
      true,
      'HH',
      'above critical high 450 mg/dL',
    ],
    ['glucose 24.5 mmol/L (441 mg/dL)', '2345-7', 24.5, 'mmol/L', '3.9-5.5', false, 'H', null],
    ['glucose 35 mg/dL', '2345-7', 35, 'mg/dL', '70-99', true, 'LL', 'below critical low 40 mg/dL'],
    [
      'glucose 35 mg/dl (lower-case unit)',
      '2345-7',
      35,
      'mg/dl',
      '70-99',
      true,
      'LL',
      'below critical low 40 mg/dL',
    ],
    ['hemoglobin 55 g/L (5.5 g/dL)', '718-7', 55, 'g/L', '120-160', true, 'LL', 'below critical low 6 g/dL'],
    ['hemoglobin 65 g/L (6.5 g/dL)', '718-7', 65, 'g/L', '120-160', false, 'L', null],
    [
      'hemoglobin 210 g/L (21 g/dL)',
      '718-7',
      210,
      'g/L',
      '120-160',
      true,
      'HH',
      'above critical high 20 g/dL',
    ],
    ['hemoglobin 5.5 g/dL', '718-7', 5.5, 'g/dL', '12.0-16.0', true, 'LL', 'below critical low 6 g/dL'],
    ['platelets 15 10*9/L', '777-3', 15, '10*9/L', '150-400', true, 'LL', 'below critical low 20 10*3/uL'],
    ['platelets 25 10*9/L', '777-3', 25, '10*9/L', '150-400', false, 'L', null],
    [
      'platelets 15 x10E3/uL (LabCorp)',
      '777-3',
      15,
      'x10E3/uL',
      '150-450',
      true,
      'LL',
      'below critical low 20 10*3/uL',
    ],
    ['platelets 1200 K/uL', '777-3', 1200, 'K/uL', '150-450', true, 'HH', 'above critical high 1000 10*3/uL'],
    ['WBC 1.4 x10E3/uL', '6690-2', 1.4, 'x10E3/uL', '3.4-10.8', true, 'LL', 'below critical low 2 10*3/uL'],
    ['sodium 118 mmol/L', '2951-2', 118, 'mmol/L', '135-145', true, 'LL', 'below critical low 120 mmol/L'],
    [
      'calcium 3.5 mmol/L (14.0 mg/dL)',
      '17861-6',
      3.5,
      'mmol/L',
      '2.15-2.55',
      true,
      'HH',
      'above critical high 13 mg/dL',
    ],
    ['calcium 9.5 mg/dL', '17861-6', 9.5, 'mg/dL', '8.6-10.3', false, 'N', null],
    [
      'magnesium 0.35 mmol/L (0.85 mg/dL)',
      '19123-9',
      0.35,
      'mmol/L',
      '0.70-1.00',
      true,
      'LL',
      'below critical low 1 mg/dL',
    ],
    ['lactate 5.2 mmol/L', '2524-7', 5.2, 'mmol/L', '0.5-2.2', true, 'HH', 'above critical high 4 mmol/L'],
    ['pCO2 10 kPa (75 mmHg)', '2019-8', 10, 'kPa', '4.7-6.0', true, 'HH', 'above critical high 70 mm[Hg]'],
    ['pCO2 45 mmHg', '2019-8', 45, 'mmHg', '35-45', false, 'N', null],
    [
      'arterial pH 7.1 with no unit',
      '2744-1',
      7.1,
      null,
      '7.35-7.45',
      true,
      'LL',
      'below critical low 7.2 [pH]',
    ],
    ['INR 6.1 with no unit', '6301-6', 6.1, null, '0.9-1.1', true, 'HH', 'above critical high 5 {INR}'],
    ['INR 6.1 in unit "INR"', '6301-6', 6.1, 'INR', '0.9-1.1', true, 'HH', 'above critical high 5 {INR}'],
    ['INR 4.0 with no unit', '6301-6', 4.0, null, '0.9-1.1', false, 'H', null],
  ])('%s', (_what, loinc, value, unit, range, critical, interpretation, reason) => {
    const f = flag(result(loinc, value, unit, { range }));

    expect(f.critical).toBe(critical);
    expect(f.interpretation).toBe(interpretation);
    expect(f.needsReview).toBe(false);
    if (reason) expect(f.reasons).toContain(reason);
    else expect(f.reasons.filter((r) => r.includes('critical'))).toEqual([]);
  });

  test.each([
    ['glucose <40 mg/dL is below the critical low of 40', '2345-7', '<', 40, 'mg/dL', 'LL'],
    ['INR >5.0 is above the critical high of 5.0', '6301-6', '>', 5, null, 'HH'],
    ['potassium >6.2 mmol/L is above the critical high of 6.2', '2823-3', '>', 6.2, 'mmol/L', 'HH'],
  ])(
    'a value reported with a comparator on a limit: %s',
    (_what, loinc, comparator, value, unit, interpretation) => {
      const f = flag(result(loinc, value, unit, { comparator }));

      expect(f.critical).toBe(true);
      expect(f.interpretation).toBe(interpretation);
    },
  );

  test('does not call glucose >40 mg/dL critically low', () => {
    expect(flag(result('2345-7', 40, 'mg/dL', { comparator: '>' })).critical).toBe(false);
  });

  test.each(['HH', 'LL', 'AA'])(
    "treats the sender's %s as critical whatever the table says",
    (sourceFlag) => {
      const f = flag(result('2823-3', 4.2, 'mmol/L', { range: '3.5-5.1', flags: [sourceFlag] }));

      expect(f.critical).toBe(true);
      expect(f.interpretation).toBe(sourceFlag);
      expect(f.reasons).toEqual([`the sender flagged it ${sourceFlag}`]);
    },
  );

  test("treats the sender's HH as critical for an analyte the table does not list", () => {
    const troponin = result('89579-7', 512, 'ng/L', { range: '<14', flags: ['HH'] });

    expect(flag(troponin)).toMatchObject({ critical: true, interpretation: 'HH', needsReview: false });
  });

  test('checks the table only against LOINC codes', () => {
    expect(flag(result('2823-3', 6.8, 'mmol/L', { system: 'urn:labrelay:local' })).critical).toBe(false);
    expect(flag(result('2823-3', 6.8, 'mmol/L', { system: 'LN' })).critical).toBe(true);
  });

  test('reads a code sent without a code system as LOINC when its check digit says so (a CSV without test_system)', () => {
    const potassium = flag(result('2823-3', 7.2, 'mmol/L', { system: null }));

    expect(potassium).toMatchObject({ critical: true, interpretation: 'HH', needsReview: false });
    expect(potassium.reasons).toContain(
      'code 2823-3 came without a code system and is read as LOINC (Potassium)',
    );
    // A local code that only looks like LOINC (its check digit is wrong) is not read as LOINC.
    expect(flag(result('2823-4', 7.2, 'mmol/L', { system: null })).critical).toBe(false);
  });

  test.each(DEFAULT_CRITICAL_TABLE.map((l) => [l.name, l.loinc]))(
    'knows %s (%s) for a LOINC code by its check digit',
    (_name, loinc) => {
      expect(isLoincCode(loinc)).toBe(true);
      const [number, check] = loinc.split('-');
      expect(isLoincCode(`${number}-${(Number(check) + 1) % 10}`)).toBe(false);
    },
  );

  test.each([['hemolysed'], ['see note'], ['abc']])(
    'a text value "%s" for a test the table has limits for needs review, critical unknown',
    (text) => {
      const f = flag({ ...result('2823-3', null, 'mmol/L'), valueType: 'text', textValue: text });

      expect(f).toMatchObject({ needsReview: true, critical: null });
      expect(f.reasons).toContain(
        `"${text}" is not a number: the critical limits of Potassium cannot be checked`,
      );
    },
  );

  test.each([
    ['>10', true, 'HH'],
    ['<1.5', true, 'LL'],
    ['>2', false, 'N'],
    ['<7', false, 'N'],
  ] as const)(
    'a bounded value sent as text, "%s", is read as its number and its bound',
    (text, critical, interpretation) => {
      const f = flag({
        ...result('2823-3', null, 'mmol/L', { range: '3.5-5.1' }),
        valueType: 'text',
        textValue: text,
      });

      expect(f).toMatchObject({ critical, needsReview: false });
      if (critical) expect(f.interpretation).toBe(interpretation);
    },
  );

  test('an empty value (a result not yet done or cancelled) is not sent to review', () => {
    const f = flag({ ...result('2823-3', null, 'mmol/L'), valueType: 'text', textValue: '' });

    expect(f).toMatchObject({ needsReview: false, critical: false });
  });

  test.each([['LNC'], ['LOINC'], ['urn:oid:2.16.840.1.113883.6.1']])(
    'reads the code system %s as LOINC',
    (system) => {
      expect(flag(result('2823-3', 6.8, 'mmol/L', { system })).critical).toBe(true);
    },
  );

  test('a text value the sender flagged HH stays critical', () => {
    const f = flag({
      ...result('2823-3', null, 'mmol/L', { flags: ['HH'] }),
      valueType: 'text',
      textValue: '>10',
    });

    expect(f.critical).toBe(true);
  });

  test.each([
    ['potassium in an unknown unit', '2823-3', 4.2, 'mmmol/L', '3.5-5.1'],
    ['potassium with no unit', '2823-3', 6.8, null, '3.5-5.1'],
    ['glucose with no unit', '2345-7', 1.9, null, null],
    ['hemoglobin in mmol/L (no molecular weight in the table)', '718-7', 3.4, 'mmol/L', '7.5-10.0'],
    ['platelets as a percentage', '777-3', 12, '%', null],
    ['INR sent as prothrombin seconds', '6301-6', 48, 's', '11-13.5'],
    ['pH sent with a unit', '2744-1', 6.9, 'mmol/L', null],
  ])('%s: needs review, critical unknown, never silently passed', (_what, loinc, value, unit, range) => {
    const f = flag(result(loinc, value, unit, { range }));

    expect(f.needsReview).toBe(true);
    expect(f.critical).toBeNull();
    expect(f.reasons.join('; ')).toMatch(
      new RegExp(`unit ${(unit ?? '(none)').replace(/[()[\]{}*.%]/g, '\\$&')} cannot be converted`),
    );
  });

  test("keeps the sender's critical flag when the unit cannot be converted", () => {
    const f = flag(result('2823-3', 6.8, 'mmmol/L', { range: '3.5-5.1', flags: ['HH'] }));

    expect(f).toMatchObject({ critical: true, interpretation: 'HH', needsReview: true });
  });

  // Equivalents become moles through the ion's charge in the critical table (K+ 1, Ca2+ 2).
  test('checks potassium in mEq/L against the mmol/L limits', () => {
    const f = flag(result('2823-3', 6.8, 'mEq/L', { range: '3.5-5.1' }));

    expect(f).toMatchObject({ critical: true, needsReview: false, interpretation: 'HH' });
    expect(f.reasons).toContain('above critical high 6.2 mmol/L');
  });

  test('checks calcium in mEq/L against the mg/dL limits', () => {
    // 2.5 mEq/L of Ca2+ is 1.25 mmol/L, about 5.0 mg/dL: below the critical low of 6.0 mg/dL.
    const f = flag(result('17861-6', 2.5, 'mEq/L'));

    expect(f).toMatchObject({ critical: true, interpretation: 'LL' });
  });
});
