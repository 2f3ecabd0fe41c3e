import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Seed 003's roles, as credential scopes. */
export const SCOPES = [
  'orders:write',
  'results:write',
  'results:read',
  'patients:read',
  'patients:write',
  'tasks:write',
] as const;
export type Scope = (typeof SCOPES)[number];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

export interface NewApiKey {
  apiKey: string;
  prefix: string;
  hash: string;
}

/** A new API key: 32 random bytes, prefixed `lr_live_` (production) or `lr_test_` (sandbox). */
export function generateApiKey(environment: 'production' | 'sandbox'): NewApiKey {
  const apiKey = `${environment === 'sandbox' ? 'lr_test_' : 'lr_live_'}${randomBytes(32).toString('base64url')}`;
  return { apiKey, prefix: apiKey.slice(0, 12), hash: hashSecret(apiKey) };
}

/** SHA-256 hex: how API keys and signing secrets are kept (the key itself is never stored). */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/**
 * Signing secrets are derived from the master key, the credential and a random salt, so the database
 * holds only the salt and the secret's hash: a stolen database alone cannot sign requests.
 */
export function deriveSigningSecret(masterKey: Buffer, credentialId: string, salt: string): string {
  const mac = createHmac('sha256', masterKey)
    .update(`labrelay-signing-secret|${credentialId}|${salt}`)
    .digest('base64url');
  return `whsec_${mac}`;
}

export function newSalt(): string {
  return randomBytes(16).toString('base64url');
}

/** Signature tolerance of the contract: a request signed more than 300 s away from now is refused. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/** `LabRelay-Signature: t=..,v1=..` for a body: the same function signs our outbound webhooks. */
export function signBody(secret: string, body: string | Uint8Array, timestamp: number): string {
  return `t=${timestamp},v1=${hmacHex(secret, timestamp, body)}`;
}

function hmacHex(secret: string, timestamp: number, body: string | Uint8Array): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${timestamp}.`).update(body).digest('hex');
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/**
 * Checks a `LabRelay-Signature` header against any of the credential's active secrets (two may be
 * active during a rotation), in constant time, within the tolerance window.
 */
export function verifySignature(
  header: string | undefined,
  body: Uint8Array,
  secrets: string[],
  nowSeconds: number,
): SignatureCheck {
  const check = streamingSignatureCheck(header, secrets, nowSeconds);
  if ('ok' in check) return check;
  check.update(body);
  return check.verify();
}

/**
 * The signature check of a body read in chunks (a large upload spooled to disk): the header is
 * checked at once, the HMACs are computed as the chunks pass, and `verify()` compares at the end.
 */
export function streamingSignatureCheck(
  header: string | undefined,
  secrets: string[],
  nowSeconds: number,
): { ok: false; reason: string } | { update(chunk: Uint8Array): void; verify(): SignatureCheck } {
  if (!header) return { ok: false, reason: 'the LabRelay-Signature header is missing' };
  let timestamp: number | null = null;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const [k, v] = part.trim().split('=', 2);
    if (k === 't') {
      if (!v || !/^\d{1,16}$/.test(v))
        return { ok: false, reason: 't must be the time in whole unix seconds' };
      if (v.length >= 13) return { ok: false, reason: 't looks like milliseconds; it must be unix seconds' };
      timestamp = Number(v);
    } else if (k === 'v1') {
      if (!v || !/^[0-9a-f]{64}$/i.test(v))
        return { ok: false, reason: 'v1 must be the HMAC-SHA256 as 64 hex digits' };
      candidates.push(v.toLowerCase());
    }
  }
  if (timestamp === null || candidates.length === 0) {
    return {
      ok: false,
      reason: 'the LabRelay-Signature header must read t={unix seconds},v1={hex HMAC-SHA256}',
    };
  }
  if (Math.abs(nowSeconds - timestamp) > SIGNATURE_TOLERANCE_SECONDS) {
    return {
      ok: false,
      reason: `the signature timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS} s away from now`,
    };
  }
  const t = timestamp;
  const macs = secrets.map((secret) => createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${t}.`));
  return {
    update(chunk) {
      for (const mac of macs) mac.update(chunk);
    },
    verify() {
      let matched = false;
      for (const mac of macs) {
        const expected = mac.digest();
        for (const candidate of candidates) {
          // Compare every pair, so the time taken does not reveal which secret or candidate matched.
          if (timingSafeEqual(expected, Buffer.from(candidate, 'hex'))) matched = true;
        }
      }
      return matched
        ? { ok: true }
        : {
            ok: false,
            reason:
              'the signature does not match the request body: sign "{t}.{exact body bytes}" with the whole signing secret (whsec_ prefix included)',
          };
    },
  };
}
