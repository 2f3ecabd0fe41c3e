import { appendAudit } from '../db/audit.ts';
import type { Tenant } from '../db/schema.ts';
import { findTenantBySlug, insertTenant } from '../db/tenants.ts';
import type { Services } from './env.ts';
import { AppError } from './errors.ts';

/** Creates a tenant (admin API and console alike); a slug already taken is a 409. Audited. */
export async function createTenant(
  services: Pick<Services, 'db'>,
  input: { slug: string; name: string },
  actor: string,
): Promise<Tenant> {
  const taken = () => new AppError('conflict', `a tenant with slug ${input.slug} already exists`);
  return services.db
    .transaction()
    .execute(async (trx) => {
      if (await findTenantBySlug(trx, input.slug)) throw taken();
      const created = await insertTenant(trx, input);
      await appendAudit(trx, {
        tenantId: created.id,
        actor,
        action: 'tenant.created',
        subject: `tenant/${created.id}`,
        details: { slug: input.slug },
      });
      return created;
    })
    .catch((error: unknown) => {
      // Two creations of one slug at once: the unique index decides, the loser hears 409.
      if ((error as { code?: unknown }).code === '23505') throw taken();
      throw error;
    });
}
