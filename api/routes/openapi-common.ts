import { z } from '@hono/zod-openapi';
import { findTenantBySlug } from '../../db/tenants.ts';
import { AppError } from '../errors.ts';

/** The contract's error body, one schema for every route's OpenAPI description. */
export const ErrorOut = z
  .object({ error: z.object({ code: z.string(), message: z.string(), details: z.array(z.any()) }) })
  .openapi('Error');

/** A JSON request or response body of `schema`, as `createRoute` wants it. */
export const json = <T extends z.ZodType>(schema: T) => ({ content: { 'application/json': { schema } } });

/** The tenant named in an admin route, or the contract's 404. */
export async function requireTenant(db: Parameters<typeof findTenantBySlug>[0], slug: string) {
  const tenant = await findTenantBySlug(db, slug);
  if (!tenant) throw new AppError('not_found', `there is no tenant ${slug}`);
  return tenant;
}
