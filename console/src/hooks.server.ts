import type { Handle } from '@sveltejs/kit/hooks';
import { services } from './lib/server/services.ts';
import { CSRF_FIELD, LOGIN_CSRF_COOKIE, SESSION_COOKIE, sameToken } from './lib/server/session.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The CSRF token a request carries: the form field, or a header for scripted calls. */
async function csrfOf(request: Request): Promise<string | null> {
  const header = request.headers.get('x-csrf-token');
  if (header) return header;
  const type = request.headers.get('content-type') ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded') && !type.startsWith('multipart/form-data'))
    return null;
  try {
    const value = (await request.clone().formData()).get(CSRF_FIELD);
    return typeof value === 'string' ? value : null;
  } catch {
    return null;
  }
}

export const handle: Handle = async ({ event, resolve }) => {
  const { auth } = services();
  event.locals.user = await auth.session(event.cookies.get(SESSION_COOKIE));

  // Every change carries the session's CSRF token (the login form: its cookie's), beside
  // SvelteKit's own origin check: a form posted from elsewhere cannot know it.
  if (!SAFE_METHODS.has(event.request.method)) {
    const expected =
      event.url.pathname === '/login' ? event.cookies.get(LOGIN_CSRF_COOKIE) : event.locals.user?.csrfToken;
    if (!sameToken(await csrfOf(event.request), expected))
      return new Response(
        'This form has expired or did not come from the LabRelay console. Reload the page and try again.',
        { status: 403, headers: { 'content-type': 'text/plain; charset=utf-8' } },
      );
  }

  const response = await resolve(event);
  response.headers.set('X-Frame-Options', 'DENY');
  response.headers.set('X-Content-Type-Options', 'nosniff');
  response.headers.set('Referrer-Policy', 'same-origin');
  return response;
};
