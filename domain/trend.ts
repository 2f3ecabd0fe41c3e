/**
 * A patient's values of one analyte over time, each compared with the one before (seed 000 "Trends
 * and comparisons"): the difference, its direction, and the value as the lab wrote it.
 */

export interface TrendPoint {
  /** When the specimen was taken (or the report received, when the lab gave no time). */
  at: string;
  value: number;
  /** The flag LabRelay gave the value (H, L, HH, LL, N…), null when not yet flagged. */
  interpretation: string | null;
}

export type TrendDirection = 'up' | 'down' | 'same';

export interface TrendComparison<P extends TrendPoint = TrendPoint> {
  point: P;
  previous: P | null;
  /** value − previous value, rounded to the decimals the two values were written with. */
  difference: number | null;
  direction: TrendDirection | null;
}

/** Decimals a number is written with (5.6 → 1, 140 → 0), at most 6. */
export function decimalsOf(value: number): number {
  const text = String(value);
  const dot = text.indexOf('.');
  if (text.includes('e')) return 6;
  return dot < 0 ? 0 : Math.min(6, text.length - dot - 1);
}

/**
 * Each point (oldest first) with the previous one: difference and direction. Floating point noise
 * is removed by rounding to the values' own precision, so 5.6 after 4.1 is +1.5, not +1.4999….
 *
 * @example compareWithPrevious([{ at: '2026-01-01', value: 4.1, interpretation: 'N' }, { at: '2026-02-01', value: 5.6, interpretation: 'H' }])[1].difference // 1.5
 */
export function compareWithPrevious<P extends TrendPoint>(points: P[]): TrendComparison<P>[] {
  return points.map((point, i) => {
    const previous = i > 0 ? points[i - 1]! : null;
    if (!previous) return { point, previous, difference: null, direction: null };
    const decimals = Math.max(decimalsOf(point.value), decimalsOf(previous.value));
    const difference = Number((point.value - previous.value).toFixed(decimals));
    const direction: TrendDirection = difference > 0 ? 'up' : difference < 0 ? 'down' : 'same';
    return { point, previous, difference, direction };
  });
}

/** A difference as a reader expects it: `+1.5`, `−0.3`, `0` (the minus is U+2212 only when asked). */
export function formatDifference(difference: number, decimals: number): string {
  const fixed = Math.abs(difference).toFixed(decimals);
  if (difference > 0) return `+${fixed}`;
  if (difference < 0) return `-${fixed}`;
  return fixed;
}
