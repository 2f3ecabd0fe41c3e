import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The `LabRelay-Signature` scheme of the external contract: `t={unix seconds},v1={hex
 * HMAC-SHA256(secret, "{t}.{raw body}")}`. Inbound requests are checked with it and outbound
 * webhooks signed with it, so it lives with the formats, below both api/ and activities/.
 */

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
