import { convertUnit } from './units.ts';

/**
 * How far an analyte may move between two results of the same patient before the change itself
 * needs a look (a delta check): it catches a mislabelled specimen or a failing instrument that a
 * reference range alone would miss. A change beyond `absolute` or `percent` exceeds the check.
 */
export interface DeltaThreshold {
  /** LOINC code of the analyte. */
  code: string;
  /** Largest change allowed, in `unit`. */
  absolute?: number;
  /** Largest change allowed, in percent of the previous value. */
  percent?: number;
  /** UCUM unit the limit is written in; both results are converted to it. */
  unit: string;
  /** Only a previous result this recent is compared; an older one is too far apart to mean much. */
  withinHours?: number;
}

/**
 * Delta limits in the style of published laboratory delta-check tables (e.g. the limits surveyed by
 * CAP Q-Probes and in Kim et al., Clin Chem 1990): each tenant edits its own copy.
 */
export const DEFAULT_DELTA_THRESHOLDS: DeltaThreshold[] = [
  { code: '2823-3', absolute: 1.0, unit: 'mmol/L', withinHours: 72 }, // Potassium
  { code: '2951-2', absolute: 8, unit: 'mmol/L', withinHours: 72 }, // Sodium
  { code: '2345-7', percent: 50, unit: 'mg/dL', withinHours: 72 }, // Glucose
  { code: '718-7', absolute: 2.0, unit: 'g/dL', withinHours: 72 }, // Hemoglobin
  { code: '2160-0', percent: 50, unit: 'mg/dL', withinHours: 72 }, // Creatinine
  { code: '777-3', percent: 50, unit: '10*3/uL', withinHours: 72 }, // Platelets
];

export const DELTA_TREND = { up: 'up', down: 'down', same: 'same' } as const;
export type DeltaTrend = (typeof DELTA_TREND)[keyof typeof DELTA_TREND];

export interface DeltaResult {
  /** Direction of the change; null when there is nothing to compare with. */
  trend: DeltaTrend | null;
  /** Current minus previous, in the threshold's unit (or the current result's unit without one). */
  delta: number | null;
  /** The change in percent of the previous value; null when the previous value is 0. */
  percent: number | null;
  exceeded: boolean;
  /** Why the check needs a look, in words a reviewer reads; null when it does not. */
  reason: string | null;
  /** False when there is no previous result or the two units cannot be compared. */
  comparable: boolean;
}

export interface DeltaValue {
  value: number;
  unit: string | null;
  /** ISO 8601 time the specimen was taken. */
  at: string;
}

/**
 * Compares a result with the patient's previous result of the same analyte. Both are converted to
 * the threshold's unit with UCUM (passing a molecular weight for mmol/L <-> mg/dL and a charge for
 * mEq/L); without a threshold the previous value is converted to the current one's unit and only the
 * trend is reported. A previous result older than `withinHours` still gives a trend but never
 * exceeds, and a limit is exceeded only by a change beyond it, as with critical limits.
 *
 * @example
 * deltaCheck(
 *   { value: 5.8, unit: 'mmol/L', at: '2026-11-21T07:10:00Z' },
 *   { value: 4.2, unit: 'mmol/L', at: '2026-11-20T06:55:00Z' },
 *   DEFAULT_DELTA_THRESHOLDS.find((t) => t.code === '2823-3'),
 * )
 * // { trend: 'up', delta: 1.6, percent: 38.0952, exceeded: true,
 * //   reason: 'changed by +1.6 mmol/L since 2026-11-20 (delta limit 1.0 mmol/L)', comparable: true }
 */
export function deltaCheck(
  current: DeltaValue,
  previous: DeltaValue | null,
  threshold: DeltaThreshold | undefined,
  molecularWeight?: number,
  charge?: number,
): DeltaResult {
  if (previous === null)
    return { trend: null, delta: null, percent: null, exceeded: false, reason: null, comparable: false };
  if (!Number.isFinite(current.value) || !Number.isFinite(previous.value))
    return {
      trend: null,
      delta: null,
      percent: null,
      exceeded: false,
      reason: 'values could not be compared: one of them is not a finite number',
      comparable: false,
    };

  const unit = threshold ? threshold.unit : (current.unit ?? '');
  const now = threshold
    ? convertUnit(current.value, current.unit, unit, molecularWeight, charge)
    : current.value;
  const before = convertUnit(previous.value, previous.unit, unit, molecularWeight, charge);
  if (now === null || before === null) {
    const units = `the current result is in ${current.unit || '(no unit)'}, the previous one in ${previous.unit || '(no unit)'}`;
    return {
      trend: null,
      delta: null,
      percent: null,
      exceeded: false,
      reason: `units could not be compared: ${units}${threshold ? `, the delta limit in ${threshold.unit}` : ''}`,
      comparable: false,
    };
  }

  // Six significant digits: enough for any lab value, and it hides float noise such as 5.8 - 4.2.
  const delta = significant(now - before);
  const percent = before === 0 ? null : significant(((now - before) / Math.abs(before)) * 100);
  const trend = delta > 0 ? DELTA_TREND.up : delta < 0 ? DELTA_TREND.down : DELTA_TREND.same;
  const result: DeltaResult = { trend, delta, percent, exceeded: false, reason: null, comparable: true };
  if (!threshold || !withinWindow(current.at, previous.at, threshold.withinHours)) return result;

  const deltaText = `${delta > 0 ? '+' : ''}${formatValue(delta)}`;
  // The date as the sender wrote it: converting to UTC could move it to the day before.
  const since = /^\d{4}-\d{2}-\d{2}/.exec(previous.at)?.[0] ?? previous.at;
  const unitText = unit ? ` ${unit}` : '';
  if (threshold.absolute !== undefined && Math.abs(delta) > threshold.absolute) {
    const limit = withDecimalsOf(threshold.absolute, deltaText);
    result.exceeded = true;
    result.reason = `changed by ${deltaText}${unitText} since ${since} (delta limit ${limit}${unitText})`;
  } else if (
    threshold.percent !== undefined &&
    delta !== 0 &&
    (percent === null || Math.abs(percent) > threshold.percent)
  ) {
    // From 0, any change is an unbounded percentage, so it exceeds whatever the limit is.
    const change =
      percent === null
        ? `${deltaText}${unitText} from 0`
        : `${percent > 0 ? '+' : ''}${formatValue(percent, 3)}% (${deltaText}${unitText})`;
    result.exceeded = true;
    result.reason = `changed by ${change} since ${since} (delta limit ${threshold.percent}%)`;
  }
  return result;
}

/**
 * True when the two results are close enough in time; a time that cannot be read is taken as close,
 * because missing a delta failure costs more than looking at one change too many.
 */
function withinWindow(currentAt: string, previousAt: string, withinHours: number | undefined): boolean {
  if (withinHours === undefined) return true;
  const hours = Math.abs(Date.parse(currentAt) - Date.parse(previousAt)) / 3_600_000;
  return Number.isNaN(hours) || hours <= withinHours;
}

function significant(x: number, digits = 6): number {
  // `+ 0` turns -0 into 0, so an unchanged value reads as "same", not a negative zero.
  return Number(x.toPrecision(digits)) + 0;
}

/** A value for a sentence: four significant digits are what a reviewer compares by eye. */
function formatValue(x: number, digits = 4): string {
  return String(significant(x, digits));
}

/** Writes a limit with as many decimals as the change it is compared with: 1.6 against 1.0, not 1. */
function withDecimalsOf(limit: number, deltaText: string): string {
  const decimals = Math.max(decimalsOf(String(limit)), decimalsOf(deltaText));
  return limit.toFixed(decimals);
}

function decimalsOf(text: string): number {
  const dot = text.indexOf('.');
  return dot === -1 ? 0 : text.length - dot - 1;
}
