import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * Single-use acknowledgement links for critical results: `{tokenId}.{expires}.{signature}`, signed
 * with a key derived from the master key. The signature and expiry are checked before the database
 * is asked; the database row (`ack_tokens`) makes the link single-use.
 */
export interface AckLinkClaims {
  tokenId: string;
  /** Unix seconds. */
  expiresAt: number;
}

function linkKey(masterKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'labrelay critical ack link v1', 32));
}

function sign(masterKey: Buffer, payload: string): string {
  return createHmac('sha256', linkKey(masterKey)).update(payload).digest('base64url');
}

/**
 * @example signAckToken(key, { tokenId: 'c3f0…', expiresAt: 1795000000 }) // 'c3f0….1795000000.Zk9…'
 */
export function signAckToken(masterKey: Buffer, claims: AckLinkClaims): string {
  const payload = `${claims.tokenId}.${claims.expiresAt}`;
  return `${payload}.${sign(masterKey, payload)}`;
}

/**
 * Checks a token's signature and expiry (`nowSeconds`); says why when it does not hold.
 *
 * @example verifyAckToken(key, token, Date.now() / 1000) // { ok: true, claims: { tokenId, expiresAt } }
 */
export function verifyAckToken(
  masterKey: Buffer,
  token: string,
  nowSeconds: number,
): { ok: true; claims: AckLinkClaims } | { ok: false; reason: 'malformed' | 'signature' | 'expired' } {
  const match = /^([0-9a-f-]{36})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!match) return { ok: false, reason: 'malformed' };
  const [, tokenId, expires, signature] = match as unknown as [string, string, string, string];
  const expected = Buffer.from(sign(masterKey, `${tokenId}.${expires}`));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given))
    return { ok: false, reason: 'signature' };
  const expiresAt = Number(expires);
  if (expiresAt < nowSeconds) return { ok: false, reason: 'expired' };
  return { ok: true, claims: { tokenId, expiresAt } };
}
