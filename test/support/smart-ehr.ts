import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { errors, type ClientMetadata } from 'oidc-provider';

/**
 * The scopes of LabRelay's read-only results app: SMART v2 `.rs` (read + search) patient scopes
 * (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).
 */
export const SMART_SCOPES = [
  'openid',
  'fhirUser',
  'launch',
  'patient/Patient.rs',
  'patient/Observation.rs',
  'patient/DiagnosticReport.rs',
];

const PATIENT = {
  resourceType: 'Patient',
  id: 'pat-1',
  identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: 'MRN-EHR-77' }],
  name: [{ use: 'official', family: 'Doe', given: ['Jane'] }],
  birthDate: '1980-01-15',
};

/** A laboratory Observation as an EHR serves it (https://hl7.org/fhir/R4/observation.html). */
function observation(
  id: string,
  code: string,
  display: string,
  value: number,
  unit: string,
  flag: string,
  low: number,
  high: number,
) {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    category: [
      {
        coding: [
          { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' },
        ],
      },
    ],
    code: { coding: [{ system: 'http://loinc.org', code, display }], text: display },
    subject: { reference: 'Patient/pat-1' },
    effectiveDateTime: '2026-12-03T07:00:00Z',
    valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit },
    interpretation: [
      {
        coding: [
          { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: flag },
        ],
      },
    ],
    referenceRange: [{ low: { value: low, unit }, high: { value: high, unit } }],
  };
}

const OBSERVATIONS = [
  observation('obs-k', '2823-3', 'Potassium', 6.8, 'mmol/L', 'HH', 3.5, 5.1),
  observation('obs-na', '2951-2', 'Sodium', 140, 'mmol/L', 'N', 135, 145),
];

/** The launch handle the EHR hands our app when a clinician opens it with Jane Doe in context. */
export const EHR_LAUNCH = 'xyz-123';
const PATIENT_OF_LAUNCH = new Map([[EHR_LAUNCH, PATIENT.id]]);

export interface SmartEhrClient {
  clientId: string;
  /** Absent: a public client (`token_endpoint_auth_method: none`, PKCE only). */
  clientSecret?: string;
  redirectUri: string;
}

/** A request the EHR received: FHIR reads, and the authorization requests the app sent. */
export interface EhrRequest {
  method: string;
  path: string;
  /** FHIR requests: whether the Bearer token was one the EHR's authorization server issued. */
  authorized: boolean;
}

/**
 * An EHR for SMART EHR-launch tests (https://hl7.org/fhir/smart-app-launch/app-launch.html), on one
 * local port:
 * - a real OpenID/OAuth server (`oidc-provider` v9): authorization code with PKCE (S256) required,
 *   its development login and consent pages (`devInteractions`), the SMART scopes, the `launch` and
 *   `aud` request parameters validated as an EHR would (a launch it issued; `aud` = its FHIR base),
 *   and `patient` in the token response, taken from the launch;
 * - a FHIR read server at `{origin}/fhir` (`.well-known/smart-configuration`, a Patient, laboratory
 *   Observations) that answers only with a token the OAuth server issued, and 401 otherwise.
 * Every FHIR and authorization request is recorded, so a test can prove the app only reads.
 */
export async function startSmartEhr(options: { clients: SmartEhrClient[] }) {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = `${origin}/fhir`;

  const provider = new Provider(origin, {
    clients: options.clients.map((client): ClientMetadata => ({
      client_id: client.clientId,
      ...(client.clientSecret
        ? { client_secret: client.clientSecret, token_endpoint_auth_method: 'client_secret_basic' }
        : { token_endpoint_auth_method: 'none' }),
      redirect_uris: [client.redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      scope: SMART_SCOPES.join(' '),
    })),
    scopes: SMART_SCOPES,
    // v9: an object registers the parameters with a validator each (an array would only register them).
    extraParams: {
      launch(_ctx, value) {
        if (!value || !PATIENT_OF_LAUNCH.has(value))
          throw new errors.InvalidRequest('launch is not one this EHR issued');
      },
      aud(_ctx, value) {
        if (value !== issuer) throw new errors.InvalidRequest(`aud must be this EHR's FHIR base ${issuer}`);
      },
    },
    features: { devInteractions: { enabled: true } },
    // v9 requires PKCE for public clients only by default; this EHR requires it of every client.
    pkce: { required: () => true },
    async findAccount(_ctx, id) {
      return { accountId: id, claims: async () => ({ sub: id }) };
    },
  });

  const launchOfCode = new Map<string, string>();
  const accessTokens: string[] = [];
  provider.use(async (ctx, next) => {
    await next();
    // An authorization answered with a code (at /auth, or at /auth/{uid} after login and consent):
    // remember the launch it was for, the way an EHR keeps the launch context with the grant.
    const location = ctx.response.get('location');
    const launch = ctx.oidc?.params?.launch;
    if (location && typeof launch === 'string') {
      const code = new URL(location, origin).searchParams.get('code');
      if (code) launchOfCode.set(code, launch);
    }
    // The SMART launch context in the token response (app-launch.html#response-5).
    const body = ctx.body as Record<string, unknown> | undefined;
    if (ctx.path === '/token' && body && typeof body.access_token === 'string') {
      accessTokens.push(body.access_token);
      const code = ctx.oidc?.params?.code;
      const patient =
        typeof code === 'string' ? PATIENT_OF_LAUNCH.get(launchOfCode.get(code) ?? '') : undefined;
      if (patient) ctx.body = { ...body, patient };
    }
  });

  const requests: EhrRequest[] = [];
  const authorizations: URLSearchParams[] = [];
  let fhirDown = false;

  async function fhir(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', origin);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/fhir+json' });
      res.end(JSON.stringify(body));
    };
    const outcome = (code: string) => ({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code }],
    });
    if (url.pathname === '/fhir/.well-known/smart-configuration') {
      requests.push({ method: req.method ?? '', path: url.pathname, authorized: false });
      // https://hl7.org/fhir/smart-app-launch/conformance.html#metadata
      return send(200, {
        issuer: origin,
        authorization_endpoint: `${origin}/auth`,
        token_endpoint: `${origin}/token`,
        grant_types_supported: ['authorization_code'],
        code_challenge_methods_supported: ['S256'],
        scopes_supported: SMART_SCOPES,
        capabilities: [
          'launch-ehr',
          'client-public',
          'client-confidential-symmetric',
          'context-ehr-patient',
          'permission-v2',
        ],
      });
    }
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const found = token ? await provider.AccessToken.find(token) : undefined;
    requests.push({ method: req.method ?? '', path: url.pathname + url.search, authorized: !!found });
    if (fhirDown) return send(503, outcome('transient'));
    if (!found) return send(401, outcome('login'));
    if (req.method !== 'GET') return send(405, outcome('not-supported'));
    if (url.pathname === `/fhir/Patient/${PATIENT.id}`) return send(200, PATIENT);
    if (url.pathname === '/fhir/Observation' && url.searchParams.get('patient') === PATIENT.id)
      return send(200, {
        resourceType: 'Bundle',
        type: 'searchset',
        total: OBSERVATIONS.length,
        entry: OBSERVATIONS.map((resource) => ({
          fullUrl: `${issuer}/Observation/${resource.id}`,
          resource,
          search: { mode: 'match' },
        })),
      });
    return send(404, outcome('not-found'));
  }

  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url?.startsWith('/fhir')) return void fhir(req, res);
    const url = new URL(req.url ?? '/', origin);
    if (url.pathname === '/auth') authorizations.push(url.searchParams);
    callback(req, res);
  });
  return {
    /** The EHR's FHIR base URL: the `iss` of a launch, and the `aud` the app must ask a token for. */
    issuer,
    origin,
    /** Every request to the FHIR server, in order. */
    requests,
    /** The query of every authorization request the app sent the browser with. */
    authorizations,
    /** Every access token the authorization server issued (a test checks none is shown). */
    accessTokens,
    /** While down, the FHIR server answers every read with 503 (the OAuth server stays up). */
    setFhirDown(down: boolean) {
      fhirDown = down;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
