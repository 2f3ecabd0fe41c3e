import { fail, redirect } from '@sveltejs/kit';
import { AppError } from '../../../api/errors.ts';
import { Slug } from '../../../api/routes/openapi-common.ts';
import { createTenant } from '../../../api/tenants.ts';
import { listRecentMessages } from '../../../db/messages.ts';
import { listTenants } from '../../../db/tenants.ts';
import { mayAct } from '../../../domain/console-access.ts';
import { actorOf, signedIn } from '../lib/server/access.ts';
import { services } from '../lib/server/services.ts';
import type { Actions, PageServerLoad } from './$types';

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

export const actions = {
  /** A platform admin adds a tenant (the same rule as POST /v1/admin/tenants), then sets it up. */
  createTenant: async ({ locals, request }) => {
    const user = signedIn(locals);
    if (!user.platformAdmin)
      return fail(403, { slug: '', name: '', message: 'Only a platform administrator adds tenants.' });
    const form = await request.formData();
    const slug = String(form.get('slug') ?? '').trim();
    const name = String(form.get('name') ?? '').trim();
    const valid = Slug.safeParse(slug);
    if (!valid.success) return fail(400, { slug, name, message: valid.error.issues[0]!.message });
    if (!name || name.length > 200) return fail(400, { slug, name, message: 'Give the tenant a name.' });
    try {
      await createTenant(services().app, { slug, name }, actorOf(user));
    } catch (e) {
      if (e instanceof AppError) return fail(e.status, { slug, name, message: e.message });
      throw e;
    }
    redirect(303, `/tenants/${slug}/onboarding`);
  },
} satisfies Actions;
