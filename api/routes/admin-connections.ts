import { randomBytes, randomUUID } from 'node:crypto';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { importJWK } from 'jose';
import { generateSigningKey, publicJwks } from '../../adapters/oauth/token-client.ts';
import { appendAudit } from '../../db/audit.ts';
import { insertConnection, listConnections } from '../../db/connections.ts';
import { listDeliveries } from '../../db/deliveries.ts';
import type { Connection, Delivery } from '../../db/schema.ts';
import { tenantScope } from '../../db/tenant-scope.ts';
import type { OutboundAuth } from '../../domain/outbound.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { resendDelivery } from '../deliveries.ts';
import { adminAuth } from '../middleware/admin-auth.ts';
import { openSecret, sealSecret } from '../security/secret-box.ts';
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

const Url = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'an http(s) URL');
const SigningAlg = z.enum(['RS384', 'ES384']);

const AuthBody = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('none') }).strict(),
    z.object({ type: z.literal('bearer'), token: z.string().min(1) }).strict(),
    z.object({ type: z.literal('basic'), username: z.string().min(1), password: z.string() }).strict(),
    z
      .object({
        type: z.literal('client_credentials'),
        tokenUrl: Url,
        clientId: z.string().min(1),
        clientSecret: z.string().min(1),
        method: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
        scope: z.string().min(1).optional(),
      })
      .strict(),
    z
      .object({
        type: z.literal('smart_backend'),
        tokenUrl: Url,
        clientId: z.string().min(1),
        scope: z.string().min(1).optional(),
        privateJwk: z.record(z.string(), z.unknown()).optional().openapi({
          description: 'A private JWK with kid and alg RS384 or ES384; or ask LabRelay to generate one.',
        }),
        generateKey: SigningAlg.optional().openapi({
          description: "LabRelay generates the key pair; register the answer's jwksUrl with the EHR.",
        }),
      })
      .strict()
      .refine((a) => (a.privateJwk === undefined) !== (a.generateKey === undefined), {
        message: 'give either privateJwk or generateKey',
        path: ['privateJwk'],
      }),
    z
      .object({
        type: z.literal('smart_launch'),
        clientId: z.string().min(1),
        clientSecret: z.string().min(1).optional(),
        scope: z.string().min(1).optional(),
      })
      .strict(),
  ])
  .openapi({ description: 'Outbound authentication; encrypted at rest, never returned.' });

const AckOutcome = z.enum(['delivered', 'retry', 'dead_letter']);
const SettingsBody = z
  .object({
    onApplicationError: AckOutcome.optional().openapi({ description: 'HL7 MSA-1 AE means (default retry)' }),
    onApplicationReject: AckOutcome.optional().openapi({
      description: 'HL7 MSA-1 AR means (default dead_letter)',
    }),
    maxAttempts: z.number().int().min(1).max(100).optional().openapi({ description: 'Default 8' }),
    timeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(120)
      .optional()
      .openapi({ description: 'Seconds one attempt waits for the answer (HTTP or ACK); default 30' }),
    sendingApplication: z.string().min(1).max(180).optional(),
    sendingFacility: z.string().min(1).max(180).optional(),
    receivingApplication: z.string().min(1).max(180).optional(),
    receivingFacility: z.string().min(1).max(180).optional(),
    pollIntervalSeconds: z
      .number()
      .int()
      .min(5)
      .max(86_400)
      .optional()
      .openapi({ description: 'Pull; default 60' }),
    pullQuery: z
      .string()
      .max(1000)
      .regex(/^[^?#]*$/, 'search parameters only, e.g. status=active&performer=Organization/lab')
      .optional(),
  })
  .strict();

const ConnectionBody = z
  .object({
    name: z.string().trim().min(1).max(200),
    direction: z.enum(['inbound', 'outbound', 'pull']),
    format: z.enum(['hl7v2', 'fhir', 'csv', 'json', 'pdf', 'webhook']),
    environment: z.enum(['sandbox', 'production']),
    endpoint: z
      .union([
        z.object({ url: Url }).strict(),
        z
          .object({
            host: z.string().min(1),
            port: z.number().int().min(1).max(65535),
            tls: z
              .object({
                ca: z
                  .string()
                  .regex(/-----BEGIN CERTIFICATE-----/, 'a PEM certificate')
                  .max(100_000)
                  .optional()
                  .openapi({
                    description: 'PEM of the CA (or self-signed certificate) to trust; default: system CAs',
                  }),
              })
              .strict()
              .optional()
              .openapi({ description: 'MLLP over TLS to this destination' }),
          })
          .strict(),
      ])
      .optional(),
    auth: AuthBody.optional(),
    settings: SettingsBody.optional(),
    mllp: z
      .object({
        sendingFacility: z.string().trim().min(1),
        receivingFacility: z.string().trim().min(1).optional(),
        allowIps: z.array(Ip).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (v.mllp && !(v.direction === 'inbound' && v.format === 'hl7v2'))
      issue('mllp', 'mllp settings belong to an inbound hl7v2 connection');
    if ((v.direction === 'outbound' || v.direction === 'pull') && !v.endpoint)
      issue('endpoint', `an ${v.direction} connection needs an endpoint`);
    const hasUrl = !!v.endpoint && 'url' in v.endpoint;
    if (v.direction === 'outbound' && v.endpoint) {
      if (v.format === 'hl7v2' && hasUrl)
        issue('endpoint', 'an hl7v2 destination is reached over MLLP: {host, port}');
      else if ((v.format === 'fhir' || v.format === 'webhook' || v.format === 'json') && !hasUrl)
        issue('endpoint', `a ${v.format} destination needs {url}`);
      else if (!['fhir', 'hl7v2', 'webhook', 'json'].includes(v.format))
        issue('format', 'results are delivered as fhir, hl7v2 (MLLP), webhook or json');
    }
    if (v.direction === 'pull' && (v.format !== 'fhir' || !hasUrl))
      issue('format', 'a pull connection reads a FHIR server: format fhir with endpoint {url}');
    if (v.auth?.type === 'smart_launch' && v.direction !== 'pull')
      issue('auth', 'smart_launch belongs to a pull connection (the EHR LabRelay reads from)');
    if (
      v.endpoint &&
      'tls' in v.endpoint &&
      v.endpoint.tls &&
      !(v.direction === 'outbound' && v.format === 'hl7v2')
    )
      issue('endpoint', 'tls belongs to an outbound hl7v2 (MLLP) destination');
    if (v.auth && v.direction === 'inbound')
      issue('auth', 'an inbound connection authenticates with tenant credentials');
  })
  .openapi('NewConnection');

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
      const { db, config } = c.get('services');
      const { slug } = c.req.valid('param');
      const body = c.req.valid('json');
      const tenant = await requireTenant(db, slug);
      const id = randomUUID();
      const { auth, publicKeys } = await outboundAuthOf(body.auth);
      const signingSecret =
        body.direction === 'outbound' && (body.format === 'webhook' || body.format === 'json')
          ? `whsec_${randomBytes(32).toString('base64url')}`
          : null;
      const connection = await db.transaction().execute(async (trx) => {
        const created = await insertConnection(trx, {
          id,
          tenant_id: tenant.id,
          name: body.name,
          direction: body.direction,
          format: body.format,
          environment: body.environment,
          endpoint: body.endpoint ? JSON.stringify(body.endpoint) : null,
          auth_encrypted: auth
            ? sealSecret(config.masterKey, JSON.stringify(auth), `connection/${id}`)
            : null,
          secret_encrypted: signingSecret
            ? sealSecret(config.masterKey, signingSecret, `connection/${id}/secret`)
            : null,
          settings: JSON.stringify(body.settings ?? {}),
          mllp_sending_facility: body.mllp?.sendingFacility ?? null,
          mllp_receiving_facility: body.mllp?.receivingFacility ?? null,
          mllp_allow_ips: body.mllp?.allowIps ? JSON.stringify(body.mllp.allowIps) : null,
        });
        await appendAudit(trx, {
          tenantId: tenant.id,
          actor: 'admin',
          action: 'connection.created',
          subject: `connection/${id}`,
          details: {
            name: body.name,
            direction: body.direction,
            format: body.format,
            environment: body.environment,
            authType: auth?.type ?? null,
          },
        });
        return created;
      });
      return c.json(
        {
          ...connectionOut(connection, auth),
          ...(signingSecret ? { signingSecret } : {}),
          ...(publicKeys ? { jwksUrl: `${config.publicUrl}/v1/jwks/${id}`, publicJwks: publicKeys } : {}),
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
        { connections: connections.map((row) => connectionOut(row, sealedAuth(config.masterKey, row))) },
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
      const tenant = await requireTenant(db, slug);
      await db.transaction().execute(async (trx) => {
        const updated = await tenantScope(trx, tenant.id)
          .updateTable('connections')
          .set({ disabled_at: new Date() })
          .where('id', '=', id)
          .where('disabled_at', 'is', null)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) === 0)
          throw new AppError('not_found', `tenant ${slug} has no live connection ${id}`);
        await appendAudit(trx, {
          tenantId: tenant.id,
          actor: 'admin',
          action: 'connection.disabled',
          subject: `connection/${id}`,
        });
      });
      return c.body(null, 204);
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
    const auth = row ? sealedAuth(config.masterKey, row) : null;
    if (!row || auth?.type !== 'smart_backend') throw new AppError('not_found', `no key set ${id}`);
    c.header('Cache-Control', 'public, max-age=300');
    return c.json(publicJwks([auth.privateJwk]));
  });
  return app;
}

/** The auth to seal: a generated key pair replaces `generateKey`; a given private key is checked. */
async function outboundAuthOf(
  body: z.infer<typeof AuthBody> | undefined,
): Promise<{ auth: OutboundAuth | null; publicKeys: unknown }> {
  if (!body || body.type === 'none') return { auth: null, publicKeys: null };
  if (body.type !== 'smart_backend') return { auth: body, publicKeys: null };
  const { generateKey, privateJwk: given, ...rest } = body;
  if (generateKey) {
    const { privateJwk } = await generateSigningKey(generateKey);
    return { auth: { ...rest, privateJwk }, publicKeys: publicJwks([privateJwk]) };
  }
  const jwk = given!;
  const invalid = (message: string) =>
    new AppError('invalid_request', message, [{ path: 'auth.privateJwk', message }]);
  if (jwk.alg !== 'RS384' && jwk.alg !== 'ES384') throw invalid('the private key needs alg RS384 or ES384');
  if (typeof jwk.kid !== 'string' || !jwk.kid) throw invalid('the private key needs a kid');
  if (typeof jwk.d !== 'string') throw invalid('the key is not a private key (no "d")');
  try {
    await importJWK(jwk, jwk.alg);
  } catch (error) {
    throw invalid(`the private key cannot be used: ${(error as Error).message}`);
  }
  return { auth: { ...rest, privateJwk: jwk }, publicKeys: publicJwks([jwk]) };
}

function sealedAuth(masterKey: Buffer, row: Connection): OutboundAuth | null {
  if (!row.auth_encrypted) return null;
  return JSON.parse(openSecret(masterKey, row.auth_encrypted, `connection/${row.id}`)) as OutboundAuth;
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
