import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  generateSigningKey,
  publicJwks,
  TokenError,
  TokenProvider,
} from '../../../adapters/oauth/token-client.ts';
import type { OutboundAuth } from '../../../domain/outbound.ts';
import { startOidcServer } from '../../support/oidc-server.ts';

type SigningKey = Awaited<ReturnType<typeof generateSigningKey>>;

/** Characters a naive Basic header gets wrong (RFC 6749 §2.3.1 form-urlencodes id and secret). */
const BASIC_SECRET = 'b4sic:secret+with space%25&=/?';
const POST_SECRET = 'post-secret+with space&=0123';

/** A local HTTP server for the outage cases a real OAuth server will not produce. */
async function startHttpServer(listener: RequestListener) {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** A port with nothing listening on it (not a port fetch refuses as unsafe, like 9). */
async function closedPortUrl(): Promise<string> {
  const probe = await startHttpServer(() => {});
  await probe.close();
  return probe.url;
}

const bearerToken = (header: string | null) => (header ?? '').replace(/^Bearer /, '');

describe('TokenProvider against a real OAuth server (oidc-provider)', () => {
  let oidc: Awaited<ReturnType<typeof startOidcServer>>;
  let es384: SigningKey;
  let rs384: SigningKey;

  const basic = (changes: Partial<Extract<OutboundAuth, { type: 'client_credentials' }>> = {}) =>
    ({
      type: 'client_credentials',
      tokenUrl: oidc.tokenEndpoint,
      clientId: 'basic-client',
      clientSecret: BASIC_SECRET,
      method: 'client_secret_basic',
      scope: 'system/*.rs',
      ...changes,
    }) satisfies OutboundAuth;
  const post = (changes: Partial<Extract<OutboundAuth, { type: 'client_credentials' }>> = {}) =>
    ({
      type: 'client_credentials',
      tokenUrl: oidc.tokenEndpoint,
      clientId: 'post-client',
      clientSecret: POST_SECRET,
      method: 'client_secret_post',
      ...changes,
    }) satisfies OutboundAuth;
  const smart = (clientId: string, key: SigningKey) =>
    ({
      type: 'smart_backend',
      tokenUrl: oidc.tokenEndpoint,
      clientId,
      privateJwk: key.privateJwk as Record<string, unknown>,
      scope: 'system/Observation.write system/DiagnosticReport.write',
    }) satisfies OutboundAuth;

  beforeAll(async () => {
    [es384, rs384] = await Promise.all([generateSigningKey('ES384'), generateSigningKey('RS384')]);
    oidc = await startOidcServer({
      clients: [
        {
          client_id: 'basic-client',
          client_secret: BASIC_SECRET,
          token_endpoint_auth_method: 'client_secret_basic',
        },
        {
          client_id: 'post-client',
          client_secret: POST_SECRET,
          token_endpoint_auth_method: 'client_secret_post',
        },
        {
          client_id: 'es-client',
          token_endpoint_auth_method: 'private_key_jwt',
          token_endpoint_auth_signing_alg: 'ES384',
          jwks: publicJwks([es384.privateJwk]) as never,
        },
        {
          client_id: 'rs-client',
          token_endpoint_auth_method: 'private_key_jwt',
          token_endpoint_auth_signing_alg: 'RS384',
          jwks: publicJwks([rs384.privateJwk]) as never,
        },
      ],
      accessTokenTtlSeconds: 3,
    });
  });
  afterAll(() => oidc?.close());

  test('client_secret_basic and client_secret_post get tokens the server recognises, with the scope asked for', async () => {
    const tokens = new TokenProvider();
    const viaBasic = await tokens.authorization('conn-basic', basic());
    const viaPost = await tokens.authorization('conn-post', post({ scope: 'system/*.cruds' }));
    expect(viaBasic).toMatch(/^Bearer \S+$/);
    expect(await oidc.verifyAccessToken(bearerToken(viaBasic))).toEqual({
      clientId: 'basic-client',
      scope: 'system/*.rs',
    });
    expect(await oidc.verifyAccessToken(bearerToken(viaPost))).toEqual({
      clientId: 'post-client',
      scope: 'system/*.cruds',
    });
  });

  test.each([
    ['client_secret_basic', basic],
    ['client_secret_post', post],
  ] as const)(
    '%s with a wrong secret is refused for good, and the secret is not in the error',
    async (_method, auth) => {
      const error = await new TokenProvider()
        .authorization('conn-wrong', auth({ clientSecret: 'not-the-secret-42' }))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TokenError);
      expect(error).toMatchObject({ status: 401, oauthError: 'invalid_client', retryable: false });
      expect(String((error as Error).message)).not.toContain('not-the-secret-42');
      expect(JSON.stringify(error)).not.toContain('not-the-secret-42');
    },
  );

  test.each([
    ['ES384', 'es-client', () => es384],
    ['RS384', 'rs-client', () => rs384],
  ] as const)('SMART Backend Services: a %s client assertion gets a token', async (alg, clientId, key) => {
    const assertions: string[] = [];
    const tokens = new TokenProvider({
      // Records what goes on the wire; the real server answers.
      fetch: async (url, init) => {
        const form = new URLSearchParams(String(init?.body));
        expect(form.get('client_assertion_type')).toBe(
          'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        );
        assertions.push(form.get('client_assertion') ?? '');
        return fetch(url, init);
      },
    });
    const first = await tokens.authorization(clientId, smart(clientId, key()));
    expect(await oidc.verifyAccessToken(bearerToken(first))).toEqual({
      clientId,
      scope: 'system/Observation.write system/DiagnosticReport.write',
    });
    // A second assertion is accepted too: the server refuses a replayed jti.
    tokens.invalidate(clientId);
    const second = await tokens.authorization(clientId, smart(clientId, key()));
    expect(await oidc.verifyAccessToken(bearerToken(second))).toMatchObject({ clientId });

    expect(decodeProtectedHeader(assertions[0]!)).toEqual({ alg, kid: key().publicJwk.kid, typ: 'JWT' });
    const [a, b] = assertions.map((jwt) => decodeJwt(jwt));
    expect(a).toMatchObject({ iss: clientId, sub: clientId, aud: oidc.tokenEndpoint });
    expect(a!.exp! - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(300);
    expect(a!.jti).toEqual(expect.any(String));
    expect(b!.jti).not.toBe(a!.jti);
  });

  test('a key the server does not know for the client is refused for good', async () => {
    const stranger = await generateSigningKey('ES384');
    const refused = new TokenProvider().authorization('conn-stranger', smart('es-client', stranger));
    await expect(refused).rejects.toBeInstanceOf(TokenError);
    await expect(refused).rejects.toMatchObject({
      status: 401,
      oauthError: 'invalid_client',
      retryable: false,
    });
  });

  test('a token is cached per connection, and concurrent callers share one token request', async () => {
    const tokens = new TokenProvider({ skewSeconds: 1 });
    const before = oidc.tokenRequests;
    const concurrent = await Promise.all(
      Array.from({ length: 5 }, () => tokens.authorization('conn-c', basic())),
    );
    expect(new Set(concurrent).size).toBe(1);
    expect(await tokens.authorization('conn-c', basic())).toBe(concurrent[0]);
    expect(oidc.tokenRequests).toBe(before + 1);
    // Another connection with the same settings has its own token.
    expect(await tokens.authorization('conn-d', basic())).not.toBe(concurrent[0]);
    expect(oidc.tokenRequests).toBe(before + 2);
  });

  test('after the token lifetime (less the skew) the next call fetches a new token', async () => {
    const tokens = new TokenProvider({ skewSeconds: 1 });
    const first = await tokens.authorization('conn-ttl', post());
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await tokens.authorization('conn-ttl', post())).toBe(first);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // 3 s lifetime, renewed 1 s early
    const renewed = await tokens.authorization('conn-ttl', post());
    expect(renewed).not.toBe(first);
    expect(await oidc.verifyAccessToken(bearerToken(renewed))).toMatchObject({ clientId: 'post-client' });
    // The server agrees: the first token dies at 3 s.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await oidc.verifyAccessToken(bearerToken(first))).toBeNull();
  });

  test('invalidate forces a new token; naming the refused token spares a newer one', async () => {
    const tokens = new TokenProvider({ skewSeconds: 1 });
    const first = await tokens.authorization('conn-i', basic());
    tokens.invalidate('conn-i');
    const second = await tokens.authorization('conn-i', basic());
    expect(second).not.toBe(first);
    tokens.invalidate('conn-i', first); // a late 401 for the old token
    expect(await tokens.authorization('conn-i', basic())).toBe(second);
    tokens.invalidate('conn-i', second);
    expect(await tokens.authorization('conn-i', basic())).not.toBe(second);
  });

  test('changed settings never reuse the old token', async () => {
    const tokens = new TokenProvider({ skewSeconds: 1 });
    const before = oidc.tokenRequests;
    const original = await tokens.authorization('conn-s', basic());
    const rescoped = await tokens.authorization('conn-s', basic({ scope: 'system/*.cruds' }));
    expect(rescoped).not.toBe(original);
    expect(await oidc.verifyAccessToken(bearerToken(rescoped))).toMatchObject({ scope: 'system/*.cruds' });
    // The connection now authenticates as another client: its token, not the first one's.
    const switched = await tokens.authorization('conn-s', post());
    expect(await oidc.verifyAccessToken(bearerToken(switched))).toMatchObject({ clientId: 'post-client' });
    // A new secret that the server refuses is not papered over by the cached token.
    await expect(
      tokens.authorization('conn-s', post({ clientSecret: 'rotated-but-wrong' })),
    ).rejects.toMatchObject({ oauthError: 'invalid_client' });
    expect(oidc.tokenRequests).toBe(before + 4);
  });

  test('basic, bearer and none need no token endpoint; a SMART launch client is refused clearly', async () => {
    const tokens = new TokenProvider();
    expect(await tokens.authorization('k', { type: 'none' })).toBeNull();
    expect(await tokens.authorization('k', { type: 'bearer', token: 'abc' })).toBe('Bearer abc');
    expect(await tokens.authorization('k', { type: 'basic', username: 'lab', password: 'pä:ss' })).toBe(
      `Basic ${Buffer.from('lab:pä:ss').toString('base64')}`,
    );
    await expect(tokens.authorization('k', { type: 'smart_launch', clientId: 'app' })).rejects.toMatchObject({
      name: 'TokenError',
      retryable: false,
      message: expect.stringContaining('SMART launch'),
    });
  });
});

describe('TokenProvider when the token endpoint is unavailable', () => {
  const auth = (tokenUrl: string): OutboundAuth => ({
    type: 'client_credentials',
    tokenUrl,
    clientId: 'labrelay',
    clientSecret: 'outage-secret-0123',
    method: 'client_secret_basic',
  });

  test('a closed port is worth retrying', async () => {
    const url = await closedPortUrl();
    const error = await new TokenProvider().authorization('conn-down', auth(url)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenError);
    expect(error).toMatchObject({ status: null, retryable: true });
    expect((error as Error).message).toContain('ECONNREFUSED');
  });

  test('a 503 is worth retrying; callers meanwhile share the failure, and the next call asks again', async () => {
    let requests = 0;
    const endpoint = await startHttpServer((_req, res) => {
      requests += 1;
      if (requests === 1) res.writeHead(503, { 'content-type': 'text/html' }).end('<h1>maintenance</h1>');
      else
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(
            JSON.stringify({ access_token: 'after-maintenance', token_type: 'bearer', expires_in: '3600' }),
          );
    });
    try {
      let clock = Date.now();
      const tokens = new TokenProvider({ now: () => clock });
      const outcomes = await Promise.allSettled(
        Array.from({ length: 3 }, () => tokens.authorization('conn-503', auth(endpoint.url))),
      );
      expect(requests).toBe(1);
      for (const outcome of outcomes) {
        expect(outcome.status).toBe('rejected');
        expect((outcome as PromiseRejectedResult).reason).toMatchObject({
          name: 'TokenError',
          status: 503,
          retryable: true,
        });
      }
      // The failure is not cached; the token then is ("expires_in" as a string, as some servers send it).
      expect(await tokens.authorization('conn-503', auth(endpoint.url))).toBe('Bearer after-maintenance');
      clock += 3000 * 1000; // past the 300 s kept when expires_in is missing or unreadable
      expect(await tokens.authorization('conn-503', auth(endpoint.url))).toBe('Bearer after-maintenance');
      expect(requests).toBe(2);
      clock += 600 * 1000;
      await tokens.authorization('conn-503', auth(endpoint.url));
      expect(requests).toBe(3);
    } finally {
      await endpoint.close();
    }
  });
});
