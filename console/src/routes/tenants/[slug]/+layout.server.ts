import { mayAct } from '../../../../../domain/console-access.ts';
import { tenantFor } from '../../../lib/server/access.ts';
import type { LayoutServerLoad } from './$types';

/** The tenant every page under it belongs to, and what the person may do there (for the menu). */
export const load = (async ({ locals, params }) => {
  const { tenant, user } = await tenantFor(locals, params.slug, 'read');
  return {
    tenant: { id: tenant.id, slug: tenant.slug, name: tenant.name },
    may: {
      configure: mayAct(user, tenant.id, 'configure'),
      review: mayAct(user, tenant.id, 'review'),
      acknowledge: mayAct(user, tenant.id, 'acknowledge'),
    },
  };
}) satisfies LayoutServerLoad;
