import { criticalBoard } from '../../../../lib/server/critical.ts';
import { tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { PageServerLoad } from './$types';

/** The critical board: every open critical result with its clock, step and attempts; the latest closed. */
export const load = (async ({ locals, params }) => {
  const { tenant, user } = await tenantFor(locals, params.slug, 'acknowledge');
  const board = await criticalBoard(services().db, tenant, user);
  return { ...board, now: new Date().toISOString() };
}) satisfies PageServerLoad;
