import { error, redirect } from '@sveltejs/kit';
import type { ConsoleUser } from '../../../../api/console-auth.ts';
import type { Tenant } from '../../../../db/schema.ts';
import { findTenantBySlug } from '../../../../db/tenants.ts';
import { mayAct, type ConsoleAction } from '../../../../domain/console-access.ts';
import { services } from './services.ts';

/** The signed-in person, or a redirect to the sign-in page. */
export function signedIn(locals: App.Locals): ConsoleUser {
  if (!locals.user) redirect(303, '/login');
  return locals.user;
}

/**
 * The tenant of a page or form action, once the person is known to be allowed `action` in it.
 * Called by every load and every action: what a page showed is never taken as permission.
 */
export async function tenantFor(
  locals: App.Locals,
  slug: string,
  action: ConsoleAction,
): Promise<{ tenant: Tenant; user: ConsoleUser }> {
  const user = signedIn(locals);
  const tenant = await findTenantBySlug(services().db, slug);
  // Nobody learns of a tenant they have no role in.
  if (!tenant || !mayAct(user, tenant.id, 'read')) error(404, `there is no tenant ${slug}`);
  if (!mayAct(user, tenant.id, action))
    error(403, `your role in ${tenant.name} does not allow this (${action})`);
  return { tenant, user };
}

/** How a person is named in the audit trail and on tasks they claim (api/lifecycle.ts personOf). */
export function actorOf(user: ConsoleUser): string {
  return `${user.email} (console)`;
}
