import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { deriveSigningSecret, generateApiKey, hashSecret } from '../../../api/security/keys.ts';
import { signBody, verifySignature } from '../../../adapters/crypto/signature.ts';

const NOW = 1_795_000_000; // unix seconds
const BODY =
  'MSH|^~\\&|ACME_LIS|ACME_LAB|LABRELAY|STMARYS|20261122083000||ORU^R01|MSG00001|P|2.5.1\rPID|1||MRN123456^^^STMARYS^MR\r';
const bytes = (s: string) => new TextEncoder().encode(s);

describe('generateApiKey', () => {
  test.each([
    ['production', 'lr_live_'],
    ['sandbox', 'lr_test_'],
  ] as const)('makes a %s key starting %s, kept only as its SHA-256', (environment, start) => {
    const key = generateApiKey(environment);

    expect(key.apiKey).toMatch(new RegExp(`^${start}[A-Za-z0-9_-]{43}$`));
    expect(key.prefix).toBe(key.apiKey.slice(0, 12));
    expect(key.prefix.startsWith(start)).toBe(true);
    expect(key.hash).toBe(createHash('sha256').update(key.apiKey).digest('hex'));
    expect(key.hash).toBe(hashSecret(key.apiKey));
  });

  test('never makes the same key twice', () => {
    const keys = Array.from({ length: 50 }, () => generateApiKey('production').apiKey);

    expect(new Set(keys).size).toBe(50);
  });
});

describe('deriveSigningSecret', () => {
  const master = Buffer.alloc(32, 7);

  test('derives the same secret from the same master key, credential and salt', () => {
    const secret = deriveSigningSecret(master, 'cred-1', 'salt-a');

    expect(secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(deriveSigningSecret(Buffer.alloc(32, 7), 'cred-1', 'salt-a')).toBe(secret);
  });

  test.each([
    ['another master key', () => deriveSigningSecret(Buffer.alloc(32, 8), 'cred-1', 'salt-a')],
    ['another credential', () => deriveSigningSecret(master, 'cred-2', 'salt-a')],
    ['another salt (a rotation)', () => deriveSigningSecret(master, 'cred-1', 'salt-b')],
  ])('derives a different secret from %s', (_what, derive) => {
    expect(derive()).not.toBe(deriveSigningSecret(master, 'cred-1', 'salt-a'));
  });

  test('signs requests that verify against the secret derived again from the stored salt', () => {
    const header = signBody(deriveSigningSecret(master, 'cred-1', 'salt-a'), BODY, NOW);
    const secrets = ['salt-old', 'salt-a'].map((salt) => deriveSigningSecret(master, 'cred-1', salt));

    expect(verifySignature(header, bytes(BODY), secrets, NOW)).toEqual({ ok: true });
  });
});
