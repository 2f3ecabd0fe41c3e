import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { inject } from 'vitest';
import { pino } from 'pino';
import { startLabRelay, type LabRelay, type Role } from '../../api/runtime.ts';
import { createTestDatabase } from './postgres.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';
/** The console's first administrator in tests (LABRELAY_ADMIN_EMAIL / LABRELAY_ADMIN_PASSWORD). */
export const ADMIN_EMAIL = 'admin@labrelay.test';
export const ADMIN_PASSWORD = 'correct horse battery staple';
export type DatabaseChoice = 'pglite' | 'postgres';

export interface TestLabRelay {
  labrelay: LabRelay;
  baseUrl: string;
  mllpPort: number;
  databaseUrl: string | undefined;
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/** The environment a test LabRelay runs with: the shared Temporal server, its own task queue and data. */
export async function testEnv(
  database: DatabaseChoice,
  extra: NodeJS.ProcessEnv = {},
): Promise<NodeJS.ProcessEnv> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'labrelay-test-'));
  return {
    PORT: '0',
    MLLP_PORT: '0',
    LABRELAY_DATA_DIR: dataDir,
    LABRELAY_ADMIN_TOKEN: ADMIN_TOKEN,
    LABRELAY_ADMIN_EMAIL: ADMIN_EMAIL,
    LABRELAY_ADMIN_PASSWORD: ADMIN_PASSWORD,
    LABRELAY_MASTER_KEY: 'a'.repeat(64),
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    TEMPORAL_NAMESPACE: inject('temporalNamespace'),
    LABRELAY_TASK_QUEUE: `test-${randomUUID()}`,
    ...(database === 'postgres'
      ? { DATABASE_URL: await createTestDatabase(inject('postgresAdminUrl')) }
      : {}),
    ...extra,
  };
}

/** Starts a whole LabRelay (API, MLLP, relay and worker) in this process against real servers. */
export async function startTestLabRelay(
  database: DatabaseChoice,
  options: { role?: Role; env?: NodeJS.ProcessEnv; console?: boolean; pullTickMs?: number } = {},
): Promise<TestLabRelay> {
  const env = options.env ?? (await testEnv(database));
  const labrelay = await startLabRelay({
    role: options.role ?? 'all',
    env,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    console: options.console ?? false,
    relayIntervalMs: 500,
    ...(options.pullTickMs ? { pullTickMs: options.pullTickMs } : {}),
  });
  return {
    labrelay,
    baseUrl: `http://127.0.0.1:${labrelay.httpPort}`,
    mllpPort: labrelay.mllpPort ?? 0,
    databaseUrl: env.DATABASE_URL,
    env,
    async stop() {
      await labrelay.stop();
      rmSync(env.LABRELAY_DATA_DIR!, { recursive: true, force: true });
    },
  };
}

export interface TenantCredential {
  slug: string;
  tenantId: string;
  credentialId: string;
  apiKey: string;
  signingSecret: string | null;
}

async function adminCall(
  baseUrl: string,
  method: string,
  pathname: string,
  body?: unknown,
): Promise<Response> {
  return fetch(`${baseUrl}${pathname}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

export async function admin<T = unknown>(
  baseUrl: string,
  method: string,
  pathname: string,
  body?: unknown,
  expectStatus = 201,
): Promise<T> {
  const response = await adminCall(baseUrl, method, pathname, body);
  const text = await response.text();
  if (response.status !== expectStatus)
    throw new Error(`${method} ${pathname} answered ${response.status}: ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Creates a tenant (unless it exists) and a credential with the given scopes, through the admin API. */
export async function createTenantWithCredential(
  baseUrl: string,
  slug: string,
  scopes: string[] = ['results:write', 'results:read', 'patients:read', 'orders:write'],
  signed = true,
): Promise<TenantCredential> {
  const tenants = await admin<{ tenants: { id: string; slug: string }[] }>(
    baseUrl,
    'GET',
    '/v1/admin/tenants',
    undefined,
    200,
  );
  const tenant =
    tenants.tenants.find((t) => t.slug === slug) ??
    (await admin<{ id: string }>(baseUrl, 'POST', '/v1/admin/tenants', { slug, name: `Tenant ${slug}` }));
  const credential = await admin<{ id: string; apiKey: string; signingSecret: string | null }>(
    baseUrl,
    'POST',
    `/v1/admin/tenants/${slug}/credentials`,
    {
      name: 'test',
      scopes,
      signed,
    },
  );
  return {
    slug,
    tenantId: tenant.id,
    credentialId: credential.id,
    apiKey: credential.apiKey,
    signingSecret: credential.signingSecret,
  };
}

export function signature(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Posts an HL7 message as a sender would: API key, signature when the credential has a secret. */
export async function postHl7(
  baseUrl: string,
  cred: TenantCredential,
  body: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${baseUrl}/v1/t/${cred.slug}/hl7`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${cred.apiKey}`,
      'content-type': 'application/hl7-v2',
      ...(cred.signingSecret ? { 'labrelay-signature': signature(cred.signingSecret, body) } : {}),
      ...headers,
    },
    body,
  });
}

export async function getJson<T = any>(
  baseUrl: string,
  cred: TenantCredential,
  pathname: string,
): Promise<{ status: number; body: T; headers: Headers }> {
  const response = await fetch(`${baseUrl}${pathname}`, {
    headers: { authorization: `Bearer ${cred.apiKey}` },
  });
  return { status: response.status, body: (await response.json()) as T, headers: response.headers };
}

/** Polls until `check` returns a value (not undefined), or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Waits until the message's status is `status`, returning the status document. */
export async function waitForMessageStatus(
  baseUrl: string,
  cred: TenantCredential,
  messageId: string,
  status: string,
  timeoutMs = 30_000,
) {
  return eventually(
    async () => {
      const { body } = await getJson(baseUrl, cred, `/v1/t/${cred.slug}/messages/${messageId}`);
      return body.status === status ? body : undefined;
    },
    timeoutMs,
    `message ${messageId} to be ${status}`,
  );
}

/** A TCP port free right now on 127.0.0.1 (for a URL that must be known before its server starts). */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
