import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { listConnections } from '../../db/connections.ts';
import { listDeliveries } from '../../db/deliveries.ts';
import type { Connection, Delivery } from '../../db/schema.ts';
import type { OutboundAuth } from '../../domain/outbound.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { resendDelivery } from '../deliveries.ts';
import {
  ConnectionBody,
  ConnectionChange,
  createConnection,
  disableConnection,
  promoteConnection,
  updateConnection,
} from '../connections.ts';
import { adminAuth } from '../middleware/admin-auth.ts';
import { publicJwks } from '../../adapters/oauth/token-client.ts';
import { openConnectionAuth } from '../../adapters/crypto/secret-box.ts';
import { validationHook } from '../validation.ts';
import { adminErrors as errors, ErrorOut, json, requireTenant, Slug, SlugParam } from './openapi-common.ts';

const ConnectionOut = z
  .object({
    id: z.string().uuid(),
    name: z.string(),
    direction: z.string(),
    format: z.string(),
    environment: z.string(),
    endpoint: z.any().nullable(),
    hasAuth: z.boolean(),
    authType: z.string().nullable(),
    settings: z.record(z.string(), z.unknown()),
    mllp: z
      .object({
        sendingFacility: z.string(),
        receivingFacility: z.string().nullable(),
        allowIps: z.array(z.string()),
      })
      .nullable(),
    createdAt: z.string(),
    disabledAt: z.string().nullable(),
  })
  .openapi('Connection');
const CreatedConnection = ConnectionOut.extend({
  signingSecret: z.string().optional().openapi({
    description: "A webhook destination's signing secret, shown once: verify LabRelay-Signature with it.",
  }),
  jwksUrl: z
    .string()
    .optional()
    .openapi({ description: 'SMART Backend Services: register this JWKS URL with the EHR.' }),
  publicJwks: z.any().optional(),
}).openapi('CreatedConnection');

const DeliveryOut = z
  .object({
    id: z.string().uuid(),
    reportId: z.string().uuid(),
    connectionId: z.string().uuid(),
    connection: z.string(),
    format: z.string(),
    environment: z.string(),
    status: z.enum(['pending', 'delivering', 'delivered', 'dead_letter']),
    critical: z.boolean(),
    sends: z.number(),
    attempts: z.number(),
    workflowId: z.string().nullable(),
    remoteReference: z.string().nullable(),
    lastError: z.string().nullable(),
    deadLetterReason: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    deliveredAt: z.string().nullable(),
    deadLetteredAt: z.string().nullable(),
  })
  .openapi('Delivery');
const DeliveryDetail = DeliveryOut.extend({
  payload: z.string().nullable().openapi({ description: 'What was sent last' }),
  response: z.string().nullable().openapi({ description: 'What the destination answered last' }),
}).openapi('DeliveryDetail');

const IdParams = z.object({ slug: Slug, id: z.string().uuid() });

/** Outbound and pull connections, and the deliveries made through them (platform admin). */
export function adminConnectionRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', adminAuth());

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/connections',
      summary: 'Create a connection (inbound, outbound or pull)',
      description:
        'A webhook destination gets a signing secret (shown once). SMART Backend Services with `generateKey` gets a key pair whose public half is served at `jwksUrl`.',
      request: { params: SlugParam, body: { required: true, ...json(ConnectionBody) } },
      responses: {
        201: { description: 'Created', ...json(CreatedConnection) },
        404: { description: 'No such tenant', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db } = c.get('services');
      const tenant = await requireTenant(db, c.req.valid('param').slug);
      const created = await createConnection(c.get('services'), tenant, c.req.valid('json'), 'admin');
      return c.json(
        {
          ...connectionOut(created.connection, created.auth),
          ...(created.signingSecret ? { signingSecret: created.signingSecret } : {}),
          ...(created.jwksUrl ? { jwksUrl: created.jwksUrl, publicJwks: created.publicJwks } : {}),
        },
        201,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tenants/{slug}/connections',
      summary: "List a tenant's connections",
      request: { params: SlugParam },
      responses: {
        200: { description: 'Connections', ...json(z.object({ connections: z.array(ConnectionOut) })) },
        404: { description: 'No such tenant', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db, config } = c.get('services');
      const tenant = await requireTenant(db, c.req.valid('param').slug);
      const connections = await listConnections(db, tenant.id);
      return c.json(
        {
          connections: connections.map((row) =>
            connectionOut(row, openConnectionAuth(config.masterKey, row)),
          ),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/tenants/{slug}/connections/{id}',
      summary: "Change a live connection's name, endpoint, outbound authentication, settings or MLLP routing",
      description:
        'Direction, format and environment stay (promotion is its own step). `auth` replaces the sealed authentication: a new client secret, token or key (`generateKey` answers a new `jwksUrl`). `settings` given replace those of the same name. Audited by field names; secrets are never returned.',
      request: { params: IdParams, body: { required: true, ...json(ConnectionChange) } },
      responses: {
        200: { description: 'Changed', ...json(CreatedConnection) },
        404: { description: 'No such tenant or live connection', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db, config } = c.get('services');
      const { slug, id } = c.req.valid('param');
      const changed = await updateConnection(
        c.get('services'),
        await requireTenant(db, slug),
        id,
        c.req.valid('json'),
        'admin',
      );
      return c.json(
        {
          ...connectionOut(changed.connection, openConnectionAuth(config.masterKey, changed.connection)),
          ...(changed.jwksUrl ? { jwksUrl: changed.jwksUrl, publicJwks: changed.publicJwks } : {}),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/tenants/{slug}/connections/{id}',
      summary: 'Disable a connection: nothing more is delivered, pulled or received through it',
      request: { params: IdParams },
      responses: {
        204: { description: 'Disabled' },
        404: { description: 'No such tenant or live connection', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db } = c.get('services');
      const { slug, id } = c.req.valid('param');
      await disableConnection(c.get('services'), await requireTenant(db, slug), id, 'admin');
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/connections/{id}/promote',
      summary: 'Promote a tested sandbox connection to production (explicit, audited)',
      request: {
        params: IdParams,
        body: {
          required: true,
          ...json(
            z
              .object({
                tested: z
                  .literal(true)
                  .openapi({ description: 'You say the connection was tested in the sandbox' }),
                note: z.string().trim().max(1000).optional(),
              })
              .strict(),
          ),
        },
      },
      responses: {
        200: { description: 'Promoted', ...json(ConnectionOut) },
        404: { description: 'No such tenant or live connection', ...json(ErrorOut) },
        409: { description: 'Already in production', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db, config } = c.get('services');
      const { slug, id } = c.req.valid('param');
      const connection = await promoteConnection(
        c.get('services'),
        await requireTenant(db, slug),
        id,
        'admin',
        c.req.valid('json').note ?? null,
      );
      return c.json(connectionOut(connection, openConnectionAuth(config.masterKey, connection)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tenants/{slug}/deliveries',
      summary: "A tenant's deliveries, newest first (dead letters with status=dead_letter)",
      request: {
        params: SlugParam,
        query: z.object({
          status: z.enum(['pending', 'delivering', 'delivered', 'dead_letter']).optional(),
          reportId: z.string().uuid().optional(),
          connectionId: z.string().uuid().optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
          offset: z.coerce.number().int().min(0).default(0),
        }),
      },
      responses: {
        200: { description: 'Deliveries', ...json(z.object({ deliveries: z.array(DeliveryOut) })) },
        404: { description: 'No such tenant', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db } = c.get('services');
      const q = c.req.valid('query');
      const tenant = await requireTenant(db, c.req.valid('param').slug);
      const rows = await listDeliveries(db, tenant.id, {
        ...(q.status ? { status: [q.status] } : {}),
        ...(q.reportId ? { reportId: q.reportId } : {}),
        ...(q.connectionId ? { connectionId: q.connectionId } : {}),
        limit: q.limit,
        offset: q.offset,
      });
      return c.json(
        { deliveries: rows.map((d) => deliveryOut(d, d.connection_name, d.connection_format)) },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tenants/{slug}/deliveries/{id}',
      summary: 'One delivery with what was sent and what the destination answered',
      request: { params: IdParams },
      responses: {
        200: { description: 'The delivery', ...json(DeliveryDetail) },
        404: { description: 'No such tenant or delivery', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db } = c.get('services');
      const { slug, id } = c.req.valid('param');
      const tenant = await requireTenant(db, slug);
      const [row] = await listDeliveries(db, tenant.id, { limit: 1, offset: 0, ids: [id] });
      if (!row) throw new AppError('not_found', `tenant ${slug} has no delivery ${id}`);
      return c.json(
        {
          ...deliveryOut(row, row.connection_name, row.connection_format),
          payload: row.payload,
          response: row.response,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/deliveries/{id}/resend',
      summary: 'Send a dead-lettered (or delivered) report to its destination again',
      description:
        'The report is sent as it is now, with fresh attempts; the re-send is audited. A delivery still under way cannot be re-sent (409).',
      request: {
        params: IdParams,
        body: {
          required: false,
          ...json(z.object({ reason: z.string().trim().min(1).max(1000).optional() }).strict()),
        },
      },
      responses: {
        202: { description: 'Sending again', ...json(DeliveryOut) },
        404: { description: 'No such tenant or delivery', ...json(ErrorOut) },
        409: { description: 'The delivery is under way', ...json(ErrorOut) },
        503: { description: 'Temporal is not reachable; nothing changed', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const services = c.get('services');
      const { slug, id } = c.req.valid('param');
      const reason = (c.req.valid('json') as { reason?: string } | undefined)?.reason ?? null;
      const tenant = await requireTenant(services.db, slug);
      const row = await resendDelivery(services, tenant, id, 'admin', reason);
      const [named] = await listDeliveries(services.db, tenant.id, { limit: 1, offset: 0, ids: [id] });
      return c.json(deliveryOut(row, named?.connection_name ?? '', named?.connection_format ?? ''), 202);
    },
  );

  return app;
}

/**
 * The public keys of a SMART Backend Services connection whose key pair LabRelay generated: the
 * EHR fetches them to check LabRelay's client assertions. Public by design (JWKS URL).
 */
export function jwksRoutes() {
  const app = new OpenAPIHono<AppEnv>();
  app.get('/:id', async (c) => {
    const { db, config } = c.get('services');
    const id = c.req.param('id');
    const row = /^[0-9a-f-]{36}$/i.test(id)
      ? await db
          .selectFrom('connections')
          .selectAll()
          .where('id', '=', id)
          .where('disabled_at', 'is', null)
          .executeTakeFirst()
      : undefined;
    const auth = row ? openConnectionAuth(config.masterKey, row) : null;
    if (!row || auth?.type !== 'smart_backend') throw new AppError('not_found', `no key set ${id}`);
    c.header('Cache-Control', 'public, max-age=300');
    return c.json(publicJwks([auth.privateJwk]));
  });
  return app;
}

function connectionOut(c: Connection, auth: OutboundAuth | null) {
  return {
    id: c.id,
    name: c.name,
    direction: c.direction,
    format: c.format,
    environment: c.environment,
    endpoint: c.endpoint,
    hasAuth: c.auth_encrypted !== null,
    // The kind of authentication only: never a secret, a token or a key.
    authType: auth?.type ?? null,
    settings: (c.settings ?? {}) as Record<string, unknown>,
    mllp: c.mllp_sending_facility
      ? {
          sendingFacility: c.mllp_sending_facility,
          receivingFacility: c.mllp_receiving_facility,
          allowIps: c.mllp_allow_ips ?? [],
        }
      : null,
    createdAt: new Date(c.created_at).toISOString(),
    disabledAt: c.disabled_at ? new Date(c.disabled_at).toISOString() : null,
  };
}

function deliveryOut(d: Delivery, connection: string, format: string) {
  const iso = (t: Date | string | null) => (t ? new Date(t).toISOString() : null);
  return {
    id: d.id,
    reportId: d.report_id,
    connectionId: d.connection_id,
    connection,
    format,
    environment: d.environment,
    status: d.status as 'pending' | 'delivering' | 'delivered' | 'dead_letter',
    critical: d.critical,
    sends: d.sends,
    attempts: d.attempts,
    workflowId: d.workflow_id,
    remoteReference: d.remote_reference,
    lastError: d.last_error,
    deadLetterReason: d.dead_letter_reason,
    createdAt: iso(d.created_at)!,
    updatedAt: iso(d.updated_at)!,
    deliveredAt: iso(d.delivered_at),
    deadLetteredAt: iso(d.dead_lettered_at),
  };
}
