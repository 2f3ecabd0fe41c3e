import ucum from '@lhncbc/ucum-lhc';

const utils = ucum.UcumLhcUtils.getInstance();

/** Units senders write that are not UCUM codes, mapped to the UCUM code they mean. */
const UNIT_ALIASES: Record<string, string> = {
  'mEq/L': 'meq/L',
  'MEQ/L': 'meq/L',
  mmHg: 'mm[Hg]',
  MMHG: 'mm[Hg]',
  'K/uL': '10*3/uL',
  'x10E3/uL': '10*3/uL',
  'X10E3/UL': '10*3/uL',
  '10^3/uL': '10*3/uL',
  '10^9/L': '10*9/L',
  'x10E9/L': '10*9/L',
  'MG/DL': 'mg/dL',
  'G/DL': 'g/dL',
  'MMOL/L': 'mmol/L',
  'mmol/l': 'mmol/L',
  'mg/dl': 'mg/dL',
  'g/dl': 'g/dL',
  'g/l': 'g/L',
  'G/L': 'g/L',
  pH: '[pH]',
  ratio: '{INR}',
  INR: '{INR}',
};

/** Units without a dimension: only equal to themselves (or to no unit at all). */
const DIMENSIONLESS = new Set(['{INR}', '[pH]', '1', '{ratio}']);

/**
 * Converts a value between units with UCUM (`@lhncbc/ucum-lhc`), passing a molecular weight when
 * one is needed to go between molar and mass concentrations, and an ion's charge for equivalents (mEq/L). Returns null when the units are not
 * convertible (an unknown unit, or different kinds of quantity).
 *
 * @example convertUnit(5.5, 'mmol/L', 'mg/dL', 180.156) // 99.09 (glucose)
 */
export function convertUnit(
  value: number,
  from: string | null,
  to: string,
  molecularWeight?: number,
  charge?: number,
): number | null {
  const source = normaliseUnit(from);
  const target = normaliseUnit(to);
  if (source === target) return value;
  // A dimensionless analyte (pH, INR) sent without a unit is in its only unit.
  if (source === '' && DIMENSIONLESS.has(target)) return value;
  if (DIMENSIONLESS.has(source) || DIMENSIONLESS.has(target) || source === '') return null;
  const options =
    molecularWeight || charge
      ? { ...(molecularWeight ? { molecularWeight } : {}), ...(charge ? { charge } : {}) }
      : undefined;
  const result = utils.convertUnitTo(source, value, target, options);
  if (result.status !== 'succeeded' || typeof result.toVal !== 'number') return null;
  return Number(result.toVal.toPrecision(12));
}

function normaliseUnit(unit: string | null): string {
  const u = (unit ?? '').trim();
  return UNIT_ALIASES[u] ?? u;
}

/**
 * Whether a unit is one LabRelay can convert: a valid UCUM code or one of the aliases senders use.
 *
 * @example isKnownUnit('mmol/L') // true
 * @example isKnownUnit('bananas') // false
 */
export function isKnownUnit(unit: string): boolean {
  const u = normaliseUnit(unit);
  if (DIMENSIONLESS.has(u)) return true;
  return utils.validateUnitString(u).status === 'valid';
}
