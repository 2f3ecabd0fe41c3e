/**
 * The read-back that closes a critical-result call (CLSI GP47): the clinician who takes the call
 * repeats the value and the patient's identity, and the result counts as communicated only when both
 * match. Formatting may differ; the value and the patient may not.
 */

export interface ReadBackExpected {
  value: number | null;
  /** The result as text: a text result, or the lab's writing of a number ("<0.01", ">600"). */
  text: string | null;
  unit: string | null;
  /** Identifier values of the patient, e.g. the MRN. */
  patientIdentifiers: string[];
  /** YYYY-MM-DD; a partial date never matches. */
  birthDate: string | null;
  /** Not matched: a family name is shared by too many patients to confirm identity on its own. */
  familyName: string | null;
}

export interface ReadBackGiven {
  /** The value as the clinician read it back, e.g. "6.8", "6,8 mmol/L", "positive". */
  value: string;
  /** An identifier value or the birth date (YYYY-MM-DD), as read back. */
  patientIdentifier: string;
}

export type ReadBackMismatch = 'value' | 'patient';

export type ReadBackOutcome = { ok: true } | { ok: false; mismatches: ReadBackMismatch[]; message: string };

/** A number with an optional comparator and sign, a decimal point or comma, then whatever follows. */
const READ_NUMBER = /^(<=|>=|<|>)?\s*([+-]?)\s*(\d+(?:[.,]\d*)?|[.,]\d+)\s*(.*)$/;
const COMPARATOR = /^\s*(<=|>=|<|>)/;
const FULL_DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Checks a critical-result read-back. The value matches when it is the same number however it is
 * written ("6.80", "6,8", "6.8 mmol/L"; a different unit does not match) or, for a text result, the
 * same words in any case. The patient matches on any identifier (ignoring case, spaces and dashes) or
 * the full birth date. The message names what did not match but never the expected value or
 * identity, so a wrong read-back cannot be corrected by echoing the screen.
 *
 * @example
 * checkReadBack(
 *   { value: 6.8, text: '6.8', unit: 'mmol/L', patientIdentifiers: ['MRN-004512'], birthDate: '1968-03-14', familyName: 'Okafor' },
 *   { value: '6,80 mmol/l', patientIdentifier: 'mrn 004512' },
 * ) // { ok: true }
 */
export function checkReadBack(expected: ReadBackExpected, given: ReadBackGiven): ReadBackOutcome {
  const mismatches: ReadBackMismatch[] = [];
  if (!valueMatches(expected, given.value)) mismatches.push('value');
  if (!patientMatches(expected, given.patientIdentifier)) mismatches.push('patient');
  if (mismatches.length === 0) return { ok: true };
  const what = {
    value: 'The value read back does not match the result.',
    patient: 'The patient identifier read back does not match this patient’s identifiers or date of birth.',
  };
  const ask = { value: 'the value', patient: 'the patient identifier' };
  return {
    ok: false,
    mismatches,
    message: `${mismatches.map((m) => what[m]).join(' ')} Ask for ${mismatches.map((m) => ask[m]).join(' and ')} again.`,
  };
}

function valueMatches(expected: ReadBackExpected, given: string): boolean {
  if (expected.value !== null) {
    // A unicode minus is how a number often arrives when copied from a report.
    const read = READ_NUMBER.exec(given.trim().replace(/\u2212/g, '-'));
    if (!read) return false;
    const [, comparator = '', sign = '', digits = '', unit = ''] = read;
    const number = Number(`${sign}${digits.replace(',', '.')}`);
    if (!Number.isFinite(number) || !sameNumber(number, expected.value)) return false;
    // ">600" and "600" are different results: a value beyond the instrument's range is not 600.
    const expectedComparator = COMPARATOR.exec(expected.text ?? '')?.[1] ?? '';
    if (comparator !== expectedComparator) return false;
    return unit === '' || (expected.unit !== null && squeeze(unit) === squeeze(expected.unit));
  }
  if (expected.text !== null && expected.text.trim() !== '')
    return squeezeSpaces(given) === squeezeSpaces(expected.text);
  // Nothing to compare with: a read-back of nothing cannot be confirmed.
  return false;
}

function patientMatches(expected: ReadBackExpected, given: string): boolean {
  const read = given.trim();
  if (read === '') return false;
  if (expected.birthDate !== null && FULL_DATE.test(expected.birthDate) && read === expected.birthDate)
    return true;
  const id = identifierKey(read);
  return id !== '' && expected.patientIdentifiers.some((candidate) => identifierKey(candidate) === id);
}

/** Values parsed from decimal text can differ in the last bit; a read-back cannot. */
function sameNumber(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

function identifierKey(value: string): string {
  return value.toLowerCase().replace(/[\s\-\u2010-\u2015]/g, '');
}

function squeeze(value: string): string {
  return value.toLowerCase().replace(/\s+/g, '');
}

function squeezeSpaces(value: string): string {
  return value.trim().toLowerCase().replace(/\s+/g, ' ');
}
