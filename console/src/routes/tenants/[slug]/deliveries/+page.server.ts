import { fail } from '@sveltejs/kit';
import { AppError } from '../../../../../../api/errors.ts';
import { listDeliveries } from '../../../../../../db/deliveries.ts';
import { actorOf, tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import { mayAct } from '../../../../../../domain/console-access.ts';
import type { Actions, PageServerLoad } from './$types';

const STATUSES = ['pending', 'delivering', 'delivered', 'dead_letter'] as const;

/** Every delivery of the tenant's released results, dead letters first when asked for. */
export const load = (async ({ locals, params, url }) => {
  const { tenant, user } = await tenantFor(locals, params.slug, 'read');
  const { db } = services();
  const status = url.searchParams.get('status');
  const filter = STATUSES.find((s) => s === status) ?? null;
  const rows = await listDeliveries(db, tenant.id, {
    ...(filter ? { status: [filter] } : {}),
    limit: 200,
    offset: 0,
  });
  return {
    tenant: { slug: tenant.slug, name: tenant.name },
    mayResend: mayAct(user, tenant.id, 'configure'),
    filter,
    deliveries: rows.map((d) => ({
      id: d.id,
      reportId: d.report_id,
      connection: d.connection_name,
      format: d.connection_format,
      status: d.status,
      critical: d.critical,
      sends: d.sends,
      attempts: d.attempts,
      problem: d.dead_letter_reason ?? d.last_error,
      updatedAt: new Date(d.updated_at).toISOString(),
      resendable: d.status === 'dead_letter' || d.status === 'delivered',
    })),
  };
}) satisfies PageServerLoad;

export const actions = {
  /** Re-send one delivery; the admin role is checked again here, whatever the page showed. */
  resend: async ({ locals, params, request }) => {
    const { user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const id = String(form.get('id') ?? '');
    if (!/^[0-9a-f-]{36}$/i.test(id)) return fail(400, { message: 'No delivery was named.' });
    try {
      await services().resendDelivery(params.slug, id, actorOf(user), null);
    } catch (e) {
      if (e instanceof AppError) return fail(e.status, { message: e.message, id });
      throw e;
    }
    return { resent: id };
  },
} satisfies Actions;
