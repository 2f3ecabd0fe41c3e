import { createHash, randomBytes } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { html } from 'hono/html';
import { listConnections } from '../../db/connections.ts';
import type { Connection } from '../../db/schema.ts';
import { insertSmartLaunch, takeSmartLaunch } from '../../db/smart-launches.ts';
import { findTenantBySlug } from '../../db/tenants.ts';
import type { OutboundAuth } from '../../domain/outbound.ts';
import type { AppEnv } from '../env.ts';
import { htmlPage } from './html-page.ts';
import { openSecret } from '../security/secret-box.ts';

/**
 * SMART on FHIR EHR launch of LabRelay's read-only results app
 * (https://hl7.org/fhir/smart-app-launch/app-launch.html): the EHR opens `/smart/{slug}/launch`
 * with its FHIR base (`iss`) and a `launch` handle; LabRelay sends the browser to the EHR's
 * authorization server (authorization code with PKCE S256, a single-use `state`), takes the code
 * at `/smart/{slug}/callback`, and shows the patient-in-context's recent lab results read from
 * the EHR's own FHIR API. Only issuers a tenant connected (a pull connection with `smart_launch`
 * auth) are trusted; only GET requests reach the EHR; the access token lives for this one request.
 */

const DEFAULT_SCOPE = 'launch openid fhirUser patient/Patient.rs patient/Observation.rs';
const LAUNCH_MINUTES = 10;
const EHR_TIMEOUT_MS = 15_000;

class LaunchError extends Error {
  readonly status: 400 | 502;
  constructor(message: string, status: 400 | 502 = 400) {
    super(message);
    this.status = status;
  }
}

type SmartLaunchAuth = Extract<OutboundAuth, { type: 'smart_launch' }>;

const normalise = (url: string) => url.trim().replace(/\/+$/, '');

export function smartRoutes() {
  const app = new Hono<AppEnv>();
  app.use('*', async function privatePage(c, next) {
    await next();
    c.header('Cache-Control', 'no-store');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'");
    c.header('X-Content-Type-Options', 'nosniff');
  });

  app.get('/:slug/launch', async (c) => {
    try {
      const { db, config } = c.get('services');
      const iss = c.req.query('iss');
      const launch = c.req.query('launch');
      if (!iss || !launch)
        throw new LaunchError('The EHR must open this page with its FHIR address (iss) and a launch.');
      const { tenant, connection, auth } = await trustedIssuer(c, iss);
      const configuration = await ehrJson(`${normalise(iss)}/.well-known/smart-configuration`);
      const authorize = configuration.authorization_endpoint;
      const token = configuration.token_endpoint;
      if (typeof authorize !== 'string' || typeof token !== 'string')
        throw new LaunchError('The EHR did not say where to authorize (smart-configuration).', 502);
      const methods = configuration.code_challenge_methods_supported;
      if (Array.isArray(methods) && !methods.includes('S256'))
        throw new LaunchError('The EHR does not support PKCE with S256, which LabRelay requires.', 502);

      const state = randomBytes(32).toString('base64url');
      const verifier = randomBytes(32).toString('base64url');
      const redirectUri = `${config.publicUrl}/smart/${tenant.slug}/callback`;
      await insertSmartLaunch(db, {
        state,
        tenant_id: tenant.id,
        connection_id: connection.id,
        issuer: normalise(iss),
        launch,
        code_verifier: verifier,
        redirect_uri: redirectUri,
        token_endpoint: token,
        expires_at: new Date(Date.now() + LAUNCH_MINUTES * 60_000),
      });
      const url = new URL(authorize);
      url.search = new URLSearchParams({
        response_type: 'code',
        client_id: auth.clientId,
        redirect_uri: redirectUri,
        scope: auth.scope ?? DEFAULT_SCOPE,
        state,
        aud: normalise(iss),
        launch,
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      }).toString();
      return c.redirect(url.toString(), 302);
    } catch (error) {
      return failure(c, error);
    }
  });

  app.get('/:slug/callback', async (c) => {
    try {
      const { db, config } = c.get('services');
      const tenant = await findTenantBySlug(db, c.req.param('slug'));
      if (!tenant) throw new LaunchError('This launch address is not known.');
      const state = c.req.query('state');
      if (!state)
        throw new LaunchError('The EHR came back without the launch state; start again from the EHR.');
      const launch = await takeSmartLaunch(db, tenant.id, state);
      if (!launch)
        throw new LaunchError(
          'This launch is unknown, was already used or has expired; start again from the EHR.',
        );
      const error = c.req.query('error');
      if (error)
        throw new LaunchError(
          `The EHR did not authorize LabRelay: ${error}${c.req.query('error_description') ? ` (${c.req.query('error_description')})` : ''}.`,
        );
      const code = c.req.query('code');
      if (!code) throw new LaunchError('The EHR came back without an authorization code.');
      const connection = (await listConnections(db, tenant.id)).find((x) => x.id === launch.connection_id);
      if (!connection || connection.disabled_at)
        throw new LaunchError('This EHR connection has been disabled.');
      const auth = smartAuthOf(config.masterKey, connection);
      if (!auth) throw new LaunchError('This EHR connection is no longer set up for SMART launch.');

      const form = new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: launch.redirect_uri,
        code_verifier: launch.code_verifier,
      });
      const headers: Record<string, string> = {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      };
      if (auth.clientSecret)
        headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(auth.clientId)}:${encodeURIComponent(auth.clientSecret)}`).toString('base64')}`;
      else form.set('client_id', auth.clientId);
      const tokenResponse = await ehrFetch(launch.token_endpoint, { method: 'POST', headers, body: form });
      const tokenBody = (await tokenResponse.json().catch(() => ({}))) as Record<string, unknown>;
      if (!tokenResponse.ok || typeof tokenBody.access_token !== 'string')
        throw new LaunchError(
          `The EHR refused the authorization code (${tokenResponse.status}${typeof tokenBody.error === 'string' ? ` ${tokenBody.error}` : ''}).`,
          502,
        );
      const patientId = tokenBody.patient;
      if (typeof patientId !== 'string' || !/^[A-Za-z0-9\-.]{1,64}$/.test(patientId))
        throw new LaunchError('The EHR did not say which patient is in context.', 502);
      const bearer = { authorization: `Bearer ${tokenBody.access_token}`, accept: 'application/fhir+json' };
      const patient = await ehrJson(`${launch.issuer}/Patient/${patientId}`, bearer);
      const search = new URLSearchParams({
        patient: patientId,
        category: 'laboratory',
        _sort: '-date',
        _count: '50',
      });
      const bundle = await ehrJson(`${launch.issuer}/Observation?${search}`, bearer);
      const observations = (Array.isArray(bundle.entry) ? bundle.entry : [])
        .map((e: { resource?: Record<string, unknown> }) => e.resource)
        .filter(
          (r: Record<string, unknown> | undefined): r is Record<string, unknown> =>
            r?.resourceType === 'Observation',
        );
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
    if (connection.disabled_at || connection.direction !== 'pull' || connection.format !== 'fhir') continue;
    const url = (connection.endpoint as { url?: unknown } | null)?.url;
    if (typeof url !== 'string' || normalise(url) !== normalise(iss)) continue;
    const auth = smartAuthOf(config.masterKey, connection);
    if (auth) return { tenant, connection, auth };
  }
  throw new LaunchError(`${iss} is not an EHR this organisation has connected to LabRelay.`);
}

function smartAuthOf(masterKey: Buffer, connection: Connection): SmartLaunchAuth | null {
  if (!connection.auth_encrypted) return null;
  const auth = JSON.parse(
    openSecret(masterKey, connection.auth_encrypted, `connection/${connection.id}`),
  ) as OutboundAuth;
  return auth.type === 'smart_launch' ? auth : null;
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

async function ehrJson(url: string, headers: Record<string, string> = { accept: 'application/json' }) {
  const response = await ehrFetch(url, { headers });
  if (!response.ok)
    throw new LaunchError(`The EHR answered ${response.status} for ${new URL(url).pathname}.`, 502);
  try {
    return (await response.json()) as Record<string, any>;
  } catch {
    throw new LaunchError(`The EHR's answer for ${new URL(url).pathname} is not JSON.`, 502);
  }
}

function failure(c: Context<AppEnv>, error: unknown) {
  if (!(error instanceof LaunchError)) throw error;
  return c.html(
    page('The results app could not open', html`<p role="alert">${error.message}</p>`),
    error.status,
  );
}

const FLAG_LABEL: Record<string, string> = {
  HH: 'critical high',
  LL: 'critical low',
  H: 'high',
  L: 'low',
  A: 'abnormal',
  AA: 'critical',
};

function resultsPage(patient: Record<string, any>, observations: Record<string, any>[]) {
  const name = patient.name?.[0];
  const display = [...(name?.given ?? []), name?.family].filter(Boolean).join(' ') || 'Unnamed patient';
  const mrn = patient.identifier?.[0]?.value ?? '';
  const rows = observations.map((o) => {
    const q = o.valueQuantity;
    const value = q
      ? `${q.comparator ?? ''}${q.value}${q.unit ? ` ${q.unit}` : ''}`
      : (o.valueString ?? o.valueCodeableConcept?.text ?? '');
    const range = o.referenceRange?.[0];
    const rangeText = range ? (range.text ?? `${range.low?.value ?? ''}–${range.high?.value ?? ''}`) : '';
    const flag = String(o.interpretation?.[0]?.coding?.[0]?.code ?? '');
    const when = o.effectiveDateTime
      ? new Date(o.effectiveDateTime).toISOString().slice(0, 16).replace('T', ' ')
      : '';
    return html`<tr
      class="${flag === 'HH' || flag === 'LL' || flag === 'AA' ? 'critical' : flag && flag !== 'N' ? 'abnormal' : ''}"
    >
      <td>${o.code?.text ?? o.code?.coding?.[0]?.display ?? o.code?.coding?.[0]?.code ?? ''}</td>
      <td>${value}</td>
      <td>${rangeText}</td>
      <td>${flag && flag !== 'N' ? html`<strong>${flag}</strong> ${FLAG_LABEL[flag] ?? ''}` : ''}</td>
      <td>${when}</td>
    </tr>`;
  });
  return page(
    `Lab results: ${display}`,
    html`<p>
        ${display}${patient.birthDate ? html`, born ${patient.birthDate}` : ''}${mrn ? html` · ${mrn}` : ''}
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
  tr.critical td { background: #ffe0e0; }`;

function page(title: string, content: unknown) {
  return htmlPage(title, content, { maxWidth: '52rem', style: RESULTS_STYLE });
}
