import type { Context, MiddlewareHandler } from 'hono';
import { findActiveCredentialByKeyHash } from '../../db/credentials.ts';
import { findTenantBySlug } from '../../db/tenants.ts';
import { AppError } from '../errors.ts';
import { isAdminToken } from './admin-auth.ts';
import type { AppEnv, BodySignatureCheck } from '../env.ts';
import { getConnInfo } from '@hono/node-server/conninfo';
import { ipAllowed } from '../security/ip-allow.ts';
import { deriveSigningSecret, hashSecret } from '../security/keys.ts';
import { streamingSignatureCheck, verifySignature } from '../../adapters/crypto/signature.ts';

/** Routes whose body is streamed by the route itself (a CSV upload of any size), not read here. */
const STREAMED_BODY = /^\/v1\/t\/[^/]+\/csv\/?$/;

/**
 * Authenticates a tenant call: `Authorization: Bearer {apiKey}` of a live credential (401 otherwise),
 * belonging to the tenant named in the path (403 otherwise), used from an address its allowlist
 * names (403), within its rate limit (429 with Retry-After), and, when the credential has a signing
 * secret and the request has a body, a valid `LabRelay-Signature` over the exact body bytes (401).
 * Sets `tenant`, `credential`, `remoteAddress` and `rawBody` (or `bodySignature` on a streamed route).
 */
export function tenantAuth(): MiddlewareHandler<AppEnv> {
  return async function tenantAuthMiddleware(c, next) {
    const { db, config, rateLimiter } = c.get('services');
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

    const remoteAddress = remoteAddressOf(c);
    if (!ipAllowed(credential.allow_ips, remoteAddress))
      throw new AppError(
        'forbidden',
        `this API key may not be used from ${remoteAddress ?? 'an unknown address'}`,
      );
    const wait = rateLimiter.take(
      credential.id,
      credential.rate_limit_per_minute ?? config.rateLimitPerMinute,
    );
    if (wait > 0) {
      c.get('services').metrics.rateLimited.inc();
      throw new AppError('rate_limited', `too many requests for this API key; retry in ${wait} s`, [], {
        'Retry-After': String(wait),
      });
    }

    const hasBody = c.req.method !== 'GET' && c.req.method !== 'HEAD';
    // During a rotation two secrets verify: the new one, and the old one until its expiry.
    const now = Date.now();
    const secrets = credential.signing_salts
      .filter((s) => !s.expiresAt || Date.parse(s.expiresAt) > now)
      .map((s) => deriveSigningSecret(config.masterKey, credential.id, s.salt));
    // A signed key never becomes an unsigned one, whatever happened to its secrets.
    if (credential.signing_salts.length > 0 && secrets.length === 0)
      throw new AppError('unauthorized', 'the signing secrets of this API key have expired; rotate it');
    c.set('tenant', tenant);
    c.set('credential', credential);
    c.set('remoteAddress', remoteAddress);
    if (hasBody && STREAMED_BODY.test(c.req.path)) {
      let check: BodySignatureCheck | null = null;
      if (secrets.length > 0) {
        const started = streamingSignatureCheck(
          c.req.header('labrelay-signature'),
          secrets,
          Math.floor(Date.now() / 1000),
        );
        if ('ok' in started) throw new AppError('unauthorized', `signature check failed: ${started.reason}`);
        check = started;
      }
      c.set('bodySignature', check);
      c.set('rawBody', new Uint8Array());
      await next();
      return;
    }
    const body = hasBody ? new Uint8Array(await c.req.arrayBuffer()) : new Uint8Array();
    if (hasBody && secrets.length > 0) {
      const check = verifySignature(
        c.req.header('labrelay-signature'),
        body,
        secrets,
        Math.floor(Date.now() / 1000),
      );
      if (!check.ok) throw new AppError('unauthorized', `signature check failed: ${check.reason}`);
    }
    c.set('bodySignature', null);
    c.set('rawBody', body);
    await next();
  };
}

/** The peer's address on a real socket; null when the app is called in-process. */
function remoteAddressOf(c: Context<AppEnv>): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null;
  }
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
