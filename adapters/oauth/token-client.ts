import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import type { OutboundAuth } from '../../domain/outbound.ts';

/**
 * Access tokens for hospital endpoints: OAuth 2.0 client credentials (RFC 6749 §4.4, the secret by
 * HTTP Basic or in the form, §2.3.1) and SMART Backend Services
 * (https://hl7.org/fhir/smart-app-launch/backend-services.html: a client assertion JWT signed
 * RS384/ES384, RFC 7523). Tokens are cached per connection until shortly before they expire;
 * callers for the same connection share one token request. No secret, assertion or token ever
 * appears in an error message.
 */

/** A token endpoint refused or failed; `retryable` says whether trying again later can help. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  readonly status: number | null;
  readonly oauthError: string | null;
  readonly retryable: boolean;
  constructor(message: string, status: number | null, oauthError: string | null, retryable: boolean) {
    super(message);
    this.status = status;
    this.oauthError = oauthError;
    this.retryable = retryable;
  }
}

interface CachedToken {
  settings: string;
  value: Promise<{ header: string; expiresAt: number }>;
}

export interface TokenProviderOptions {
  fetch?: typeof fetch;
  now?: () => number;
  /** A token is renewed this many seconds before it expires (default 30). */
  skewSeconds?: number;
}

export class TokenProvider {
  #cache = new Map<string, CachedToken>();
  #fetch: typeof fetch;
  #now: () => number;
  #skew: number;

  constructor(options: TokenProviderOptions = {}) {
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
    this.#skew = (options.skewSeconds ?? 30) * 1000;
  }

  /**
   * The `Authorization` header value for a connection (`key`), or null when it needs none.
   *
   * @example await tokens.authorization(connection.id, auth) // 'Bearer eyJ…'
   */
  async authorization(key: string, auth: OutboundAuth): Promise<string | null> {
    switch (auth.type) {
      case 'none':
        return null;
      case 'bearer':
        return `Bearer ${auth.token}`;
      case 'basic':
        return `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
      case 'smart_launch':
        throw new TokenError(
          "a SMART launch client gets its tokens from a person's launch, not here",
          null,
          null,
          false,
        );
      default:
        break;
    }
    const settings = createHash('sha256').update(JSON.stringify(auth)).digest('hex');
    const cached = this.#cache.get(key);
    if (cached && cached.settings === settings) {
      try {
        const token = await cached.value;
        if (token.expiresAt - this.#skew > this.#now()) return token.header;
      } catch {
        // A failed request is not cached: ask again below.
      }
      if (this.#cache.get(key) !== cached) return this.authorization(key, auth);
    }
    const value = this.#request(auth);
    const entry = { settings, value };
    this.#cache.set(key, entry);
    value.catch(() => {
      if (this.#cache.get(key) === entry) this.#cache.delete(key);
    });
    return (await value).header;
  }

  /** Forgets a connection's token (after a 401), so the next call fetches a new one. */
  invalidate(key: string): void {
    this.#cache.delete(key);
  }

  async #request(auth: Extract<OutboundAuth, { type: 'client_credentials' | 'smart_backend' }>) {
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (auth.scope) form.set('scope', auth.scope);
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (auth.type === 'client_credentials') {
      if (auth.method === 'client_secret_post') {
        form.set('client_id', auth.clientId);
        form.set('client_secret', auth.clientSecret);
      } else {
        const id = encodeURIComponent(auth.clientId);
        const secret = encodeURIComponent(auth.clientSecret);
        headers.authorization = `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
      }
    } else {
      form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      form.set('client_assertion', await clientAssertion(auth, this.#now()));
    }
    const started = this.#now();
    let response: Response;
    try {
      response = await this.#fetch(auth.tokenUrl, {
        method: 'POST',
        headers,
        body: form,
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      const cause =
        error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      throw new TokenError(
        `the token endpoint ${auth.tokenUrl} could not be reached: ${cause}`,
        null,
        null,
        true,
      );
    }
    const text = await response.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // Not JSON: the status decides.
    }
    if (!response.ok) {
      const oauthError = typeof body.error === 'string' ? body.error : null;
      const description =
        typeof body.error_description === 'string' ? `: ${body.error_description.slice(0, 200)}` : '';
      const retryable = response.status >= 500 || response.status === 408 || response.status === 429;
      throw new TokenError(
        `the token endpoint ${auth.tokenUrl} answered ${response.status}${oauthError ? ` ${oauthError}` : ''}${description}`,
        response.status,
        oauthError,
        retryable,
      );
    }
    if (typeof body.access_token !== 'string' || !body.access_token)
      throw new TokenError(
        `the token endpoint ${auth.tokenUrl} answered without an access_token`,
        response.status,
        null,
        true,
      );
    const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : 300;
    return { header: `Bearer ${body.access_token}`, expiresAt: started + expiresIn * 1000 };
  }
}

/** The signed JWT a SMART backend client proves itself with (expires in 5 minutes, unique jti). */
async function clientAssertion(
  auth: Extract<OutboundAuth, { type: 'smart_backend' }>,
  now: number,
): Promise<string> {
  const jwk = auth.privateJwk as JWK;
  const alg = typeof jwk.alg === 'string' ? jwk.alg : 'RS384';
  const key = await importJWK(jwk, alg);
  const seconds = Math.floor(now / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg, typ: 'JWT', ...(jwk.kid ? { kid: jwk.kid } : {}) })
    .setIssuer(auth.clientId)
    .setSubject(auth.clientId)
    .setAudience(auth.tokenUrl)
    .setIssuedAt(seconds)
    .setExpirationTime(seconds + 300)
    .setJti(randomUUID())
    .sign(key);
}

/**
 * A new signing key for SMART Backend Services, as JWKs with `kid` (the JWK thumbprint), `alg` and
 * `use: sig`. The private half is sealed in the connection; the public half is published.
 */
export async function generateSigningKey(
  alg: 'RS384' | 'ES384',
): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'RS384' ? { modulusLength: 2048 } : {}),
  });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const meta = { kid, alg, use: 'sig' };
  return { privateJwk: { ...(await exportJWK(privateKey)), ...meta }, publicJwk: { ...publicJwk, ...meta } };
}

const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);

/** A JWKS of the public halves of private JWKs (for the JWKS URL an EHR registers). */
export function publicJwks(privateJwks: Record<string, unknown>[]): { keys: Record<string, unknown>[] } {
  return {
    keys: privateJwks.map((jwk) =>
      Object.fromEntries(Object.entries(jwk).filter(([k]) => !PRIVATE_MEMBERS.has(k))),
    ),
  };
}
