import { Hono } from 'hono';
import { CSV_COLUMNS } from '../../adapters/csv/results-csv.ts';
import { SimpleResultsSchema, simpleResultsToResultMessage } from '../../adapters/json/results-json.ts';
import { extractPdfReport } from '../../adapters/pdf/extract.ts';
import { EXTRACTION_STATUS, findDocument } from '../../db/documents.ts';
import type { Identifier, PatientDemographics, ResultMessage } from '../../domain/model.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { receiveCsv } from '../intake/csv.ts';
import { receiveOverHttp } from '../intake/receive.ts';
import { requireScope } from '../middleware/tenant-auth.ts';

/** Largest PDF accepted by `POST /documents`. */
const MAX_PDF_BYTES = 50 * 1024 * 1024;

/**
 * The simple inbound routes of a tenant: `POST /results` (the JSON result format), `POST /csv` (a
 * CSV upload, streamed) and `POST /documents` (a PDF with patient and order hints).
 */
export function intakeRoutes() {
  const app = new Hono<AppEnv>();

  app.post('/results', requireScope('results:write'), async (c) => {
    requireMediaType(c.req.header('content-type'), ['application/json']);
    const raw = new TextDecoder().decode(c.get('rawBody'));
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
    const message = simpleResultsToResultMessage(parsed.data);
    return receiveOverHttp(c, {
      format: 'json',
      messageType: 'results',
      raw,
      hashOf: c.get('rawBody'),
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
    });
  });

  app.post('/csv', requireScope('results:write'), async (c) => {
    requireMediaType(c.req.header('content-type'), ['text/csv', 'application/csv']);
    return receiveCsv(c);
  });
  app.get('/csv/columns', (c) => c.json({ columns: CSV_COLUMNS }));

  app.post('/documents', requireScope('results:write'), async (c) => {
    const contentType = c.req.header('content-type') ?? '';
    requireMediaType(contentType, ['multipart/form-data']);
    let form: FormData;
    try {
      form = await new Response(c.get('rawBody'), { headers: { 'content-type': contentType } }).formData();
    } catch (error) {
      throw new AppError(
        'invalid_request',
        `the multipart body could not be read: ${(error as Error).message}`,
      );
    }
    const file = form.get('file');
    if (!(file instanceof File))
      throw new AppError('invalid_request', 'the form must carry the PDF in a field named "file"', [
        { path: 'file', message: 'required' },
      ]);
    if (file.size === 0)
      throw new AppError('invalid_request', 'the uploaded file is empty', [
        { path: 'file', message: 'empty' },
      ]);
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
    const result: ResultMessage = {
      patient,
      reports: [
        {
          placerOrderNumber: hints.orderNumber,
          fillerOrderNumber: null,
          placerAuthority: hints.orderNumberSystem,
          code: {
            system: 'urn:labrelay:document-category',
            code: category,
            display: hints.title ?? file.name ?? null,
          },
          status: 'final',
          orderingProvider: null,
          effectiveAt: null,
          issuedAt: null,
          observations: extraction.observations,
          notes: extraction.problems.length > 0 ? extraction.problems : undefined,
        },
      ],
    };
    const status =
      extraction.status === 'extracted'
        ? EXTRACTION_STATUS.extracted
        : extraction.status === 'partial'
          ? EXTRACTION_STATUS.partial
          : EXTRACTION_STATUS.unreadable;
    return receiveOverHttp(c, {
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
    });
  });
  app.get('/documents/:id', requireScope('results:read'), async (c) => {
    const { db } = c.get('services');
    const tenant = c.get('tenant');
    const id = c.req.param('id');
    const document = /^[0-9a-f-]{36}$/i.test(id) ? await findDocument(db, tenant.id, id) : undefined;
    if (!document) throw new AppError('not_found', `tenant ${tenant.slug} has no document ${id}`);
    // A sender chooses the type of an HL7 ED document: only a PDF or an image is shown inline, and
    // never with script (the console shares this origin); anything else is a download.
    const inline = /^(application\/pdf|image\/(png|jpeg|gif|tiff))$/i.test(document.content_type);
    return c.body(new Uint8Array(document.data), 200, {
      'Content-Type': inline ? document.content_type : 'application/octet-stream',
      'Content-Security-Policy': "sandbox; default-src 'none'; img-src 'self'; object-src 'self'",
      'Content-Disposition': `${inline ? 'inline' : 'attachment'}; filename="${(document.filename ?? `${document.id}.pdf`).replace(/[^\w.-]/g, '_')}"`,
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'private, no-store',
    });
  });
  return app;
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
  if (hints.category && !/^[a-z0-9][a-z0-9-]{0,63}$/.test(hints.category))
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

function requireMediaType(header: string | undefined, accepted: string[]): void {
  const type = (header ?? '').split(';')[0]!.trim().toLowerCase();
  if (!accepted.includes(type))
    throw new AppError('unsupported_media_type', `Content-Type must be ${accepted.join(' or ')}`);
}
