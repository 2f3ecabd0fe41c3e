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

/** The live (not revoked) credential whose API key hashes to `keyHash`, with its tenant's slug. */
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
    .where('credentials.revoked_at', 'is', null)
    .executeTakeFirst();
}

/** Revokes a credential of the tenant; false when there is no such live credential. */
export async function revokeCredential(db: Db, tenantId: string, credentialId: string): Promise<boolean> {
  const result = await tenantScope(db, tenantId)
    .updateTable('credentials')
    .set({ revoked_at: new Date() })
    .where('id', '=', credentialId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
