/**
 * Plain-language summaries for the e-mails patients receive about their results. The words are for
 * someone without medical training: no interpretation codes, no code systems, nothing the caller
 * did not pass in, and never more alarm than the lab's own flag carries.
 */

export interface PatientResultSummaryInput {
  /** The name the patient sees, e.g. "Potassium". */
  name: string;
  value: number | null;
  /** A text result ("No growth"), or the lab's own text of a number ("<0.01", "5.0"). */
  text: string | null;
  unit: string | null;
  /** HL7 v3 ObservationInterpretation code as flagged (N, L, H, LL, HH, A, AA), or null. */
  interpretation: string | null;
  low: number | null;
  high: number | null;
  /** The range as the lab wrote it, used when it is not two numbers ("<200", "negative"). */
  rangeText: string | null;
}

export const PATIENT_SUMMARY_KIND = {
  /** The results have been released to the patient's record. */
  available: 'available',
  /** A clinician has reviewed the results. */
  reviewed: 'reviewed',
  /** A clinician has reviewed them and written a note for the patient. */
  interpreted: 'interpreted',
} as const;
export type PatientSummaryKind = (typeof PATIENT_SUMMARY_KIND)[keyof typeof PATIENT_SUMMARY_KIND];

const CRITICAL = new Set(['HH', 'LL', 'AA']);

/** A number as the lab wrote it, possibly with a comparator; anything else in `text` is not the value. */
const NUMBER_TEXT = /^(?:<=|>=|<|>)?\s*[+-]?(?:\d+\.?\d*|\.\d+)$/;
const BETWEEN_TEXT = /^\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*(?:-|–|to)\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*$/;

/**
 * One result in a sentence: its value, where it stands against the usual range, and the range.
 * A critical flag says the care team has been told, because the patient may read this before
 * anyone calls them.
 *
 * @example
 * summariseResult({ name: 'Potassium', value: 6.8, text: null, unit: 'mmol/L', interpretation: 'H',
 *   low: 3.5, high: 5.1, rangeText: '3.5-5.1' })
 * // 'Potassium: 6.8 mmol/L — above the usual range (3.5–5.1 mmol/L).'
 */
export function summariseResult(r: PatientResultSummaryInput): string {
  const shown = valueOf(r);
  if (shown === null) return `${r.name}: no result was given.`;
  const range = rangeOf(r);
  const inRange = range ? ` (${range})` : '';
  const code = r.interpretation?.trim().toUpperCase() ?? null;
  const isText = r.value === null;

  if (code !== null && CRITICAL.has(code)) {
    const where = isText ? 'not the usual result' : `well outside the usual range${inRange}`;
    return `${r.name}: ${shown} — ${where}; your care team has been told.`;
  }
  switch (code) {
    case 'H':
      return `${r.name}: ${shown} — above the usual range${inRange}.`;
    case 'L':
      return `${r.name}: ${shown} — below the usual range${inRange}.`;
    case 'N':
      return isText
        ? `${r.name}: ${shown} — the usual result${range ? ` (usual: ${range})` : ''}.`
        : `${r.name}: ${shown} — within the usual range${inRange}.`;
    case 'A':
      return isText
        ? `${r.name}: ${shown} — not the usual result${range ? ` (usual: ${range})` : ''}.`
        : `${r.name}: ${shown} — outside the usual range${inRange}.`;
  }
  // No flag we know: give the range and let the reader and their care team judge.
  if (range) return `${r.name}: ${shown} — the usual range is ${range}.`;
  return `${r.name}: ${shown} — no usual range was given.`;
}

/**
 * The e-mail telling a patient about a report: a subject and a short plain-text body listing each
 * result in words, saying where to see them and whom to ask. `interpretation` is the clinician's note
 * for the `interpreted` kind and is quoted as written.
 *
 * @example
 * summariseReport({ title: 'Basic metabolic panel', results: [potassium] }, 'available')
 * // { subject: 'Your test results are available',
 * //   text: 'Hello,\n\nYour Basic metabolic panel results are now available in your patient record.\n\n...' }
 */
export function summariseReport(
  report: { title: string; results: PatientResultSummaryInput[] },
  kind: PatientSummaryKind,
  interpretation?: string | null,
): { subject: string; text: string } {
  const title = report.title.trim() || 'test';
  const note = kind === PATIENT_SUMMARY_KIND.interpreted ? (interpretation?.trim() ?? '') : '';
  // The subject names no test: it shows on lock screens and in shared inboxes, and "your HIV test
  // results" is already more than a passer-by should learn.
  const subject = {
    available: 'Your test results are available',
    reviewed: 'Your care team has reviewed your test results',
    interpreted: 'A note from your care team about your test results',
  }[kind];
  const opening = {
    available: `Your ${title} results are now available in your patient record.`,
    reviewed: `Your care team has reviewed your ${title} results. You can see them in your patient record.`,
    interpreted: note
      ? `Your care team has reviewed your ${title} results and written a note for you. You can see the results in your patient record.`
      : `Your care team has reviewed your ${title} results. You can see them in your patient record.`,
  }[kind];

  const paragraphs = ['Hello,', opening];
  if (note) paragraphs.push(`Note from your care team:\n${note}`);
  if (report.results.length > 0)
    paragraphs.push(
      ['A short summary of each result:', ...report.results.map((r) => `- ${summariseResult(r)}`)].join('\n'),
    );
  paragraphs.push('If you have questions about these results, please contact your care team.');
  return { subject, text: `${paragraphs.join('\n\n')}\n` };
}

function valueOf(r: PatientResultSummaryInput): string | null {
  const unit = r.unit?.trim() ? ` ${r.unit.trim()}` : '';
  if (r.value !== null) {
    // Prefer the lab's own writing of the number: it keeps "<0.01" and "5.0" as reported.
    const text = r.text?.trim() ?? '';
    return `${NUMBER_TEXT.test(text) ? text : String(r.value)}${unit}`;
  }
  const text = r.text?.trim();
  return text ? `“${text}”` : null;
}

function rangeOf(r: PatientResultSummaryInput): string | null {
  const unit = r.unit?.trim() ? ` ${r.unit.trim()}` : '';
  if (r.low !== null && r.high !== null) {
    // The lab's own digits when it wrote the same two bounds: "4.0–11.0", not "4–11".
    const written = BETWEEN_TEXT.exec(r.rangeText ?? '');
    const [low, high] =
      written && Number(written[1]) === r.low && Number(written[2]) === r.high
        ? [written[1], written[2]]
        : [String(r.low), String(r.high)];
    return `${low}–${high}${unit}`;
  }
  const text = r.rangeText?.trim();
  // A numeric range keeps its unit; a word such as "negative" has none.
  if (text) return /\d$/.test(text) ? `${text}${unit}` : text;
  if (r.high !== null) return `up to ${r.high}${unit}`;
  if (r.low !== null) return `at least ${r.low}${unit}`;
  return null;
}
