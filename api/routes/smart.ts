import { createHash, randomBytes } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { html } from 'hono/html';
import { listConnections } from '../../db/connections.ts';
import type { Connection } from '../../db/schema.ts';
import { insertSmartLaunch, takeSmartLaunch } from '../../db/smart-launches.ts';
import { findTenantBySlug } from '../../db/tenants.ts';
import { SMART_LAUNCH_SCOPE, type OutboundAuth } from '../../domain/outbound.ts';
import type { AppEnv } from '../env.ts';
import { htmlPage } from './html-page.ts';
import { openConnectionAuth } from '../../adapters/crypto/secret-box.ts';

/**
 * SMART on FHIR EHR launch of LabRelay's read-only results app
 * (https://hl7.org/fhir/smart-app-launch/app-launch.html): the EHR opens `/smart/{slug}/launch`
 * with its FHIR base (`iss`) and a `launch` handle; LabRelay sends the browser to the EHR's
 * authorization server (authorization code with PKCE S256, a single-use `state`), takes the code
 * at `/smart/{slug}/callback`, and shows the patient-in-context's recent lab results read from
 * the EHR's own FHIR API. Only issuers a tenant connected (a pull FHIR connection with
 * `smart_launch` auth) are trusted; only GET requests reach the EHR's FHIR API; the access token
 * lives for this one request and is never stored, logged or shown.
 */

/** SMART v2 scopes (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html). */
const DEFAULT_SCOPE = SMART_LAUNCH_SCOPE;
const LAUNCH_MINUTES = 10;

/**
 * The cookie that ties a launch to the browser that began it: a callback arriving in another
 * browser (someone else's code and state, pushed into this one) is refused.
 */
function launchCookie(state: string): string {
  return `labrelay_smart_${createHash('sha256').update(state).digest('hex').slice(0, 16)}`;
}
const EHR_TIMEOUT_MS = 15_000;
const MAX_PARAM_LENGTH = 2048;
/** A FHIR resource id (https://hl7.org/fhir/R4/datatypes.html#id). */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

class LaunchError extends Error {
  readonly status: 400 | 502;
  constructor(message: string, status: 400 | 502 = 400) {
    super(message);
    this.status = status;
  }
}

type SmartLaunchAuth = Extract<OutboundAuth, { type: 'smart_launch' }>;
type Json = Record<string, any>;

const normalise = (url: string) => url.trim().replace(/\/+$/, '');

export function smartRoutes() {
  const app = new Hono<AppEnv>();
  // The page shows a patient's results: no caching, no Referer (the URL carries code and state),
  // no script at all. Not frame-ancestors: EHRs commonly embed a launched app in a frame.
  app.use('*', async function privatePage(c, next) {
    await next();
    c.header('Cache-Control', 'no-store');
    c.header('Referrer-Policy', 'no-referrer');
    c.header(
      'Content-Security-Policy',
      "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    );
    c.header('X-Content-Type-Options', 'nosniff');
  });

  /** https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code */
  app.get('/:slug/launch', async (c) => {
    try {
      const { db, config } = c.get('services');
      const iss = c.req.query('iss');
      const launch = c.req.query('launch');
      if (!iss || !launch)
        throw new LaunchError('The EHR must open this page with its FHIR address (iss) and a launch.');
      if (iss.length > MAX_PARAM_LENGTH || launch.length > MAX_PARAM_LENGTH)
        throw new LaunchError('The launch parameters are too long.');
      // Trust first, fetch second: an issuer the tenant did not connect is never contacted.
      const { tenant, connection, auth } = await trustedIssuer(c, iss);
      const issuer = normalise(iss);
      const { authorize, token } = await discoverEndpoints(issuer);

      const state = randomBytes(32).toString('base64url');
      const verifier = randomBytes(32).toString('base64url');
      const redirectUri = `${config.publicUrl}/smart/${tenant.slug}/callback`;
      await insertSmartLaunch(db, {
        state,
        tenant_id: tenant.id,
        connection_id: connection.id,
        issuer,
        launch,
        code_verifier: verifier,
        redirect_uri: redirectUri,
        token_endpoint: token,
        expires_at: new Date(Date.now() + LAUNCH_MINUTES * 60_000),
      });
      setCookie(c, launchCookie(state), '1', {
        path: `/smart/${tenant.slug}/callback`,
        httpOnly: true,
        // The EHR's redirect back is a top-level navigation from its site: Lax cookies go with it.
        sameSite: 'Lax',
        secure: config.publicUrl.startsWith('https:'),
        maxAge: LAUNCH_MINUTES * 60,
      });
      const url = new URL(authorize);
      for (const [name, value] of Object.entries({
        response_type: 'code',
        client_id: auth.clientId,
        redirect_uri: redirectUri,
        scope: auth.scope ?? DEFAULT_SCOPE,
        state,
        aud: issuer,
        launch,
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      }))
        url.searchParams.set(name, value);
      return c.redirect(url.toString(), 302);
    } catch (error) {
      return failure(c, error);
    }
  });

  /** https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token */
  app.get('/:slug/callback', async (c) => {
    try {
      const { db, config } = c.get('services');
      const tenant = await findTenantBySlug(db, c.req.param('slug'));
      if (!tenant) throw new LaunchError('This launch address is not known.');
      const state = c.req.query('state');
      if (!state || state.length > MAX_PARAM_LENGTH)
        throw new LaunchError('The EHR came back without the launch state; start again from the EHR.');
      const launch = await takeSmartLaunch(db, tenant.id, state);
      if (!launch)
        throw new LaunchError(
          'This launch is unknown, was already used or has expired; start again from the EHR.',
        );
      const bound = getCookie(c, launchCookie(state)) === '1';
      deleteCookie(c, launchCookie(state), { path: `/smart/${tenant.slug}/callback` });
      if (!bound)
        throw new LaunchError('This launch was started in another browser; start again from the EHR.');
      // Only after the state checked out, so nobody can make this page show text of their choosing.
      const error = c.req.query('error');
      if (error) {
        const description = c.req.query('error_description');
        throw new LaunchError(
          `The EHR did not authorize LabRelay: ${error}${description ? ` (${description})` : ''}.`,
        );
      }
      const code = c.req.query('code');
      if (!code) throw new LaunchError('The EHR came back without an authorization code.');
      const connection = (await listConnections(db, tenant.id)).find((x) => x.id === launch.connection_id);
      const auth = connection && smartAuthFor(config.masterKey, connection, launch.issuer);
      if (!auth) throw new LaunchError('This EHR connection has been disabled or changed; start again.');

      const tokenBody = await exchangeCode(launch.token_endpoint, auth, {
        code,
        redirectUri: launch.redirect_uri,
        codeVerifier: launch.code_verifier,
      });
      const patientId = tokenBody.patient;
      if (typeof patientId !== 'string' || !FHIR_ID.test(patientId))
        throw new LaunchError('The EHR did not say which patient is in context.', 502);
      const bearer = {
        authorization: `Bearer ${tokenBody.access_token as string}`,
        accept: 'application/fhir+json',
      };
      const patient = await ehrJson(`${launch.issuer}/Patient/${patientId}`, bearer);
      if (patient.resourceType !== 'Patient')
        throw new LaunchError('The EHR answered with something other than the patient.', 502);
      const search = new URLSearchParams({
        patient: patientId,
        category: 'laboratory',
        _sort: '-date',
        _count: '50',
      });
      const bundle = await ehrJson(`${launch.issuer}/Observation?${search}`, bearer);
      const observations = (Array.isArray(bundle.entry) ? bundle.entry : [])
        .map((entry: { resource?: Json }) => entry?.resource)
        .filter((r: Json | undefined): r is Json => r?.resourceType === 'Observation');
      return c.html(resultsPage(patient, observations));
    } catch (error) {
      return failure(c, error);
    }
  });
  return app;
}

/** The tenant and its connection for an issuer the tenant set up; anything else is refused. */
async function trustedIssuer(c: Context<AppEnv>, iss: string) {
  const { db, config } = c.get('services');
  const tenant = await findTenantBySlug(db, c.req.param('slug') ?? '');
  if (!tenant) throw new LaunchError('This launch address is not known.');
  for (const connection of await listConnections(db, tenant.id)) {
    const auth = smartAuthFor(config.masterKey, connection, iss);
    if (auth) return { tenant, connection, auth };
  }
  throw new LaunchError(`${iss} is not an EHR this organisation has connected to LabRelay.`);
}

/** The connection's SMART launch client, when it is an enabled FHIR pull connection to `issuer`. */
function smartAuthFor(masterKey: Buffer, connection: Connection, issuer: string): SmartLaunchAuth | null {
  if (connection.disabled_at || connection.direction !== 'pull' || connection.format !== 'fhir') return null;
  const url = (connection.endpoint as { url?: unknown } | null)?.url;
  if (typeof url !== 'string' || normalise(url) !== normalise(issuer)) return null;
  const auth = openConnectionAuth(masterKey, connection);
  return auth?.type === 'smart_launch' ? auth : null;
}

/**
 * The EHR's authorize and token endpoints from its SMART configuration
 * (https://hl7.org/fhir/smart-app-launch/conformance.html#using-well-known); PKCE S256 required.
 */
async function discoverEndpoints(issuer: string) {
  const configuration = await ehrJson(`${issuer}/.well-known/smart-configuration`);
  const authorize = httpUrl(configuration.authorization_endpoint);
  const token = httpUrl(configuration.token_endpoint);
  if (!authorize || !token)
    throw new LaunchError('The EHR did not say where to authorize (smart-configuration).', 502);
  const methods = configuration.code_challenge_methods_supported;
  if (Array.isArray(methods) && !methods.includes('S256'))
    throw new LaunchError('The EHR does not support PKCE with S256, which LabRelay requires.', 502);
  return { authorize, token };
}

function httpUrl(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.toString() : null;
  } catch {
    return null;
  }
}

/**
 * The authorization code for a token (https://hl7.org/fhir/smart-app-launch/app-launch.html#request-4):
 * a confidential client authenticates with HTTP Basic (client_secret_basic), a public client sends
 * its client_id; either way the PKCE code_verifier goes with it.
 */
async function exchangeCode(
  tokenEndpoint: string,
  auth: SmartLaunchAuth,
  grant: { code: string; redirectUri: string; codeVerifier: string },
): Promise<Json> {
  const form = new URLSearchParams({
    grant_type: 'authorization_code',
    code: grant.code,
    redirect_uri: grant.redirectUri,
    code_verifier: grant.codeVerifier,
  });
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  // RFC 6749 §2.3.1: id and secret are URL-encoded before the Basic encoding (%20 for a space
  // decodes the same under both URL and form decoding).
  if (auth.clientSecret)
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(auth.clientId)}:${encodeURIComponent(auth.clientSecret)}`).toString('base64')}`;
  else form.set('client_id', auth.clientId);
  const response = await ehrFetch(tokenEndpoint, { method: 'POST', headers, body: form });
  const body = (await response.json().catch(() => ({}))) as Json;
  if (!response.ok || typeof body.access_token !== 'string')
    throw new LaunchError(
      `The EHR refused the authorization code (${response.status}${typeof body.error === 'string' ? ` ${body.error}` : ''}).`,
      502,
    );
  return body;
}

async function ehrFetch(url: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(EHR_TIMEOUT_MS) });
  } catch (error) {
    const cause =
      error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    throw new LaunchError(`The EHR could not be reached (${new URL(url).origin}): ${cause}.`, 502);
  }
}

/** A GET to the EHR; every answer but a 2xx JSON body becomes a 502 page naming what failed. */
async function ehrJson(url: string, headers: Record<string, string> = { accept: 'application/json' }) {
  const response = await ehrFetch(url, { headers });
  const { pathname } = new URL(url);
  if (!response.ok) throw new LaunchError(`The EHR answered ${response.status} for ${pathname}.`, 502);
  const body: unknown = await response.json().catch(() => null);
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw new LaunchError(`The EHR's answer for ${pathname} is not a JSON object.`, 502);
  return body as Json;
}

function failure(c: Context<AppEnv>, error: unknown) {
  if (!(error instanceof LaunchError)) throw error;
  return c.html(
    page('The results app could not open', html`<p role="alert">${error.message}</p>`),
    error.status,
  );
}

/** v3 ObservationInterpretation codes (https://terminology.hl7.org/CodeSystem-v3-ObservationInterpretation.html). */
const FLAG_LABEL: Record<string, string> = {
  HH: 'critical high',
  LL: 'critical low',
  AA: 'critical',
  H: 'high',
  L: 'low',
  A: 'abnormal',
};
const CRITICAL_FLAGS = new Set(['HH', 'LL', 'AA']);
const INTERPRETATION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';

const list = (value: unknown): Json[] =>
  Array.isArray(value) ? value.filter((x) => x && typeof x === 'object') : [];
const text = (value: unknown): string =>
  typeof value === 'string' || typeof value === 'number' ? String(value) : '';

/** Patient name and identifier (https://hl7.org/fhir/R4/patient.html): the official name, the MRN. */
function describePatient(patient: Json) {
  const names = list(patient.name);
  const name = names.find((n) => n.use === 'official') ?? names[0];
  const display =
    text(name?.text) ||
    [...(Array.isArray(name?.given) ? name.given.map(text) : []), text(name?.family)]
      .filter(Boolean)
      .join(' ');
  const identifiers = list(patient.identifier);
  const mrn =
    identifiers.find((i) => list(i.type?.coding).some((coding) => coding.code === 'MR')) ?? identifiers[0];
  return {
    name: display || 'Unnamed patient',
    birthDate: text(patient.birthDate),
    identifier: text(mrn?.value),
  };
}

/** One laboratory Observation as a table row (https://hl7.org/fhir/R4/observation.html). */
function describeObservation(o: Json) {
  const codings = list(o.code?.coding);
  const q = o.valueQuantity;
  const value =
    q && typeof q === 'object' && text(q.value)
      ? `${text(q.comparator)}${text(q.value)}${text(q.unit ?? q.code) ? ` ${text(q.unit ?? q.code)}` : ''}`
      : text(o.valueString) ||
        text(o.valueCodeableConcept?.text) ||
        text(list(o.valueCodeableConcept?.coding)[0]?.display) ||
        (o.dataAbsentReason ? 'no value' : '');
  const range = list(o.referenceRange)[0];
  const low = text(range?.low?.value);
  const high = text(range?.high?.value);
  const rangeText =
    text(range?.text) || (low && high ? `${low}–${high}` : low ? `≥ ${low}` : high ? `≤ ${high}` : '');
  const interpretation = list(list(o.interpretation)[0]?.coding);
  const flag = text(
    (interpretation.find((coding) => coding.system === INTERPRETATION_SYSTEM) ?? interpretation[0])?.code,
  );
  const when = text(o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.effectiveInstant ?? o.issued);
  const time = Date.parse(when);
  return {
    test: text(o.code?.text) || text(codings[0]?.display) || text(codings[0]?.code) || 'Unnamed test',
    value,
    range: rangeText,
    flag: flag === 'N' ? '' : flag,
    critical: CRITICAL_FLAGS.has(flag),
    when: Number.isNaN(time) ? when : `${new Date(time).toISOString().slice(0, 16).replace('T', ' ')} UTC`,
  };
}

function resultsPage(patient: Json, observations: Json[]) {
  const who = describePatient(patient);
  const rows = observations.map(describeObservation).map(
    (r) =>
      html`<tr class="${r.critical ? 'critical' : r.flag ? 'abnormal' : ''}">
        <td>${r.test}</td>
        <td>${r.value}</td>
        <td>${r.range}</td>
        <td>${r.flag ? html`<strong>${r.flag}</strong> ${FLAG_LABEL[r.flag] ?? ''}` : ''}</td>
        <td>${r.when}</td>
      </tr>`,
  );
  return page(
    `Lab results: ${who.name}`,
    html`<p>
        ${who.name}${who.birthDate ? html`, born ${who.birthDate}` : ''}${
          who.identifier ? html` · identifier ${who.identifier}` : ''
        }
      </p>
      ${
        observations.length === 0
          ? html`<p role="status">No laboratory results in the EHR for this patient.</p>`
          : html`<table>
              <caption>
                Recent laboratory results (read-only, from the EHR)
              </caption>
              <thead>
                <tr>
                  <th scope="col">Test</th>
                  <th scope="col">Value</th>
                  <th scope="col">Reference range</th>
                  <th scope="col">Flag</th>
                  <th scope="col">Collected</th>
                </tr>
              </thead>
              <tbody>
                ${rows}
              </tbody>
            </table>`
      }`,
  );
}

const RESULTS_STYLE = `
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 0.4rem 0.6rem; border-bottom: 1px solid #ddd; }
  caption { text-align: left; font-weight: 600; margin-bottom: 0.5rem; }
  tr.abnormal td { background: #fff6d6; }
  tr.critical td { background: #ffe0e0; }
  tr.critical strong { color: #a00; }`;

function page(title: string, content: unknown) {
  return htmlPage(title, content, { maxWidth: '52rem', style: RESULTS_STYLE });
}
