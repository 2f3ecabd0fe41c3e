import { redirect } from '@sveltejs/kit';
import { SESSION_COOKIE } from '../../lib/server/session.ts';
import type { Actions, PageServerLoad } from './$types';

export const load = (() => {
  redirect(303, '/');
}) satisfies PageServerLoad;

export const actions = {
  default: ({ cookies }) => {
    cookies.delete(SESSION_COOKIE, { path: '/' });
    redirect(303, '/login');
  },
} satisfies Actions;
