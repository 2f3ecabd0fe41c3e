import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type ClientMetadata, type KoaContextWithOIDC } from 'oidc-provider';

/** A client the server knows: its id, and its secret or public keys (`jwks`) by auth method. */
export type OidcClient = Pick<
  ClientMetadata,
  | 'client_id'
  | 'client_secret'
  | 'token_endpoint_auth_method'
  | 'token_endpoint_auth_signing_alg'
  | 'jwks'
  | 'scope'
>;

/**
 * SMART v2 system scopes (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).
 * oidc-provider only checks a requested scope against a client's `scope` when the scope is listed
 * here; an unlisted scope is silently left out of the token, so list every one a test asks for.
 */
export const SYSTEM_SCOPES = [
  'system/*.cruds',
  'system/*.rs',
  'system/ServiceRequest.rs',
  'system/Observation.write',
  'system/DiagnosticReport.write',
  'system/DiagnosticReport.cu',
  'system/Patient.write',
];

const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post']);

export interface OidcServerOptions {
  clients: OidcClient[];
  /** Lifetime of client-credentials access tokens (`ttl.ClientCredentials`; default 600 s). */
  accessTokenTtlSeconds?: number;
  /** A port chosen beforehand (the token URL was given out before the server could start). */
  port?: number;
  /** Scopes the server knows and clients may be granted (default SYSTEM_SCOPES). */
  scopes?: string[];
}

/**
 * A real OAuth 2.0 authorization server (the `oidc-provider` package) on a local port, for the
 * client-credentials and SMART Backend Services tests: token endpoint, client secrets by Basic or
 * form, private_key_jwt with RS384/ES384. `verifyAccessToken` lets a test resource server check the
 * tokens it is given (an expired one is refused); `tokenRequests` counts requests to the token
 * endpoint.
 *
 * oidc-provider accepts a client_secret_basic client's secret in the form and vice versa; this
 * server does not: a client must authenticate by the method it registered, as many hospital
 * servers require (RFC 7591 §2, `token_endpoint_auth_method`).
 *
 * @example
 * const oidc = await startOidcServer({
 *   clients: [{ client_id: 'labrelay', client_secret: 's3cret', token_endpoint_auth_method: 'client_secret_basic' }],
 *   accessTokenTtlSeconds: 2,
 * });
 */
export async function startOidcServer(options: OidcServerOptions) {
  const scopes = options.scopes ?? SYSTEM_SCOPES;
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: options.clients.map((c) => ({
      scope: scopes.join(' '),
      ...c,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    })),
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    // v9 allows RS256/PS256/ES256/EdDSA/HS256 client assertions by default; SMART uses RS384/ES384.
    enabledJWA: { clientAuthSigningAlgValues: ['RS256', 'RS384', 'ES256', 'ES384'] },
    features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
    scopes,
    ttl: { ClientCredentials: options.accessTokenTtlSeconds ?? 600 },
  });
  let tokenRequests = 0;
  provider.use(async (koa, next) => {
    const isToken = koa.path === '/token';
    if (isToken) tokenRequests += 1;
    await next();
    const ctx = koa as unknown as KoaContextWithOIDC;
    const registered = ctx.oidc?.client?.clientAuthMethod;
    if (!isToken || ctx.status !== 200 || !registered || !SECRET_METHODS.has(registered)) return;
    const used = ctx.headers.authorization ? 'client_secret_basic' : 'client_secret_post';
    if (used === registered) return;
    await ctx.oidc.entities.ClientCredentials?.destroy();
    ctx.status = 401;
    ctx.body = {
      error: 'invalid_client',
      error_description: `the client is registered for ${registered}, not ${used}`,
    };
  });
  server.on('request', provider.callback());
  return {
    issuer,
    tokenEndpoint: `${issuer}/token`,
    /** The provider itself, for tests that need more of it than this helper offers. */
    provider,
    get tokenRequests() {
      return tokenRequests;
    },
    async verifyAccessToken(token: string): Promise<{ clientId: string; scope: string } | null> {
      // find() applies the default clockTolerance (15 s), so it still returns a token up to 15 s
      // past its TTL; isExpired does not.
      const found = await provider.ClientCredentials.find(token);
      if (!found || found.isExpired) return null;
      return { clientId: found.clientId ?? '', scope: found.scope ?? '' };
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
