import { describe, expect, test } from 'vitest';
import {
  SIGNATURE_TOLERANCE_SECONDS,
  signBody,
  verifySignature,
} from '../../../adapters/crypto/signature.ts';

const SECRET = 'whsec_3kq9Zr0H3bVvJqg2cM5V1yqk2m2Qp0hQ7uWcJb1xY4E';
const NEXT_SECRET = 'whsec_Vx2bQ9m1Lr6Tz3nP8sK0dF5gH7jW4cY2aE1uI9oR6tU';
const NOW = 1_795_000_000; // unix seconds
const BODY =
  'MSH|^~\\&|ACME_LIS|ACME_LAB|LABRELAY|STMARYS|20261122083000||ORU^R01|MSG00001|P|2.5.1\rPID|1||MRN123456^^^STMARYS^MR\r';
const bytes = (s: string) => new TextEncoder().encode(s);

/** The v1 value of a header we signed. */
const v1Of = (header: string) => /v1=([0-9a-f]{64})/.exec(header)![1]!;

describe('signBody', () => {
  test('writes t={unix seconds},v1={hex HMAC-SHA256}', () => {
    expect(signBody(SECRET, BODY, NOW)).toMatch(new RegExp(`^t=${NOW},v1=[0-9a-f]{64}$`));
  });

  test('signs the same bytes the same way whether given as text or bytes', () => {
    expect(signBody(SECRET, bytes(BODY), NOW)).toBe(signBody(SECRET, BODY, NOW));
  });

  test('depends on the secret, the body and the timestamp', () => {
    const base = v1Of(signBody(SECRET, BODY, NOW));

    expect(v1Of(signBody(NEXT_SECRET, BODY, NOW))).not.toBe(base);
    expect(v1Of(signBody(SECRET, BODY + ' ', NOW))).not.toBe(base);
    expect(v1Of(signBody(SECRET, BODY, NOW + 1))).not.toBe(base);
  });
});

describe('verifySignature', () => {
  test('accepts a body signed with the secret, now', () => {
    expect(verifySignature(signBody(SECRET, BODY, NOW), bytes(BODY), [SECRET], NOW)).toEqual({ ok: true });
  });

  test.each([
    ['signed 300 s ago', -SIGNATURE_TOLERANCE_SECONDS],
    ['signed 300 s ahead (clock skew)', SIGNATURE_TOLERANCE_SECONDS],
    ['signed 1 s ago', -1],
  ])('accepts a signature %s', (_what, offset) => {
    expect(verifySignature(signBody(SECRET, BODY, NOW + offset), bytes(BODY), [SECRET], NOW)).toEqual({
      ok: true,
    });
  });

  test.each([
    ['signed with another secret', signBody('whsec_someone_else', BODY, NOW), BODY, /does not match/],
    [
      'for a tampered body',
      signBody(SECRET, BODY, NOW),
      BODY.replace('MRN123456', 'MRN123457'),
      /does not match/,
    ],
    ['for a body with a byte added', signBody(SECRET, BODY, NOW), BODY + '\r', /does not match/],
    [
      'with its timestamp changed',
      signBody(SECRET, BODY, NOW).replace(`t=${NOW}`, `t=${NOW - 10}`),
      BODY,
      /does not match/,
    ],
    ['signed 301 s ago', signBody(SECRET, BODY, NOW - 301), BODY, /more than 300 s away from now/],
    ['signed 301 s ahead', signBody(SECRET, BODY, NOW + 301), BODY, /more than 300 s away from now/],
    ['replayed a day later', signBody(SECRET, BODY, NOW - 86_400), BODY, /more than 300 s away from now/],
  ])('refuses a signature %s', (_what, header, body, reason) => {
    const check = verifySignature(header, bytes(body), [SECRET], NOW);

    expect(check.ok).toBe(false);
    expect(check.ok ? '' : check.reason).toMatch(reason);
  });

  const v1 = v1Of(signBody(SECRET, BODY, NOW));
  test.each([
    ['missing', undefined, /header is missing/],
    ['empty', '', /header is missing/],
    ['without a timestamp', `v1=${v1}`, /must read t=/],
    ['without a v1', `t=${NOW}`, /must read t=/],
    [
      'with the timestamp written as a date',
      `t=2026-11-18T08:26:40Z,v1=${v1}`,
      /t must be the time in whole unix seconds/,
    ],
    ['with the timestamp in milliseconds', `t=${NOW * 1000},v1=${v1}`, /t looks like milliseconds/],
    ['with a short v1', `t=${NOW},v1=${v1.slice(0, 63)}`, /v1 must be the HMAC-SHA256 as 64 hex digits/],
    [
      'with a base64 v1',
      `t=${NOW},v1=${Buffer.from(v1, 'hex').toString('base64')}`,
      /v1 must be the HMAC-SHA256 as 64 hex digits/,
    ],
    ['with only a v0 scheme', `t=${NOW},v0=${v1}`, /must read t=/],
    ['written Stripe-style with the wrong prefix', `sha256=${v1}`, /must read t=/],
  ])('refuses a header %s', (_what, header, reason) => {
    const check = verifySignature(header, bytes(BODY), [SECRET], NOW);

    expect(check.ok).toBe(false);
    expect(check.ok ? '' : check.reason).toMatch(reason);
  });

  test('accepts either secret while a rotation is under way', () => {
    const secrets = [SECRET, NEXT_SECRET];

    expect(verifySignature(signBody(SECRET, BODY, NOW), bytes(BODY), secrets, NOW)).toEqual({ ok: true });
    expect(verifySignature(signBody(NEXT_SECRET, BODY, NOW), bytes(BODY), secrets, NOW)).toEqual({
      ok: true,
    });
    expect(verifySignature(signBody('whsec_retired', BODY, NOW), bytes(BODY), secrets, NOW).ok).toBe(false);
  });

  test('refuses every signature when the credential has no active secret', () => {
    expect(verifySignature(signBody(SECRET, BODY, NOW), bytes(BODY), [], NOW).ok).toBe(false);
  });

  test.each([
    ['the matching value last', (good: string, other: string) => `t=${NOW},v1=${other},v1=${good}`],
    ['the matching value first', (good: string, other: string) => `t=${NOW},v1=${good},v1=${other}`],
    ['spaces after the commas', (good: string, other: string) => `t=${NOW}, v1=${other}, v1=${good}`],
    ['upper-case hex', (good: string, other: string) => `t=${NOW},v1=${other},v1=${good.toUpperCase()}`],
    ['an unknown scheme alongside', (good: string) => `t=${NOW},v0=deadbeef,v1=${good}`],
  ])('accepts a header with several v1 values: %s', (_what, header) => {
    const good = v1Of(signBody(SECRET, BODY, NOW));
    const other = v1Of(signBody(NEXT_SECRET, BODY, NOW));

    expect(verifySignature(header(good, other), bytes(BODY), [SECRET], NOW)).toEqual({ ok: true });
  });

  test('refuses a header whose several v1 values all fail', () => {
    const a = v1Of(signBody('whsec_a', BODY, NOW));
    const b = v1Of(signBody('whsec_b', BODY, NOW));

    expect(verifySignature(`t=${NOW},v1=${a},v1=${b}`, bytes(BODY), [SECRET, NEXT_SECRET], NOW).ok).toBe(
      false,
    );
  });
});
