import { describe, expect, test } from 'vitest';
import { DEFAULT_CRITICAL_TABLE } from '../../domain/critical-values.ts';
import {
  DEFAULT_DELTA_THRESHOLDS,
  deltaCheck,
  type DeltaResult,
  type DeltaThreshold,
  type DeltaValue,
} from '../../domain/delta-check.ts';

const threshold = (code: string): DeltaThreshold => {
  const found = DEFAULT_DELTA_THRESHOLDS.find((t) => t.code === code);
  if (!found) throw new Error(`no default delta threshold for ${code}`);
  return found;
};
const limit = (code: string) => DEFAULT_CRITICAL_TABLE.find((l) => l.loinc === code)!;

const POTASSIUM = '2823-3';
const SODIUM = '2951-2';
const GLUCOSE = '2345-7';
const HEMOGLOBIN = '718-7';
const CREATININE = '2160-0';
const PLATELETS = '777-3';

const PREVIOUS_AT = '2026-11-20T06:55:00-05:00';
const NEXT_MORNING = '2026-11-21T07:10:00-05:00';

const at = (value: number, unit: string | null, when: string): DeltaValue => ({ value, unit, at: when });
const now = (value: number, unit: string | null) => at(value, unit, NEXT_MORNING);
const before = (value: number, unit: string | null) => at(value, unit, PREVIOUS_AT);

describe('DEFAULT_DELTA_THRESHOLDS', () => {
  test.each([POTASSIUM, SODIUM, GLUCOSE, HEMOGLOBIN, CREATININE, PLATELETS])(
    '%s has one limit, a unit and a window',
    (code) => {
      const t = threshold(code);
      expect((t.absolute === undefined) !== (t.percent === undefined)).toBe(true);
      expect(t.unit).not.toBe('');
      expect(t.withinHours).toBeGreaterThan(0);
    },
  );
});

describe('deltaCheck', () => {
  test.each<
    [string, DeltaValue, DeltaValue, string, number | undefined, number | undefined, Partial<DeltaResult>]
  >([
    [
      'potassium up by 1.6 mmol/L',
      now(5.8, 'mmol/L'),
      before(4.2, 'mmol/L'),
      POTASSIUM,
      undefined,
      undefined,
      {
        trend: 'up',
        delta: 1.6,
        percent: 38.0952,
        exceeded: true,
        reason: 'changed by +1.6 mmol/L since 2026-11-20 (delta limit 1.0 mmol/L)',
      },
    ],
    [
      'potassium down by 1.2 mmol/L',
      now(3.0, 'mmol/L'),
      before(4.2, 'mmol/L'),
      POTASSIUM,
      undefined,
      undefined,
      {
        trend: 'down',
        delta: -1.2,
        exceeded: true,
        reason: 'changed by -1.2 mmol/L since 2026-11-20 (delta limit 1.0 mmol/L)',
      },
    ],
    [
      'potassium up by exactly the limit (4.4 - 3.4 is 1.0000000000000004 in floating point)',
      now(4.4, 'mmol/L'),
      before(3.4, 'mmol/L'),
      POTASSIUM,
      undefined,
      undefined,
      { trend: 'up', delta: 1, exceeded: false, reason: null },
    ],
    [
      'potassium sent in mEq/L before, converted with its charge',
      now(5.8, 'mmol/L'),
      before(4.2, 'mEq/L'),
      POTASSIUM,
      limit(POTASSIUM).molecularWeight,
      limit(POTASSIUM).charge,
      { trend: 'up', delta: 1.6, exceeded: true },
    ],
    [
      'sodium down by 9 mmol/L',
      now(131, 'mmol/L'),
      before(140, 'mmol/L'),
      SODIUM,
      undefined,
      undefined,
      {
        trend: 'down',
        delta: -9,
        exceeded: true,
        reason: 'changed by -9 mmol/L since 2026-11-20 (delta limit 8 mmol/L)',
      },
    ],
    [
      'sodium up by 5 mmol/L',
      now(145, 'mmol/L'),
      before(140, 'mmol/L'),
      SODIUM,
      undefined,
      undefined,
      { trend: 'up', delta: 5, exceeded: false, reason: null },
    ],
    [
      'glucose from 5.5 mmol/L to 180 mg/dL',
      now(180, 'mg/dL'),
      before(5.5, 'mmol/L'),
      GLUCOSE,
      limit(GLUCOSE).molecularWeight,
      undefined,
      {
        trend: 'up',
        delta: 80.9142,
        percent: 81.6607,
        exceeded: true,
        reason: 'changed by +81.7% (+80.91 mg/dL) since 2026-11-20 (delta limit 50%)',
      },
    ],
    [
      'glucose up by 30%',
      now(130, 'mg/dL'),
      before(100, 'mg/dL'),
      GLUCOSE,
      undefined,
      undefined,
      { trend: 'up', delta: 30, percent: 30, exceeded: false, reason: null },
    ],
    [
      'hemoglobin from 135 g/L to 11.0 g/dL',
      now(11.0, 'g/dL'),
      before(135, 'g/L'),
      HEMOGLOBIN,
      undefined,
      undefined,
      {
        trend: 'down',
        delta: -2.5,
        exceeded: true,
        reason: 'changed by -2.5 g/dL since 2026-11-20 (delta limit 2.0 g/dL)',
      },
    ],
    [
      'creatinine from 88 umol/L to 1.8 mg/dL',
      now(1.8, 'mg/dL'),
      before(88, 'umol/L'),
      CREATININE,
      113.12,
      undefined,
      {
        trend: 'up',
        delta: 0.804544,
        exceeded: true,
        reason: 'changed by +80.8% (+0.8045 mg/dL) since 2026-11-20 (delta limit 50%)',
      },
    ],
    [
      'platelets from 250 10*9/L to 110 10*3/uL',
      now(110, '10*3/uL'),
      before(250, '10*9/L'),
      PLATELETS,
      undefined,
      undefined,
      {
        trend: 'down',
        delta: -140,
        percent: -56,
        exceeded: true,
        reason: 'changed by -56% (-140 10*3/uL) since 2026-11-20 (delta limit 50%)',
      },
    ],
    [
      'the same hemoglobin after a round trip through g/L',
      now(13.2, 'g/dL'),
      before(132.0000000001, 'g/L'),
      HEMOGLOBIN,
      undefined,
      undefined,
      { trend: 'same', delta: 0, percent: 0, exceeded: false },
    ],
  ])('%s', (_what, current, previous, code, molecularWeight, charge, expected) => {
    const result = deltaCheck(current, previous, threshold(code), molecularWeight, charge);
    expect(result).toMatchObject({ comparable: true, ...expected });
  });

  test.each<[string, DeltaValue, DeltaValue, DeltaThreshold | undefined, number | undefined, RegExp]>([
    [
      'potassium in mEq/L without its charge',
      now(5.8, 'mmol/L'),
      before(4.2, 'mEq/L'),
      threshold(POTASSIUM),
      undefined,
      /the previous one in mEq\/L, the delta limit in mmol\/L/,
    ],
    [
      'glucose in mmol/L without a molecular weight',
      now(180, 'mg/dL'),
      before(5.5, 'mmol/L'),
      threshold(GLUCOSE),
      undefined,
      /^units could not be compared: the current result is in mg\/dL, the previous one in mmol\/L/,
    ],
    [
      'a current result without a unit',
      now(5.8, null),
      before(4.2, 'mmol/L'),
      threshold(POTASSIUM),
      undefined,
      /the current result is in \(no unit\)/,
    ],
    [
      'a unit UCUM does not know, with no threshold',
      now(5.8, 'mmol/L'),
      before(4.2, 'mmmol/L'),
      undefined,
      undefined,
      /^units could not be compared: the current result is in mmol\/L, the previous one in mmmol\/L$/,
    ],
    [
      'a not-a-number value',
      now(Number.NaN, 'mmol/L'),
      before(4.2, 'mmol/L'),
      threshold(POTASSIUM),
      undefined,
      /not a finite number/,
    ],
  ])('cannot compare %s', (_what, current, previous, t, molecularWeight, reason) => {
    expect(deltaCheck(current, previous, t, molecularWeight)).toEqual({
      trend: null,
      delta: null,
      percent: null,
      exceeded: false,
      reason: expect.stringMatching(reason),
      comparable: false,
    });
  });

  test('has nothing to say without a previous result', () => {
    expect(deltaCheck(now(5.8, 'mmol/L'), null, threshold(POTASSIUM))).toEqual({
      trend: null,
      delta: null,
      percent: null,
      exceeded: false,
      reason: null,
      comparable: false,
    });
  });

  test.each<[string, string, boolean]>([
    ['24 hours', '2026-11-20T07:10:00-05:00', true],
    ['exactly 72 hours', '2026-11-18T07:10:00-05:00', true],
    ['72 hours and a minute', '2026-11-18T07:09:00-05:00', false],
    ['four days', '2026-11-17T07:10:00-05:00', false],
    ['an unreadable time (checked rather than missed)', 'yesterday', true],
  ])('a previous potassium %s earlier exceeds: %s', (_what, previousAt, exceeded) => {
    const result = deltaCheck(now(5.8, 'mmol/L'), at(4.2, 'mmol/L', previousAt), threshold(POTASSIUM));
    // Outside the window the trend is still worth showing.
    expect(result).toMatchObject({ trend: 'up', delta: 1.6, comparable: true, exceeded });
    expect(result.reason === null).toBe(!exceeded);
  });

  test('compares times across time zones', () => {
    const result = deltaCheck(
      at(5.8, 'mmol/L', '2026-11-21T02:00:00Z'),
      at(4.2, 'mmol/L', '2026-11-17T23:00:00-05:00'), // 2026-11-18T04:00Z: 70 hours earlier
      threshold(POTASSIUM),
    );
    expect(result.exceeded).toBe(true);
    // The date is the one the sender wrote, not the UTC one.
    expect(result.reason).toContain('since 2026-11-17');
  });

  test('without a threshold, reports the trend in the current unit and never exceeds', () => {
    expect(deltaCheck(now(180, 'mg/dL'), before(5.5, 'mmol/L'), undefined, 180.156)).toEqual({
      trend: 'up',
      delta: 80.9142,
      percent: 81.6607,
      exceeded: false,
      reason: null,
      comparable: true,
    });
  });

  test('compares two results without a unit when there is no threshold', () => {
    expect(deltaCheck(now(2.4, null), before(1.1, null), undefined)).toMatchObject({
      trend: 'up',
      delta: 1.3,
      comparable: true,
    });
  });

  test('a rise from 0 exceeds a percent limit', () => {
    const troponin: DeltaThreshold = { code: '89579-7', percent: 50, unit: 'ng/L', withinHours: 48 };
    expect(deltaCheck(now(52, 'ng/L'), before(0, 'ng/L'), troponin)).toEqual({
      trend: 'up',
      delta: 52,
      percent: null,
      exceeded: true,
      reason: 'changed by +52 ng/L from 0 since 2026-11-20 (delta limit 50%)',
      comparable: true,
    });
    expect(deltaCheck(now(0, 'ng/L'), before(0, 'ng/L'), troponin)).toMatchObject({
      trend: 'same',
      exceeded: false,
    });
  });

  test('a threshold with both limits is exceeded by either', () => {
    const both: DeltaThreshold = { code: '2160-0', absolute: 0.5, percent: 50, unit: 'mg/dL' };
    expect(deltaCheck(now(3.1, 'mg/dL'), before(2.5, 'mg/dL'), both).reason).toBe(
      'changed by +0.6 mg/dL since 2026-11-20 (delta limit 0.5 mg/dL)',
    );
    expect(deltaCheck(now(0.9, 'mg/dL'), before(0.5, 'mg/dL'), both).reason).toBe(
      'changed by +80% (+0.4 mg/dL) since 2026-11-20 (delta limit 50%)',
    );
    expect(deltaCheck(now(0.6, 'mg/dL'), before(0.5, 'mg/dL'), both).exceeded).toBe(false);
  });

  test('a threshold without limits never exceeds', () => {
    const none: DeltaThreshold = { code: '2823-3', unit: 'mmol/L' };
    expect(deltaCheck(now(9.8, 'mmol/L'), before(4.2, 'mmol/L'), none)).toMatchObject({
      exceeded: false,
      trend: 'up',
    });
  });
});
