import { randomUUID } from 'node:crypto';
import type { Tenant } from './schema.ts';
import type { Db } from './tenant-scope.ts';

export async function insertTenant(db: Db, input: { slug: string; name: string }): Promise<Tenant> {
  return db
    .insertInto('tenants')
    .values({ id: randomUUID(), slug: input.slug, name: input.name, settings: '{}' })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findTenantBySlug(db: Db, slug: string): Promise<Tenant | undefined> {
  return db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirst();
}

export async function findTenantById(db: Db, id: string): Promise<Tenant | undefined> {
  return db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listTenants(db: Db): Promise<Tenant[]> {
  return db.selectFrom('tenants').selectAll().orderBy('slug').execute();
}
