import { createHash, createHmac, randomBytes } from 'node:crypto';

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
