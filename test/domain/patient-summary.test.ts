import { describe, expect, test } from 'vitest';
import {
  summariseReport,
  summariseResult,
  type PatientResultSummaryInput,
} from '../../domain/patient-summary.ts';

function numeric(
  name: string,
  value: number,
  unit: string | null,
  interpretation: string | null,
  low: number | null = null,
  high: number | null = null,
  more: Partial<PatientResultSummaryInput> = {},
): PatientResultSummaryInput {
  return {
    name,
    value,
    text: String(value),
    unit,
    interpretation,
    low,
    high,
    rangeText: low !== null && high !== null ? `${low}-${high}` : null,
    ...more,
  };
}

function textual(
  name: string,
  text: string | null,
  interpretation: string | null,
  rangeText: string | null = null,
): PatientResultSummaryInput {
  return { name, value: null, text, unit: null, interpretation, low: null, high: null, rangeText };
}

const potassium = (value: number, interpretation: string | null) =>
  numeric('Potassium', value, 'mmol/L', interpretation, 3.5, 5.1);

describe('summariseResult', () => {
  test.each<[string, PatientResultSummaryInput, string]>([
    ['high', potassium(5.6, 'H'), 'Potassium: 5.6 mmol/L — above the usual range (3.5–5.1 mmol/L).'],
    ['low', potassium(3.1, 'L'), 'Potassium: 3.1 mmol/L — below the usual range (3.5–5.1 mmol/L).'],
    ['normal', potassium(4.1, 'N'), 'Potassium: 4.1 mmol/L — within the usual range (3.5–5.1 mmol/L).'],
    [
      'critical high',
      potassium(6.8, 'HH'),
      'Potassium: 6.8 mmol/L — well outside the usual range (3.5–5.1 mmol/L); your care team has been told.',
    ],
    [
      'critical low',
      numeric('Glucose', 35, 'mg/dL', 'LL', 70, 99),
      'Glucose: 35 mg/dL — well outside the usual range (70–99 mg/dL); your care team has been told.',
    ],
    [
      'critical without a direction',
      numeric('Platelets', 15, '10*3/uL', 'AA', 150, 400),
      'Platelets: 15 10*3/uL — well outside the usual range (150–400 10*3/uL); your care team has been told.',
    ],
    [
      'abnormal without a direction',
      numeric('Arterial pH', 7.31, null, 'A', 7.35, 7.45),
      'Arterial pH: 7.31 — outside the usual range (7.35–7.45).',
    ],
    [
      'a flag in lower case',
      potassium(5.6, 'h'),
      'Potassium: 5.6 mmol/L — above the usual range (3.5–5.1 mmol/L).',
    ],
    [
      'no flag but a range',
      potassium(4.1, null),
      'Potassium: 4.1 mmol/L — the usual range is 3.5–5.1 mmol/L.',
    ],
    [
      'a flag this summary does not know',
      potassium(4.1, 'S'),
      'Potassium: 4.1 mmol/L — the usual range is 3.5–5.1 mmol/L.',
    ],
    [
      'no flag and no range',
      numeric('Vitamin D', 32, 'ng/mL', null),
      'Vitamin D: 32 ng/mL — no usual range was given.',
    ],
    [
      'a flag but no range',
      numeric('Ferritin', 410, 'ng/mL', 'H'),
      'Ferritin: 410 ng/mL — above the usual range.',
    ],
    [
      'a critical flag but no range',
      numeric('Lactate', 5.2, 'mmol/L', 'HH'),
      'Lactate: 5.2 mmol/L — well outside the usual range; your care team has been told.',
    ],
    [
      'an upper limit only, as the lab wrote it',
      numeric('Cholesterol', 212, 'mg/dL', 'H', null, 200, { rangeText: '<200' }),
      'Cholesterol: 212 mg/dL — above the usual range (<200 mg/dL).',
    ],
    [
      'a lower limit only, without text',
      numeric('eGFR', 48, 'mL/min/{1.73_m2}', 'L', 60, null),
      'eGFR: 48 mL/min/{1.73_m2} — below the usual range (at least 60 mL/min/{1.73_m2}).',
    ],
    [
      'an upper limit only, without text',
      numeric('CRP', 3, 'mg/L', 'N', null, 5),
      'CRP: 3 mg/L — within the usual range (up to 5 mg/L).',
    ],
    [
      'a value the lab wrote with a comparator',
      numeric('Troponin I', 0.01, 'ng/mL', 'N', null, 0.04, { text: '<0.01', rangeText: '<=0.04' }),
      'Troponin I: <0.01 ng/mL — within the usual range (<=0.04 ng/mL).',
    ],
    [
      'a value the lab wrote with a trailing zero',
      numeric('Potassium', 5, 'mmol/L', 'N', 3.5, 5.1, { text: '5.0' }),
      'Potassium: 5.0 mmol/L — within the usual range (3.5–5.1 mmol/L).',
    ],
    [
      'a value whose text is not a number (the number is shown)',
      numeric('Potassium', 5.9, 'mmol/L', 'H', 3.5, 5.1, { text: 'hemolysed specimen' }),
      'Potassium: 5.9 mmol/L — above the usual range (3.5–5.1 mmol/L).',
    ],
    [
      'a range in the lab’s own digits',
      numeric('WBC', 12.1, '10*3/uL', 'H', 4.0, 11.0, { rangeText: '4.0 - 11.0' }),
      'WBC: 12.1 10*3/uL — above the usual range (4.0–11.0 10*3/uL).',
    ],
    [
      'a range whose text disagrees with its bounds (the bounds win)',
      numeric('WBC', 12.1, '10*3/uL', 'H', 4.0, 11.0, { rangeText: '4.5-10.5' }),
      'WBC: 12.1 10*3/uL — above the usual range (4–11 10*3/uL).',
    ],
    [
      'a negative value',
      numeric('Base excess', -6, 'mmol/L', 'L', -2, 2),
      'Base excess: -6 mmol/L — below the usual range (-2–2 mmol/L).',
    ],
    [
      'a text result that is the usual one',
      textual('Urine culture', 'No growth', 'N', 'No growth'),
      'Urine culture: “No growth” — the usual result (usual: No growth).',
    ],
    [
      'a text result that is not the usual one',
      textual('Hepatitis B surface antigen', 'Reactive', 'A', 'Non-reactive'),
      'Hepatitis B surface antigen: “Reactive” — not the usual result (usual: Non-reactive).',
    ],
    [
      'a critical text result',
      textual('Blood culture', 'Gram-positive cocci in clusters', 'AA'),
      'Blood culture: “Gram-positive cocci in clusters” — not the usual result; your care team has been told.',
    ],
    [
      'a text result with a word range and no flag',
      textual('Urine nitrite', 'Positive', null, 'negative'),
      'Urine nitrite: “Positive” — the usual range is negative.',
    ],
    [
      'a text result quoted as is',
      textual('Comment', '  Specimen received >4 h after collection.  ', null),
      'Comment: “Specimen received >4 h after collection.” — no usual range was given.',
    ],
    ['no value at all', textual('Potassium', null, null), 'Potassium: no result was given.'],
    ['an empty text value', textual('Potassium', '  ', 'N'), 'Potassium: no result was given.'],
  ])('%s', (_what, result, expected) => {
    expect(summariseResult(result)).toBe(expected);
  });
});

describe('summariseReport', () => {
  const bmp = {
    title: 'Basic metabolic panel',
    results: [potassium(6.8, 'HH'), numeric('Sodium', 139, 'mmol/L', 'N', 135, 145)],
  };

  test('tells the patient their results are available, each in words', () => {
    expect(summariseReport(bmp, 'available')).toEqual({
      subject: 'Your test results are available',
      text: [
        'Hello,',
        '',
        'Your Basic metabolic panel results are now available in your patient record.',
        '',
        'A short summary of each result:',
        '- Potassium: 6.8 mmol/L — well outside the usual range (3.5–5.1 mmol/L); your care team has been told.',
        '- Sodium: 139 mmol/L — within the usual range (135–145 mmol/L).',
        '',
        'If you have questions about these results, please contact your care team.',
        '',
      ].join('\n'),
    });
  });

  test('tells the patient their care team has reviewed the results', () => {
    const { subject, text } = summariseReport(bmp, 'reviewed');
    expect(subject).toBe('Your care team has reviewed your test results');
    expect(text).toContain(
      'Your care team has reviewed your Basic metabolic panel results. You can see them in your patient record.',
    );
    expect(text).toContain('- Sodium: 139 mmol/L — within the usual range (135–145 mmol/L).');
  });

  test('quotes the care team’s note as written', () => {
    const note = 'Your potassium is high. Please come in tomorrow for a repeat test.';
    const { subject, text } = summariseReport(bmp, 'interpreted', `  ${note}\n`);
    expect(subject).toBe('A note from your care team about your test results');
    expect(text).toContain('reviewed your Basic metabolic panel results and written a note for you.');
    expect(text).toContain(`Note from your care team:\n${note}\n\n`);
  });

  test.each<[string, string | null | undefined]>([
    ['no note', undefined],
    ['a null note', null],
    ['a blank note', '   '],
  ])('with %s, an interpreted e-mail does not promise one', (_what, note) => {
    const { text } = summariseReport(bmp, 'interpreted', note);
    expect(text).not.toMatch(/note/i);
    expect(text).toContain('Your care team has reviewed your Basic metabolic panel results.');
  });

  test('only an interpreted e-mail carries the note', () => {
    expect(summariseReport(bmp, 'available', 'Call us.').text).not.toContain('Call us.');
    expect(summariseReport(bmp, 'reviewed', 'Call us.').text).not.toContain('Call us.');
  });

  test('a report without results still says where to look and whom to ask', () => {
    const { text } = summariseReport({ title: 'Lipid panel', results: [] }, 'available');
    expect(text).toBe(
      'Hello,\n\nYour Lipid panel results are now available in your patient record.\n\n' +
        'If you have questions about these results, please contact your care team.\n',
    );
  });

  test('a report without a title is called a test', () => {
    expect(summariseReport({ title: ' ', results: [] }, 'reviewed').text).toContain(
      'reviewed your test results',
    );
  });

  test.each(['available', 'reviewed', 'interpreted'] as const)(
    'a %s e-mail has no codes or jargon and names no test in the subject',
    (kind) => {
      const hiv = {
        title: 'HIV 1 and 2 antibody',
        results: [
          textual('HIV 1 and 2 antibody', 'Non-reactive', 'N', 'Non-reactive'),
          potassium(2.4, 'LL'),
          potassium(3.1, 'L'),
          numeric('WBC', 12.1, '10*3/uL', 'H', 4.0, 11.0, { rangeText: '4.0-11.0' }),
          numeric('INR', 6.2, null, 'AA', 0.8, 1.2),
        ],
      };
      const { subject, text } = summariseReport(hiv, kind, 'All fine.');
      expect(subject).not.toMatch(/HIV/);
      for (const jargon of [
        /(?:^|[\s(—])(?:HH|LL|AA|H|L|N)(?=$|[\s).;,])/m,
        /\b\d{1,5}-\d\b/,
        /loinc/i,
        /interpretation/i,
      ])
        expect(text).not.toMatch(jargon);
      expect(text).toMatch(/please contact your care team\.\n$/);
    },
  );
});
