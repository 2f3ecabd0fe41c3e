import { listAuditEvents, verifyAuditChain } from '../../../../../../db/audit.ts';
import { tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { Actions, PageServerLoad } from './$types';

const PAGE_SIZE = 50;

/** The tenant's audit trail, newest first, filtered by action prefix and subject. */
export const load = (async ({ locals, params, url }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'read');
  const action = (url.searchParams.get('action') ?? '').trim().slice(0, 100);
  const subject = (url.searchParams.get('subject') ?? '').trim().slice(0, 200);
  const page = Math.max(1, Math.min(100_000, Number.parseInt(url.searchParams.get('page') ?? '1', 10) || 1));
  const { events, total } = await listAuditEvents(services().db, tenant.id, {
    ...(action ? { actionPrefix: action } : {}),
    ...(subject ? { subject } : {}),
    limit: PAGE_SIZE,
    offset: (page - 1) * PAGE_SIZE,
  });
  return {
    filter: { action, subject },
    page,
    pages: Math.max(1, Math.ceil(total / PAGE_SIZE)),
    total,
    events: events.map((e) => ({
      sequence: String(e.sequence),
      at: new Date(e.at).toISOString(),
      actor: e.actor,
      action: e.action,
      subject: e.subject,
      details: JSON.stringify(e.details),
      hash: e.hash,
    })),
  };
}) satisfies PageServerLoad;

export const actions = {
  /** Re-computes the whole hash chain: intact, or the first event that does not verify. */
  verify: async ({ locals, params }) => {
    const { tenant } = await tenantFor(locals, params.slug, 'read');
    const db = services().db;
    const brokenAt = await verifyAuditChain(db, tenant.id);
    const { total } = await listAuditEvents(db, tenant.id, { limit: 0, offset: 0 });
    return { verified: { intact: brokenAt === null, brokenAt, events: total, at: new Date().toISOString() } };
  },
} satisfies Actions;
