import { randomBytes, randomUUID } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import { importJWK } from 'jose';
import { generateSigningKey, publicJwks } from '../adapters/oauth/token-client.ts';
import { appendAudit } from '../db/audit.ts';
import { insertConnection } from '../db/connections.ts';
import type { Connection, Tenant } from '../db/schema.ts';
import { tenantScope } from '../db/tenant-scope.ts';
import type { OutboundAuth } from '../domain/outbound.ts';
import type { Services } from './env.ts';
import { AppError } from './errors.ts';
import { Ip } from './routes/openapi-common.ts';
import { sealConnectionAuth, sealConnectionSecret } from '../adapters/crypto/secret-box.ts';

// Connections: what the admin API and the console's onboarding both create, promote and disable.
// The schemas validate both (the API's JSON body, the console's form turned into the same shape).

export const Url = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'an http(s) URL');
export const SigningAlg = z.enum(['RS384', 'ES384']);

export const AuthBody = z
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

export const AckOutcome = z.enum(['delivered', 'retry', 'dead_letter']);
export const SettingsBody = z
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

export const EndpointBody = z.union([
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
]);

export const MllpBody = z
  .object({
    sendingFacility: z.string().trim().min(1),
    receivingFacility: z.string().trim().min(1).optional(),
    allowIps: z.array(Ip).optional(),
  })
  .strict();

export const ConnectionBody = z
  .object({
    name: z.string().trim().min(1).max(200),
    direction: z.enum(['inbound', 'outbound', 'pull']),
    format: z.enum(['hl7v2', 'fhir', 'csv', 'json', 'pdf', 'webhook']),
    environment: z.enum(['sandbox', 'production']),
    endpoint: EndpointBody.optional(),
    auth: AuthBody.optional(),
    settings: SettingsBody.optional(),
    mllp: MllpBody.optional(),
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

export type NewConnection = z.infer<typeof ConnectionBody>;

export interface CreatedConnection {
  connection: Connection;
  auth: OutboundAuth | null;
  /** A webhook destination's signing secret: shown once, never again. */
  signingSecret: string | null;
  /** SMART Backend Services with a generated key: where the EHR reads its public half. */
  jwksUrl: string | null;
  publicJwks: unknown;
}

/**
 * Creates a tenant's connection from a validated body: outbound secrets sealed under the master
 * key, a webhook signing secret or SMART key pair made when needed, and the creation audited.
 */
export async function createConnection(
  services: Pick<Services, 'db' | 'config'>,
  tenant: Tenant,
  body: NewConnection,
  actor: string,
): Promise<CreatedConnection> {
  const { db, config } = services;
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
      auth_encrypted: auth ? sealConnectionAuth(config.masterKey, id, auth) : null,
      secret_encrypted: signingSecret ? sealConnectionSecret(config.masterKey, id, signingSecret) : null,
      settings: JSON.stringify(body.settings ?? {}),
      mllp_sending_facility: body.mllp?.sendingFacility ?? null,
      mllp_receiving_facility: body.mllp?.receivingFacility ?? null,
      mllp_allow_ips: body.mllp?.allowIps ? JSON.stringify(body.mllp.allowIps) : null,
    });
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
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
  return {
    connection,
    auth,
    signingSecret,
    jwksUrl: publicKeys ? `${config.publicUrl}/v1/jwks/${id}` : null,
    publicJwks: publicKeys,
  };
}

export const ConnectionChange = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    endpoint: EndpointBody.optional(),
    auth: AuthBody.optional().openapi({
      description:
        'Replaces the outbound authentication (a new client secret, token or key); never returned.',
    }),
    settings: SettingsBody.optional().openapi({
      description: 'The settings given replace those of the same name',
    }),
    mllp: MllpBody.optional(),
  })
  .strict()
  .openapi('ConnectionChange');

export type ConnectionChangeBody = z.infer<typeof ConnectionChange>;

/**
 * Changes a live connection: its name, endpoint, outbound authentication (sealed again), settings or
 * MLLP routing. Its direction, format and environment stay (promotion is its own step). The result
 * must pass the same rules as a new connection; the change is audited by the names of the fields
 * changed, never their secrets. Deliveries and polls pick the change up at their next attempt.
 */
export async function updateConnection(
  services: Pick<Services, 'db' | 'config'>,
  tenant: Tenant,
  id: string,
  change: ConnectionChangeBody,
  actor: string,
): Promise<Omit<CreatedConnection, 'signingSecret'>> {
  const changed = (Object.keys(change) as (keyof ConnectionChangeBody)[]).filter(
    (k) => change[k] !== undefined,
  );
  if (changed.length === 0)
    throw new AppError('invalid_request', 'nothing to change: give name, endpoint, auth, settings or mllp');
  const { db, config } = services;
  const current = await tenantScope(db, tenant.id)
    .selectFrom('connections')
    .selectAll()
    .where('id', '=', id)
    .where('disabled_at', 'is', null)
    .executeTakeFirst();
  if (!current) throw new AppError('not_found', `tenant ${tenant.slug} has no live connection ${id}`);
  const settings = { ...(current.settings as Record<string, unknown>), ...change.settings };
  const mllp =
    change.mllp ??
    (current.mllp_sending_facility
      ? {
          sendingFacility: current.mllp_sending_facility,
          ...(current.mllp_receiving_facility ? { receivingFacility: current.mllp_receiving_facility } : {}),
          ...(current.mllp_allow_ips ? { allowIps: current.mllp_allow_ips } : {}),
        }
      : undefined);
  // The connection as it would be, checked by the rules of a new one (auth only when it changes).
  const checked = ConnectionBody.safeParse({
    name: change.name ?? current.name,
    direction: current.direction,
    format: current.format,
    environment: current.environment,
    ...((change.endpoint ?? current.endpoint) ? { endpoint: change.endpoint ?? current.endpoint } : {}),
    ...(change.auth ? { auth: change.auth } : {}),
    settings,
    ...(mllp ? { mllp } : {}),
  });
  if (!checked.success)
    throw new AppError(
      'invalid_request',
      checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
      checked.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  // Credentials kept for an old address would go to the new one: a new address takes them again.
  const where = (e: unknown) => {
    const x = e as { url?: string; host?: string; port?: number } | null;
    if (!x) return null;
    if (x.url) return new URL(x.url).origin;
    return `${x.host}:${x.port}`;
  };
  if (
    change.endpoint &&
    !change.auth &&
    current.auth_encrypted &&
    where(change.endpoint) !== where(current.endpoint)
  )
    throw new AppError(
      'invalid_request',
      'a new address takes its authentication again: give auth with the endpoint, so no stored secret goes to a new host',
      [{ path: 'auth', message: 'required when the endpoint moves to another host' }],
    );
  const { auth, publicKeys } = change.auth
    ? await outboundAuthOf(change.auth)
    : { auth: undefined, publicKeys: null };
  const connection = await db.transaction().execute(async (trx) => {
    // Changed by someone else since it was read: refused rather than merged over a stale read.
    const locked = await tenantScope(trx, tenant.id)
      .selectFrom('connections')
      .selectAll()
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (
      locked &&
      JSON.stringify([
        locked.name,
        locked.endpoint,
        locked.settings,
        locked.auth_encrypted,
        locked.mllp_sending_facility,
      ]) !==
        JSON.stringify([
          current.name,
          current.endpoint,
          current.settings,
          current.auth_encrypted,
          current.mllp_sending_facility,
        ])
    )
      throw new AppError(
        'conflict',
        `connection ${current.name} was changed meanwhile: read it again and retry`,
      );
    const updated = await tenantScope(trx, tenant.id)
      .updateTable('connections')
      .set({
        name: checked.data.name,
        endpoint: checked.data.endpoint ? JSON.stringify(checked.data.endpoint) : null,
        settings: JSON.stringify(checked.data.settings ?? {}),
        mllp_sending_facility: checked.data.mllp?.sendingFacility ?? null,
        mllp_receiving_facility: checked.data.mllp?.receivingFacility ?? null,
        mllp_allow_ips: checked.data.mllp?.allowIps ? JSON.stringify(checked.data.mllp.allowIps) : null,
        ...(auth !== undefined
          ? {
              auth_encrypted: auth ? sealConnectionAuth(config.masterKey, id, auth) : null,
            }
          : {}),
      })
      .where('id', '=', id)
      .where('disabled_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (!updated) throw new AppError('not_found', `tenant ${tenant.slug} has no live connection ${id}`);
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'connection.updated',
      subject: `connection/${id}`,
      details: {
        name: updated.name,
        changed,
        ...(change.auth ? { authType: auth?.type ?? null } : {}),
      },
    });
    return updated;
  });
  return {
    connection,
    auth: auth ?? null,
    jwksUrl: publicKeys ? `${config.publicUrl}/v1/jwks/${id}` : null,
    publicJwks: publicKeys,
  };
}

/** Disables a connection: nothing more is delivered, pulled or received through it. Audited. */
export async function disableConnection(
  services: Pick<Services, 'db'>,
  tenant: Tenant,
  id: string,
  actor: string,
): Promise<void> {
  await services.db.transaction().execute(async (trx) => {
    const updated = await tenantScope(trx, tenant.id)
      .updateTable('connections')
      .set({ disabled_at: new Date() })
      .where('id', '=', id)
      .where('disabled_at', 'is', null)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0)
      throw new AppError('not_found', `tenant ${tenant.slug} has no live connection ${id}`);
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'connection.disabled',
      subject: `connection/${id}`,
    });
  });
}

/**
 * Moves a tested sandbox connection to production: explicit (the caller says it was tested), and
 * audited with who did it. From then on it carries production results only.
 */
export async function promoteConnection(
  services: Pick<Services, 'db'>,
  tenant: Tenant,
  id: string,
  actor: string,
  note: string | null,
): Promise<Connection> {
  return services.db.transaction().execute(async (trx) => {
    const connection = await tenantScope(trx, tenant.id)
      .selectFrom('connections')
      .selectAll()
      .where('id', '=', id)
      .where('disabled_at', 'is', null)
      .forUpdate()
      .executeTakeFirst();
    if (!connection) throw new AppError('not_found', `tenant ${tenant.slug} has no live connection ${id}`);
    if (connection.environment === 'production')
      throw new AppError('conflict', `connection ${connection.name} is already in production`);
    await tenantScope(trx, tenant.id)
      .updateTable('connections')
      .set({ environment: 'production' })
      .where('id', '=', id)
      .execute();
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'connection.promoted',
      subject: `connection/${id}`,
      details: { name: connection.name, from: 'sandbox', to: 'production', note },
    });
    return { ...connection, environment: 'production' };
  });
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
