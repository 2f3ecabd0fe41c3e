import { fail, redirect } from '@sveltejs/kit';
import { services } from '../../lib/server/services.ts';
import { cookieOptions, loginCsrf, LOGIN_CSRF_COOKIE, SESSION_COOKIE } from '../../lib/server/session.ts';
import type { Actions, PageServerLoad } from './$types';

export const load = (({ locals, cookies, url }) => {
  if (locals.user) redirect(303, '/');
  return { csrf: loginCsrf(cookies, url) };
}) satisfies PageServerLoad;

export const actions = {
  default: async ({ request, cookies, url }) => {
    const form = await request.formData();
    const email = String(form.get('email') ?? '');
    const password = String(form.get('password') ?? '');
    if (!email.trim() || !password)
      return fail(400, { email, error: 'Enter your e-mail address and your password.' });
    const result = await services().auth.signIn(email, password);
    if (!result.ok) return fail(401, { email, error: result.message });
    cookies.set(SESSION_COOKIE, result.token, cookieOptions(url, result.maxAgeSeconds));
    cookies.delete(LOGIN_CSRF_COOKIE, { path: '/' });
    const next = url.searchParams.get('next');
    // Only a path of this console: never an address elsewhere.
    redirect(303, next && /^\/(?!\/)[\w\-./?=&%]*$/.test(next) ? next : '/');
  },
} satisfies Actions;
