import { error } from '@sveltejs/kit';
import { findDocument } from '../../../../../../../db/documents.ts';
import { tenantFor } from '../../../../../lib/server/access.ts';
import { services } from '../../../../../lib/server/services.ts';
import type { RequestHandler } from './$types';

/**
 * A stored document (a PDF report) for the reviewer who decides on it, as the tenant API serves it
 * (GET /v1/t/{slug}/documents/{id}): only a PDF or an image inline, never sniffed, sandboxed so
 * nothing in it runs with the console's origin; anything else is a download.
 */
export const GET = (async ({ locals, params }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'review');
  const document = /^[0-9a-f-]{36}$/i.test(params.id)
    ? await findDocument(services().db, tenant.id, params.id)
    : undefined;
  if (!document) error(404, `there is no document ${params.id}`);
  const inline = /^(application\/pdf|image\/(png|jpeg|gif|tiff))$/i.test(document.content_type);
  const filename = (document.filename ?? `${document.id}.pdf`).replace(/[^\w.-]/g, '_');
  return new Response(new Uint8Array(document.data), {
    headers: {
      'content-type': inline ? document.content_type : 'application/octet-stream',
      'content-security-policy': "sandbox; default-src 'none'; img-src 'self'; object-src 'self'",
      'content-disposition': `${inline ? 'inline' : 'attachment'}; filename="${filename}"`,
      'x-content-type-options': 'nosniff',
      'cache-control': 'private, no-store',
    },
  });
}) satisfies RequestHandler;
