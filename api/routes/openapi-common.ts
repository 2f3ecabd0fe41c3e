import { isIP } from 'node:net';
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

/** A tenant's slug, as it appears in URLs. */
export const Slug = z
  .string()
  .regex(
    /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
    'a slug is 1-63 lower-case letters, digits and inner hyphens',
  )
  .openapi({ example: 'st-marys' });
export const SlugParam = z.object({ slug: Slug });

/** An IP address or CIDR block (allowlists). */
export const Ip = z.string().refine((s) => {
  const [address, prefix, ...rest] = s.split('/');
  const version = isIP(address ?? '');
  if (version === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (version === 4 ? 32 : 128);
}, 'an IPv4/IPv6 address or CIDR block, e.g. 10.0.0.0/8');

/** The errors every platform-admin route may answer. */
export const adminErrors = {
  400: { description: 'Invalid request', ...json(ErrorOut) },
  401: { description: 'Missing or wrong admin token', ...json(ErrorOut) },
};
