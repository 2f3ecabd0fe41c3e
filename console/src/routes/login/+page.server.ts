import { fail, redirect } from '@sveltejs/kit';
import { services } from '../../lib/server/services.ts';
import { issueSession, SESSION_COOKIE, SESSION_SECONDS } from '../../lib/server/session.ts';
import type { Actions, PageServerLoad } from './$types';

export const load = (({ locals }) => {
  if (locals.admin) redirect(303, '/');
}) satisfies PageServerLoad;

export const actions = {
  default: async ({ request, cookies, url }) => {
    const token = String((await request.formData()).get('token') ?? '').trim();
    const { checkAdminToken, sessionKey } = services();
    if (!token || !checkAdminToken(token)) return fail(401, { error: 'That admin token is not valid.' });
    cookies.set(SESSION_COOKIE, issueSession(sessionKey, Math.floor(Date.now() / 1000)), {
      path: '/',
      httpOnly: true,
      sameSite: 'strict',
      secure: url.protocol === 'https:',
      maxAge: SESSION_SECONDS,
    });
    redirect(303, '/');
  },
} satisfies Actions;
