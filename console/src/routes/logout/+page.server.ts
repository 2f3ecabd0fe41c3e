import { redirect } from '@sveltejs/kit';
import { services } from '../../lib/server/services.ts';
import { SESSION_COOKIE } from '../../lib/server/session.ts';
import type { Actions, PageServerLoad } from './$types';

export const load = (() => {
  redirect(303, '/');
}) satisfies PageServerLoad;

export const actions = {
  default: async ({ cookies }) => {
    await services().auth.signOut(cookies.get(SESSION_COOKIE));
    cookies.delete(SESSION_COOKIE, { path: '/' });
    redirect(303, '/login');
  },
} satisfies Actions;
