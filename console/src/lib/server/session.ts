import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Cookies } from '@sveltejs/kit';

export const SESSION_COOKIE = 'labrelay_session';
/** Before sign-in there is no session: the login form's CSRF token is a cookie it must repeat. */
export const LOGIN_CSRF_COOKIE = 'labrelay_login_csrf';
/** The form field every console form carries (components/Csrf.svelte). */
export const CSRF_FIELD = 'csrf';

export function sameToken(a: string | null | undefined, b: string | null | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function cookieOptions(url: URL, maxAgeSeconds: number) {
  return {
    path: '/',
    httpOnly: true,
    sameSite: 'strict' as const,
    secure: url.protocol === 'https:',
    maxAge: maxAgeSeconds,
  };
}

/** The login form's CSRF token: the cookie's, made when missing. */
export function loginCsrf(cookies: Cookies, url: URL): string {
  let token = cookies.get(LOGIN_CSRF_COOKIE);
  if (!token || !/^[\w-]{20,64}$/.test(token)) {
    token = randomBytes(24).toString('base64url');
    cookies.set(LOGIN_CSRF_COOKIE, token, cookieOptions(url, 60 * 60));
  }
  return token;
}
