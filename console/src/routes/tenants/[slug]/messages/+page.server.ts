import { listMessageLog, MESSAGE_STATUS, REJECTED } from '../../../../../../db/messages.ts';
import { tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { PageServerLoad } from './$types';

const STATUSES = [...Object.values(MESSAGE_STATUS), REJECTED];
const PAGE_SIZE = 50;

/** Every inbound message of the tenant, those refused at intake too, newest first. */
export const load = (async ({ locals, params, url }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'read');
  const status = STATUSES.find((s) => s === url.searchParams.get('status')) ?? null;
  const controlId = (url.searchParams.get('controlId') ?? '').trim().slice(0, 200);
  const page = Math.max(1, Math.min(10_000, Number.parseInt(url.searchParams.get('page') ?? '1', 10) || 1));
  const { rows, total } = await listMessageLog(services().db, tenant.id, {
    ...(status ? { status } : {}),
    ...(controlId ? { controlId } : {}),
    limit: PAGE_SIZE,
    offset: (page - 1) * PAGE_SIZE,
  });
  return {
    statuses: STATUSES,
    filter: { status, controlId },
    page,
    pages: Math.max(1, Math.ceil(total / PAGE_SIZE)),
    total,
    messages: rows.map((m) => ({
      id: m.id,
      accepted: m.accepted,
      transport: m.transport,
      format: m.format,
      type: m.message_type,
      controlId: m.control_id,
      status: m.status,
      problem: m.problem,
      receivedAt: new Date(m.received_at).toISOString(),
    })),
  };
}) satisfies PageServerLoad;
