import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type ClientMetadata } from 'oidc-provider';

export type OidcClient = Pick<
  ClientMetadata,
  'client_id' | 'client_secret' | 'token_endpoint_auth_method' | 'token_endpoint_auth_signing_alg' | 'jwks'
>;

const SYSTEM_SCOPES = [
  'system/*.cruds',
  'system/*.rs',
  'system/ServiceRequest.rs',
  'system/DiagnosticReport.cu',
];

/**
 * A real OAuth 2.0 authorization server (the `oidc-provider` package) on a local port, for the
 * client-credentials and SMART Backend Services tests: token endpoint, client secrets by Basic or
 * form, private_key_jwt with RS384/ES384. `verifyAccessToken` lets a test resource server check the
 * tokens it is given (an expired one is refused).
 */
export async function startOidcServer(options: {
  clients: OidcClient[];
  accessTokenTtlSeconds?: number;
  /** A port chosen beforehand (the token URL was given out before the server could start). */
  port?: number;
}) {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: options.clients.map((c) => ({
      ...c,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: SYSTEM_SCOPES.join(' '),
    })),
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    enabledJWA: { clientAuthSigningAlgValues: ['RS256', 'RS384', 'ES256', 'ES384'] },
    features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
    scopes: SYSTEM_SCOPES,
    ttl: { ClientCredentials: options.accessTokenTtlSeconds ?? 600 },
  });
  let tokenRequests = 0;
  provider.use(async (ctx, next) => {
    if (ctx.path === '/token') tokenRequests += 1;
    await next();
  });
  server.on('request', provider.callback());
  return {
    issuer,
    tokenEndpoint: `${issuer}/token`,
    get tokenRequests() {
      return tokenRequests;
    },
    async verifyAccessToken(token: string): Promise<{ clientId: string; scope: string } | null> {
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
