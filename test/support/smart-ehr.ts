import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

const PATIENT = {
  resourceType: 'Patient',
  id: 'pat-1',
  identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: 'MRN-EHR-77' }],
  name: [{ family: 'Doe', given: ['Jane'] }],
  birthDate: '1980-01-15',
};

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

/**
 * An EHR for SMART launch tests, on one local port: a real OpenID/OAuth server (`oidc-provider`,
 * authorization code with PKCE, its development login and consent pages, the SMART scopes and the
 * `launch` parameter, `patient` in the token response) and a small FHIR read server at `/fhir`
 * that accepts only tokens that server issued. Every FHIR request is recorded.
 */
export async function startSmartEhr(options: {
  redirectUri: string;
  clientId?: string;
  clientSecret?: string;
}) {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = options.clientId ?? 'labrelay-app';
  const provider = new Provider(origin, {
    clients: [
      {
        client_id: clientId,
        client_secret: options.clientSecret ?? 'app-secret-0123456789',
        redirect_uris: [options.redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'openid launch fhirUser patient/Patient.rs patient/Observation.rs',
      },
    ],
    scopes: ['openid', 'launch', 'fhirUser', 'patient/Patient.rs', 'patient/Observation.rs'],
    extraParams: ['launch', 'aud'],
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    async findAccount(_ctx, id) {
      return { accountId: id, claims: async () => ({ sub: id }) };
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.body as Record<string, unknown> | undefined;
    // SMART launch context: the patient the clinician had open in the EHR.
    if (ctx.path === '/token' && body && typeof body === 'object' && 'access_token' in body)
      ctx.body = { ...body, patient: 'pat-1' };
  });
  const requests: { method: string; path: string; authorized: boolean }[] = [];
  let fhirDown = false;

  async function fhir(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', origin);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/fhir+json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/fhir/.well-known/smart-configuration') {
      requests.push({ method: req.method ?? '', path: url.pathname, authorized: false });
      return send(200, {
        issuer: origin,
        authorization_endpoint: `${origin}/auth`,
        token_endpoint: `${origin}/token`,
        code_challenge_methods_supported: ['S256'],
        capabilities: ['launch-ehr', 'client-confidential-symmetric', 'context-ehr-patient'],
      });
    }
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const found = token ? await provider.AccessToken.find(token) : undefined;
    requests.push({ method: req.method ?? '', path: url.pathname + url.search, authorized: !!found });
    if (fhirDown)
      return send(503, {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'transient' }],
      });
    if (!found)
      return send(401, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] });
    if (req.method !== 'GET')
      return send(405, {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'not-supported' }],
      });
    if (url.pathname === '/fhir/Patient/pat-1') return send(200, PATIENT);
    if (url.pathname === '/fhir/Observation' && url.searchParams.get('patient') === 'pat-1')
      return send(200, {
        resourceType: 'Bundle',
        type: 'searchset',
        total: OBSERVATIONS.length,
        entry: OBSERVATIONS.map((resource) => ({
          fullUrl: `${origin}/fhir/Observation/${resource.id}`,
          resource,
        })),
      });
    return send(404, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] });
  }

  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url?.startsWith('/fhir')) void fhir(req, res);
    else callback(req, res);
  });
  return {
    issuer: `${origin}/fhir`,
    origin,
    requests,
    setFhirDown(down: boolean) {
      fhirDown = down;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
