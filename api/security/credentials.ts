import { randomUUID } from 'node:crypto';
import { appendAudit } from '../../db/audit.ts';
import { insertCredential, type CredentialAccess } from '../../db/credentials.ts';
import type { Database } from '../../db/schema.ts';
import type { Transaction } from 'kysely';
import { deriveSigningSecret, generateApiKey, hashSecret, newSalt } from './keys.ts';

export interface IssuedCredential {
  id: string;
  keyPrefix: string;
  /** Shown once: only its hash is stored. */
  apiKey: string;
  /** Shown once: derived from the master key, only its salt and hash are stored. */
  signingSecret: string | null;
}

/**
 * Issues a tenant credential inside the caller's transaction: a new API key, and a signing secret
 * unless `signed` is false; stores their hashes and audits the creation.
 */
export async function issueCredential(
  trx: Transaction<Database>,
  masterKey: Buffer,
  input: {
    tenantId: string;
    name: string;
    scopes: string[];
    environment: 'production' | 'sandbox';
    signed: boolean;
    actor: string;
    access?: CredentialAccess;
  },
): Promise<IssuedCredential> {
  const id = randomUUID();
  const key = generateApiKey(input.environment);
  const salt = newSalt();
  const signingSecret = input.signed ? deriveSigningSecret(masterKey, id, salt) : null;
  await insertCredential(trx, {
    id,
    tenantId: input.tenantId,
    name: input.name,
    scopes: input.scopes,
    keyPrefix: key.prefix,
    keyHash: key.hash,
    signingSecrets: signingSecret
      ? [{ salt, hash: hashSecret(signingSecret), createdAt: new Date().toISOString() }]
      : [],
    access: input.access,
  });
  await appendAudit(trx, {
    tenantId: input.tenantId,
    actor: input.actor,
    action: 'credential.created',
    subject: `credential/${id}`,
    details: { name: input.name, scopes: input.scopes, signed: input.signed, ...input.access },
  });
  return { id, keyPrefix: key.prefix, apiKey: key.apiKey, signingSecret };
}
