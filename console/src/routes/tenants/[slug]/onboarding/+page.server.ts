import { fail, redirect } from '@sveltejs/kit';
import {
  ConnectionBody,
  ConnectionChange,
  createConnection,
  disableConnection,
  promoteConnection,
  updateConnection,
} from '../../../../../../api/connections.ts';
import { openConnectionAuth } from '../../../../../../adapters/crypto/secret-box.ts';
import { AppError } from '../../../../../../api/errors.ts';
import {
  connectionTestSteps,
  handoffSamples,
  startConnectionTest,
  type TestStep,
} from '../../../../../../api/onboarding.ts';
import { SCOPES } from '../../../../../../api/security/keys.ts';
import {
  issueTenantCredential,
  revokeTenantCredential,
  rotateApiKey,
  rotateSigningSecret,
} from '../../../../../../api/tenant-credentials.ts';
import { listConnections } from '../../../../../../db/connections.ts';
import type { Connection, Tenant } from '../../../../../../db/schema.ts';
import { SMART_LAUNCH_SCOPE, type OutboundAuth } from '../../../../../../domain/outbound.ts';
import { tenantScope } from '../../../../../../db/tenant-scope.ts';
import { actorOf, tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { Actions, PageServerLoad } from './$types';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The tenant's connections by direction, its credentials (never their secrets) and a running test. */
export const load = (async ({ locals, params, url }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'configure');
  const { db, app, endpoints } = services();
  const [connections, credentials] = await Promise.all([
    listConnections(db, tenant.id),
    tenantScope(db, tenant.id)
      .selectFrom('credentials')
      .select(['id', 'name', 'key_prefix', 'scopes', 'created_at', 'revoked_at', 'signing_salts'])
      .orderBy('created_at')
      .execute(),
  ]);
  const testId = url.searchParams.get('test');
  const testConnection = url.searchParams.get('connection');
  let test: { messageId: string; connectionId: string | null; steps: TestStep[]; finished: boolean } | null =
    null;
  if (testId && UUID.test(testId)) {
    const connectionId = testConnection && UUID.test(testConnection) ? testConnection : null;
    try {
      test = {
        messageId: testId,
        connectionId,
        ...(await connectionTestSteps(app, tenant, testId, connectionId)),
      };
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
    }
  }
  const now = Date.now();
  return {
    base: `${endpoints().publicUrl}/v1/t/${tenant.slug}`,
    smart: {
      launchUrl: `${endpoints().publicUrl}/smart/${tenant.slug}/launch`,
      callbackUrl: `${endpoints().publicUrl}/smart/${tenant.slug}/callback`,
      scope: SMART_LAUNCH_SCOPE,
    },
    connections: connections.map((c) => {
      const endpoint = c.endpoint as { url?: string; host?: string; port?: number } | null;
      const settings = c.settings as Record<string, unknown>;
      return {
        id: c.id,
        name: c.name,
        direction: c.direction,
        format: c.format,
        environment: c.environment,
        endpoint: c.endpoint ? describeEndpoint(c.endpoint) : null,
        mllp: c.mllp_sending_facility,
        disabled: c.disabled_at !== null,
        // What the change form starts from; secrets are never sent to the page.
        edit: {
          url: endpoint?.url ?? null,
          host: endpoint?.host ?? null,
          port: endpoint?.port ?? null,
          receivingFacility: c.mllp_receiving_facility,
          allowIps: (c.mllp_allow_ips ?? []).join(', '),
          timeoutSeconds: (settings.timeoutSeconds as number | undefined) ?? null,
          maxAttempts: (settings.maxAttempts as number | undefined) ?? null,
          pollIntervalSeconds: (settings.pollIntervalSeconds as number | undefined) ?? null,
          secret: SECRET_LABEL[authOf(c)?.type ?? ''] ?? null,
        },
      };
    }),
    credentials: credentials.map((c) => {
      const ends = c.revoked_at ? new Date(c.revoked_at).getTime() : null;
      return {
        id: c.id,
        name: c.name,
        keyPrefix: c.key_prefix,
        environment: c.key_prefix.startsWith('lr_test_') ? 'sandbox' : 'production',
        scopes: c.scopes,
        signed: c.signing_salts.length > 0,
        createdAt: new Date(c.created_at).toISOString(),
        state: ends === null ? 'active' : ends > now ? `ends ${new Date(ends).toISOString()}` : 'revoked',
        live: ends === null || ends > now,
      };
    }),
    scopes: [...SCOPES],
    test,
  };
}) satisfies PageServerLoad;

function describeEndpoint(endpoint: unknown): string {
  const e = endpoint as { url?: string; host?: string; port?: number };
  if (e.url) {
    try {
      const u = new URL(e.url);
      return `${u.origin}${u.pathname}`;
    } catch {
      return 'an unreadable URL';
    }
  }
  return `${e.host}:${e.port}`;
}

/** The secret a connection's authentication carries, which the change form can replace. */
const SECRET_LABEL: Record<string, string> = {
  client_credentials: 'client secret',
  smart_launch: 'client secret',
  bearer: 'bearer token',
  basic: 'password',
};

function authOf(c: Connection): OutboundAuth | null {
  return openConnectionAuth(services().app.config.masterKey, c);
}

type Form = FormData;
const text = (form: Form, name: string) => String(form.get(name) ?? '').trim();
const optional = (form: Form, name: string) => text(form, name) || undefined;
const list = (form: Form, name: string) =>
  text(form, name)
    .split(/[\s,]+/)
    .filter(Boolean);

/** The form of one direction as the admin API's connection body, for the same validation. */
function connectionBodyOf(direction: string, form: Form): Record<string, unknown> {
  const base = { name: text(form, 'name'), direction, environment: text(form, 'environment') || 'sandbox' };
  if (direction === 'inbound') {
    const format = text(form, 'format') || 'hl7v2';
    const facility = optional(form, 'sendingFacility');
    return {
      ...base,
      format,
      ...(facility
        ? {
            mllp: {
              sendingFacility: facility,
              ...(optional(form, 'receivingFacility')
                ? { receivingFacility: text(form, 'receivingFacility') }
                : {}),
              ...(list(form, 'allowIps').length ? { allowIps: list(form, 'allowIps') } : {}),
            },
          }
        : {}),
    };
  }
  const authType = text(form, 'authType') || 'none';
  const auth =
    authType === 'bearer'
      ? { type: 'bearer', token: text(form, 'token') }
      : authType === 'basic'
        ? { type: 'basic', username: text(form, 'username'), password: String(form.get('password') ?? '') }
        : authType === 'client_credentials'
          ? {
              type: 'client_credentials',
              tokenUrl: text(form, 'tokenUrl'),
              clientId: text(form, 'clientId'),
              clientSecret: String(form.get('clientSecret') ?? ''),
              ...(optional(form, 'scope') ? { scope: text(form, 'scope') } : {}),
            }
          : authType === 'smart_launch'
            ? {
                type: 'smart_launch',
                clientId: text(form, 'clientId'),
                ...(optional(form, 'clientSecret') ? { clientSecret: String(form.get('clientSecret')) } : {}),
                ...(optional(form, 'scope') ? { scope: text(form, 'scope') } : {}),
              }
            : { type: 'none' };
  if (direction === 'pull') {
    const interval = Number(text(form, 'pollIntervalSeconds') || '60');
    return {
      ...base,
      format: 'fhir',
      endpoint: { url: text(form, 'url') },
      auth,
      settings: { pollIntervalSeconds: interval },
    };
  }
  const format = text(form, 'format') || 'fhir';
  return {
    ...base,
    format,
    endpoint:
      format === 'hl7v2'
        ? { host: text(form, 'host'), port: Number(text(form, 'port')) }
        : { url: text(form, 'url') },
    auth,
  };
}

function failed(e: unknown, extra: Record<string, unknown> = {}) {
  if (e instanceof AppError) return fail(e.status, { message: e.message, ...extra });
  throw e;
}

async function addConnection(
  direction: 'inbound' | 'pull' | 'outbound',
  locals: App.Locals,
  slug: string,
  request: Request,
) {
  const { tenant, user } = await tenantFor(locals, slug, 'configure');
  const form = await request.formData();
  const parsed = ConnectionBody.safeParse(connectionBodyOf(direction, form));
  if (!parsed.success)
    return fail(400, {
      direction,
      message: `The connection was not created: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'form'}: ${i.message}`).join('; ')}.`,
      errors: Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.') || 'form', i.message])),
    });
  const { app, endpoints } = services();
  try {
    const created = await createConnection(app, tenant, parsed.data, actorOf(user));
    let handoff = null;
    if (direction === 'inbound' && form.get('issueCredential') === 'on') {
      const scopes =
        parsed.data.format === 'fhir'
          ? ['results:write', 'orders:write', 'patients:write']
          : ['results:write', 'orders:write'];
      handoff = await credentialHandoff(tenant, user, {
        name: parsed.data.name,
        scopes,
        environment: parsed.data.environment,
        signed: true,
      });
    }
    return {
      direction,
      created: { id: created.connection.id, name: created.connection.name },
      handoff,
      webhookSecret: created.signingSecret,
      jwksUrl: created.jwksUrl,
      base: `${endpoints().publicUrl}/v1/t/${tenant.slug}`,
    };
  } catch (e) {
    return failed(e, { direction });
  }
}

async function credentialHandoff(
  tenant: Tenant,
  user: NonNullable<App.Locals['user']>,
  input: { name: string; scopes: string[]; environment: 'sandbox' | 'production'; signed: boolean },
) {
  const { app, endpoints } = services();
  const issued = await issueTenantCredential(app, tenant, input, actorOf(user));
  const baseUrl = `${endpoints().publicUrl}/v1/t/${tenant.slug}`;
  return {
    name: input.name,
    environment: input.environment,
    apiKey: issued.apiKey,
    signingSecret: issued.signingSecret,
    samples: handoffSamples({
      baseUrl,
      slug: tenant.slug,
      apiKey: issued.apiKey,
      signingSecret: issued.signingSecret,
    }),
  };
}

/**
 * What the change form asks of a connection, as the admin API's change body: only the fields that
 * differ from the connection as stored. A new secret replaces the old one inside the same
 * authentication (the hospital rotated its client secret).
 */
function changeOf(c: Connection, form: Form): Record<string, unknown> {
  const change: Record<string, unknown> = {};
  const name = text(form, 'name');
  if (name && name !== c.name) change.name = name;
  const endpoint = c.endpoint as { url?: string; host?: string; port?: number; tls?: unknown } | null;
  if (endpoint?.url !== undefined) {
    const url = text(form, 'url');
    if (url && url !== endpoint.url) change.endpoint = { url };
  } else if (endpoint?.host !== undefined) {
    const host = text(form, 'host') || endpoint.host;
    const port = text(form, 'port') ? Number(text(form, 'port')) : endpoint.port;
    if (host !== endpoint.host || port !== endpoint.port)
      change.endpoint = { host, port, ...(endpoint.tls ? { tls: endpoint.tls } : {}) };
  }
  if (c.mllp_sending_facility !== null) {
    const mllp = {
      sendingFacility: text(form, 'sendingFacility') || c.mllp_sending_facility,
      receivingFacility: optional(form, 'receivingFacility'),
      allowIps: list(form, 'allowIps'),
    };
    if (
      mllp.sendingFacility !== c.mllp_sending_facility ||
      (mllp.receivingFacility ?? null) !== c.mllp_receiving_facility ||
      mllp.allowIps.join(',') !== (c.mllp_allow_ips ?? []).join(',')
    )
      change.mllp = {
        sendingFacility: mllp.sendingFacility,
        ...(mllp.receivingFacility ? { receivingFacility: mllp.receivingFacility } : {}),
        ...(mllp.allowIps.length ? { allowIps: mllp.allowIps } : {}),
      };
  }
  const settings: Record<string, number> = {};
  const stored = c.settings as Record<string, unknown>;
  for (const key of ['timeoutSeconds', 'maxAttempts', 'pollIntervalSeconds']) {
    const value = text(form, key);
    if (value && Number(value) !== stored[key]) settings[key] = Number(value);
  }
  if (Object.keys(settings).length > 0) change.settings = settings;
  const secret = String(form.get('secret') ?? '');
  const auth = secret ? authOf(c) : null;
  if (auth?.type === 'client_credentials' || auth?.type === 'smart_launch')
    change.auth = { ...auth, clientSecret: secret };
  else if (auth?.type === 'bearer') change.auth = { ...auth, token: secret };
  else if (auth?.type === 'basic') change.auth = { ...auth, password: secret };
  return change;
}

const idOf = (form: Form) => {
  const id = text(form, 'id');
  return UUID.test(id) ? id : null;
};

export const actions = {
  addInbound: ({ locals, params, request }) => addConnection('inbound', locals, params.slug, request),
  addPull: ({ locals, params, request }) => addConnection('pull', locals, params.slug, request),
  addOutbound: ({ locals, params, request }) => addConnection('outbound', locals, params.slug, request),

  issue: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const scopes = form.getAll('scopes').map(String);
    const name = text(form, 'name');
    if (!name || scopes.length === 0 || scopes.some((s) => !(SCOPES as readonly string[]).includes(s)))
      return fail(400, { message: 'Give the credential a name and at least one scope.' });
    try {
      return {
        handoff: await credentialHandoff(tenant, user, {
          name,
          scopes,
          environment: text(form, 'environment') === 'production' ? 'production' : 'sandbox',
          signed: form.get('signed') === 'on',
        }),
      };
    } catch (e) {
      return failed(e);
    }
  },

  revoke: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const id = idOf(await request.formData());
    if (!id) return fail(400, { message: 'No credential was named.' });
    try {
      await revokeTenantCredential(services().app, tenant, id, actorOf(user));
      return { done: 'The credential was revoked: its key stopped working now.' };
    } catch (e) {
      return failed(e);
    }
  },

  rotate: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const id = idOf(form);
    if (!id) return fail(400, { message: 'No credential was named.' });
    const overlap = Number(text(form, 'overlapMinutes') || '60');
    try {
      const rotated = await rotateApiKey(services().app, tenant, id, overlap, actorOf(user));
      const row = await tenantScope(services().db, tenant.id)
        .selectFrom('credentials')
        .select(['name', 'key_prefix'])
        .where('id', '=', rotated.id)
        .executeTakeFirstOrThrow();
      const baseUrl = `${services().endpoints().publicUrl}/v1/t/${tenant.slug}`;
      return {
        done: `A new key replaces it; the old key keeps working until ${rotated.previousEndsAt}.`,
        handoff: {
          name: row.name,
          environment: row.key_prefix.startsWith('lr_test_') ? 'sandbox' : 'production',
          apiKey: rotated.apiKey,
          signingSecret: rotated.signingSecret,
          samples: handoffSamples({
            baseUrl,
            slug: tenant.slug,
            apiKey: rotated.apiKey,
            signingSecret: rotated.signingSecret,
          }),
        },
      };
    } catch (e) {
      return failed(e);
    }
  },

  rotateSecret: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const id = idOf(form);
    if (!id) return fail(400, { message: 'No credential was named.' });
    try {
      const rotated = await rotateSigningSecret(
        services().app,
        tenant,
        id,
        Number(text(form, 'overlapMinutes') || '60'),
        actorOf(user),
      );
      return {
        done: rotated.previousEndsAt
          ? `A new signing secret; the old one keeps verifying until ${rotated.previousEndsAt}.`
          : 'A new signing secret; the old one stopped verifying now.',
        newSecret: rotated.signingSecret,
      };
    } catch (e) {
      return failed(e);
    }
  },

  promote: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const id = idOf(form);
    if (!id) return fail(400, { message: 'No connection was named.' });
    if (form.get('tested') !== 'on')
      return fail(400, {
        message: 'Confirm that the connection was tested in the sandbox before promoting it.',
        id,
      });
    try {
      const promoted = await promoteConnection(
        services().app,
        tenant,
        id,
        actorOf(user),
        optional(form, 'note') ?? null,
      );
      return {
        done: `${promoted.name} is in production now. Results sent with a sandbox key (lr_test_) still go to the sandbox only: issue a production key for the hospital's live system.`,
      };
    } catch (e) {
      return failed(e);
    }
  },

  /** Changes a connection in place (the admin API's PATCH); the admin role is checked again here. */
  change: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const id = idOf(form);
    if (!id) return fail(400, { message: 'No connection was named.' });
    const { app } = services();
    const current = await tenantScope(app.db, tenant.id)
      .selectFrom('connections')
      .selectAll()
      .where('id', '=', id)
      .where('disabled_at', 'is', null)
      .executeTakeFirst();
    if (!current) return fail(404, { message: 'There is no such live connection.', changeOf: id });
    const parsed = ConnectionChange.safeParse(changeOf(current, form));
    if (!parsed.success)
      return fail(400, {
        changeOf: id,
        message: `${current.name} was not changed: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      });
    if (Object.keys(parsed.data).length === 0)
      return fail(400, { changeOf: id, message: `Nothing was changed in ${current.name}.` });
    try {
      const changed = await updateConnection(app, tenant, id, parsed.data, actorOf(user));
      return { done: `${changed.connection.name} was changed: ${Object.keys(parsed.data).join(', ')}.` };
    } catch (e) {
      return failed(e, { changeOf: id });
    }
  },

  disable: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const id = idOf(await request.formData());
    if (!id) return fail(400, { message: 'No connection was named.' });
    try {
      await disableConnection(services().app, tenant, id, actorOf(user));
      return { done: 'The connection was disabled.' };
    } catch (e) {
      return failed(e);
    }
  },

  test: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const id = idOf(await request.formData());
    if (!id) return fail(400, { message: 'No connection was named.' });
    const { app, endpoints } = services();
    let started;
    try {
      started = await startConnectionTest(app, endpoints().selfUrl, tenant, id, actorOf(user));
    } catch (e) {
      return failed(e, { testOf: id });
    }
    if ('steps' in started) return { testOf: id, pullSteps: started.steps };
    redirect(
      303,
      `/tenants/${tenant.slug}/onboarding?test=${started.messageId}&connection=${id}#test-heading`,
    );
  },
} satisfies Actions;
