import { SimpleResultsSchema, simpleResultsToResultMessage } from '../../adapters/json/results-json.ts';
import { extractPdfReport } from '../../adapters/pdf/extract.ts';
import { EXTRACTION_STATUS } from '../../db/documents.ts';
import type { Identifier, PatientDemographics, ResultMessage } from '../../domain/model.ts';
import { AppError } from '../errors.ts';
import type { Intake } from './store.ts';

/**
 * The simple intakes (the JSON result format, a PDF with hints) read into the canonical model, the
 * same for `POST /v1/t/{slug}/results` and `/documents` as for the console's manual entry and
 * upload: one reading, one validation, one answer.
 */

/** Largest PDF accepted by `POST /documents` (and the console's upload). */
export const MAX_PDF_BYTES = 50 * 1024 * 1024;

/** The code system of a document's (or manual entry's) category: the report's code. */
export const RESULT_CATEGORY_SYSTEM = 'urn:labrelay:document-category';

/** Categories offered to people (seed 000 "lab result types"); a sender may use any code of the pattern. */
export const RESULT_CATEGORIES = [
  { code: 'blood-work', display: 'Blood work' },
  { code: 'urinalysis', display: 'Urinalysis' },
  { code: 'microbiology', display: 'Microbiology culture' },
  { code: 'pathology', display: 'Pathology report' },
  { code: 'genetic-testing', display: 'Genetic testing' },
  { code: 'imaging', display: 'Radiology / imaging' },
  { code: 'lab-report', display: 'Other lab report' },
] as const;

const CATEGORY_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** Longest interpretation a person may add with the results. */
export const MAX_INTERPRETATION = 4000;

export interface IntakeOptions {
  /** A clinician's interpretation stored with the report (console manual entry). */
  interpretation?: string | null;
}

/**
 * The simple JSON result format, as text: parsed, validated (each problem with its path, e.g.
 * `results.0.value`), mapped to one report.
 */
export function simpleResultsIntake(
  raw: string,
  hashOf: Uint8Array | string = raw,
  options: IntakeOptions = {},
): Intake {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (error) {
    throw new AppError('invalid_request', `the body is not JSON: ${(error as Error).message}`);
  }
  const parsed = SimpleResultsSchema.safeParse(body);
  if (!parsed.success) {
    const issues = parsed.error.issues;
    throw new AppError(
      'invalid_request',
      `the result is not valid: ${issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`,
      issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  }
  const message = withInterpretation(simpleResultsToResultMessage(parsed.data), options);
  return {
    format: 'json',
    messageType: 'results',
    raw,
    hashOf,
    content: { results: [message], orders: [] },
    answer: (messageId) => ({
      response: JSON.stringify({
        messageId,
        status: 'received',
        reports: message.reports.length,
        results: message.reports.reduce((n, r) => n + r.observations.length, 0),
      }),
      status: 202,
    }),
  };
}

/**
 * A PDF upload with its hints (the form of `POST /documents`): checked, its text and results
 * extracted, and always sent to review (`review: true` in the answer).
 */
export async function documentIntake(form: FormData, options: IntakeOptions = {}): Promise<Intake> {
  const file = form.get('file');
  if (!(file instanceof File))
    throw new AppError('invalid_request', 'the form must carry the PDF in a field named "file"', [
      { path: 'file', message: 'required' },
    ]);
  if (file.size === 0)
    throw new AppError('invalid_request', 'the uploaded file is empty', [{ path: 'file', message: 'empty' }]);
  if (file.size > MAX_PDF_BYTES)
    throw new AppError('payload_too_large', `the PDF is larger than ${MAX_PDF_BYTES} bytes`);
  const data = new Uint8Array(await file.arrayBuffer());
  const hints = readHints(form);
  const extraction = await extractPdfReport(data);

  const patient = patientOf(hints, extraction.patientHints);
  if (
    patient.identifiers.length === 0 &&
    !patient.internalId &&
    !patient.externalId &&
    !(patient.familyName && patient.birthDate)
  ) {
    throw new AppError(
      'unprocessable',
      'say whose document this is: give patientId, externalPatientId, mrn (with mrnSystem), or familyName + birthDate',
      [{ path: 'patient', message: 'no patient hint in the form and none readable in the PDF' }],
    );
  }
  const category = hints.category ?? 'lab-report';
  const result = withInterpretation(
    {
      patient,
      reports: [
        {
          placerOrderNumber: hints.orderNumber,
          fillerOrderNumber: null,
          placerAuthority: hints.orderNumberSystem,
          code: { system: RESULT_CATEGORY_SYSTEM, code: category, display: hints.title ?? file.name ?? null },
          status: 'final',
          orderingProvider: null,
          effectiveAt: null,
          issuedAt: null,
          observations: extraction.observations,
          notes: extraction.problems.length > 0 ? extraction.problems : undefined,
        },
      ],
    },
    options,
  );
  const status =
    extraction.status === 'extracted'
      ? EXTRACTION_STATUS.extracted
      : extraction.status === 'partial'
        ? EXTRACTION_STATUS.partial
        : EXTRACTION_STATUS.unreadable;
  return {
    format: 'pdf',
    messageType: 'document',
    raw: JSON.stringify({
      filename: file.name,
      size: file.size,
      contentType: file.type || 'application/pdf',
      hints,
    }),
    hashOf: data,
    content: {
      results: [result],
      orders: [],
      documents: [
        {
          contentType: 'application/pdf',
          filename: file.name || null,
          title: hints.title,
          data,
          reportIndex: 0,
          extractionStatus: status,
          extractedText: extraction.text,
          extraction: {
            status: extraction.status,
            pages: extraction.pages,
            confidence: extraction.confidence,
            problems: extraction.problems,
            results: extraction.observations.length,
          },
        },
      ],
    },
    answer: (messageId) => ({
      response: JSON.stringify({
        messageId,
        status: 'received',
        extraction: extraction.status,
        confidence: extraction.confidence,
        results: extraction.observations.length,
        problems: extraction.problems,
        review: true,
      }),
      status: 202,
    }),
  };
}

function withInterpretation(message: ResultMessage, options: IntakeOptions): ResultMessage {
  const interpretation = options.interpretation?.trim() || null;
  if (!interpretation) return message;
  if (interpretation.length > MAX_INTERPRETATION)
    throw new AppError(
      'invalid_request',
      `the interpretation is longer than ${MAX_INTERPRETATION} characters`,
      [{ path: 'interpretation', message: 'too long' }],
    );
  return { ...message, reports: message.reports.map((r) => ({ ...r, interpretation })) };
}

interface DocumentHints {
  patientId: string | null;
  externalPatientId: string | null;
  mrn: string | null;
  mrnSystem: string | null;
  familyName: string | null;
  givenName: string | null;
  birthDate: string | null;
  orderNumber: string | null;
  orderNumberSystem: string | null;
  category: string | null;
  title: string | null;
}

const HINT_FIELDS = [
  'patientId',
  'externalPatientId',
  'mrn',
  'mrnSystem',
  'familyName',
  'givenName',
  'birthDate',
  'orderNumber',
  'orderNumberSystem',
  'category',
  'title',
] as const;

function readHints(form: FormData): DocumentHints {
  const hints = {} as DocumentHints;
  for (const name of HINT_FIELDS) {
    const value = form.get(name);
    if (value !== null && typeof value !== 'string')
      throw new AppError('invalid_request', `${name} must be a text field`, [
        { path: name, message: 'text expected' },
      ]);
    const text = value?.trim() || null;
    if (text && text.length > 200)
      throw new AppError('invalid_request', `${name} is longer than 200 characters`, [
        { path: name, message: 'too long' },
      ]);
    hints[name] = text;
  }
  if (hints.birthDate && !/^\d{4}-\d{2}-\d{2}$/.test(hints.birthDate))
    throw new AppError('invalid_request', 'birthDate must be YYYY-MM-DD', [
      { path: 'birthDate', message: 'YYYY-MM-DD' },
    ]);
  if (hints.category && !CATEGORY_PATTERN.test(hints.category))
    throw new AppError(
      'invalid_request',
      'category must be a lower-case code such as blood-work, urinalysis, pathology',
      [{ path: 'category', message: 'lower-case letters, digits and hyphens' }],
    );
  return hints;
}

/** The patient of an uploaded document: the uploader's hints first, what the PDF says otherwise. */
function patientOf(
  hints: DocumentHints,
  fromPdf: { name: string | null; birthDate: string | null; identifier: string | null },
): PatientDemographics {
  const identifiers: Identifier[] = [];
  if (hints.mrn) identifiers.push({ system: hints.mrnSystem ?? '', value: hints.mrn, type: 'MR' });
  const [pdfFamily, pdfGiven] = (fromPdf.name ?? '').split(',').map((s) => s.trim());
  const useNameFromPdf = !hints.familyName;
  return {
    identifiers,
    familyName: hints.familyName ?? (useNameFromPdf ? pdfFamily || null : null),
    givenNames: hints.givenName ? [hints.givenName] : useNameFromPdf && pdfGiven ? [pdfGiven] : [],
    birthDate: hints.birthDate ?? fromPdf.birthDate,
    sex: null,
    internalId: hints.patientId,
    externalId: hints.externalPatientId,
  };
}
