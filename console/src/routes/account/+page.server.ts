import { fail } from '@sveltejs/kit';
import { PASSWORD_MIN } from '../../../../domain/console-access.ts';
import { signedIn } from '../../lib/server/access.ts';
import { services } from '../../lib/server/services.ts';
import { cookieOptions, SESSION_COOKIE } from '../../lib/server/session.ts';
import type { Actions, PageServerLoad } from './$types';

/** The signed-in person's own account: who they are, their roles, and a new password. */
export const load = (({ locals }) => {
  const user = signedIn(locals);
  return {
    account: {
      email: user.email,
      name: user.name,
      platformAdmin: user.platformAdmin,
      roles: user.roles.map((r) => ({ tenant: r.tenantName, slug: r.tenantSlug, role: r.role })),
    },
    passwordMin: PASSWORD_MIN,
  };
}) satisfies PageServerLoad;

export const actions = {
  /**
   * Changes the person's password after checking the current one; every other session of theirs
   * ends, and this browser gets a new one.
   */
  password: async ({ locals, request, cookies, url }) => {
    const user = signedIn(locals);
    const form = await request.formData();
    const current = String(form.get('current') ?? '');
    const next = String(form.get('next') ?? '');
    const repeated = String(form.get('repeated') ?? '');
    if (!current) return fail(400, { field: 'current', message: 'Enter your current password.' });
    if (next !== repeated)
      return fail(400, { field: 'repeated', message: 'The new password and its repetition differ.' });
    const changed = await services().auth.changePassword(user, current, next);
    if (!changed.ok) return fail(400, { field: changed.field, message: changed.message });
    cookies.set(SESSION_COOKIE, changed.token, cookieOptions(url, changed.maxAgeSeconds));
    return { changed: true };
  },
} satisfies Actions;
