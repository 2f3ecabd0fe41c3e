import { Hono, type Context } from 'hono';
import {
  searchsetBundle,
  toDiagnosticReport,
  toObservation,
  toPatient,
  type FhirResource,
  type SearchEntry,
} from '../../adapters/fhir/resources.ts';
import {
  parseDateParams,
  parseReference,
  parseTokens,
  SearchParamError,
  type Token,
} from '../../adapters/fhir/search-params.ts';
import { findPatients } from '../../db/patients.ts';
import {
  findObservationsOfReports,
  searchReleasedObservations,
  searchReleasedReports,
  type AccessScope,
} from '../../db/results.ts';
import { observationView, patientView, reportView } from '../../db/result-views.ts';
import { tenantScope } from '../../db/tenant-scope.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { receiveFhir } from '../intake/fhir.ts';
import { requireScope } from '../middleware/tenant-auth.ts';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const DEFAULT_COUNT = 50;
const MAX_COUNT = 1000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The tenant result API, FHIR R4 (read and search). Only released results are visible. Errors are
 * OperationOutcomes (rendered by `onError`). A DiagnosticReport search includes the reports'
 * Observations (search mode `include`) unless `_include` names other targets.
 */
export function fhirRoutes() {
  const app = new Hono<AppEnv>();
  app.post('/', receiveFhir);
  app.get('/DiagnosticReport', requireScope('results:read'), searchDiagnosticReports);
  app.get('/Observation', requireScope('results:read'), searchObservations);
  app.get('/Patient', requireScope('patients:read'), searchPatients);
  app.get('/DiagnosticReport/:id', requireScope('results:read'), async (c) => {
    const { reports } = await searchReleasedReports(c.get('services').db, c.get('tenant').id, {
      access: accessOf(c),
      ids: [validId(c, 'DiagnosticReport')],
      count: 1,
      offset: 0,
    });
    const report = reports[0];
    if (!report) throw notFound(c, 'DiagnosticReport');
    const observations = await findObservationsOfReports(c.get('services').db, c.get('tenant').id, [
      report.id,
    ]);
    return fhirJson(c, toDiagnosticReport(reportView(report, observations)));
  });
  app.get('/Observation/:id', requireScope('results:read'), async (c) => {
    const { observations } = await searchReleasedObservations(c.get('services').db, c.get('tenant').id, {
      access: accessOf(c),
      ids: [validId(c, 'Observation')],
      count: 1,
      offset: 0,
    });
    if (!observations[0]) throw notFound(c, 'Observation');
    return fhirJson(c, toObservation(observationView(observations[0])));
  });
  app.get('/Patient/:id', requireScope('patients:read'), async (c) => {
    const [patient] = await findPatients(c.get('services').db, c.get('tenant').id, [validId(c, 'Patient')]);
    if (!patient) throw notFound(c, 'Patient');
    return fhirJson(c, toPatient(patientView(patient)));
  });
  app.get('/metadata', (c) => fhirJson(c, capabilityStatement(c)));
  app.get('/ServiceRequest/:id', requireScope('results:read'), (c) => {
    throw notFound(c, 'ServiceRequest');
  });
  return app;
}

type Ctx = Context<AppEnv>;

async function searchDiagnosticReports(c: Ctx) {
  const { db } = c.get('services');
  const tenant = c.get('tenant');
  const q = searchQuery(c, [
    'patient',
    'patient.identifier',
    'subject',
    'code',
    'date',
    'status',
    '_lastUpdated',
    '_count',
    '_offset',
    '_include',
  ]);
  const patientIds = await patientFilter(c, q);
  const date = q.all('date').length ? parseDateParams('date', q.all('date')) : {};
  const updated = q.all('_lastUpdated').length ? parseDateParams('_lastUpdated', q.all('_lastUpdated')) : {};
  const { count, offset } = paging(q);
  const includes = q.all('_include');
  for (const inc of includes) {
    if (inc !== 'DiagnosticReport:result' && inc !== 'DiagnosticReport:subject')
      throw new SearchParamError(
        '_include',
        `_include=${inc} is not supported (DiagnosticReport:result, DiagnosticReport:subject)`,
      );
  }
  const { total, reports } = await searchReleasedReports(db, tenant.id, {
    access: accessOf(c),
    ...(patientIds ? { patientIds } : {}),
    ...(q.first('code') ? { codes: codeFilter(parseTokens('code', q.first('code')!)) } : {}),
    ...(q.first('status') ? { statuses: q.first('status')!.split(',') } : {}),
    ...(date.from ? { effectiveFrom: date.from } : {}),
    ...(date.to ? { effectiveTo: date.to } : {}),
    ...(updated.from ? { updatedFrom: updated.from } : {}),
    ...(updated.to ? { updatedTo: updated.to } : {}),
    count,
    offset,
  });
  const observations = await findObservationsOfReports(
    db,
    tenant.id,
    reports.map((r) => r.id),
  );
  const entries: SearchEntry[] = reports.map((r) => ({
    resource: toDiagnosticReport(
      reportView(
        r,
        observations.filter((o) => o.report_id === r.id),
      ),
    ),
    mode: 'match',
  }));
  const includeResults = includes.length === 0 || includes.includes('DiagnosticReport:result');
  if (includeResults) {
    for (const r of reports) {
      for (const o of observations.filter((x) => x.report_id === r.id)) {
        entries.push({
          resource: toObservation(
            observationView({
              ...o,
              patient_id: r.patient_id,
              report_updated_at: r.updated_at,
              report_issued_at: r.issued_at,
            }),
          ),
          mode: 'include',
        });
      }
    }
  }
  if (includes.includes('DiagnosticReport:subject')) {
    const ids = [...new Set(reports.map((r) => r.patient_id).filter((id): id is string => id !== null))];
    for (const p of await findPatients(db, tenant.id, ids))
      entries.push({ resource: toPatient(patientView(p)), mode: 'include' });
  }
  return fhirJson(c, bundle(c, total, count, offset, entries));
}

async function searchObservations(c: Ctx) {
  const { db } = c.get('services');
  const q = searchQuery(c, [
    'patient',
    'patient.identifier',
    'subject',
    'code',
    'date',
    'status',
    '_lastUpdated',
    '_count',
    '_offset',
  ]);
  const patientIds = await patientFilter(c, q);
  const date = q.all('date').length ? parseDateParams('date', q.all('date')) : {};
  const updated = q.all('_lastUpdated').length ? parseDateParams('_lastUpdated', q.all('_lastUpdated')) : {};
  const { count, offset } = paging(q);
  const { total, observations } = await searchReleasedObservations(db, c.get('tenant').id, {
    access: accessOf(c),
    ...(patientIds ? { patientIds } : {}),
    ...(q.first('code') ? { codes: codeFilter(parseTokens('code', q.first('code')!)) } : {}),
    ...(q.first('status') ? { statuses: q.first('status')!.split(',') } : {}),
    ...(date.from ? { effectiveFrom: date.from } : {}),
    ...(date.to ? { effectiveTo: date.to } : {}),
    ...(updated.from ? { updatedFrom: updated.from } : {}),
    ...(updated.to ? { updatedTo: updated.to } : {}),
    count,
    offset,
  });
  return fhirJson(
    c,
    bundle(
      c,
      total,
      count,
      offset,
      observations.map((o) => ({ resource: toObservation(observationView(o)), mode: 'match' })),
    ),
  );
}

async function searchPatients(c: Ctx) {
  const { db } = c.get('services');
  const q = searchQuery(c, ['identifier', '_id', '_count', '_offset']);
  const { count, offset } = paging(q);
  let ids: string[];
  if (q.first('identifier'))
    ids = await patientIdsByIdentifier(c, parseTokens('identifier', q.first('identifier')!));
  else if (q.first('_id'))
    ids = parseReference('_id', q.first('_id')!, 'Patient').filter((id) => UUID.test(id));
  else
    ids = (
      await tenantScope(db, c.get('tenant').id)
        .selectFrom('patients')
        .select('id')
        .orderBy('created_at', 'desc')
        .limit(MAX_COUNT)
        .execute()
    ).map((r) => r.id);
  const patients = await findPatients(db, c.get('tenant').id, ids.slice(offset, offset + count));
  return fhirJson(
    c,
    bundle(
      c,
      ids.length,
      count,
      offset,
      patients.map((p) => ({ resource: toPatient(patientView(p)), mode: 'match' })),
    ),
  );
}

interface Query {
  first(name: string): string | undefined;
  all(name: string): string[];
}

/**
 * Reads the query, refusing (400) parameters this search does not support rather than ignoring them
 * silently, unless the client asked for `Prefer: handling=lenient` (FHIR R4 search 3.1.1.4).
 */
function searchQuery(c: Ctx, supported: string[]): Query {
  const params = c.req.queries();
  const lenient = /\bhandling\s*=\s*lenient\b/i.test(c.req.header('prefer') ?? '');
  for (const name of Object.keys(params)) {
    if (lenient) break;
    const base = name.split(':')[0]!;
    if (!supported.includes(name) && !supported.includes(base) && !['_format', '_pretty'].includes(base)) {
      throw new SearchParamError(
        name,
        `search parameter ${name} is not supported here (supported: ${supported.join(', ')})`,
      );
    }
  }
  return { first: (n) => params[n]?.[0], all: (n) => params[n] ?? [] };
}

function paging(q: Query): { count: number; offset: number } {
  const count = q.first('_count') === undefined ? DEFAULT_COUNT : Number(q.first('_count'));
  const offset = q.first('_offset') === undefined ? 0 : Number(q.first('_offset'));
  if (!Number.isInteger(count) || count < 0 || count > MAX_COUNT)
    throw new SearchParamError('_count', `_count must be a whole number from 0 to ${MAX_COUNT}`);
  if (!Number.isInteger(offset) || offset < 0)
    throw new SearchParamError('_offset', '_offset must be a whole number, 0 or more');
  return { count, offset };
}

/** Patient ids from `patient`/`subject` (our ids) or `patient.identifier` (the sender's); undefined when neither is given. */
async function patientFilter(c: Ctx, q: Query): Promise<string[] | undefined> {
  const ref = q.first('patient') ?? q.first('subject');
  if (ref) return parseReference('patient', ref, 'Patient').filter((id) => UUID.test(id));
  const identifier = q.first('patient.identifier');
  if (identifier) return patientIdsByIdentifier(c, parseTokens('patient.identifier', identifier));
  return undefined;
}

async function patientIdsByIdentifier(c: Ctx, tokens: Token[]): Promise<string[]> {
  const rows = await tenantScope(c.get('services').db, c.get('tenant').id)
    .selectFrom('patient_identifiers')
    .select('patient_id')
    .where((eb) =>
      eb.or(
        tokens.map((t) =>
          t.system === undefined
            ? eb('value', '=', t.code)
            : eb.and([eb('system', '=', t.system), eb('value', '=', t.code)]),
        ),
      ),
    )
    .distinct()
    .execute();
  return rows.map((r) => r.patient_id);
}

function codeFilter(tokens: Token[]) {
  return tokens.map((t) => ({ system: t.system === undefined ? null : t.system, code: t.code }));
}

function bundle(c: Ctx, total: number, count: number, offset: number, entries: SearchEntry[]): FhirResource {
  const url = new URL(c.req.url);
  const base = `${url.origin}/v1/t/${c.get('tenant').slug}/fhir`;
  const next = offset + count < total && count > 0 ? new URL(url) : null;
  if (next) next.searchParams.set('_offset', String(offset + count));
  return searchsetBundle(base, url.toString(), total, entries, next ? next.toString() : null);
}

function fhirJson(c: Ctx, resource: FhirResource) {
  return c.body(JSON.stringify(resource), 200, { 'Content-Type': FHIR_JSON });
}

function validId(c: Ctx, type: string): string {
  const id = c.req.param('id') ?? '';
  if (!UUID.test(id)) throw notFound(c, type);
  return id;
}

function notFound(c: Ctx, type: string): AppError {
  return new AppError(
    'not_found',
    `${type}/${c.req.param('id')} is not known to tenant ${c.get('tenant').slug}`,
  );
}

/** What this FHIR endpoint can do: https://hl7.org/fhir/R4/capabilitystatement.html */
function capabilityStatement(c: Ctx): FhirResource {
  const search = (names: [string, string][]) => names.map(([name, type]) => ({ name, type }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-11-22',
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['json'],
    implementation: {
      description: `LabRelay result API of tenant ${c.get('tenant').slug}`,
      url: `${new URL(c.req.url).origin}/v1/t/${c.get('tenant').slug}/fhir`,
    },
    rest: [
      {
        mode: 'server',
        security: {
          description: 'Authorization: Bearer {tenant API key} with the results:read / patients:read scope',
        },
        resource: [
          {
            type: 'DiagnosticReport',
            interaction: [{ code: 'read' }, { code: 'search-type' }],
            searchInclude: ['DiagnosticReport:result', 'DiagnosticReport:subject'],
            searchParam: search([
              ['patient', 'reference'],
              ['patient.identifier', 'token'],
              ['subject', 'reference'],
              ['code', 'token'],
              ['date', 'date'],
              ['status', 'token'],
              ['_lastUpdated', 'date'],
            ]),
          },
          {
            type: 'Observation',
            interaction: [{ code: 'read' }, { code: 'search-type' }],
            searchParam: search([
              ['patient', 'reference'],
              ['patient.identifier', 'token'],
              ['subject', 'reference'],
              ['code', 'token'],
              ['date', 'date'],
              ['status', 'token'],
              ['_lastUpdated', 'date'],
            ]),
          },
          {
            type: 'Patient',
            interaction: [{ code: 'read' }, { code: 'search-type' }],
            searchParam: search([
              ['identifier', 'token'],
              ['_id', 'token'],
            ]),
          },
        ],
      },
    ],
  };
}

/** The reading credential's client and location scope (seed 003). */
function accessOf(c: Context<AppEnv>): AccessScope {
  const credential = c.get('credential');
  return { clientIds: credential.client_ids, locationIds: credential.location_ids };
}
