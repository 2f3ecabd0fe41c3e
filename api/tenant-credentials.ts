import { appendAudit } from '../db/audit.ts';
import {
  lockLiveCredential,
  revokeCredential,
  setSigningSecrets,
  type CredentialAccess,
} from '../db/credentials.ts';
import type { SigningSecretRecord, Tenant } from '../db/schema.ts';
import type { Services } from './env.ts';
import { AppError } from './errors.ts';
import { issueCredential, type IssuedCredential } from './security/credentials.ts';
import { deriveSigningSecret, hashSecret, newSalt } from './security/keys.ts';

/** How long a rotated key or secret keeps working beside its replacement, unless told otherwise. */
export const DEFAULT_OVERLAP_MINUTES = 60;
/** The longest overlap we allow: a week to roll a new key out across a hospital's systems. */
export const MAX_OVERLAP_MINUTES = 7 * 24 * 60;

// Tenant credentials as the admin API and the console's credential handoff both manage them.

/** Issues a credential (API key, and a signing secret unless unsigned), shown once. Audited. */
export async function issueTenantCredential(
  services: Pick<Services, 'db' | 'config'>,
  tenant: Tenant,
  input: {
    name: string;
    scopes: string[];
    environment: 'production' | 'sandbox';
    signed: boolean;
    access?: CredentialAccess;
  },
  actor: string,
): Promise<IssuedCredential> {
  return services.db
    .transaction()
    .execute((trx) =>
      issueCredential(trx, services.config.masterKey, { tenantId: tenant.id, ...input, actor }),
    );
}

/** Revokes a credential at once (also one still in a rotation's overlap). Audited. */
export async function revokeTenantCredential(
  services: Pick<Services, 'db'>,
  tenant: Tenant,
  id: string,
  actor: string,
): Promise<void> {
  await services.db.transaction().execute(async (trx) => {
    if (!(await revokeCredential(trx, tenant.id, id)))
      throw new AppError('not_found', `tenant ${tenant.slug} has no live credential ${id}`);
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'credential.revoked',
      subject: `credential/${id}`,
    });
  });
}

function overlapOf(minutes: number | undefined): number {
  const m = minutes ?? DEFAULT_OVERLAP_MINUTES;
  if (!Number.isInteger(m) || m < 0 || m > MAX_OVERLAP_MINUTES)
    throw new AppError('invalid_request', `the overlap is 0 to ${MAX_OVERLAP_MINUTES} minutes`, [
      { path: 'overlapMinutes', message: `0 to ${MAX_OVERLAP_MINUTES}` },
    ]);
  return m;
}

/**
 * Rotates an API key with overlap: a new credential with the same name, scopes, environment, access
 * and signing (new secret too), shown once; the old key keeps working for `overlapMinutes`, then
 * stops. Audited on both credentials.
 */
export async function rotateApiKey(
  services: Pick<Services, 'db' | 'config'>,
  tenant: Tenant,
  id: string,
  overlapMinutes: number | undefined,
  actor: string,
): Promise<IssuedCredential & { previousEndsAt: string }> {
  const overlap = overlapOf(overlapMinutes);
  return services.db.transaction().execute(async (trx) => {
    const old = await lockLiveCredential(trx, tenant.id, id);
    if (!old) throw new AppError('not_found', `tenant ${tenant.slug} has no live credential ${id}`);
    const issued = await issueCredential(trx, services.config.masterKey, {
      tenantId: tenant.id,
      name: old.name,
      scopes: old.scopes,
      environment: old.key_prefix.startsWith('lr_test_') ? 'sandbox' : 'production',
      signed: old.signing_salts.length > 0,
      actor,
      access: {
        clientIds: old.client_ids,
        locationIds: old.location_ids,
        rateLimitPerMinute: old.rate_limit_per_minute,
        allowIps: old.allow_ips,
      },
    });
    const endsAt = new Date(Date.now() + overlap * 60_000);
    await revokeCredential(trx, tenant.id, id, endsAt);
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'credential.rotated',
      subject: `credential/${id}`,
      details: { replacedBy: issued.id, endsAt: endsAt.toISOString(), overlapMinutes: overlap },
    });
    return { ...issued, previousEndsAt: endsAt.toISOString() };
  });
}

/**
 * Rotates a credential's signing secret: a new one (shown once) verifies at once, the newest older
 * one keeps verifying for `overlapMinutes`; at most two are ever live. The API key is unchanged.
 */
export async function rotateSigningSecret(
  services: Pick<Services, 'db' | 'config'>,
  tenant: Tenant,
  id: string,
  overlapMinutes: number | undefined,
  actor: string,
): Promise<{ signingSecret: string; previousEndsAt: string | null }> {
  const overlap = overlapOf(overlapMinutes);
  return services.db.transaction().execute(async (trx) => {
    const credential = await lockLiveCredential(trx, tenant.id, id);
    if (!credential) throw new AppError('not_found', `tenant ${tenant.slug} has no live credential ${id}`);
    if (credential.signing_salts.length === 0)
      throw new AppError('conflict', `credential ${credential.name} is unsigned: it has no secret to rotate`);
    const now = Date.now();
    const live = credential.signing_salts.filter((s) => !s.expiresAt || Date.parse(s.expiresAt) > now);
    const newest = live.at(-1);
    const endsAt = new Date(now + overlap * 60_000).toISOString();
    const salt = newSalt();
    const signingSecret = deriveSigningSecret(services.config.masterKey, credential.id, salt);
    const secrets: SigningSecretRecord[] = [
      ...(newest && overlap > 0 ? [{ ...newest, expiresAt: endsAt }] : []),
      { salt, hash: hashSecret(signingSecret), createdAt: new Date(now).toISOString() },
    ];
    await setSigningSecrets(trx, tenant.id, id, secrets);
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'credential.secret_rotated',
      subject: `credential/${id}`,
      details: { previousEndsAt: newest && overlap > 0 ? endsAt : null, overlapMinutes: overlap },
    });
    return { signingSecret, previousEndsAt: newest && overlap > 0 ? endsAt : null };
  });
}
