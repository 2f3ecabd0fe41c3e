import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Tenant } from '../../db/schema.ts';
import { listTenants } from '../../db/tenants.ts';
import type { AppEnv } from '../env.ts';
import { adminAuth } from '../middleware/admin-auth.ts';
import { validationHook } from '../validation.ts';
import {
  adminErrors as errors,
  ErrorOut,
  Ip,
  json,
  requireTenant,
  Slug,
  SlugParam,
} from './openapi-common.ts';
import {
  DEFAULT_OVERLAP_MINUTES,
  issueTenantCredential,
  MAX_OVERLAP_MINUTES,
  revokeTenantCredential,
  rotateApiKey,
  rotateSigningSecret,
} from '../tenant-credentials.ts';
import { tenantScope } from '../../db/tenant-scope.ts';
import { createTenant } from '../tenants.ts';
import {
  TenantPatchSchema as TenantPatch,
  TenantSettingsSchema as TenantSettings,
  updateTenantSettings,
} from '../tenant-settings.ts';
import { SCOPES } from '../security/keys.ts';

const TenantBody = z.object({ slug: Slug, name: z.string().trim().min(1).max(200) }).openapi('NewTenant');
const TenantOut = z
  .object({
    id: z.string().uuid(),
    slug: z.string(),
    name: z.string(),
    settings: TenantSettings,
    createdAt: z.string(),
  })
  .openapi('Tenant');

const CredentialBody = z
  .object({
    name: z.string().trim().min(1).max(200),
    scopes: z.array(z.enum(SCOPES)).min(1),
    environment: z.enum(['production', 'sandbox']).default('production'),
    /** false: a key without a signing secret, whose requests need no signature. */
    signed: z.boolean().default(true),
    clientIds: z.array(z.string().trim().min(1).max(200)).min(1).max(1000).optional().openapi({
      description:
        'Seed 003 client scope: the clients (ordering organisations) this key may read and write. Absent: all.',
    }),
    locationIds: z.array(z.string().trim().min(1).max(200)).min(1).max(1000).optional().openapi({
      description:
        'Seed 003 location scope: the ordering locations this key may read and write. Absent: all.',
    }),
    rateLimitPerMinute: z.number().int().min(1).max(1_000_000).optional().openapi({
      description: 'Requests per minute; beyond it 429 with Retry-After. Absent: the process default.',
    }),
    allowIps: z
      .array(z.lazy(() => Ip))
      .min(1)
      .max(100)
      .optional()
      .openapi({
        description: 'Source addresses or CIDR blocks this key may be used from. Absent: anywhere.',
      }),
  })
  .openapi('NewCredential');
const CredentialOut = z
  .object({
    id: z.string().uuid(),
    name: z.string(),
    scopes: z.array(z.string()),
    keyPrefix: z.string(),
    apiKey: z.string().openapi({ description: 'Shown once; only its hash is kept.' }),
    signingSecret: z
      .string()
      .nullable()
      .openapi({ description: 'Shown once; sign request bodies with it (LabRelay-Signature).' }),
  })
  .openapi('CreatedCredential');

/** The platform admin API (`Authorization: Bearer $LABRELAY_ADMIN_TOKEN`). */
export function adminRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', adminAuth());

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants',
      summary: 'Create a tenant',
      request: { body: { required: true, ...json(TenantBody) } },
      responses: {
        201: { description: 'Created', ...json(TenantOut) },
        409: { description: 'Slug taken', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const tenant = await createTenant(c.get('services'), c.req.valid('json'), 'admin');
      return c.json(tenantOut(tenant), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/tenants/{slug}',
      summary: "Change a tenant's name or settings",
      request: { params: SlugParam, body: { required: true, ...json(TenantPatch) } },
      responses: {
        200: { description: 'Changed', ...json(TenantOut) },
        404: { description: 'No such tenant', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const updated = await updateTenantSettings(
        c.get('services').db,
        c.req.valid('param').slug,
        c.req.valid('json'),
        'admin',
      );
      return c.json(tenantOut(updated), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tenants',
      summary: 'List tenants',
      responses: {
        200: { description: 'Tenants', ...json(z.object({ tenants: z.array(TenantOut) })) },
        ...errors,
      },
    }),
    async (c) => {
      const tenants = await listTenants(c.get('services').db);
      return c.json({ tenants: tenants.map(tenantOut) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tenants/{slug}',
      summary: 'Read a tenant with its settings',
      request: { params: SlugParam },
      responses: {
        200: { description: 'The tenant', ...json(TenantOut) },
        404: { description: 'No such tenant', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => c.json(tenantOut(await requireTenant(c.get('services').db, c.req.valid('param').slug)), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/credentials',
      summary: 'Create a credential (API key and signing secret, shown once)',
      request: { params: SlugParam, body: { required: true, ...json(CredentialBody) } },
      responses: {
        201: { description: 'Created', ...json(CredentialOut) },
        404: { description: 'No such tenant', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db, config } = c.get('services');
      const { slug } = c.req.valid('param');
      const body = c.req.valid('json');
      const tenant = await requireTenant(db, slug);
      const issued = await issueTenantCredential(
        { db, config },
        tenant,
        {
          name: body.name,
          scopes: body.scopes,
          environment: body.environment,
          signed: body.signed,
          access: {
            clientIds: body.clientIds,
            locationIds: body.locationIds,
            rateLimitPerMinute: body.rateLimitPerMinute,
            allowIps: body.allowIps,
          },
        },
        'admin',
      );
      return c.json(
        {
          id: issued.id,
          name: body.name,
          scopes: body.scopes,
          keyPrefix: issued.keyPrefix,
          apiKey: issued.apiKey,
          signingSecret: issued.signingSecret,
        },
        201,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/tenants/{slug}/credentials/{id}',
      summary: 'Revoke a credential: its key stops working at once',
      request: { params: z.object({ slug: Slug, id: z.string().uuid() }) },
      responses: {
        204: { description: 'Revoked' },
        404: { description: 'No such tenant or live credential', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db } = c.get('services');
      const { slug, id } = c.req.valid('param');
      await revokeTenantCredential({ db }, await requireTenant(db, slug), id, 'admin');
      return c.body(null, 204);
    },
  );

  const Overlap = z
    .object({
      overlapMinutes: z
        .number()
        .int()
        .min(0)
        .max(MAX_OVERLAP_MINUTES)
        .optional()
        .openapi({ description: `How long the old one keeps working (default ${DEFAULT_OVERLAP_MINUTES})` }),
    })
    .strict();

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/credentials/{id}/rotate',
      summary: 'Rotate an API key with overlap: a new key (and secret) shown once; the old one ends later',
      request: {
        params: z.object({ slug: Slug, id: z.string().uuid() }),
        body: { required: false, ...json(Overlap) },
      },
      responses: {
        201: {
          description: 'The replacement',
          ...json(CredentialOut.extend({ previousEndsAt: z.string() })),
        },
        404: { description: 'No such tenant or live credential', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db, config } = c.get('services');
      const { slug, id } = c.req.valid('param');
      const tenant = await requireTenant(db, slug);
      const body = (c.req.valid('json') as z.infer<typeof Overlap> | undefined) ?? {};
      const issued = await rotateApiKey({ db, config }, tenant, id, body.overlapMinutes, 'admin');
      const row = await tenantScope(db, tenant.id)
        .selectFrom('credentials')
        .select(['name', 'scopes'])
        .where('id', '=', issued.id)
        .executeTakeFirstOrThrow();
      return c.json(
        {
          id: issued.id,
          name: row.name,
          scopes: row.scopes,
          keyPrefix: issued.keyPrefix,
          apiKey: issued.apiKey,
          signingSecret: issued.signingSecret,
          previousEndsAt: issued.previousEndsAt,
        },
        201,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/credentials/{id}/rotate-secret',
      summary:
        'Rotate a signing secret: the new one is shown once; the old one verifies until the overlap ends',
      request: {
        params: z.object({ slug: Slug, id: z.string().uuid() }),
        body: { required: false, ...json(Overlap) },
      },
      responses: {
        201: {
          description: 'The new secret',
          ...json(z.object({ signingSecret: z.string(), previousEndsAt: z.string().nullable() })),
        },
        404: { description: 'No such tenant or live credential', ...json(ErrorOut) },
        409: { description: 'An unsigned credential', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db, config } = c.get('services');
      const { slug, id } = c.req.valid('param');
      const body = (c.req.valid('json') as z.infer<typeof Overlap> | undefined) ?? {};
      const rotated = await rotateSigningSecret(
        { db, config },
        await requireTenant(db, slug),
        id,
        body.overlapMinutes,
        'admin',
      );
      return c.json(rotated, 201);
    },
  );

  return app;
}

function tenantOut(t: Tenant) {
  return {
    id: t.id,
    slug: t.slug,
    name: t.name,
    settings: t.settings,
    createdAt: new Date(t.created_at).toISOString(),
  };
}
