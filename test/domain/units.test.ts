import { describe, expect, test } from 'vitest';
import { convertUnit } from '../../domain/units.ts';

describe('convertUnit', () => {
  test.each<[string, number, string | null, string, number | undefined, number]>([
    ['glucose mmol/L to mg/dL', 5.5, 'mmol/L', 'mg/dL', 180.156, 99.09],
    ['glucose mg/dL to mmol/L', 99, 'mg/dL', 'mmol/L', 180.156, 5.5],
    ['calcium mmol/L to mg/dL', 2.5, 'mmol/L', 'mg/dL', 40.078, 10.02],
    ['hemoglobin g/L to g/dL', 135, 'g/L', 'g/dL', undefined, 13.5],
    ['hemoglobin g/l (lower case) to g/dL', 135, 'g/l', 'g/dL', undefined, 13.5],
    ['platelets 10*9/L to 10*3/uL', 250, '10*9/L', '10*3/uL', undefined, 250],
    ['platelets 10^9/L to 10*3/uL', 250, '10^9/L', '10*3/uL', undefined, 250],
    ['platelets K/uL to 10*3/uL', 250, 'K/uL', '10*3/uL', undefined, 250],
    ['platelets x10E3/uL to 10*3/uL', 250, 'x10E3/uL', '10*3/uL', undefined, 250],
    ['pCO2 kPa to mm[Hg]', 8, 'kPa', 'mm[Hg]', undefined, 60.01],
    ['pCO2 mmHg to mm[Hg]', 40, 'mmHg', 'mm[Hg]', undefined, 40],
    ['INR with no unit', 2.4, null, '{INR}', undefined, 2.4],
    ['INR with an empty unit', 2.4, '', '{INR}', undefined, 2.4],
    ['INR written "INR"', 2.4, 'INR', '{INR}', undefined, 2.4],
    ['pH written "pH"', 7.4, 'pH', '[pH]', undefined, 7.4],
    ['the same unit', 4.1, 'mmol/L', 'mmol/L', undefined, 4.1],
  ])('converts %s', (_what, value, from, to, molecularWeight, expected) => {
    expect(convertUnit(value, from, to, molecularWeight)).toBeCloseTo(expected, 2);
  });

  test.each<[string, number, string | null, string, number | undefined]>([
    ['mass to molar without a molecular weight', 99, 'mg/dL', 'mmol/L', undefined],
    ['a unit UCUM does not know', 4.1, 'mmmol/L', 'mmol/L', undefined],
    ['no unit to a dimensioned unit', 4.1, null, 'mmol/L', undefined],
    ['a dimensioned unit to a dimensionless one', 4.1, 'mmol/L', '{INR}', undefined],
    ['one dimensionless unit to another', 7.4, '[pH]', '{INR}', undefined],
    ['different kinds of quantity', 48, 's', 'mmol/L', undefined],
  ])('refuses %s', (_what, value, from, to, molecularWeight) => {
    expect(convertUnit(value, from, to, molecularWeight)).toBeNull();
  });
});
