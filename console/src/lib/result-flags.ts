/**
 * How a value's flag is shown: a short mark seen beside the value, the words a screen reader says,
 * and the class that colours it. H/L and the critical flags look different and say different things.
 */
export interface FlagView {
  mark: string;
  words: string;
  tone: 'high' | 'low' | 'abnormal' | 'critical';
}

const FLAGS: Record<string, FlagView> = {
  H: { mark: 'H', words: 'high', tone: 'high' },
  L: { mark: 'L', words: 'low', tone: 'low' },
  A: { mark: 'A', words: 'abnormal', tone: 'abnormal' },
  HH: { mark: 'HH', words: 'critically high', tone: 'critical' },
  LL: { mark: 'LL', words: 'critically low', tone: 'critical' },
  AA: { mark: 'AA', words: 'critically abnormal', tone: 'critical' },
};

/** The flag of a value, or null when it is normal or not yet flagged. A critical value is critical whatever its flag. */
export function flagView(interpretation: string | null, critical: boolean | null): FlagView | null {
  const flag = interpretation ? FLAGS[interpretation] : undefined;
  if (critical && (!flag || flag.tone !== 'critical'))
    return {
      mark: flag ? `${flag.mark}!` : '!',
      words: `critical${flag ? `, ${flag.words}` : ''}`,
      tone: 'critical',
    };
  return flag ?? null;
}

/** A patient's name as a list shows it: "Doe, Jane". */
export function patientName(family: string | null, given: string[]): string {
  const givenText = given.join(' ');
  if (family && givenText) return `${family}, ${givenText}`;
  return family || givenText || '(no name)';
}
