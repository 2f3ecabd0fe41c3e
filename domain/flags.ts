import type { CriticalLimit } from './critical-values.ts';
import {
  INTERPRETATION,
  OBSERVATION_VALUE_TYPE,
  type Interpretation,
  type ObservationResult,
  type ReferenceRange,
} from './model.ts';
import { convertUnit } from './units.ts';

/**
 * Reads a reference range as labs write it: `3.5-5.1`, `3.5 - 5.1`, `<200`, `>=60`, `-2.0-2.0`.
 * Anything else (`negative`, `see note`) is kept as text with no numeric bounds.
 *
 * @example parseReferenceRange('3.5-5.1') // { low: 3.5, high: 5.1, text: '3.5-5.1' }
 */
export function parseReferenceRange(text: string): ReferenceRange {
  const t = text.trim();
  const num = String.raw`[+-]?(?:\d+\.?\d*|\.\d+)`;
  const between = new RegExp(`^(${num})\\s*(?:-|–|to)\\s*(${num})$`).exec(t);
  if (between) return { low: Number(between[1]), high: Number(between[2]), text: t };
  const upper = new RegExp(`^(<=?)\\s*(${num})$`).exec(t);
  if (upper) return { low: null, high: Number(upper[2]), text: t };
  const lower = new RegExp(`^(>=?)\\s*(${num})$`).exec(t);
  if (lower) return { low: Number(lower[2]), high: null, text: t };
  return { low: null, high: null, text: t || null };
}

/**
 * Whether a code is a LOINC code by its form and its check digit (LOINC's Mod 10 algorithm, LOINC
 * Users' Guide appendix: odd positions from the right read as a number and doubled, even positions
 * prefixed, digits summed, the check digit brings the sum to a multiple of ten).
 *
 * @example isLoincCode('2823-3') // true
 * @example isLoincCode('2823-4') // false: a local code that only looks like one
 */
export function isLoincCode(code: string): boolean {
  const m = /^(\d{1,7})-(\d)$/.exec(code);
  if (!m) return false;
  const fromRight = [...m[1]!].reverse();
  const odd = fromRight.filter((_, i) => i % 2 === 0).join('');
  const even = fromRight.filter((_, i) => i % 2 === 1).join('');
  const digits = `${even}${String(Number(odd) * 2)}`;
  const sum = [...digits].reduce((n, d) => n + Number(d), 0);
  return (10 - (sum % 10)) % 10 === Number(m[2]);
}

const LOINC_SYSTEMS = new Set(['http://loinc.org', 'LN', 'LNC', 'LOINC', 'urn:oid:2.16.840.1.113883.6.1']);

/**
 * Whether a result's code is LOINC: named so by its system, or sent with no system and a valid
 * LOINC check digit (a CSV without test_system).
 *
 * @example isLoincCoding({ system: null, code: '2823-3', display: null }) // true
 */
export function isLoincCoding(code: { system: string | null; code: string }): boolean {
  return code.system ? LOINC_SYSTEMS.has(code.system) : isLoincCode(code.code);
}

/** HL7 table 0078 / v3 ObservationInterpretation codes that mean "critical" whatever the table says. */
const CRITICAL_SOURCE_FLAGS = new Set(['HH', 'LL', 'AA']);

export interface ObservationFlag {
  interpretation: Interpretation | null;
  /** True when the value is critical; null when it could not be decided (see `reasons`). */
  critical: boolean | null;
  /** Why the flag is what it is, in words a reviewer reads, e.g. "above critical high 6.2 mmol/L". */
  reasons: string[];
  /** True when a person must look at the value before it is trusted (e.g. a unit we cannot convert). */
  needsReview: boolean;
}

/**
 * Flags one result: the reference range (the message's own, else `defaultRange`), the sender's
 * abnormal flags, and the critical table with units converted by UCUM. Critical flags from the
 * sender (HH, LL, AA) are critical whatever the table says; a numeric result whose unit cannot be
 * converted to the table's unit, or a text value for a test the table has limits for, needs review
 * and is never silently passed. A code without a code system is read as LOINC when its check digit
 * says so.
 *
 * @example
 * flagObservation(potassium(6.8, 'mmol/L'), DEFAULT_CRITICAL_TABLE)
 * // { interpretation: 'HH', critical: true, reasons: ['above critical high 6.2 mmol/L'], needsReview: false }
 */
export function flagObservation(
  obs: ObservationResult,
  criticalTable: readonly CriticalLimit[],
  defaultRange: ReferenceRange | null = null,
): ObservationFlag {
  const reasons: string[] = [];
  const sourceCritical = obs.sourceFlags.find((f) => CRITICAL_SOURCE_FLAGS.has(f));
  let critical: boolean | null = sourceCritical ? true : false;
  let needsReview = false;
  let criticalDirection: 'low' | 'high' | null =
    sourceCritical === 'LL' ? 'low' : sourceCritical === 'HH' ? 'high' : null;
  if (sourceCritical) reasons.push(`the sender flagged it ${sourceCritical}`);

  let rangeDirection: 'low' | 'high' | 'normal' | null = null;
  // A bounded value sent as text (HL7 ST ">10", FHIR valueString "<0.5") is read as its number.
  const bounded =
    obs.valueType !== OBSERVATION_VALUE_TYPE.quantity
      ? /^\s*(<=|>=|<|>)?\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*$/.exec(obs.textValue ?? '')
      : null;
  const value =
    obs.valueType === OBSERVATION_VALUE_TYPE.quantity
      ? obs.numericValue
      : bounded
        ? Number(bounded[2])
        : null;
  const comparator =
    obs.valueType === OBSERVATION_VALUE_TYPE.quantity ? obs.comparator : (bounded?.[1] ?? null);
  const range =
    obs.referenceRange && (obs.referenceRange.low !== null || obs.referenceRange.high !== null)
      ? obs.referenceRange
      : defaultRange;
  if (value !== null && range) {
    if (range.low !== null && (value < range.low || (value === range.low && comparator === '<')))
      rangeDirection = 'low';
    else if (range.high !== null && (value > range.high || (value === range.high && comparator === '>')))
      rangeDirection = 'high';
    else rangeDirection = 'normal';
    if (rangeDirection !== 'normal')
      reasons.push(
        `${rangeDirection === 'low' ? 'below' : 'above'} the reference range ${range.text ?? `${range.low ?? ''}-${range.high ?? ''}`}`,
      );
  }

  // A code sent without its system (a CSV without test_system) is read as LOINC when its check
  // digit says so: a critical potassium must not pass unchecked for want of a column.
  const unnamedLoinc = !obs.code.system && isLoincCode(obs.code.code);
  const limit = isLoincCoding(obs.code) ? criticalTable.find((l) => l.loinc === obs.code.code) : undefined;
  if (limit && unnamedLoinc)
    reasons.push(`code ${obs.code.code} came without a code system and is read as LOINC (${limit.name})`);
  if (limit && value === null && !sourceCritical && (obs.textValue ?? '').trim() !== '') {
    // A text value where the table has numeric limits (e.g. "hemolysed", "see note"): a person looks.
    needsReview = true;
    critical = null;
    reasons.push(
      `"${(obs.textValue ?? '').slice(0, 40)}" is not a number: the critical limits of ${limit.name} cannot be checked`,
    );
  }
  if (limit && value !== null) {
    const converted = convertUnit(value, obs.unit, limit.unit, limit.molecularWeight, limit.charge);
    if (converted === null) {
      needsReview = true;
      if (!sourceCritical) critical = null;
      reasons.push(
        `unit ${obs.unit ?? '(none)'} cannot be converted to ${limit.unit} to check the critical limits of ${limit.name}`,
      );
    } else if (
      limit.low !== null &&
      // ">2" says the value is above 2: it is never critically low on that account.
      comparator !== '>' &&
      comparator !== '>=' &&
      (converted < limit.low || (converted === limit.low && comparator === '<'))
    ) {
      critical = true;
      criticalDirection = 'low';
      reasons.push(`below critical low ${limit.low} ${limit.unit}`);
    } else if (
      limit.high !== null &&
      comparator !== '<' &&
      comparator !== '<=' &&
      (converted > limit.high || (converted === limit.high && comparator === '>'))
    ) {
      critical = true;
      criticalDirection = 'high';
      reasons.push(`above critical high ${limit.high} ${limit.unit}`);
    }
  }

  return {
    interpretation: interpretationOf(critical === true, criticalDirection, rangeDirection, obs.sourceFlags),
    critical,
    reasons,
    needsReview,
  };
}

function interpretationOf(
  critical: boolean,
  criticalDirection: 'low' | 'high' | null,
  rangeDirection: 'low' | 'high' | 'normal' | null,
  sourceFlags: string[],
): Interpretation | null {
  if (critical) {
    const direction =
      criticalDirection ?? (rangeDirection === 'low' || rangeDirection === 'high' ? rangeDirection : null);
    if (direction === 'low') return INTERPRETATION.criticalLow;
    if (direction === 'high') return INTERPRETATION.criticalHigh;
    return INTERPRETATION.criticalAbnormal;
  }
  if (rangeDirection === 'low') return INTERPRETATION.low;
  if (rangeDirection === 'high') return INTERPRETATION.high;
  if (rangeDirection === 'normal') return INTERPRETATION.normal;
  // No numeric range to judge by: trust the sender's own flag when it is one we know.
  const known: Record<string, Interpretation> = { N: 'N', L: 'L', H: 'H', A: 'A' };
  for (const f of sourceFlags) if (known[f]) return known[f]!;
  return null;
}
