import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Provider } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

export async function insertProvider(
  db: Db,
  tenantId: string,
  input: { externalId: string | null; name: string; email: string | null; roles: string[] },
): Promise<Provider> {
  return db
    .insertInto('providers')
    .values({
      id: randomUUID(),
      tenant_id: tenantId,
      external_id: input.externalId,
      name: input.name,
      email: input.email,
      roles: JSON.stringify(input.roles),
      disabled_at: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function listProviders(db: Db, tenantId: string): Promise<Provider[]> {
  return tenantScope(db, tenantId)
    .selectFrom('providers')
    .selectAll()
    .where('disabled_at', 'is', null)
    .orderBy('name')
    .execute();
}

export async function findProviderByExternalId(
  db: Db,
  tenantId: string,
  externalId: string,
): Promise<Provider | undefined> {
  return tenantScope(db, tenantId)
    .selectFrom('providers')
    .selectAll()
    .where('external_id', '=', externalId)
    .where('disabled_at', 'is', null)
    .executeTakeFirst();
}

/** The tenant's active providers holding `role`, oldest first (a stable order for escalation). */
export async function findProvidersWithRole(db: Db, tenantId: string, role: string): Promise<Provider[]> {
  return tenantScope(db, tenantId)
    .selectFrom('providers')
    .selectAll()
    .where('disabled_at', 'is', null)
    .where(sql<boolean>`roles ? ${role}`)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}

export async function disableProvider(db: Db, tenantId: string, id: string): Promise<boolean> {
  const result = await tenantScope(db, tenantId)
    .updateTable('providers')
    .set({ disabled_at: new Date() })
    .where('id', '=', id)
    .where('disabled_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Who fills an escalation step: for `ordering`, the report's ordering provider (by the id the sender
 * used) when an e-mail address is known; otherwise the first active provider holding the role who
 * has one. Null when nobody fills the step.
 */
export async function findEscalationRecipient(
  db: Db,
  tenantId: string,
  role: string,
  orderingProviderId: string | null,
): Promise<Provider | null> {
  if (role === 'ordering') {
    if (!orderingProviderId) return null;
    const provider = await findProviderByExternalId(db, tenantId, orderingProviderId);
    return provider?.email ? provider : null;
  }
  const holders = await findProvidersWithRole(db, tenantId, role);
  return holders.find((p) => p.email) ?? null;
}
