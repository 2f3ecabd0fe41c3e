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

const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** SMART: the assertion's `exp` is no more than five minutes in the future. */
const ASSERTION_LIFETIME_SECONDS = 300;
/** RFC 6749 §5.1 makes `expires_in` only RECOMMENDED; without it a token is kept this long. */
const DEFAULT_EXPIRES_IN_SECONDS = 300;
/** How long a token endpoint may take to answer. */
export const TOKEN_REQUEST_TIMEOUT_MS = 30_000;

/** A token endpoint refused or failed; `retryable` says whether trying again later can help. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  /** The token endpoint's HTTP status; null when it was not reached or not asked. */
  readonly status: number | null;
  /** The OAuth `error` code it answered (RFC 6749 §5.2), e.g. `invalid_client`. */
  readonly oauthError: string | null;
  /** True for network failures, timeouts, 5xx, 408 and 429; a refused credential is final. */
  readonly retryable: boolean;
  constructor(message: string, status: number | null, oauthError: string | null, retryable: boolean) {
    super(message);
    this.status = status;
    this.oauthError = oauthError;
    this.retryable = retryable;
  }
}

type TokenAuth = Extract<OutboundAuth, { type: 'client_credentials' | 'smart_backend' }>;

interface Token {
  header: string;
  expiresAt: number;
}

interface CacheEntry {
  /** Hash of the auth settings the token was issued for. */
  settings: string;
  /** The token request in flight, shared by every caller that arrives meanwhile. */
  pending: Promise<Token> | null;
  token: Token | null;
}

export interface TokenProviderOptions {
  fetch?: typeof fetch;
  /** Clock in epoch milliseconds (default Date.now). */
  now?: () => number;
  /** A token is renewed this many seconds before it expires (default 30). */
  skewSeconds?: number;
}

/**
 * Gives the `Authorization` header for a connection, fetching and caching tokens as needed.
 * One instance per process: the cache lives in it.
 *
 * @example
 * const tokens = new TokenProvider();
 * const authorization = await tokens.authorization(connection.id, auth); // 'Bearer eyJ…' or null
 * // after a 401 from the FHIR server, once:
 * tokens.invalidate(connection.id, authorization);
 */
export class TokenProvider {
  #cache = new Map<string, CacheEntry>();
  #fetch: typeof fetch;
  #now: () => number;
  #skew: number;

  constructor(options: TokenProviderOptions = {}) {
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
    this.#skew = (options.skewSeconds ?? 30) * 1000;
  }

  /**
   * The `Authorization` header value for a connection (`key`, the connection id), or null when it
   * needs none. A cached token is used until `expires_in - skew`; changed settings never reuse it.
   *
   * @throws {TokenError} when the token endpoint refuses or cannot be reached, or for `smart_launch`
   *   (its tokens come from a person's launch).
   */
  async authorization(key: string, auth: OutboundAuth): Promise<string | null> {
    switch (auth.type) {
      case 'none':
        return null;
      case 'bearer':
        return `Bearer ${auth.token}`;
      case 'basic':
        // RFC 7617 §2: user-id ":" password, UTF-8, base64.
        return `Basic ${Buffer.from(`${auth.username}:${auth.password}`, 'utf8').toString('base64')}`;
      case 'smart_launch':
        throw new TokenError(
          "a SMART launch client gets its tokens from a person's launch, not from the token provider",
          null,
          null,
          false,
        );
      default:
        return this.#bearer(key, auth);
    }
  }

  /**
   * Forgets a connection's token (after a 401), so the next call fetches a new one. Given the
   * refused header, it forgets only that token: of several requests refused at once, the first
   * one's renewal is shared by the others instead of each starting another.
   */
  invalidate(key: string, refused?: string | null): void {
    const entry = this.#cache.get(key);
    if (!entry) return;
    if (refused != null && entry.token?.header !== refused) return;
    this.#cache.delete(key);
  }

  async #bearer(key: string, auth: TokenAuth): Promise<string> {
    const settings = fingerprint(auth);
    const cached = this.#cache.get(key);
    if (cached?.settings === settings) {
      // A request in flight is shared, failure included: ten deliveries make one token request.
      if (cached.pending) return (await cached.pending).header;
      if (cached.token && this.#now() < cached.token.expiresAt - this.#skew) return cached.token.header;
    }
    const pending = this.#request(auth);
    const entry: CacheEntry = { settings, pending, token: null };
    this.#cache.set(key, entry);
    try {
      entry.token = await pending;
      return entry.token.header;
    } catch (error) {
      if (this.#cache.get(key) === entry) this.#cache.delete(key);
      throw error;
    } finally {
      entry.pending = null;
    }
  }

  async #request(auth: TokenAuth): Promise<Token> {
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (auth.scope) form.set('scope', auth.scope);
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    let credential: string;
    if (auth.type === 'client_credentials') {
      credential = auth.clientSecret;
      if (auth.method === 'client_secret_post') {
        form.set('client_id', auth.clientId);
        form.set('client_secret', auth.clientSecret);
      } else {
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic. encodeURIComponent is such
        // an encoding that also survives servers decoding with decodeURIComponent (space as %20).
        const pair = `${encodeURIComponent(auth.clientId)}:${encodeURIComponent(auth.clientSecret)}`;
        headers.authorization = `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
      }
    } else {
      credential = await clientAssertion(auth, this.#now());
      form.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
      form.set('client_assertion', credential);
    }

    const endpoint = `the token endpoint ${auth.tokenUrl}`;
    const started = this.#now();
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(auth.tokenUrl, {
        method: 'POST',
        headers,
        body: form,
        signal: AbortSignal.timeout(TOKEN_REQUEST_TIMEOUT_MS),
        redirect: 'manual',
      });
      text = await response.text();
    } catch (error) {
      throw new TokenError(`${endpoint} could not be reached: ${reason(error)}`, null, null, true);
    }
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object') body = parsed as Record<string, unknown>;
    } catch {
      // Not JSON (a proxy's error page): the status decides.
    }

    if (!response.ok) {
      const oauthError = typeof body.error === 'string' ? body.error.slice(0, 100) : null;
      const description =
        typeof body.error_description === 'string' && !body.error_description.includes(credential)
          ? `: ${body.error_description.slice(0, 200)}`
          : '';
      const status = response.status;
      throw new TokenError(
        `${endpoint} answered ${status}${oauthError ? ` ${oauthError}` : ''}${description}`,
        status,
        oauthError,
        status >= 500 || status === 408 || status === 429,
      );
    }
    if (typeof body.access_token !== 'string' || !body.access_token)
      throw new TokenError(`${endpoint} answered without an access_token`, response.status, null, true);
    // RFC 6749 §7.1: we can only present bearer tokens (a DPoP-bound one would need a proof).
    if (typeof body.token_type === 'string' && body.token_type.toLowerCase() !== 'bearer')
      throw new TokenError(
        `${endpoint} issued a ${body.token_type.slice(0, 20)} token; LabRelay presents bearer tokens only`,
        response.status,
        null,
        false,
      );
    return {
      header: `Bearer ${body.access_token}`,
      expiresAt: started + expiresInSeconds(body.expires_in) * 1000,
    };
  }
}

/** `expires_in` as a number of seconds; some servers send it as a string ("3599"). */
function expiresInSeconds(value: unknown): number {
  const seconds = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof seconds === 'number' && Number.isFinite(seconds) ? seconds : DEFAULT_EXPIRES_IN_SECONDS;
}

/** Why a request failed, from undici's cause (`connect ECONNREFUSED …`) or the abort. */
function reason(error: unknown): string {
  if (error instanceof Error && error.cause instanceof Error) return error.cause.message;
  return error instanceof Error ? error.message : String(error);
}

/** The same settings give the same hash whatever the order of their fields. */
function fingerprint(auth: TokenAuth): string {
  const canonical = JSON.stringify(auth, (_key, value: unknown) =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : value,
  );
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * The signed JWT a SMART backend client authenticates with (RFC 7523 §3; SMART Backend Services
 * "Authentication JWT"): header alg/kid/typ, `iss` = `sub` = client id, `aud` = token URL,
 * `exp` five minutes ahead, a unique `jti` (servers refuse a replayed one).
 */
async function clientAssertion(
  auth: Extract<OutboundAuth, { type: 'smart_backend' }>,
  now: number,
): Promise<string> {
  const jwk = auth.privateJwk as JWK;
  const alg = typeof jwk.alg === 'string' ? jwk.alg : jwk.kty === 'EC' ? 'ES384' : 'RS384';
  try {
    const key = await importJWK(jwk, alg);
    // SMART requires a kid; a key made elsewhere without one gets its thumbprint, as ours have.
    const kid = typeof jwk.kid === 'string' ? jwk.kid : await calculateJwkThumbprint(jwk);
    const seconds = Math.floor(now / 1000);
    return await new SignJWT({})
      .setProtectedHeader({ alg, kid, typ: 'JWT' })
      .setIssuer(auth.clientId)
      .setSubject(auth.clientId)
      .setAudience(auth.tokenUrl)
      .setIssuedAt(seconds)
      .setExpirationTime(seconds + ASSERTION_LIFETIME_SECONDS)
      .setJti(randomUUID())
      .sign(key);
  } catch (error) {
    // jose's messages name the problem (alg, kty), never the key material.
    throw new TokenError(
      `the connection's private key cannot sign a ${alg} client assertion: ${reason(error)}`,
      null,
      null,
      false,
    );
  }
}

/**
 * A new signing key for SMART Backend Services
 * (https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-smart-backend-service-communicating-public-keys),
 * as JWKs with `kid` (the RFC 7638 JWK thumbprint), `alg` and `use: sig`. The private half is
 * sealed in the connection; the public half is published in LabRelay's JWKS.
 *
 * @example
 * const { privateJwk, publicJwk } = await generateSigningKey('ES384');
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

/** JWK members that are private key material (RFC 7518 §6.2.2, §6.3.2, §6.4). */
const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);

/**
 * A JWK Set (RFC 7517 §5) of the public halves of private JWKs, for the JWKS URL an EHR registers.
 *
 * @example
 * c.json(publicJwks([auth.privateJwk])) // { keys: [{ kty: 'EC', crv: 'P-384', x, y, kid, alg, use }] }
 */
export function publicJwks(privateJwks: Record<string, unknown>[]): { keys: Record<string, unknown>[] } {
  return {
    keys: privateJwks.map((jwk) =>
      Object.fromEntries(Object.entries(jwk).filter(([member]) => !PRIVATE_MEMBERS.has(member))),
    ),
  };
}
