import { error } from '@sveltejs/kit';
import { findDocument } from '../../../../../../../../../db/documents.ts';
import { tenantFor } from '../../../../../../../lib/server/access.ts';
import { services } from '../../../../../../../lib/server/services.ts';
import type { RequestHandler } from './$types';

/**
 * A document that came with the message (a PDF report), as stored. Served as a download-safe
 * response: its own type, never sniffed, sandboxed so nothing in it runs with the console's origin.
 */
export const GET = (async ({ locals, params }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'read');
  const document = /^[0-9a-f-]{36}$/i.test(params.documentId)
    ? await findDocument(services().db, tenant.id, params.documentId)
    : undefined;
  if (!document || document.message_id !== params.id) error(404, 'there is no such document');
  const type = document.content_type === 'application/pdf' ? 'application/pdf' : 'application/octet-stream';
  const filename = (document.filename ?? 'document').replace(/[^\w.-]+/g, '_');
  return new Response(new Uint8Array(document.data), {
    headers: {
      'content-type': type,
      'content-disposition': `${type === 'application/pdf' ? 'inline' : 'attachment'}; filename="${filename}"`,
      'x-content-type-options': 'nosniff',
      'content-security-policy': 'sandbox',
      'cache-control': 'private, no-store',
    },
  });
}) satisfies RequestHandler;
