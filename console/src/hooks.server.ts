import type { Handle } from '@sveltejs/kit/hooks';
import { services } from './lib/server/services.ts';
import { SESSION_COOKIE, sessionIsValid } from './lib/server/session.ts';

export const handle: Handle = async ({ event, resolve }) => {
  const { sessionKey } = services();
  event.locals.admin = sessionIsValid(
    sessionKey,
    event.cookies.get(SESSION_COOKIE),
    Math.floor(Date.now() / 1000),
  );
  const response = await resolve(event);
  response.headers.set('X-Frame-Options', 'DENY');
  response.headers.set('X-Content-Type-Options', 'nosniff');
  response.headers.set('Referrer-Policy', 'same-origin');
  return response;
};
