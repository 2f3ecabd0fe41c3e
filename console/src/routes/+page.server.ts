import { listRecentMessages } from '../../../db/messages.ts';
import { listTenants } from '../../../db/tenants.ts';
import { mayAct } from '../../../domain/console-access.ts';
import { signedIn } from '../lib/server/access.ts';
import { services } from '../lib/server/services.ts';
import type { PageServerLoad } from './$types';

/** The tenants the person has a role in (every tenant for a platform admin) and their recent messages. */
export const load = (async ({ locals }) => {
  const user = signedIn(locals);
  const { db } = services();
  const tenants = (await listTenants(db)).filter((t) => mayAct(user, t.id, 'read'));
  const messages = await listRecentMessages(db, {
    limit: 50,
    ...(user.platformAdmin ? {} : { tenantIds: tenants.map((t) => t.id) }),
  });
  return {
    platformAdmin: user.platformAdmin,
    tenants: tenants.map((t) => ({
      id: t.id,
      slug: t.slug,
      name: t.name,
      createdAt: new Date(t.created_at).toISOString(),
    })),
    messages: messages.map((m) => ({ ...m, received_at: new Date(m.received_at).toISOString() })),
  };
}) satisfies PageServerLoad;
