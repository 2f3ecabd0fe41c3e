import { Hono } from 'hono';
import { CSV_COLUMNS } from '../../adapters/csv/results-csv.ts';
import { findDocument } from '../../db/documents.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { receiveCsv } from '../intake/csv.ts';
import { receiveOverHttp } from '../intake/receive.ts';
import { documentIntake, simpleResultsIntake } from '../intake/simple.ts';
import { requireScope } from '../middleware/tenant-auth.ts';

/**
 * The simple inbound routes of a tenant: `POST /results` (the JSON result format), `POST /csv` (a
 * CSV upload, streamed) and `POST /documents` (a PDF with patient and order hints).
 */
export function intakeRoutes() {
  const app = new Hono<AppEnv>();

  app.post('/results', requireScope('results:write'), async (c) => {
    requireMediaType(c.req.header('content-type'), ['application/json']);
    const raw = new TextDecoder().decode(c.get('rawBody'));
    return receiveOverHttp(c, simpleResultsIntake(raw, c.get('rawBody')));
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
    return receiveOverHttp(c, await documentIntake(form));
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

function requireMediaType(header: string | undefined, accepted: string[]): void {
  const type = (header ?? '').split(';')[0]!.trim().toLowerCase();
  if (!accepted.includes(type))
    throw new AppError('unsupported_media_type', `Content-Type must be ${accepted.join(' or ')}`);
}
