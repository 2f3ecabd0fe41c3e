import type { ConsoleAuth } from './console-auth.ts';
import type { Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { CredentialWithTenant } from '../db/credentials.ts';
import type { Database, Tenant } from '../db/schema.ts';
import type { Config } from './config.ts';
import type { Metrics } from './metrics.ts';
import type { RateLimiter } from './security/rate-limit.ts';
import type { WorkflowStarter } from './workflow-starter.ts';

/** What every request handler may use; built once per process by `createServices`. */
export interface Services {
  config: Config;
  db: Kysely<Database>;
  logger: Logger;
  starter: WorkflowStarter;
  metrics: Metrics;
  /** Null while Temporal is unreachable at start; intake still commits and the relay catches up. */
  temporal: () => Client | null;
  /** Per-credential request budgets (429 beyond them). */
  rateLimiter: RateLimiter;
  /** Console sign-in, sessions and users (the admin API manages users with it too). */
  consoleAuth: ConsoleAuth;
}

export interface BodySignatureCheck {
  update(chunk: Uint8Array): void;
  verify(): { ok: true } | { ok: false; reason: string };
}

/** The one Hono environment: context variables set by middleware. */
export type AppEnv = {
  Variables: {
    services: Services;
    requestId: string;
    tenant: Tenant;
    credential: CredentialWithTenant;
    /** The exact request body bytes, read once by the auth middleware for the signature check. */
    rawBody: Uint8Array;
    /**
     * On a streamed route (a large upload) the body is not read by the auth middleware: the route
     * feeds every chunk to this check and calls `verify()` before it stores anything. Null when the
     * credential signs nothing.
     */
    bodySignature: BodySignatureCheck | null;
    /** The caller's address as the socket saw it (null in-process). */
    remoteAddress: string | null;
  };
};
