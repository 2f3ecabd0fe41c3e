import { existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { MiddlewareHandler } from 'hono';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { ConsoleAuth } from './console-auth.ts';
import type { AppEnv, Services } from './env.ts';

/** What the console's server code may use from the host process. */
export interface ConsoleServices {
  db: Kysely<Database>;
  /** The API's own services: console actions call the same functions as the API routes with them. */
  app: Services;
  /** Sign-in, sessions and users. */
  auth: ConsoleAuth;
  /**
   * Where senders reach this LabRelay (the public HTTP URL and the MLLP listener), and where this
   * process reaches its own HTTP port (a connection test sends its message there).
   */
  endpoints(): { publicUrl: string; mllpPort: number | null; mllpTls: boolean; selfUrl: string };
  /** Re-sends a delivery (the same rule as the admin API); throws AppError (404, 409, 503). */
  resendDelivery(tenantSlug: string, deliveryId: string, actor: string, reason: string | null): Promise<void>;
}

export const CONSOLE_BUILD_DIR = path.join(import.meta.dirname, '..', 'console', 'build');
const PROTOCOL_HEADER = 'x-labrelay-proto';

type NodeHandler = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

/**
 * Loads the built SvelteKit console (adapter-node) and returns a Hono handler that serves it on
 * the API's own port. Registers the services its server code reads.
 */
export async function loadConsole(services: ConsoleServices): Promise<MiddlewareHandler<AppEnv>> {
  const handlerFile = path.join(CONSOLE_BUILD_DIR, 'handler.js');
  if (!existsSync(handlerFile))
    throw new Error(`the console is not built (${handlerFile} is missing): run npm run build`);
  (globalThis as Record<symbol, unknown>)[Symbol.for('labrelay.console.services')] = services;
  // adapter-node reads its settings from prefixed variables; we tell it which header carries the protocol.
  process.env.LABRELAY_CONSOLE_PROTOCOL_HEADER = PROTOCOL_HEADER;
  // The console takes uploads (CSV, PDF) up to the API's own limits; each endpoint checks its own.
  process.env.LABRELAY_CONSOLE_BODY_SIZE_LIMIT = String(
    Math.max(services.app.config.maxUploadBytes, services.app.config.maxBodyBytes),
  );
  const { handler } = (await import(pathToFileURL(handlerFile).href)) as { handler: NodeHandler };

  return async function serveConsole(c) {
    const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
    if (!env?.incoming || !env.outgoing)
      return c.text('the console is served only over a real HTTP server', 404);
    const { incoming, outgoing } = env;
    const forwarded = String(incoming.headers['x-forwarded-proto'] ?? '')
      .split(',')[0]!
      .trim();
    const encrypted = (incoming.socket as { encrypted?: boolean }).encrypted === true;
    incoming.headers[PROTOCOL_HEADER] = encrypted ? 'https' : forwarded === 'https' ? 'https' : 'http';
    return new Promise<Response>((resolve) => {
      outgoing.once('close', () => resolve(RESPONSE_ALREADY_SENT));
      outgoing.once('finish', () => resolve(RESPONSE_ALREADY_SENT));
      handler(incoming, outgoing, () => {
        outgoing.statusCode = 404;
        outgoing.end('Not found');
      });
    });
  };
}
