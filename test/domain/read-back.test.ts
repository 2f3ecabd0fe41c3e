import { describe, expect, test } from 'vitest';
import { checkReadBack, type ReadBackExpected } from '../../domain/read-back.ts';

/** A critical potassium for a patient with an MRN and an enterprise id. */
const POTASSIUM: ReadBackExpected = {
  value: 6.8,
  text: '6.8',
  unit: 'mmol/L',
  patientIdentifiers: ['MRN-004512', 'E 7781 2290'],
  birthDate: '1968-03-14',
  familyName: 'Okafor',
};

const withValue = (more: Partial<ReadBackExpected>): ReadBackExpected => ({ ...POTASSIUM, ...more });

const RIGHT_PATIENT = 'MRN-004512';

describe('checkReadBack: the value', () => {
  test.each<[string, ReadBackExpected, string]>([
    ['as written', POTASSIUM, '6.8'],
    ['with a trailing zero', POTASSIUM, '6.80'],
    ['with a decimal comma', POTASSIUM, '6,8'],
    ['with spaces around it', POTASSIUM, '  6.8 '],
    ['with the unit', POTASSIUM, '6.8 mmol/L'],
    ['with the unit in another case and no space', POTASSIUM, '6,80mmol/l'],
    ['with the unit spaced out', POTASSIUM, '6.8 mmol / L'],
    ['a whole number written with decimals', withValue({ value: 120, text: '120' }), '120.0'],
    ['a leading decimal point', withValue({ value: 0.5, text: '0.5', unit: 'ng/mL' }), '.5'],
    ['a negative base excess', withValue({ value: -12, text: '-12' }), '-12'],
    ['a negative with a unicode minus', withValue({ value: -12, text: '-12' }), '\u221212 mmol/L'],
    [
      'a value above the instrument range',
      withValue({ value: 600, text: '>600', unit: 'mg/dL' }),
      '>600 mg/dL',
    ],
    ['a dimensionless INR', withValue({ value: 5.6, text: '5.6', unit: null }), '5.6'],
    ['a text result in another case', withValue({ value: null, text: 'Positive', unit: null }), ' positive '],
    [
      'a text result with other spacing',
      withValue({ value: null, text: 'Gram-negative rods', unit: null }),
      'gram-negative   RODS',
    ],
  ])('matches %s', (_what, expected, value) => {
    expect(checkReadBack(expected, { value, patientIdentifier: RIGHT_PATIENT })).toEqual({ ok: true });
  });

  test.each<[string, ReadBackExpected, string]>([
    ['a different number', POTASSIUM, '6.3'],
    ['transposed digits', POTASSIUM, '8.6'],
    ['a misplaced decimal point', POTASSIUM, '68'],
    ['a different unit', POTASSIUM, '6.8 mEq/L'],
    ['a unit when the result has none', withValue({ value: 5.6, text: '5.6', unit: null }), '5.6 mg/dL'],
    ['words after the number', POTASSIUM, '6.8 or so'],
    ['a thousands separator read as a decimal comma', withValue({ value: 1020, text: '1020' }), '1,020'],
    ['the wrong sign', withValue({ value: -12, text: '-12' }), '12'],
    ['the number without its comparator', withValue({ value: 600, text: '>600', unit: 'mg/dL' }), '600'],
    ['a comparator the result does not have', POTASSIUM, '>6.8'],
    ['another comparator', withValue({ value: 600, text: '>600', unit: 'mg/dL' }), '>=600'],
    ['nothing', POTASSIUM, ''],
    ['not a number', POTASSIUM, 'six point eight'],
    ['another text result', withValue({ value: null, text: 'Positive', unit: null }), 'negative'],
    [
      'a text result with only part of it',
      withValue({ value: null, text: 'Gram-negative rods', unit: null }),
      'rods',
    ],
    ['a result with no value at all', withValue({ value: null, text: null }), ''],
  ])('does not match %s', (_what, expected, value) => {
    expect(checkReadBack(expected, { value, patientIdentifier: RIGHT_PATIENT })).toMatchObject({
      ok: false,
      mismatches: ['value'],
    });
  });
});

describe('checkReadBack: the patient', () => {
  test.each([
    ['the MRN as written', 'MRN-004512'],
    ['the MRN in lower case', 'mrn-004512'],
    ['the MRN without its dash', 'MRN004512'],
    ['the MRN with spaces for the dash', ' MRN 004512 '],
    ['the MRN with an en dash', 'MRN–004512'],
    ['the second identifier without spaces', 'E77812290'],
    ['the birth date', '1968-03-14'],
  ])('matches %s', (_what, patientIdentifier) => {
    expect(checkReadBack(POTASSIUM, { value: '6.8', patientIdentifier })).toEqual({ ok: true });
  });

  test.each<[string, string, Partial<ReadBackExpected>]>([
    ['another MRN', 'MRN-004521', {}],
    ['part of the MRN', '004512', {}],
    ['the family name alone', 'Okafor', {}],
    ['the birth date written another way', '14/03/1968', {}],
    ['the birth date with spaces inside', '1968 - 03 - 14', {}],
    ['another birth date', '1968-03-15', {}],
    ['a partial birth date that equals the one on file', '1968', { birthDate: '1968' }],
    ['nothing', '  ', {}],
    ['a dash alone against an empty identifier', '-', { patientIdentifiers: ['', '  '] }],
  ])('does not match %s', (_what, patientIdentifier, more) => {
    expect(checkReadBack(withValue(more), { value: '6.8', patientIdentifier })).toMatchObject({
      ok: false,
      mismatches: ['patient'],
    });
  });
});

describe('checkReadBack: the message', () => {
  const secrets = ['6.8', '6,8', 'mmol', 'MRN', '004512', '7781', '1968', 'Okafor'];

  test.each<[string, string, string, string[], string]>([
    [
      'the value',
      '6.3',
      RIGHT_PATIENT,
      ['value'],
      'The value read back does not match the result. Ask for the value again.',
    ],
    [
      'the patient',
      '6.8',
      'MRN-004521',
      ['patient'],
      'The patient identifier read back does not match this patient’s identifiers or date of birth. Ask for the patient identifier again.',
    ],
    [
      'both',
      '6.3',
      'MRN-004521',
      ['value', 'patient'],
      'The value read back does not match the result. The patient identifier read back does not match this patient’s identifiers or date of birth. Ask for the value and the patient identifier again.',
    ],
  ])(
    'says when %s did not match, without the expected values',
    (_what, value, patientIdentifier, mismatches, message) => {
      const outcome = checkReadBack(POTASSIUM, { value, patientIdentifier });
      expect(outcome).toEqual({ ok: false, mismatches, message });
      if (outcome.ok) return;
      for (const secret of secrets) expect(outcome.message).not.toContain(secret);
    },
  );
});
