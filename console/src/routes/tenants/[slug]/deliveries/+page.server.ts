import { listDeliveries } from '../../../../../../db/deliveries.ts';
import { tenantFor } from '../../../../lib/server/access.ts';
import { deliveryView, resendDeliveryAction } from '../../../../lib/server/deliveries.ts';
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
    deliveries: rows.map(deliveryView),
  };
}) satisfies PageServerLoad;

export const actions = {
  resend: resendDeliveryAction,
} satisfies Actions;
