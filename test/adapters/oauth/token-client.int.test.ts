import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  generateSigningKey,
  publicJwks,
  TokenError,
  TokenProvider,
} from '../../../adapters/oauth/token-client.ts';
import type { OutboundAuth } from '../../../domain/outbound.ts';
import { freePort } from '../../support/labrelay.ts';
import { startOidcServer } from '../../support/oidc-server.ts';

describe('TokenProvider against a real OAuth server (oidc-provider)', () => {
  let oidc: Awaited<ReturnType<typeof startOidcServer>>;
  let es384: Awaited<ReturnType<typeof generateSigningKey>>;
  let rs384: Awaited<ReturnType<typeof generateSigningKey>>;
  const basic = (): OutboundAuth => ({
    type: 'client_credentials',
    tokenUrl: oidc.tokenEndpoint,
    clientId: 'basic-client',
    clientSecret: 'basic-secret-0123456789',
    method: 'client_secret_basic',
    scope: 'system/*.rs',
  });

  beforeAll(async () => {
    es384 = await generateSigningKey('ES384');
    rs384 = await generateSigningKey('RS384');
    oidc = await startOidcServer({
      clients: [
        {
          client_id: 'basic-client',
          client_secret: 'basic-secret-0123456789',
          token_endpoint_auth_method: 'client_secret_basic',
        },
        {
          client_id: 'post-client',
          client_secret: 'post-secret-0123456789',
          token_endpoint_auth_method: 'client_secret_post',
        },
        {
          client_id: 'es-client',
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: publicJwks([es384.privateJwk]) as never,
        },
        {
          client_id: 'rs-client',
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: publicJwks([rs384.privateJwk]) as never,
        },
      ],
      accessTokenTtlSeconds: 3,
    });
  });
  afterAll(() => oidc?.close());

  test('client_secret_basic and client_secret_post get tokens the server recognises', async () => {
    const tokens = new TokenProvider({ skewSeconds: 0 });
    const a = await tokens.authorization('a', basic());
    const b = await tokens.authorization('b', {
      type: 'client_credentials',
      tokenUrl: oidc.tokenEndpoint,
      clientId: 'post-client',
      clientSecret: 'post-secret-0123456789',
      method: 'client_secret_post',
    });
    expect(await oidc.verifyAccessToken(a!.replace('Bearer ', ''))).toMatchObject({
      clientId: 'basic-client',
      scope: 'system/*.rs',
    });
    expect(await oidc.verifyAccessToken(b!.replace('Bearer ', ''))).toMatchObject({
      clientId: 'post-client',
    });
  });

  test.each([
    ['ES384', 'es-client'],
    ['RS384', 'rs-client'],
  ] as const)('SMART Backend Services with a %s client assertion', async (alg, clientId) => {
    const key = alg === 'ES384' ? es384 : rs384;
    expect(key.publicJwk).not.toHaveProperty('d');
    const header = await new TokenProvider().authorization(clientId, {
      type: 'smart_backend',
      tokenUrl: oidc.tokenEndpoint,
      clientId,
      privateJwk: key.privateJwk as Record<string, unknown>,
    });
    expect(await oidc.verifyAccessToken(header!.replace('Bearer ', ''))).toMatchObject({ clientId });
  });

  test('a wrong secret or an unknown key is refused for good, and the secret is never in the error', async () => {
    const tokens = new TokenProvider();
    const wrong = tokens.authorization('w', {
      ...basic(),
      clientSecret: 'not-the-secret-42',
    } as OutboundAuth);
    await expect(wrong).rejects.toMatchObject({
      oauthError: 'invalid_client',
      retryable: false,
      status: 401,
    });
    await wrong.catch((e: Error) => expect(e.message).not.toContain('not-the-secret-42'));
    const stranger = await generateSigningKey('ES384');
    await expect(
      tokens.authorization('s', {
        type: 'smart_backend',
        tokenUrl: oidc.tokenEndpoint,
        clientId: 'es-client',
        privateJwk: stranger.privateJwk as Record<string, unknown>,
      }),
    ).rejects.toMatchObject({ oauthError: 'invalid_client', retryable: false });
  });

  test('a token is cached and shared until it expires; invalidate and changed settings fetch a new one', async () => {
    const tokens = new TokenProvider({ skewSeconds: 1 });
    const before = oidc.tokenRequests;
    const [a, b] = await Promise.all([
      tokens.authorization('c', basic()),
      tokens.authorization('c', basic()),
    ]);
    expect(a).toBe(b);
    expect(await tokens.authorization('c', basic())).toBe(a);
    expect(oidc.tokenRequests).toBe(before + 1);
    tokens.invalidate('c');
    const c = await tokens.authorization('c', basic());
    expect(c).not.toBe(a);
    const d = await tokens.authorization('c', { ...basic(), scope: 'system/*.cruds' } as OutboundAuth);
    expect(d).not.toBe(c);
    await new Promise((r) => setTimeout(r, 2100)); // 3 s lifetime, renewed 1 s early
    expect(await tokens.authorization('c', { ...basic(), scope: 'system/*.cruds' } as OutboundAuth)).not.toBe(
      d,
    );
    expect(oidc.tokenRequests).toBe(before + 4);
  });

  test('a token endpoint that is down or answers 503 is worth retrying', async () => {
    const unavailable = createServer((_req, res) => res.writeHead(503).end('maintenance'));
    await new Promise<void>((resolve) => unavailable.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(unavailable.address() as AddressInfo).port}/token`;
    try {
      const tokens = new TokenProvider();
      const closed = `http://127.0.0.1:${await freePort()}/token`;
      await expect(
        tokens.authorization('x', { ...basic(), tokenUrl: url } as OutboundAuth),
      ).rejects.toMatchObject({
        status: 503,
        retryable: true,
      });
      await expect(
        tokens.authorization('y', { ...basic(), tokenUrl: closed } as OutboundAuth),
      ).rejects.toBeInstanceOf(TokenError);
      await expect(
        tokens.authorization('y', { ...basic(), tokenUrl: closed } as OutboundAuth),
      ).rejects.toMatchObject({
        retryable: true,
        message: expect.stringContaining('ECONNREFUSED'),
      });
    } finally {
      unavailable.close();
    }
  });
});
