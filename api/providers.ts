import { z } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { appendAudit } from '../db/audit.ts';
import { disableProvider, insertProvider } from '../db/providers.ts';
import type { Database, Provider } from '../db/schema.ts';
import { findTenantBySlug } from '../db/tenants.ts';
import { AppError } from './errors.ts';
import { schemaFailure } from './validation.ts';

// A tenant's providers — who the escalation chain reaches (ordering, covering, on-call, lab
// director) — added and removed by the same functions from the admin API and the console.

export const ProviderSchema = z
  .object({
    name: z.string().trim().min(1).max(200),
    externalId: z
      .string()
      .trim()
      .min(1)
      .max(200)
      .nullable()
      .optional()
      .openapi({ description: 'The id senders use for this provider (HL7 OBR-16/ORC-12 XCN-1).' }),
    email: z.string().trim().email().nullable().optional(),
    roles: z.array(z.enum(['ordering', 'covering', 'on_call', 'lab_director'])).default([]),
  })
  .strict()
  .openapi('NewProvider');

async function tenantOf(db: Parameters<typeof findTenantBySlug>[0], slug: string) {
  const tenant = await findTenantBySlug(db, slug);
  if (!tenant) throw new AppError('not_found', `there is no tenant ${slug}`);
  return tenant;
}

/**
 * Adds a provider to a tenant, audited. Refuses input that fails the schema (400, one detail per
 * field) and an external id already in use (409).
 *
 * @example
 * await addProvider(db, 'stmarys', { name: 'Casey Cover', email: 'cover@stmarys.example', roles: ['covering'] }, 'admin');
 */
export async function addProvider(
  db: Kysely<Database>,
  slug: string,
  input: unknown,
  actor: string,
): Promise<Provider> {
  const checked = ProviderSchema.safeParse(input);
  if (!checked.success) throw schemaFailure(checked.error.issues);
  const body = checked.data;
  return db
    .transaction()
    .execute(async (trx) => {
      const tenant = await tenantOf(trx, slug);
      const created = await insertProvider(trx, tenant.id, {
        name: body.name,
        externalId: body.externalId ?? null,
        email: body.email ?? null,
        roles: body.roles,
      });
      await appendAudit(trx, {
        tenantId: tenant.id,
        actor,
        action: 'provider.added',
        subject: `provider/${created.id}`,
        details: { roles: body.roles, externalId: body.externalId ?? null },
      });
      return created;
    })
    .catch((error: unknown) => {
      if ((error as { code?: unknown }).code === '23505')
        throw new AppError('conflict', `a provider with external id ${body.externalId} already exists`, [
          { path: 'externalId', message: 'already used by another provider' },
        ]);
      throw error;
    });
}

/** Takes a provider off the tenant's escalation chain (kept for the record, no longer notified). */
export async function removeProvider(
  db: Kysely<Database>,
  slug: string,
  id: string,
  actor: string,
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const tenant = await tenantOf(trx, slug);
    if (!(await disableProvider(trx, tenant.id, id)))
      throw new AppError('not_found', `tenant ${slug} has no active provider ${id}`);
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'provider.removed',
      subject: `provider/${id}`,
    });
  });
}
