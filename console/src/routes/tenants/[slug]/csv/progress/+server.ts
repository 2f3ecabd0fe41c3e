import { json } from '@sveltejs/kit';
import { tenantScope } from '../../../../../../../db/tenant-scope.ts';
import { tenantFor } from '../../../../../lib/server/access.ts';
import { services } from '../../../../../lib/server/services.ts';
import type { RequestHandler } from './$types';

/** How far an upload has got (rows read, accepted, rejected), found by its upload key. */
export const GET = (async ({ locals, params, url }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'review');
  const key = url.searchParams.get('key') ?? '';
  const message = /^[0-9a-f-]{36}$/i.test(key)
    ? await tenantScope(services().db, tenant.id)
        .selectFrom('messages')
        .select(['id', 'progress', 'status'])
        .where('idempotency_key', '=', key)
        .executeTakeFirst()
    : undefined;
  return json(
    message
      ? { messageId: message.id, status: message.status, progress: message.progress }
      : { messageId: null, status: null, progress: null },
    { headers: { 'cache-control': 'no-store' } },
  );
}) satisfies RequestHandler;
