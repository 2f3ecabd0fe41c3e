import { createHmac, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'labrelay_session';
export const SESSION_SECONDS = 12 * 60 * 60;

function sign(key: Buffer, payload: string): string {
  return createHmac('sha256', key).update(`console-session|${payload}`).digest('base64url');
}

/** A session token: expiry and an HMAC under a key derived from the master key. */
export function issueSession(key: Buffer, nowSeconds: number): string {
  const payload = String(nowSeconds + SESSION_SECONDS);
  return `${payload}.${sign(key, payload)}`;
}

export function sessionIsValid(key: Buffer, token: string | undefined, nowSeconds: number): boolean {
  if (!token) return false;
  const [payload, mac] = token.split('.');
  if (!payload || !mac || !/^\d+$/.test(payload) || Number(payload) < nowSeconds) return false;
  const expected = Buffer.from(sign(key, payload));
  const given = Buffer.from(mac);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
