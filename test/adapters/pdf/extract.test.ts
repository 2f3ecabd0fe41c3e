import { PDFDocument, StandardFonts } from 'pdf-lib';
import { describe, expect, test } from 'vitest';
import {
  extractPdfReport,
  findPatientHints,
  parseLabLine,
  PDF_TEXT_CODE_SYSTEM,
  type PdfExtraction,
} from '../../../adapters/pdf/extract.ts';

const LOINC = 'http://loinc.org';

/** A PDF with one text line per entry, one page per array; an empty array is a page without text. */
async function pdfOf(pages: string[][]): Promise<Uint8Array> {
  const doc = await PDFDocument.create();
  const font = await doc.embedFont(StandardFonts.Helvetica);
  for (const lines of pages) {
    const page = doc.addPage([612, 792]);
    lines.forEach((line, i) => page.drawText(line, { x: 50, y: 740 - i * 16, size: 10, font }));
  }
  return doc.save();
}

/**
 * A PDF written by hand, objects numbered from 1, with a correct cross-reference table: for what
 * pdf-lib cannot make (an encrypted file).
 */
function handMadePdf(objects: string[], trailer: string): Uint8Array {
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  out += offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('');
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R ${trailer} >>\nstartxref\n${xref}\n%%EOF\n`;
  return new TextEncoder().encode(out);
}

/** Standard security handler, revision 2, with owner and user keys no empty password opens. */
const ENCRYPTED_PDF = handMadePdf(
  [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>',
    `<< /Filter /Standard /V 1 /R 2 /Length 40 /O <${'A7'.repeat(32)}> /U <${'5C'.repeat(32)}> /P -4 >>`,
  ],
  '/Encrypt 4 0 R /ID [<0123456789ABCDEF0123456789ABCDEF> <0123456789ABCDEF0123456789ABCDEF>]',
);

/** A chemistry report as a hospital lab prints it. */
const CHEMISTRY = [
  'ACME Laboratories - Springfield General',
  'Patient: Doe, Jane    DOB: 01/15/1980    MRN: 12345',
  'Collected: 2026-11-22 07:00    Reported: 2026-11-22 08:25',
  'Test Result Flag Units Reference',
  'Potassium 6.8 mmol/L 3.5-5.1 HH',
  'Sodium 140 mmol/L',
  'Glucose: 95 mg/dL (70-99)',
  'Creatinine <0.3 mg/dL 0.5-1.1 L',
  'INR 3.2 H 0.8-1.2',
];

function seededBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

const UNREADABLE: Omit<PdfExtraction, 'problems' | 'pages'> = {
  status: 'unreadable',
  text: '',
  observations: [],
  confidence: 0,
  patientHints: { name: null, birthDate: null, identifier: null },
};

describe('extractPdfReport: readable reports', () => {
  test('reads a one-page chemistry report: results, patient hints, full confidence', async () => {
    const bytes = await pdfOf([CHEMISTRY]);
    const size = bytes.byteLength;
    const extraction = await extractPdfReport(bytes);

    expect(extraction.status).toBe('extracted');
    expect(extraction.pages).toBe(1);
    expect(extraction.problems).toEqual([]);
    expect(extraction.confidence).toBe(1);
    expect(extraction.patientHints).toEqual({
      name: 'Doe, Jane',
      birthDate: '1980-01-15',
      identifier: '12345',
    });
    expect(extraction.text).toContain('Potassium 6.8 mmol/L 3.5-5.1 HH');
    expect(extraction.observations.map((o) => [o.sequence, o.code.code, o.numericValue, o.unit])).toEqual([
      [1, '2823-3', 6.8, 'mmol/L'],
      [2, '2951-2', 140, 'mmol/L'],
      [3, '2345-7', 95, 'mg/dL'],
      [4, '2160-0', 0.3, 'mg/dL'],
      [5, '6301-6', 3.2, null],
    ]);
    expect(extraction.observations[0]).toEqual({
      sequence: 1,
      code: { system: LOINC, code: '2823-3', display: 'Potassium' },
      valueType: 'quantity',
      numericValue: 6.8,
      comparator: null,
      textValue: '6.8',
      unit: 'mmol/L',
      referenceRange: { low: 3.5, high: 5.1, text: '3.5-5.1' },
      sourceFlags: ['HH'],
      status: 'final',
      effectiveAt: null,
    });
    // The caller's bytes are still there to be stored (PDF.js takes over the buffer it is given).
    expect(bytes.byteLength).toBe(size);
    expect(bytes.subarray(0, 5)).toEqual(new TextEncoder().encode('%PDF-'));
  });

  test('reads two pages in order, their text separated', async () => {
    const extraction = await extractPdfReport(
      await pdfOf([
        ['Patient: Doe, Jane', 'DOB: 1980-01-15', 'MRN: A-12345', 'Hemoglobin 10.2 L g/dL 12.0-16.0'],
        ['Hematology (continued)', 'WBC 12.1 H 10^9/L 4.0-11.0', 'Platelets 150 x10^3/uL 150-400'],
      ]),
    );

    expect(extraction.status).toBe('extracted');
    expect(extraction.pages).toBe(2);
    expect(extraction.observations.map((o) => [o.sequence, o.code.code, o.sourceFlags])).toEqual([
      [1, '718-7', ['L']],
      [2, '6690-2', ['H']],
      [3, '777-3', []],
    ]);
    expect(extraction.text).toMatch(/Hemoglobin[^]*\n\nHematology \(continued\)/);
    expect(extraction.patientHints.identifier).toBe('A-12345');
  });

  test('lowers confidence by 0.1 for each patient hint missing', async () => {
    const none = await extractPdfReport(await pdfOf([['Potassium 4.1 mmol/L 3.5-5.1', 'Sodium 140 mmol/L']]));
    const nameOnly = await extractPdfReport(
      await pdfOf([['Patient Name: Jane Doe', 'Potassium 4.1 mmol/L 3.5-5.1', 'Sodium 140 mmol/L']]),
    );

    expect(none.status).toBe('extracted');
    expect(none.confidence).toBe(0.7);
    expect(nameOnly.confidence).toBe(0.8);
    expect(nameOnly.patientHints.name).toBe('Doe, Jane');
  });

  test('is partial when a line that looks like a result cannot be read, and lists it', async () => {
    const extraction = await extractPdfReport(
      await pdfOf([
        [
          'Patient: Doe, Jane',
          'DOB: 1980-01-15',
          'MRN: 12345',
          'Potassium 6.8 mmol/L 3.5-5.1 HH',
          'Troponin 0.02',
          'eGFR >60 mL/min/1.73m2',
          'Page 1 of 1',
        ],
      ]),
    );

    expect(extraction.status).toBe('partial');
    expect(extraction.problems).toEqual(['not read as a result: "Troponin 0.02"']);
    // Three result-looking lines, one fully read (eGFR is read, but not a known analyte).
    expect(extraction.confidence).toBe(0.33);
    expect(extraction.observations.map((o) => o.code)).toEqual([
      { system: LOINC, code: '2823-3', display: 'Potassium' },
      { system: PDF_TEXT_CODE_SYSTEM, code: 'egfr', display: 'eGFR' },
    ]);
  });

  test('is partial, with lower confidence, when a page has no text', async () => {
    const extraction = await extractPdfReport(
      await pdfOf([['Patient: Doe, Jane', 'DOB: 1980-01-15', 'MRN: 12345', 'Sodium 140 mmol/L'], []]),
    );

    expect(extraction.status).toBe('partial');
    expect(extraction.pages).toBe(2);
    expect(extraction.problems).toEqual(['page 2 has no text (a scanned image?)']);
    expect(extraction.confidence).toBe(0.5);
    expect(extraction.observations).toHaveLength(1);
  });

  test('reads only maxPages pages and says so', async () => {
    const extraction = await extractPdfReport(
      await pdfOf([['Sodium 140 mmol/L'], ['Potassium 4.1 mmol/L'], ['Glucose 90 mg/dL']]),
      { maxPages: 2 },
    );

    expect(extraction.status).toBe('partial');
    expect(extraction.pages).toBe(3);
    expect(extraction.problems).toEqual(['only the first 2 of 3 pages were read']);
    expect(extraction.observations.map((o) => o.code.code)).toEqual(['2951-2', '2823-3']);
  });

  test.each([
    ['PRELIMINARY REPORT', 'preliminary'],
    ['Corrected report: potassium re-run', 'corrected'],
    ['Final report', 'final'],
  ])('gives results the status the document states: %s', async (heading, status) => {
    const extraction = await extractPdfReport(await pdfOf([[heading, 'Potassium 4.1 mmol/L 3.5-5.1']]));

    expect(extraction.observations[0]!.status).toBe(status);
  });

  test('says so when the text holds no result lines', async () => {
    const extraction = await extractPdfReport(
      await pdfOf([['Surgical pathology report', 'Diagnosis: benign tissue, no malignancy seen.']]),
    );

    expect(extraction.status).toBe('extracted');
    expect(extraction.observations).toEqual([]);
    expect(extraction.confidence).toBe(0);
    expect(extraction.problems).toEqual(['no result lines were found in the text']);
  });
});

describe('extractPdfReport: unreadable files are reported, never thrown', () => {
  test.each<[string, () => Promise<Uint8Array>, RegExp]>([
    ['an empty file', async () => new Uint8Array(), /the file is empty/],
    ['random bytes', async () => seededBytes(4096, 7), /not a PDF: there is no %PDF- header/],
    [
      'an HTML page',
      async () => new TextEncoder().encode('<html><body>Not found</body></html>'),
      /not a PDF/,
    ],
    [
      'random bytes after a PDF header',
      async () => new Uint8Array([...new TextEncoder().encode('%PDF-1.7\n'), ...seededBytes(4096, 11)]),
      /corrupt or truncated/,
    ],
    [
      'a truncated PDF',
      async () => {
        const whole = await pdfOf([CHEMISTRY]);
        return whole.slice(0, Math.floor(whole.byteLength / 2));
      },
      /corrupt or truncated/,
    ],
    ['an encrypted PDF', async () => ENCRYPTED_PDF, /encrypted with a password/],
    [
      'a PDF with one empty page (a scan has no text either)',
      () => pdfOf([[]]),
      /no page has extractable text/,
    ],
    ['a PDF whose pages are all empty', () => pdfOf([[], []]), /no page has extractable text/],
  ])('%s', async (_name, bytes, problem) => {
    const input = await bytes();
    const extraction = await extractPdfReport(input);

    expect(extraction).toMatchObject(UNREADABLE);
    expect(extraction.problems).toHaveLength(1);
    expect(extraction.problems[0]).toMatch(problem);
  });

  test('counts the pages of a PDF without text', async () => {
    expect((await extractPdfReport(await pdfOf([[], [], []]))).pages).toBe(3);
  });

  test('does not open a file over 50 MB', async () => {
    const big = new Uint8Array(50 * 1024 * 1024 + 1);
    big.set(new TextEncoder().encode('%PDF-1.7\n'));
    const extraction = await extractPdfReport(big);

    expect(extraction).toMatchObject(UNREADABLE);
    expect(extraction.problems).toEqual(['the file is larger than 50 MB and was not opened']);
  });

  test('gives up when reading takes longer than allowed', async () => {
    const extraction = await extractPdfReport(await pdfOf([CHEMISTRY]), { timeoutMs: 0 });

    expect(extraction).toMatchObject(UNREADABLE);
    expect(extraction.problems).toEqual(['reading the PDF took longer than 0 ms']);
  });
});

describe('parseLabLine', () => {
  test.each([
    [
      'Potassium 6.8 mmol/L 3.5-5.1 HH',
      { code: '2823-3', value: 6.8, cmp: null, unit: 'mmol/L', range: [3.5, 5.1], flags: ['HH'] },
    ],
    [
      'Glucose: 95 mg/dL (70-99)',
      { code: '2345-7', value: 95, cmp: null, unit: 'mg/dL', range: [70, 99], flags: [] },
    ],
    [
      'Hemoglobin 10.2 L g/dL 12.0-16.0',
      { code: '718-7', value: 10.2, cmp: null, unit: 'g/dL', range: [12, 16], flags: ['L'] },
    ],
    ['Sodium 140 mmol/L', { code: '2951-2', value: 140, cmp: null, unit: 'mmol/L', range: null, flags: [] }],
    [
      'Calcium   7.9   mg/dL   [8.5 - 10.5]   (L)',
      { code: '17861-6', value: 7.9, cmp: null, unit: 'mg/dL', range: [8.5, 10.5], flags: ['L'] },
    ],
    [
      'WBC 12.1 H 10^9/L 4.0-11.0',
      { code: '6690-2', value: 12.1, cmp: null, unit: '10^9/L', range: [4, 11], flags: ['H'] },
    ],
    [
      'Platelet count 45 x10^3/uL 150-400 *LL',
      { code: '777-3', value: 45, cmp: null, unit: 'x10^3/uL', range: [150, 400], flags: ['LL'] },
    ],
    [
      'Creatinine <0.3 mg/dL',
      { code: '2160-0', value: 0.3, cmp: '<', unit: 'mg/dL', range: null, flags: [] },
    ],
    ['Lactate ≥ 4.0 mmol/L', { code: '2524-7', value: 4, cmp: '>=', unit: 'mmol/L', range: null, flags: [] }],
    [
      'Magnesium (serum) 1.0 mg/dL',
      { code: '19123-9', value: 1, cmp: null, unit: 'mg/dL', range: null, flags: [] },
    ],
    [
      'Chloride 98 mmol/L 98 to 107 N',
      { code: '2075-0', value: 98, cmp: null, unit: 'mmol/L', range: [98, 107], flags: ['N'] },
    ],
    ['BUN 18 mg/dL 7-20', { code: '3094-0', value: 18, cmp: null, unit: 'mg/dL', range: [7, 20], flags: [] }],
    [
      'Glucose, fasting 126 mg/dL <100 H',
      { code: '2345-7', value: 126, cmp: null, unit: 'mg/dL', range: [null, 100], flags: ['H'] },
    ],
    [
      'Haemoglobin 13.5 g/dL',
      { code: '718-7', value: 13.5, cmp: null, unit: 'g/dL', range: null, flags: [] },
    ],
    [
      'INR 3.2 H 0.8-1.2',
      { code: '6301-6', value: 3.2, cmp: null, unit: null, range: [0.8, 1.2], flags: ['H'] },
    ],
  ])('reads %j', (line, e) => {
    const read = parseLabLine(line);

    expect(read.kind).toBe('result');
    if (read.kind !== 'result') return;
    expect(read.complete).toBe(true);
    expect(read.observation.code).toMatchObject({ system: LOINC, code: e.code });
    expect(read.observation.numericValue).toBe(e.value);
    expect(read.observation.comparator).toBe(e.cmp);
    expect(read.observation.unit).toBe(e.unit);
    expect(
      read.observation.referenceRange
        ? [read.observation.referenceRange.low, read.observation.referenceRange.high]
        : null,
    ).toEqual(e.range);
    expect(read.observation.sourceFlags).toEqual(e.flags);
  });

  test.each([
    ['Hemoglobin A1c 6.5 % 4.0-5.6 H', 'hemoglobin-a1c', '%'],
    ['Vitamin B12 450 pg/mL', 'vitamin-b12', 'pg/mL'],
    ['25-OH Vitamin D 30 ng/mL 30-100', '25-oh-vitamin-d', 'ng/mL'],
  ])('reads an analyte it has no LOINC code for: %j', (line, code, unit) => {
    const read = parseLabLine(line);

    expect(read).toMatchObject({
      kind: 'result',
      complete: false,
      observation: { code: { system: PDF_TEXT_CODE_SYSTEM, code }, unit },
    });
  });

  test('reads a known analyte without its unit, but not fully', () => {
    expect(parseLabLine('Potassium 6.8')).toMatchObject({ kind: 'result', complete: false });
  });

  test.each([
    'Troponin 0.02',
    'Potassium 6.8 mmol/L see comment below',
    'Springfield, IL 62701',
    'Sodium 140 135-145 mmol/L extra',
  ])('marks %j as a result line it could not read', (line) => {
    expect(parseLabLine(line)).toEqual({ kind: 'unread' });
  });

  test.each([
    'ACME Laboratories',
    'Page 1 of 2',
    'Age: 45',
    'Phone 555 1234',
    'DOB: 01/15/1980',
    'MRN: 12345',
    'Collected: 2026-11-22 07:00',
    'Patient: Doe, Jane DOB: 1980-01-15',
    '2026-11-22',
    '',
  ])('does not take %j for a result', (line) => {
    expect(parseLabLine(line)).toEqual({ kind: 'other' });
  });
});

describe('findPatientHints', () => {
  test.each([
    ['Patient: Doe, Jane', { name: 'Doe, Jane' }],
    ['PATIENT NAME: DOE, JANE Q', { name: 'DOE, JANE Q' }],
    ['Name: Jane Q Doe', { name: 'Doe, Jane Q' }],
    ["Patient: O'Brien-Smith, Mary  Sex: F", { name: "O'Brien-Smith, Mary" }],
    ['Ordering Provider Name: Marcus Welby', { name: null }],
    [
      'Patient: Doe, Jane DOB: 01/15/1980 MRN: 12345',
      { name: 'Doe, Jane', birthDate: '1980-01-15', identifier: '12345' },
    ],
    ['DOB: 1980-01-15', { birthDate: '1980-01-15' }],
    ['Date of Birth: 1/5/1980', { birthDate: '1980-01-05' }],
    ['DOB: 15/01/1980', { birthDate: '1980-01-15' }],
    ['Birth Date: 15.01.1980', { birthDate: '1980-01-15' }],
    ['DOB: 02/30/1980', { birthDate: null }],
    ['MRN: 12345', { identifier: '12345' }],
    ['Medical Record Number: MR-778899', { identifier: 'MR-778899' }],
    ['Patient ID 00042', { identifier: '00042' }],
    ['MRN: pending', { identifier: null }],
  ])('reads %j', (text, expected) => {
    expect(findPatientHints(text)).toEqual({ name: null, birthDate: null, identifier: null, ...expected });
  });

  test('takes the first of each hint over several lines', () => {
    expect(
      findPatientHints('Patient: Doe, Jane\nMRN: 111\nDOB: 1980-01-15\nMRN: 222\nPatient: Roe, Rick'),
    ).toEqual({
      name: 'Doe, Jane',
      birthDate: '1980-01-15',
      identifier: '111',
    });
  });
});
