import type { MiddlewareHandler } from 'hono';
import { findActiveCredentialByKeyHash } from '../../db/credentials.ts';
import { findTenantBySlug } from '../../db/tenants.ts';
import { AppError } from '../errors.ts';
import { isAdminToken } from './admin-auth.ts';
import type { AppEnv } from '../env.ts';
import { deriveSigningSecret, hashSecret, verifySignature } from '../security/keys.ts';

/**
 * Authenticates a tenant call: `Authorization: Bearer {apiKey}` of a live credential (401 otherwise),
 * belonging to the tenant named in the path (403 otherwise), and, when the credential has a signing
 * secret and the request has a body, a valid `LabRelay-Signature` over the exact body bytes (401).
 * Sets `tenant`, `credential` and `rawBody`.
 */
export function tenantAuth(): MiddlewareHandler<AppEnv> {
  return async function tenantAuthMiddleware(c, next) {
    const { db, config } = c.get('services');
    const header = c.req.header('authorization');
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new AppError('unauthorized', 'an API key is required: Authorization: Bearer {apiKey}');
    const credential = await findActiveCredentialByKeyHash(db, hashSecret(match[1]!));
    if (!credential) {
      if (isAdminToken(match[1]!, config.adminToken)) {
        throw new AppError(
          'unauthorized',
          'the admin token is for /v1/admin routes; tenant routes take a tenant API key',
        );
      }
      throw new AppError('unauthorized', 'the API key is unknown or has been revoked');
    }
    const slug = c.req.param('slug');
    if (credential.tenant_slug !== slug)
      throw new AppError('forbidden', `this API key does not belong to tenant ${slug}`);
    const tenant = await findTenantBySlug(db, credential.tenant_slug);
    if (!tenant) throw new AppError('unauthorized', 'the API key is unknown or has been revoked');

    const hasBody = c.req.method !== 'GET' && c.req.method !== 'HEAD';
    const body = hasBody ? new Uint8Array(await c.req.arrayBuffer()) : new Uint8Array();
    if (hasBody && credential.signing_salts.length > 0) {
      const secrets = credential.signing_salts.map((s) =>
        deriveSigningSecret(config.masterKey, credential.id, s.salt),
      );
      const check = verifySignature(
        c.req.header('labrelay-signature'),
        body,
        secrets,
        Math.floor(Date.now() / 1000),
      );
      if (!check.ok) throw new AppError('unauthorized', `signature check failed: ${check.reason}`);
    }
    c.set('tenant', tenant);
    c.set('credential', credential);
    c.set('rawBody', body);
    await next();
  };
}

/** Refuses the call (403) unless the credential holds `scope`. */
export function requireScope(scope: string): MiddlewareHandler<AppEnv> {
  return async function requireScopeMiddleware(c, next) {
    if (!c.get('credential').scopes.includes(scope)) {
      throw new AppError('forbidden', `this API key lacks the ${scope} scope`);
    }
    await next();
  };
}
