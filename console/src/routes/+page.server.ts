import { redirect } from '@sveltejs/kit';
import { listRecentMessages } from '../../../db/messages.ts';
import { listTenants } from '../../../db/tenants.ts';
import { services } from '../lib/server/services.ts';
import type { PageServerLoad } from './$types';

export const load = (async ({ locals }) => {
  if (!locals.admin) redirect(303, '/login');
  const { db } = services();
  const [tenants, messages] = await Promise.all([listTenants(db), listRecentMessages(db, { limit: 50 })]);
  return {
    tenants: tenants.map((t) => ({
      id: t.id,
      slug: t.slug,
      name: t.name,
      createdAt: new Date(t.created_at).toISOString(),
    })),
    messages: messages.map((m) => ({ ...m, received_at: new Date(m.received_at).toISOString() })),
  };
}) satisfies PageServerLoad;
