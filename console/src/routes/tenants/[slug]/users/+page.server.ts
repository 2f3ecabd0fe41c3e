import { fail } from '@sveltejs/kit';
import { AppError } from '../../../../../../api/errors.ts';
import { appendAudit } from '../../../../../../db/audit.ts';
import { tenantScope } from '../../../../../../db/tenant-scope.ts';
import { findUserByEmail, grantRole, revokeRole, usersOfTenant } from '../../../../../../db/users.ts';
import {
  CONSOLE_ROLES,
  normaliseEmail,
  roleProblem,
  type ConsoleRole,
} from '../../../../../../domain/console-access.ts';
import { actorOf, tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { Actions, PageServerLoad } from './$types';

/** The people with a role in the tenant, and the tenant's providers (a provider role names one). */
export const load = (async ({ locals, params }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'configure');
  const { db } = services();
  const [users, providers] = await Promise.all([
    usersOfTenant(db, tenant.id),
    tenantScope(db, tenant.id)
      .selectFrom('providers')
      .select(['id', 'name', 'email'])
      .where('disabled_at', 'is', null)
      .orderBy('name')
      .execute(),
  ]);
  return { users, providers, roles: [...CONSOLE_ROLES] };
}) satisfies PageServerLoad;

function roleOf(value: FormDataEntryValue | null): ConsoleRole | null {
  return CONSOLE_ROLES.find((r) => r === value) ?? null;
}

export const actions = {
  /** Adds a person with a role: a new account with a first password, or a role for an existing one. */
  add: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const email = normaliseEmail(String(form.get('email') ?? ''));
    const name = String(form.get('name') ?? '').trim();
    const password = String(form.get('password') ?? '');
    const role = roleOf(form.get('role'));
    const providerId = String(form.get('providerId') ?? '') || null;
    const values = { email, name, role: role ?? '' };
    if (!role) return fail(400, { ...values, message: 'Choose a role.' });
    const { db, auth } = services();
    // A provider sees the critical results addressed to the provider they are: without one, nothing.
    if (roleProblem(role, providerId))
      return fail(400, {
        ...values,
        message:
          'Choose which provider this person is. A provider not in the list is added on the Critical values page first.',
      });
    if (providerId) {
      const provider = await tenantScope(db, tenant.id)
        .selectFrom('providers')
        .select('id')
        .where('id', '=', providerId)
        .executeTakeFirst();
      if (!provider) return fail(400, { ...values, message: 'That provider is not one of this tenant’s.' });
    }
    try {
      const existing = await findUserByEmail(db, email);
      if (existing)
        await db.transaction().execute(async (trx) => {
          await grantRole(trx, { userId: existing.id, tenantId: tenant.id, role, providerId });
          await appendAudit(trx, {
            tenantId: tenant.id,
            actor: actorOf(user),
            action: 'user.role_granted',
            subject: `user/${existing.id}`,
            details: { email, role, providerId },
          });
        });
      else
        await auth.createUser({
          email,
          name,
          password,
          roles: [{ tenantId: tenant.id, role, providerId }],
          actor: actorOf(user),
        });
      return {
        done: existing ? `${email} now also has the ${role} role.` : `${email} can sign in now as ${role}.`,
      };
    } catch (e) {
      if (e instanceof AppError) return fail(e.status, { ...values, message: e.message });
      throw e;
    }
  },

  revoke: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const userId = String(form.get('userId') ?? '');
    const role = roleOf(form.get('role'));
    if (!role || !/^[0-9a-f-]{36}$/i.test(userId)) return fail(400, { message: 'No role was named.' });
    if (userId === user.id && role === 'admin')
      return fail(409, { message: 'You cannot take away your own admin role; ask another admin.' });
    const { db } = services();
    const done = await db.transaction().execute(async (trx) => {
      if (!(await revokeRole(trx, { userId, tenantId: tenant.id, role }))) return false;
      await appendAudit(trx, {
        tenantId: tenant.id,
        actor: actorOf(user),
        action: 'user.role_revoked',
        subject: `user/${userId}`,
        details: { role },
      });
      return true;
    });
    if (!done) return fail(404, { message: 'That person does not have that role here.' });
    return { done: `The ${role} role was taken away.` };
  },
} satisfies Actions;
