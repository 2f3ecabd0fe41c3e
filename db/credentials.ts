import type { Credential, SigningSecretRecord } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

export interface CredentialWithTenant extends Credential {
  tenant_slug: string;
}

/** Seed 003's access scope and the limits of one credential; absent means unrestricted. */
export interface CredentialAccess {
  clientIds?: string[] | null;
  locationIds?: string[] | null;
  rateLimitPerMinute?: number | null;
  allowIps?: string[] | null;
}

export async function insertCredential(
  db: Db,
  input: {
    id: string;
    tenantId: string;
    name: string;
    scopes: string[];
    keyPrefix: string;
    keyHash: string;
    signingSecrets: SigningSecretRecord[];
    access?: CredentialAccess;
  },
): Promise<Credential> {
  return db
    .insertInto('credentials')
    .values({
      id: input.id,
      tenant_id: input.tenantId,
      name: input.name,
      scopes: JSON.stringify(input.scopes),
      key_prefix: input.keyPrefix,
      key_hash: input.keyHash,
      signing_salts: JSON.stringify(input.signingSecrets),
      client_ids: input.access?.clientIds ? JSON.stringify(input.access.clientIds) : null,
      location_ids: input.access?.locationIds ? JSON.stringify(input.access.locationIds) : null,
      rate_limit_per_minute: input.access?.rateLimitPerMinute ?? null,
      allow_ips: input.access?.allowIps ? JSON.stringify(input.access.allowIps) : null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * The live credential whose API key hashes to `keyHash`, with its tenant's slug: not revoked, or
 * rotated and still within its overlap.
 */
export async function findActiveCredentialByKeyHash(
  db: Db,
  keyHash: string,
): Promise<CredentialWithTenant | undefined> {
  return db
    .selectFrom('credentials')
    .innerJoin('tenants', 'tenants.id', 'credentials.tenant_id')
    .selectAll('credentials')
    .select('tenants.slug as tenant_slug')
    .where('credentials.key_hash', '=', keyHash)
    .where((eb) =>
      eb.or([eb('credentials.revoked_at', 'is', null), eb('credentials.revoked_at', '>', new Date())]),
    )
    .executeTakeFirst();
}

/** A live credential of the tenant (not revoked, or within a rotation's overlap), locked for a change. */
export async function lockLiveCredential(
  db: Db,
  tenantId: string,
  credentialId: string,
): Promise<Credential | undefined> {
  return tenantScope(db, tenantId)
    .selectFrom('credentials')
    .selectAll()
    .where('id', '=', credentialId)
    .where((eb) => eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', new Date())]))
    .forUpdate()
    .executeTakeFirst();
}

/**
 * Ends a credential of the tenant at `at` (now: revoked at once; later: the overlap of a rotation);
 * false when there is no such live credential.
 */
export async function revokeCredential(
  db: Db,
  tenantId: string,
  credentialId: string,
  at: Date = new Date(),
): Promise<boolean> {
  const result = await tenantScope(db, tenantId)
    .updateTable('credentials')
    .set({ revoked_at: at })
    .where('id', '=', credentialId)
    .where((eb) => eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', new Date())]))
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Replaces a credential's signing secrets (rotation: the new one, and the old one until it expires). */
export async function setSigningSecrets(
  db: Db,
  tenantId: string,
  credentialId: string,
  secrets: SigningSecretRecord[],
): Promise<void> {
  await tenantScope(db, tenantId)
    .updateTable('credentials')
    .set({ signing_salts: JSON.stringify(secrets) })
    .where('id', '=', credentialId)
    .execute();
}
