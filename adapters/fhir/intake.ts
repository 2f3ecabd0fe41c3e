import {
  OBSERVATION_VALUE_TYPE,
  ORDER_ACTION,
  RESULT_STATUS,
  type Coding,
  type Identifier,
  type LabOrder,
  type LabReport,
  type ObservationResult,
  type OrderAction,
  type OrderMessage,
  type PatientDemographics,
  type Practitioner,
  type ReferenceRange,
  type ReportDocument,
  type ResultMessage,
  type ResultStatus,
} from '../../domain/model.ts';
import { parseReferenceRange } from '../../domain/flags.ts';

/**
 * Inbound FHIR R4: a Bundle (transaction, batch, collection, message) or a single resource, read
 * into the canonical model the HL7 v2 adapter also produces.
 *
 * Bundle: https://hl7.org/fhir/R4/bundle.html (resolving references: #references)
 * DiagnosticReport: https://hl7.org/fhir/R4/diagnosticreport.html
 * Observation: https://hl7.org/fhir/R4/observation.html
 * ServiceRequest: https://hl7.org/fhir/R4/servicerequest.html
 * Patient: https://hl7.org/fhir/R4/patient.html
 * Specimen: https://hl7.org/fhir/R4/specimen.html
 * OperationOutcome: https://hl7.org/fhir/R4/operationoutcome.html
 */

/** The FHIR R4 IssueType value set: https://hl7.org/fhir/R4/valueset-issue-type.html */
export type IssueType =
  | 'invalid'
  | 'structure'
  | 'required'
  | 'value'
  | 'invariant'
  | 'security'
  | 'login'
  | 'unknown'
  | 'expired'
  | 'forbidden'
  | 'suppressed'
  | 'processing'
  | 'not-supported'
  | 'duplicate'
  | 'multiple-matches'
  | 'not-found'
  | 'deleted'
  | 'too-long'
  | 'code-invalid'
  | 'extension'
  | 'too-costly'
  | 'business-rule'
  | 'conflict'
  | 'transient'
  | 'lock-error'
  | 'no-store'
  | 'exception'
  | 'timeout'
  | 'incomplete'
  | 'throttled'
  | 'informational';

export interface OperationOutcomeIssue {
  severity: 'fatal' | 'error' | 'warning' | 'information';
  code: IssueType;
  /** A sentence a person fixing the sender's interface can act on. */
  diagnostics?: string;
  /** FHIRPath of the failing element, e.g. `Bundle.entry[2].resource.subject`. */
  expression?: string[];
}

export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  issue: OperationOutcomeIssue[];
}

/**
 * An OperationOutcome with one issue per problem: https://hl7.org/fhir/R4/operationoutcome.html
 *
 * @example operationOutcome([{ severity: 'error', code: 'required', diagnostics: 'DiagnosticReport.status is required', expression: ['DiagnosticReport.status'] }])
 */
export function operationOutcome(issues: OperationOutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: issues };
}

/**
 * A body that cannot be accepted: answered with `outcome` and `httpStatus` (400 when the input is
 * not well-formed FHIR R4, 422 when it is but LabRelay cannot take it). Nothing of it is stored.
 */
export class FhirIntakeError extends Error {
  override readonly name = 'FhirIntakeError';
  readonly outcome: OperationOutcome;
  readonly httpStatus: 400 | 422;
  constructor(outcome: OperationOutcome, httpStatus: 400 | 422) {
    super(outcome.issue.map((i) => i.diagnostics ?? i.code).join('; '));
    this.outcome = outcome;
    this.httpStatus = httpStatus;
  }
}

/** What one FHIR body asks LabRelay to do. */
export interface FhirIntake {
  kind: 'transaction' | 'batch' | 'collection' | 'message' | 'resource';
  /** Bundle.identifier (system|value) when present: a natural idempotency key. */
  bundleIdentifier: string | null;
  /** One per patient, reports in the order they were sent. */
  results: ResultMessage[];
  /** One per patient. */
  orders: OrderMessage[];
  /** Patients sent without a report or order (Patient resources alone): create/update patients. */
  patients: PatientDemographics[];
  /** One entry per Bundle entry (or one for a single resource), for the transaction-response. */
  entries: { resourceType: string; fullUrl: string | null; status: '201 Created' | '200 OK' }[];
}

/** Bounds on what one body may ask for; the request body limit bounds the rest. */
const MAX_ENTRIES = 10_000;
const MAX_OBSERVATIONS_PER_REPORT = 1_000;
const MAX_CONTAINED = 10_000;
/** Codes, identifiers, names, URLs. */
const MAX_STRING_LENGTH = 4_096;
/** Free text: notes, conclusions, string results. */
const MAX_TEXT_LENGTH = 100_000;
/** As for HL7 EI.1: an order number longer than this could not name a workflow either. */
const MAX_ORDER_NUMBER_LENGTH = 199;
/** An OperationOutcome lists at most this many problems, then says how many more there were. */
const MAX_ISSUES = 100;

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const NPI = 'http://hl7.org/fhir/sid/us-npi';

/** Resources whose content LabRelay stores (as a patient, a report, an order, or part of one). */
const CONTENT_TYPES = new Set(['Patient', 'ServiceRequest', 'DiagnosticReport', 'Observation', 'Specimen']);
/** Resources read only when another one references them, or carried along and not stored. */
const CONTEXT_TYPES = new Set([
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
  'Encounter',
  'Coverage',
  'Condition',
  'Provenance',
]);
/** A single resource body may be one of these (not a Specimen or a Practitioner on its own). */
const SINGLE_RESOURCE_TYPES = new Set(['Patient', 'ServiceRequest', 'DiagnosticReport', 'Observation']);

/**
 * Resource types that exist only in other FHIR versions and say so unmistakably
 * (https://hl7.org/fhir/R4/diff.html, https://hl7.org/fhir/R5/diff.html).
 */
const OTHER_VERSION_TYPES: Record<string, string> = {
  DiagnosticOrder: 'DSTU2',
  DeviceUseRequest: 'DSTU2',
  Order: 'DSTU2',
  OrderResponse: 'DSTU2',
  ProcedureRequest: 'STU3',
  ReferralRequest: 'STU3',
  DeviceComponent: 'STU3',
  BodySite: 'STU3',
  Sequence: 'STU3',
  ProcessRequest: 'STU3',
  ProcessResponse: 'STU3',
  Transport: 'R5',
  SubscriptionTopic: 'R5',
  RequestOrchestration: 'R5',
  DeviceUsage: 'R5',
  GenomicStudy: 'R5',
  ImagingSelection: 'R5',
  InventoryItem: 'R5',
  Requirements: 'R5',
  ActorDefinition: 'R5',
};

/**
 * Elements that exist only in other versions of the resources we read (`Type.element` → version).
 * R5 added DiagnosticReport.note/supportingInfo/composition/study, Observation.triggeredBy/
 * bodyStructure and Bundle.issues; STU3 had DiagnosticReport.codedDiagnosis/image/context,
 * Observation.comment/context and Patient.animal, all renamed or removed in R4.
 */
const OTHER_VERSION_ELEMENTS: Record<string, string> = {
  'Bundle.issues': 'R5',
  'DiagnosticReport.note': 'R5',
  'DiagnosticReport.supportingInfo': 'R5',
  'DiagnosticReport.composition': 'R5',
  'DiagnosticReport.study': 'R5',
  'Observation.triggeredBy': 'R5',
  'Observation.bodyStructure': 'R5',
  'DiagnosticReport.codedDiagnosis': 'STU3',
  'DiagnosticReport.image': 'STU3',
  'DiagnosticReport.context': 'STU3',
  'Observation.comment': 'STU3',
  'Observation.context': 'STU3',
  'Patient.animal': 'STU3',
};

const VERSION_NAMES: Record<string, string> = {
  '1.0': 'DSTU2',
  '3.0': 'STU3',
  '4.3': 'R4B',
  '5.0': 'R5',
  '6.0': 'R6',
};

/** DiagnosticReportStatus (R4) to ours; `partial` is results still coming, `appended` an amendment. */
const REPORT_STATUS: Record<string, ResultStatus | 'unknown'> = {
  registered: RESULT_STATUS.registered,
  partial: RESULT_STATUS.preliminary,
  preliminary: RESULT_STATUS.preliminary,
  final: RESULT_STATUS.final,
  amended: RESULT_STATUS.amended,
  corrected: RESULT_STATUS.corrected,
  appended: RESULT_STATUS.amended,
  cancelled: RESULT_STATUS.cancelled,
  'entered-in-error': RESULT_STATUS.enteredInError,
  unknown: 'unknown',
};

/** ObservationStatus (R4). */
const OBSERVATION_STATUS: Record<string, ResultStatus | 'unknown'> = {
  registered: RESULT_STATUS.registered,
  preliminary: RESULT_STATUS.preliminary,
  final: RESULT_STATUS.final,
  amended: RESULT_STATUS.amended,
  corrected: RESULT_STATUS.corrected,
  cancelled: RESULT_STATUS.cancelled,
  'entered-in-error': RESULT_STATUS.enteredInError,
  unknown: 'unknown',
};

/** RequestStatus (R4) of an order we are asked to place; null: a status that places nothing. */
const REQUEST_STATUS: Record<string, OrderAction | null> = {
  draft: ORDER_ACTION.new,
  active: ORDER_ACTION.new,
  'on-hold': null,
  revoked: ORDER_ACTION.cancel,
  completed: null,
  'entered-in-error': ORDER_ACTION.cancel,
  unknown: null,
};

const REQUEST_INTENTS = [
  'proposal',
  'plan',
  'directive',
  'order',
  'original-order',
  'reflex-order',
  'filler-order',
  'instance-order',
  'option',
];
const REQUEST_PRIORITIES = ['routine', 'urgent', 'asap', 'stat'];
const GENDERS = ['male', 'female', 'other', 'unknown'];
const COMPARATORS = ['<', '<=', '>=', '>'];
const BUNDLE_TYPES = [
  'document',
  'message',
  'transaction',
  'transaction-response',
  'batch',
  'batch-response',
  'history',
  'searchset',
  'collection',
];
const ACCEPTED_BUNDLE_TYPES = ['transaction', 'batch', 'collection', 'message'] as const;
type AcceptedBundleType = (typeof ACCEPTED_BUNDLE_TYPES)[number];

/** The value[x] choices of Observation (R4). */
const OBSERVATION_VALUES = [
  'valueQuantity',
  'valueCodeableConcept',
  'valueString',
  'valueBoolean',
  'valueInteger',
  'valueRange',
  'valueRatio',
  'valueSampledData',
  'valueTime',
  'valueDateTime',
  'valuePeriod',
];

/** A table lookup that never answers with an inherited property (`constructor`, `__proto__`). */
function lookup<T>(table: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An element of a JSON object: own properties only, and `null` read as absent. */
function get(o: Json, key: string): unknown {
  return Object.hasOwn(o, key) && o[key] !== null ? o[key] : undefined;
}

/** Where an element is: its FHIRPath for `expression`, and a name a person reads in `diagnostics`. */
interface Loc {
  expr: string;
  name: string;
}
const at = (l: Loc, key: string): Loc => ({ expr: `${l.expr}.${key}`, name: `${l.name}.${key}` });
const item = (l: Loc, i: number): Loc => ({ expr: `${l.expr}[${i}]`, name: `${l.name}[${i}]` });

interface Problem {
  status: 400 | 422;
  code: IssueType;
  expression: string | null;
  diagnostics: string;
}

/** One resource of the body: a Bundle entry's resource, a contained resource, or the body itself. */
interface Node {
  /** Unique within the body; names the patient a report belongs to. */
  seq: number;
  type: string;
  resource: Json;
  loc: Loc;
  fullUrl: string | null;
  /** Bundle.entry.request.method, when the sender gave one. */
  method: 'POST' | 'PUT' | null;
  /** The resource this one is contained in (its `#id` references resolve there). */
  container: Node | null;
  contained: Map<string, Node>;
}

type Resolved =
  | { kind: 'node'; node: Node }
  /** A reference to something not in the body: `Patient/123`, an absolute URL, a urn not present. */
  | { kind: 'external'; reference: string; type: string | null; id: string | null; relative: boolean }
  /** A logical reference: `{ identifier }` with no `reference`. */
  | { kind: 'identifier'; identifier: Json; type: string | null }
  /** A Reference with neither (`display` only). */
  | { kind: 'empty' };

interface PatientRef {
  /** Names the patient within this body, for grouping reports and orders one message per patient. */
  key: string;
  patient: PatientDemographics;
}

interface Context {
  problems: Problem[];
  inBundle: boolean;
  nodes: Node[];
  byFullUrl: Map<string, Node>;
  /** `Type/id` of entries, from `resource.id` and from RESTful fullUrls. */
  byTypeId: Map<string, Node>;
  patients: Map<Node, PatientDemographics>;
  observations: Map<Node, ObservationResult | null>;
  practitioners: Map<Node, Practitioner | null>;
  specimens: Map<Node, SpecimenInfo>;
  requests: Map<Node, RequestInfo | null>;
  reports: Map<Node, { patient: PatientRef | null; report: LabReport } | null>;
}

function problem(ctx: Context, status: 400 | 422, code: IssueType, l: Loc | null, diagnostics: string): void {
  ctx.problems.push({ status, code, expression: l?.expr ?? null, diagnostics });
}

function fail(all: Problem[]): never {
  // A resource read from two places (a panel in two reports) reports its problems once.
  const seen = new Set<string>();
  const problems = all.filter((p) => {
    const key = `${p.expression}\u0000${p.diagnostics}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  if (problems.length === 0)
    problems.push({
      status: 422,
      code: 'processing',
      expression: null,
      diagnostics: 'the body could not be read',
    });
  const listed = problems.slice(0, MAX_ISSUES).map((p): OperationOutcomeIssue => ({
    severity: 'error',
    code: p.code,
    diagnostics: p.diagnostics,
    ...(p.expression ? { expression: [p.expression] } : {}),
  }));
  if (problems.length > MAX_ISSUES)
    listed.push({
      severity: 'error',
      code: 'processing',
      diagnostics: `${problems.length - MAX_ISSUES} more problems are not listed`,
    });
  throw new FhirIntakeError(operationOutcome(listed), problems.some((p) => p.status === 400) ? 400 : 422);
}

/**
 * Reads a FHIR R4 body (already parsed from JSON) into the reports, orders and patients it carries.
 *
 * - Bundle types transaction, batch, collection and message (whose first entry is a MessageHeader
 *   and whose `focus` names the content); a single Patient, ServiceRequest, DiagnosticReport or
 *   Observation.
 * - References by `urn:uuid:`/absolute fullUrl, relative `Type/id` (against entries' fullUrl or
 *   `resourceType/id`), `#id` (contained). A `Patient/x` not in the body is our own patient `x`;
 *   any other reference that resolves to nothing is refused.
 * - A DiagnosticReport becomes a report with its results (panels' `hasMember` flattened); an
 *   Observation no report lists becomes a report of its own; a ServiceRequest no result is based
 *   on becomes an order; a Patient nothing refers to is a patient to create or update.
 * - Another FHIR version (`fhirVersion`, a versioned core profile, a resource type or element of
 *   another version) is refused before anything else is read.
 *
 * All problems are collected and thrown together, each naming its element.
 *
 * @param options.fhirVersion the `fhirVersion` parameter of the request's Content-Type, if any.
 * @throws {FhirIntakeError} 400 for input that is not well-formed FHIR R4, 422 for content LabRelay
 *   cannot accept (an unresolvable reference, a report without a patient, an unsupported Bundle type).
 *
 * @example
 * parseFhirIntake({ resourceType: 'Patient', identifier: [{ system: 'urn:oid:1.2.3', value: 'MRN1' }] })
 * // { kind: 'resource', patients: [{ identifiers: [{ system: 'urn:oid:1.2.3', value: 'MRN1', type: null }], … }], … }
 */
export function parseFhirIntake(body: unknown, options: { fhirVersion?: string | null } = {}): FhirIntake {
  const declared = options.fhirVersion?.trim().replace(/^"(.*)"$/, '$1') ?? '';
  if (declared && !/^4\.0(\.\d+)?$/.test(declared)) {
    fail([
      {
        status: 422,
        code: 'not-supported',
        expression: null,
        diagnostics: `FHIR R4 (4.0.x) expected, got ${versionName(declared)} (Content-Type fhirVersion=${declared})`,
      },
    ]);
  }
  if (!isObject(body))
    fail([
      {
        status: 400,
        code: 'structure',
        expression: null,
        diagnostics: 'the body must be a FHIR resource: a JSON object with a resourceType',
      },
    ]);
  const resourceType = get(body, 'resourceType');
  if (typeof resourceType !== 'string' || resourceType === '')
    fail([
      {
        status: 400,
        code: resourceType === undefined ? 'required' : 'structure',
        expression: 'resourceType',
        diagnostics:
          resourceType === undefined
            ? 'the body has no resourceType: send a FHIR R4 Bundle or resource'
            : 'resourceType must be a string naming a FHIR resource type',
      },
    ]);

  const entries = resourceType === 'Bundle' ? get(body, 'entry') : undefined;
  if (Array.isArray(entries) && entries.length > MAX_ENTRIES)
    fail([
      {
        status: 422,
        code: 'too-long',
        expression: 'Bundle.entry',
        diagnostics: `the Bundle has ${entries.length} entries; at most ${MAX_ENTRIES} are accepted in one request`,
      },
    ]);

  const versionProblems: Problem[] = [];
  checkVersion(body, { expr: resourceType, name: resourceType }, versionProblems);
  if (versionProblems.length > 0) fail(versionProblems);

  const ctx: Context = {
    problems: [],
    inBundle: resourceType === 'Bundle',
    nodes: [],
    byFullUrl: new Map(),
    byTypeId: new Map(),
    patients: new Map(),
    observations: new Map(),
    practitioners: new Map(),
    specimens: new Map(),
    requests: new Map(),
    reports: new Map(),
  };
  const intake =
    resourceType === 'Bundle' ? readBundle(ctx, body) : readSingleResource(ctx, body, resourceType);
  if (ctx.problems.length > 0 || !intake) fail(ctx.problems);
  return intake;
}

function versionName(version: string): string {
  const minor = /^(\d+\.\d+)/.exec(version)?.[1] ?? version;
  const name = lookup(VERSION_NAMES, minor);
  return name ? `${name} (${version})` : version;
}

/**
 * Signs that the body is another FHIR version: a core profile with a version (`…|5.0.0`, `…/R5/…`),
 * a resource type or an element of another version. Walks entries and contained resources.
 */
function checkVersion(resource: Json, l: Loc, problems: Problem[]): void {
  const type = get(resource, 'resourceType');
  if (typeof type !== 'string') return;
  const refuse = (where: Loc, got: string, why: string) =>
    problems.push({
      status: 422,
      code: 'not-supported',
      expression: where.expr,
      diagnostics: `FHIR R4 (4.0.x) expected, got ${got}: ${why}`,
    });
  const other = lookup(OTHER_VERSION_TYPES, type);
  if (other) refuse(at(l, 'resourceType'), other, `${type} is a ${other} resource type`);
  for (const [element, version] of Object.entries(OTHER_VERSION_ELEMENTS)) {
    const [owner, name] = element.split('.') as [string, string];
    if (owner === type && get(resource, name) !== undefined)
      refuse(at(l, name), version, `${element} exists only in ${version}`);
  }
  // R5 made ServiceRequest.code a CodeableReference: { concept: CodeableConcept }.
  const srCode = get(resource, 'code');
  if (type === 'ServiceRequest' && isObject(srCode) && get(srCode, 'concept') !== undefined)
    refuse(at(l, 'code'), 'R5', 'ServiceRequest.code is a CodeableReference ({ concept }) only in R5');
  const meta = get(resource, 'meta');
  const profiles = isObject(meta) ? get(meta, 'profile') : undefined;
  if (Array.isArray(profiles)) {
    for (const [i, profile] of profiles.entries()) {
      if (typeof profile !== 'string') continue;
      const m =
        /^https?:\/\/hl7\.org\/fhir\/(DSTU2|STU3|R4B|R5|R6|\d+\.\d+(?:\.\d+)?)\/StructureDefinition\//.exec(
          profile,
        ) ??
        /^https?:\/\/hl7\.org\/fhir\/StructureDefinition\/[A-Za-z]+\|(\d+\.\d+(?:\.\d+)?)$/.exec(profile);
      const version = m?.[1];
      if (version && version !== 'R4' && !/^4\.0(\.\d+)?$/.test(version))
        refuse(
          item(at(at(l, 'meta'), 'profile'), i),
          /^\d/.test(version) ? versionName(version) : version,
          `meta.profile ${profile} is a core profile of that version`,
        );
    }
  }
  if (type === 'Bundle') {
    const entries = get(resource, 'entry');
    if (Array.isArray(entries))
      for (const [i, entry] of entries.entries()) {
        const r = isObject(entry) ? get(entry, 'resource') : undefined;
        if (isObject(r)) checkVersion(r, at(item(at(l, 'entry'), i), 'resource'), problems);
      }
  }
  const contained = get(resource, 'contained');
  if (Array.isArray(contained))
    for (const [i, r] of contained.slice(0, MAX_CONTAINED).entries())
      if (isObject(r)) checkVersion(r, item(at(l, 'contained'), i), problems);
}

// ---------------------------------------------------------------------------------------------
// Bundle and resources: https://hl7.org/fhir/R4/bundle.html

function readBundle(ctx: Context, bundle: Json): FhirIntake | null {
  const l: Loc = { expr: 'Bundle', name: 'Bundle' };
  const type = readString(ctx, bundle, 'type', l, { required: 400 });
  let kind: AcceptedBundleType | null = null;
  if (type !== undefined) {
    if ((ACCEPTED_BUNDLE_TYPES as readonly string[]).includes(type)) kind = type as AcceptedBundleType;
    else if (BUNDLE_TYPES.includes(type))
      problem(
        ctx,
        422,
        'not-supported',
        at(l, 'type'),
        `a Bundle of type ${type} is not accepted here: send a transaction, batch, collection or message`,
      );
    else
      problem(
        ctx,
        400,
        'value',
        at(l, 'type'),
        `Bundle.type ${JSON.stringify(type)} is not a FHIR R4 bundle type (${BUNDLE_TYPES.join(', ')})`,
      );
  }
  const bundleIdentifier = readBundleIdentifier(ctx, bundle, l);
  const rawEntries = readArray(ctx, bundle, 'entry', l);
  if (!kind) return null;
  if (!rawEntries || rawEntries.length === 0) {
    if (rawEntries || get(bundle, 'entry') === undefined)
      problem(ctx, 422, 'required', at(l, 'entry'), 'the Bundle has no entries: there is nothing to accept');
    return null;
  }

  const entryLoc = at(l, 'entry');
  const entries: FhirIntake['entries'] = [];
  const entryNodes: (Node | null)[] = [];
  const firstFullUrl = new Map<string, number>();
  for (const [i, raw] of rawEntries.entries()) {
    const el = item(entryLoc, i);
    entryNodes.push(null);
    if (!isObject(raw)) {
      problem(ctx, 400, 'structure', el, `${el.name} must be an object with a resource`);
      continue;
    }
    const fullUrl = readString(ctx, raw, 'fullUrl', el) ?? null;
    if (fullUrl !== null) {
      const earlier = firstFullUrl.get(fullUrl);
      if (earlier !== undefined)
        problem(
          ctx,
          400,
          'invalid',
          at(el, 'fullUrl'),
          `${el.name}.fullUrl ${fullUrl} is also the fullUrl of Bundle.entry[${earlier}]: fullUrls must be unique`,
        );
      else firstFullUrl.set(fullUrl, i);
    }
    const method = kind === 'transaction' || kind === 'batch' ? readRequest(ctx, raw, el) : null;
    const resource = get(raw, 'resource');
    if (resource === undefined) {
      // A transaction entry may be a request alone (a DELETE), but that was refused above.
      if (method !== undefined)
        problem(ctx, 400, 'required', at(el, 'resource'), `${el.name} has no resource`);
      continue;
    }
    const rl = at(el, 'resource');
    if (!isObject(resource)) {
      problem(ctx, 400, 'structure', rl, `${rl.name} must be a JSON object`);
      continue;
    }
    const resourceType = readResourceType(ctx, resource, rl);
    if (!resourceType) continue;
    const named: Loc = { expr: rl.expr, name: resourceType };
    const isHeader = resourceType === 'MessageHeader';
    if (isHeader && !(kind === 'message' && i === 0)) {
      problem(
        ctx,
        kind === 'message' ? 400 : 422,
        kind === 'message' ? 'invalid' : 'not-supported',
        at(rl, 'resourceType'),
        kind === 'message'
          ? `${rl.name}: a MessageHeader may only be the first entry of a message Bundle`
          : `${rl.name}: a MessageHeader belongs in a message Bundle, not a ${kind}`,
      );
      continue;
    }
    if (!isHeader && !acceptedType(ctx, resourceType, at(rl, 'resourceType'), named.name)) continue;
    const node = addNode(ctx, resource, resourceType, named, fullUrl, method ?? null, null);
    entryNodes[i] = node;
    entries.push({
      resourceType,
      fullUrl,
      status: CONTENT_TYPES.has(resourceType) ? '201 Created' : '200 OK',
    });
  }
  if (kind === 'message' && entryNodes[0]?.type !== 'MessageHeader')
    problem(
      ctx,
      400,
      'invalid',
      at(item(entryLoc, 0), 'resource'),
      'the first entry of a message Bundle must be its MessageHeader',
    );

  const nodes = entryNodes.filter((n): n is Node => n !== null);
  // Index entries for references: fullUrl first, then `Type/id` from resource.id and RESTful URLs.
  for (const node of nodes) {
    if (node.fullUrl !== null) {
      ctx.byFullUrl.set(node.fullUrl, node);
      const restful = /(?:^|\/)([A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64})$/.exec(node.fullUrl)?.[1];
      if (restful && !ctx.byTypeId.has(restful)) ctx.byTypeId.set(restful, node);
    }
    const id = get(node.resource, 'id');
    if (typeof id === 'string' && !ctx.byTypeId.has(`${node.type}/${id}`))
      ctx.byTypeId.set(`${node.type}/${id}`, node);
  }

  let roots: Node[];
  if (kind === 'message') {
    const header = entryNodes[0];
    roots = header?.type === 'MessageHeader' ? messageFocus(ctx, header) : [];
  } else {
    const referenced = referencedByResults(ctx);
    roots = nodes.filter(
      (n) =>
        n.type === 'DiagnosticReport' ||
        n.type === 'Patient' ||
        ((n.type === 'Observation' || n.type === 'ServiceRequest') && !referenced.has(n)),
    );
  }
  const intake = assemble(ctx, kind, bundleIdentifier, roots, entries);
  validateAll(ctx);
  return intake;
}

function readSingleResource(ctx: Context, resource: Json, resourceType: string): FhirIntake | null {
  const l: Loc = { expr: resourceType, name: resourceType };
  if (!SINGLE_RESOURCE_TYPES.has(resourceType)) {
    problem(
      ctx,
      422,
      'not-supported',
      { expr: 'resourceType', name: 'resourceType' },
      `a ${resourceType} is not accepted on its own: send a Bundle, or a Patient, ServiceRequest, DiagnosticReport or Observation`,
    );
    return null;
  }
  const node = addNode(ctx, resource, resourceType, l, null, null, null);
  const intake = assemble(
    ctx,
    'resource',
    null,
    [node],
    [{ resourceType, fullUrl: null, status: '201 Created' }],
  );
  validateAll(ctx);
  return intake;
}

/** Bundle.entry.request: POST (create) and PUT (update) only. Undefined when a refused method. */
function readRequest(ctx: Context, entry: Json, el: Loc): 'POST' | 'PUT' | null | undefined {
  const request = readObject(ctx, entry, 'request', el);
  if (!request) return null;
  const rl = at(el, 'request');
  const method = readString(ctx, request, 'method', rl, { required: 400 });
  readString(ctx, request, 'url', rl, { required: 400 });
  if (method === 'POST' || method === 'PUT') return method;
  if (method === undefined) return null;
  if (['GET', 'HEAD', 'DELETE', 'PATCH'].includes(method))
    problem(
      ctx,
      422,
      'not-supported',
      at(rl, 'method'),
      `${rl.name}.method ${method} is not supported: LabRelay accepts only POST and PUT entries`,
    );
  else
    problem(
      ctx,
      400,
      'value',
      at(rl, 'method'),
      `${rl.name}.method ${JSON.stringify(method)} is not an HTTP verb (GET, HEAD, POST, PUT, DELETE, PATCH)`,
    );
  return undefined;
}

function readBundleIdentifier(ctx: Context, bundle: Json, l: Loc): string | null {
  const identifier = readObject(ctx, bundle, 'identifier', l);
  if (!identifier) return null;
  const il = at(l, 'identifier');
  const system = readString(ctx, identifier, 'system', il);
  const value = readString(ctx, identifier, 'value', il);
  return value === undefined ? null : `${system ?? ''}|${value}`;
}

function readResourceType(ctx: Context, resource: Json, l: Loc): string | null {
  const type = get(resource, 'resourceType');
  if (typeof type === 'string' && type !== '') return type;
  problem(
    ctx,
    400,
    type === undefined ? 'required' : 'structure',
    at(l, 'resourceType'),
    type === undefined
      ? `${l.name} has no resourceType`
      : `${l.name}.resourceType must be a string naming a FHIR resource type`,
  );
  return null;
}

function acceptedType(ctx: Context, type: string, l: Loc, name: string): boolean {
  if (CONTENT_TYPES.has(type) || CONTEXT_TYPES.has(type)) return true;
  problem(
    ctx,
    422,
    'not-supported',
    l,
    `${name}: a ${type} is not accepted here (accepted: ${[...CONTENT_TYPES, ...CONTEXT_TYPES].join(', ')})`,
  );
  return false;
}

function addNode(
  ctx: Context,
  resource: Json,
  type: string,
  l: Loc,
  fullUrl: string | null,
  method: 'POST' | 'PUT' | null,
  container: Node | null,
): Node {
  const node: Node = {
    seq: ctx.nodes.length,
    type,
    resource,
    loc: l,
    fullUrl,
    method,
    container,
    contained: new Map(),
  };
  ctx.nodes.push(node);
  const contained = readArray(ctx, resource, 'contained', l);
  if (!contained) return node;
  const cl = at(l, 'contained');
  if (container) {
    // dom-2: a contained resource SHALL NOT contain additional contained resources.
    problem(ctx, 400, 'invalid', cl, `${cl.name}: a contained resource cannot contain resources itself`);
    return node;
  }
  if (contained.length > MAX_CONTAINED) {
    problem(ctx, 422, 'too-long', cl, `${cl.name} has more than ${MAX_CONTAINED} resources`);
    return node;
  }
  for (const [i, raw] of contained.entries()) {
    const il = item(cl, i);
    if (!isObject(raw)) {
      problem(ctx, 400, 'structure', il, `${il.name} must be a resource (a JSON object)`);
      continue;
    }
    const childType = readResourceType(ctx, raw, il);
    if (!childType) continue;
    const named: Loc = { expr: il.expr, name: childType };
    if (!acceptedType(ctx, childType, at(il, 'resourceType'), named.name)) continue;
    const id = readString(ctx, raw, 'id', named, { required: 400 });
    if (id === undefined) continue;
    if (node.contained.has(id)) {
      problem(ctx, 400, 'invalid', at(il, 'id'), `${named.name}.id ${id} is used by two contained resources`);
      continue;
    }
    node.contained.set(id, addNode(ctx, raw, childType, named, null, null, node));
  }
  return node;
}

/** MessageHeader.focus: the resources the message is about (https://hl7.org/fhir/R4/messageheader.html). */
function messageFocus(ctx: Context, header: Node): Node[] {
  const l = at(header.loc, 'focus');
  const focus = readArray(ctx, header.resource, 'focus', header.loc);
  if (!focus || focus.length === 0) {
    problem(ctx, 422, 'required', l, 'MessageHeader.focus is required: it names the content of the message');
    return [];
  }
  const roots: Node[] = [];
  for (const [i, ref] of focus.entries()) {
    const fl = item(l, i);
    const target = resolve(ctx, header, ref, fl, true);
    if (!target) continue;
    if (target.kind !== 'node') {
      problem(
        ctx,
        422,
        'not-found',
        at(fl, 'reference'),
        `${fl.name} must reference an entry of the Bundle (${describe(target)} is not in it)`,
      );
    } else if (!SINGLE_RESOURCE_TYPES.has(target.node.type)) {
      problem(
        ctx,
        422,
        'not-supported',
        fl,
        `${fl.name} is a ${target.node.type}: the focus must be a DiagnosticReport, Observation, ServiceRequest or Patient`,
      );
    } else if (!roots.includes(target.node)) roots.push(target.node);
  }
  return roots;
}

/** Observations some report or panel lists, and requests some result is based on: not roots. */
function referencedByResults(ctx: Context): Set<Node> {
  const referenced = new Set<Node>();
  const mark = (from: Node, key: string, type: string) => {
    const refs = get(from.resource, key);
    if (!Array.isArray(refs)) return;
    for (const ref of refs) {
      const target = resolve(ctx, from, ref, from.loc, false);
      if (target?.kind === 'node' && target.node.type === type) referenced.add(target.node);
    }
  };
  for (const node of ctx.nodes) {
    if (node.type === 'DiagnosticReport') mark(node, 'result', 'Observation');
    if (node.type === 'Observation') mark(node, 'hasMember', 'Observation');
    if (node.type === 'DiagnosticReport' || node.type === 'Observation')
      mark(node, 'basedOn', 'ServiceRequest');
  }
  return referenced;
}

/** Builds the intake from its root resources, one result and one order message per patient. */
function assemble(
  ctx: Context,
  kind: FhirIntake['kind'],
  bundleIdentifier: string | null,
  roots: Node[],
  entries: FhirIntake['entries'],
): FhirIntake {
  const results = new Map<string, ResultMessage>();
  const orders = new Map<string, OrderMessage>();
  const patientRoots: Node[] = [];
  for (const node of roots) {
    if (node.type === 'DiagnosticReport') {
      const mapped = mapReport(ctx, node);
      if (mapped?.patient) addTo(results, mapped.patient, (m) => m.reports.push(mapped.report), 'reports');
    } else if (node.type === 'Observation') {
      const mapped = mapStandaloneObservation(ctx, node);
      if (mapped) addTo(results, mapped.patient, (m) => m.reports.push(mapped.report), 'reports');
    } else if (node.type === 'ServiceRequest') {
      const mapped = mapOrder(ctx, node);
      if (mapped) addTo(orders, mapped.patient, (m) => m.orders.push(mapped.order), 'orders');
    } else if (node.type === 'Patient') patientRoots.push(node);
  }
  const used = new Set([...results.keys(), ...orders.keys()]);
  const patients = patientRoots.filter((n) => !used.has(nodeKey(n))).map((n) => mapPatient(ctx, n));
  return {
    kind,
    bundleIdentifier,
    results: [...results.values()],
    orders: [...orders.values()],
    patients,
    entries,
  };
}

function addTo<M extends { patient: PatientDemographics }>(
  byPatient: Map<string, M>,
  ref: PatientRef,
  add: (message: M) => void,
  list: 'reports' | 'orders',
): void {
  let message = byPatient.get(ref.key);
  if (!message) {
    message = { patient: ref.patient, [list]: [] } as unknown as M;
    byPatient.set(ref.key, message);
  }
  add(message);
}

/** Maps every resource once, so problems in resources nothing refers to are reported too. */
function validateAll(ctx: Context): void {
  for (const node of ctx.nodes) {
    if (node.type === 'Patient') mapPatient(ctx, node);
    else if (node.type === 'Observation') mapObservation(ctx, node);
    else if (node.type === 'DiagnosticReport') mapReport(ctx, node);
    else if (node.type === 'ServiceRequest') mapRequest(ctx, node);
    else if (node.type === 'Specimen') mapSpecimen(ctx, node);
    else if (node.type === 'Practitioner') mapPractitioner(ctx, node);
  }
}

// ---------------------------------------------------------------------------------------------
// References: https://hl7.org/fhir/R4/references.html, https://hl7.org/fhir/R4/bundle.html#references

/**
 * Resolves a Reference from `from`. With `report` false nothing is reported (a first look); null
 * when the Reference is malformed (reported).
 */
function resolve(ctx: Context, from: Node, ref: unknown, l: Loc, report: boolean): Resolved | null {
  const say = (status: 400 | 422, code: IssueType, where: Loc, text: string) => {
    if (report) problem(ctx, status, code, where, text);
  };
  if (!isObject(ref)) {
    say(400, 'structure', l, `${l.name} must be a Reference (a JSON object)`);
    return null;
  }
  const rl = at(l, 'reference');
  const reference = get(ref, 'reference');
  const type = typeof get(ref, 'type') === 'string' ? (get(ref, 'type') as string) : null;
  if (reference !== undefined && typeof reference !== 'string') {
    say(400, 'structure', rl, `${rl.name} must be a string`);
    return null;
  }
  if (reference === undefined || reference === '') {
    const identifier = get(ref, 'identifier');
    if (isObject(identifier)) return { kind: 'identifier', identifier, type };
    return { kind: 'empty' };
  }
  if (reference.startsWith('#')) {
    const container = from.container ?? from;
    const id = reference.slice(1);
    if (id === '') return { kind: 'node', node: container };
    const node = container.contained.get(id);
    if (node) return { kind: 'node', node };
    say(
      422,
      'not-found',
      rl,
      `${rl.name} ${reference}: there is no contained resource with id ${JSON.stringify(id)}`,
    );
    return null;
  }
  const plain = reference.replace(/\/_history\/[^/]+$/, '');
  const exact = ctx.byFullUrl.get(plain);
  if (exact) return { kind: 'node', node: exact };
  const m = /^(?:(https?:\/\/\S+)\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(plain);
  if (m) {
    const [, absoluteBase, refType, id] = m as unknown as [string, string | undefined, string, string];
    if (!absoluteBase) {
      // Relative to the base of the referring entry's RESTful fullUrl, else any entry with that Type/id.
      const entry = rootOf(from);
      const base = entry.fullUrl
        ? /^(https?:\/\/\S+\/)[A-Z][A-Za-z]+\/[^/]+$/.exec(entry.fullUrl)?.[1]
        : undefined;
      const node = (base && ctx.byFullUrl.get(base + plain)) || ctx.byTypeId.get(plain);
      if (node) return { kind: 'node', node };
    }
    return { kind: 'external', reference, type: refType, id, relative: !absoluteBase };
  }
  if (/^urn:(uuid|oid):/.test(plain) || /^https?:\/\//.test(plain))
    return { kind: 'external', reference, type, id: null, relative: false };
  say(400, 'value', rl, `${rl.name} ${JSON.stringify(reference)} is not a FHIR reference`);
  return null;
}

function rootOf(node: Node): Node {
  return node.container ?? node;
}

function describe(r: Resolved): string {
  if (r.kind === 'node') return `${r.node.type} ${r.node.loc.expr}`;
  if (r.kind === 'external') return r.reference;
  if (r.kind === 'identifier') return 'a reference by identifier only';
  return 'a reference with no target';
}

function nodeKey(node: Node): string {
  return `node:${node.seq}`;
}

/**
 * The patient a resource is about (its `subject`): an entry or contained Patient; `Patient/x`
 * not in the body is our own patient x (the sender knows our id); a logical reference by
 * identifier is the patient with that identifier.
 */
function subjectOf(ctx: Context, from: Node, missing: 400 | 422): PatientRef | null {
  const l = at(from.loc, 'subject');
  const ref = get(from.resource, 'subject');
  if (ref === undefined) {
    problem(
      ctx,
      missing,
      'required',
      l,
      `${from.type}.subject is required: LabRelay must know whose ${from.type} this is`,
    );
    return null;
  }
  const target = resolve(ctx, from, ref, l, true);
  if (!target) return null;
  if (target.kind === 'node') {
    if (target.node.type === 'Patient')
      return { key: nodeKey(target.node), patient: mapPatient(ctx, target.node) };
    problem(ctx, 422, 'not-supported', l, `${l.name} is a ${target.node.type}: only a Patient is accepted`);
    return null;
  }
  if (target.kind === 'external') {
    if (target.type !== null && target.type !== 'Patient') {
      problem(ctx, 422, 'not-supported', l, `${l.name} is a ${target.type}: only a Patient is accepted`);
      return null;
    }
    if (target.relative && target.id !== null)
      return {
        key: `internal:${target.id}`,
        patient: {
          identifiers: [],
          familyName: null,
          givenNames: [],
          birthDate: null,
          sex: null,
          internalId: target.id,
        },
      };
    const identifier = isObject(ref) ? get(ref, 'identifier') : undefined;
    if (isObject(identifier)) return patientByIdentifier(ctx, identifier, at(l, 'identifier'));
    problem(
      ctx,
      422,
      'not-found',
      at(l, 'reference'),
      `${l.name} ${target.reference} is not in the Bundle: include the Patient, or reference a LabRelay patient as Patient/{id}`,
    );
    return null;
  }
  if (target.kind === 'identifier') {
    if (target.type !== null && target.type !== 'Patient') {
      problem(ctx, 422, 'not-supported', l, `${l.name} is a ${target.type}: only a Patient is accepted`);
      return null;
    }
    return patientByIdentifier(ctx, target.identifier, at(l, 'identifier'));
  }
  problem(ctx, missing, 'required', l, `${l.name} has neither a reference nor an identifier`);
  return null;
}

function patientByIdentifier(ctx: Context, raw: Json, l: Loc): PatientRef | null {
  const identifier = readIdentifier(ctx, raw, l);
  if (!identifier) {
    problem(ctx, 422, 'required', at(l, 'value'), `${l.name}.value is required to find the patient`);
    return null;
  }
  return {
    key: `identifier:${identifier.system}|${identifier.value}`,
    patient: { identifiers: [identifier], familyName: null, givenNames: [], birthDate: null, sex: null },
  };
}

/** Reference elements of cardinality 0..1 among those followed (the others are lists). */
const SINGLE_REFERENCES = new Set(['requester', 'practitioner']);

/**
 * Follows references in `key` (a list, or one Reference) to resources of `types`. A reference to
 * something not in the body is refused: only Patient references may point outside it. A
 * reference by identifier is returned as such for callers that can use one.
 */
function follow(
  ctx: Context,
  from: Node,
  key: string,
  types: readonly string[],
  options: { allowIdentifier?: boolean } = {},
): { nodes: Node[]; identifiers: { raw: Json; loc: Loc }[] } {
  const out = { nodes: [] as Node[], identifiers: [] as { raw: Json; loc: Loc }[] };
  const value = get(from.resource, key);
  if (value === undefined) return out;
  const l = at(from.loc, key);
  const single = SINGLE_REFERENCES.has(key);
  if (single === Array.isArray(value)) {
    problem(
      ctx,
      400,
      'structure',
      l,
      single ? `${l.name} must be one Reference, not a list` : `${l.name} must be a JSON array of References`,
    );
    return out;
  }
  const refs: [unknown, Loc][] = Array.isArray(value) ? value.map((v, i) => [v, item(l, i)]) : [[value, l]];
  for (const [ref, rl] of refs) {
    const target = resolve(ctx, from, ref, rl, true);
    if (!target || target.kind === 'empty') continue;
    if (target.kind === 'node') {
      if (types.includes(target.node.type)) out.nodes.push(target.node);
      else
        problem(
          ctx,
          422,
          'invalid',
          rl,
          `${rl.name} references a ${target.node.type}; a ${types.join(' or ')} is expected`,
        );
      continue;
    }
    if (target.kind === 'identifier') {
      if (options.allowIdentifier)
        out.identifiers.push({ raw: target.identifier, loc: at(rl, 'identifier') });
      else
        problem(
          ctx,
          422,
          'not-supported',
          rl,
          `${rl.name} is a reference by identifier only: include the ${types.join(' or ')} in the Bundle`,
        );
      continue;
    }
    // Not in the body: usable only when the Reference also carries the identifier.
    const identifier = isObject(ref) ? get(ref, 'identifier') : undefined;
    if (options.allowIdentifier && isObject(identifier)) {
      out.identifiers.push({ raw: identifier, loc: at(rl, 'identifier') });
      continue;
    }
    problem(
      ctx,
      422,
      'not-found',
      at(rl, 'reference'),
      ctx.inBundle
        ? `${rl.name} ${target.reference} does not resolve to an entry of the Bundle (only a Patient reference may point outside it)`
        : `${rl.name} ${target.reference} does not resolve: a single resource may only reference its contained resources and Patient/{id}`,
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Patient: https://hl7.org/fhir/R4/patient.html

function mapPatient(ctx: Context, node: Node): PatientDemographics {
  const cached = ctx.patients.get(node);
  if (cached) return cached;
  const r = node.resource;
  const l = node.loc;
  const identifiers: Identifier[] = [];
  for (const [raw, il] of readObjects(ctx, r, 'identifier', l)) {
    const identifier = readIdentifier(ctx, raw, il);
    if (identifier) identifiers.push(identifier);
  }
  const names = readObjects(ctx, r, 'name', l);
  const [name, nl] =
    names.find(([n]) => get(n, 'use') === 'official') ??
    names.find(([n]) => get(n, 'use') === 'usual') ??
    names[0] ??
    [];
  const familyName = name && nl ? (readString(ctx, name, 'family', nl) ?? null) : null;
  const givenNames = name && nl ? readStrings(ctx, name, 'given', nl) : [];
  const birthDate = readDate(ctx, r, 'birthDate', l, 'date');
  const sex = readCode(ctx, r, 'gender', l, GENDERS) ?? null;
  let email: string | null = null;
  let phone: string | null = null;
  for (const [t, tl] of readObjects(ctx, r, 'telecom', l)) {
    const system = readString(ctx, t, 'system', tl);
    const value = readString(ctx, t, 'value', tl);
    if (!value || get(t, 'use') === 'old') continue;
    if (system === 'email' && !email) email = value;
    if ((system === 'phone' || system === 'sms') && !phone) phone = value;
  }
  if (identifiers.length === 0 && !(familyName && birthDate))
    problem(
      ctx,
      422,
      'required',
      at(l, 'identifier'),
      `${l.name}: the patient cannot be matched: give Patient.identifier, or name.family and birthDate`,
    );
  const patient: PatientDemographics = { identifiers, familyName, givenNames, birthDate, sex, email, phone };
  ctx.patients.set(node, patient);
  return patient;
}

function readIdentifier(ctx: Context, raw: Json, l: Loc): Identifier | null {
  const system = readString(ctx, raw, 'system', l);
  const value = readString(ctx, raw, 'value', l);
  const type = readObject(ctx, raw, 'type', l);
  const typeCode = type ? (readCoding(ctx, type, at(l, 'type'))?.code ?? null) : null;
  if (value === undefined) return null;
  return { system: system ?? '', value, type: typeCode };
}

// ---------------------------------------------------------------------------------------------
// Practitioner: https://hl7.org/fhir/R4/practitioner.html

function mapPractitioner(ctx: Context, node: Node): Practitioner | null {
  if (ctx.practitioners.has(node)) return ctx.practitioners.get(node)!;
  const r = node.resource;
  const ids = readObjects(ctx, r, 'identifier', node.loc)
    .map(([raw, il]) => readIdentifier(ctx, raw, il))
    .filter((i): i is Identifier => i !== null);
  const id = (ids.find((i) => i.system === NPI) ?? ids[0])?.value ?? null;
  const [name, nl] = readObjects(ctx, r, 'name', node.loc)[0] ?? [];
  const familyName = name && nl ? (readString(ctx, name, 'family', nl) ?? null) : null;
  const givenNames = name && nl ? readStrings(ctx, name, 'given', nl) : [];
  const practitioner = id || familyName ? { id, familyName, givenNames } : null;
  ctx.practitioners.set(node, practitioner);
  return practitioner;
}

/** ServiceRequest.requester: a Practitioner, or a PractitionerRole's practitioner; else none. */
function requesterOf(ctx: Context, request: Node): Practitioner | null {
  const found = follow(
    ctx,
    request,
    'requester',
    ['Practitioner', 'PractitionerRole', 'Organization', 'Patient', 'RelatedPerson', 'Device'],
    { allowIdentifier: true },
  );
  const node = found.nodes[0];
  if (node?.type === 'Practitioner') return mapPractitioner(ctx, node);
  if (node?.type === 'PractitionerRole') {
    const practitioner = follow(ctx, node, 'practitioner', ['Practitioner']).nodes[0];
    return practitioner ? mapPractitioner(ctx, practitioner) : null;
  }
  const byIdentifier = found.identifiers[0];
  if (byIdentifier) {
    const identifier = readIdentifier(ctx, byIdentifier.raw, byIdentifier.loc);
    if (identifier) return { id: identifier.value, familyName: null, givenNames: [] };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Specimen: https://hl7.org/fhir/R4/specimen.html

interface SpecimenInfo {
  id: string | null;
  type: Coding | null;
  collectedAt: string | null;
}

function mapSpecimen(ctx: Context, node: Node): SpecimenInfo {
  const cached = ctx.specimens.get(node);
  if (cached) return cached;
  const r = node.resource;
  const l = node.loc;
  const ids = readObjects(ctx, r, 'identifier', l)
    .map(([raw, il]) => readIdentifier(ctx, raw, il))
    .filter((i): i is Identifier => i !== null);
  const accession = readObject(ctx, r, 'accessionIdentifier', l);
  const accessionId = accession ? readIdentifier(ctx, accession, at(l, 'accessionIdentifier')) : null;
  const type = readObject(ctx, r, 'type', l);
  const collection = readObject(ctx, r, 'collection', l);
  const cl = at(l, 'collection');
  let collectedAt: string | null = null;
  if (collection) {
    collectedAt = readDate(ctx, collection, 'collectedDateTime', cl, 'dateTime');
    const period = readObject(ctx, collection, 'collectedPeriod', cl);
    if (period) collectedAt ??= readDate(ctx, period, 'start', at(cl, 'collectedPeriod'), 'dateTime');
  }
  const specimen: SpecimenInfo = {
    id: ids[0]?.value ?? accessionId?.value ?? null,
    type: type ? readCoding(ctx, type, at(l, 'type')) : null,
    collectedAt,
  };
  ctx.specimens.set(node, specimen);
  return specimen;
}

function specimensOf(ctx: Context, from: Node): SpecimenInfo[] {
  return follow(ctx, from, 'specimen', ['Specimen']).nodes.map((n) => mapSpecimen(ctx, n));
}

// ---------------------------------------------------------------------------------------------
// ServiceRequest: https://hl7.org/fhir/R4/servicerequest.html

interface RequestInfo {
  patient: PatientRef | null;
  identifiers: { id: Identifier; loc: Loc }[];
  code: Coding | null;
  statusCode: string | undefined;
  orderingProvider: Practitioner | null;
  priority: string | null;
  orderedAt: string | null;
  specimen: SpecimenInfo | null;
  notes: string[];
  locationId: string | null;
}

/** Reads and checks a ServiceRequest, whether it is an order to place or the order of a result. */
function mapRequest(ctx: Context, node: Node): RequestInfo | null {
  if (ctx.requests.has(node)) return ctx.requests.get(node)!;
  ctx.requests.set(node, null); // a reference cycle reads it once
  const r = node.resource;
  const l = node.loc;
  const statusCode = readCode(ctx, r, 'status', l, Object.keys(REQUEST_STATUS), 400);
  readCode(ctx, r, 'intent', l, REQUEST_INTENTS, 400);
  const priority = readCode(ctx, r, 'priority', l, REQUEST_PRIORITIES) ?? null;
  const code = readRequiredCoding(ctx, r, 'code', l, 422);
  const patient = subjectOf(ctx, node, 400);
  const identifiers = readIdentifiers(ctx, node);
  const specimen = specimensOf(ctx, node)[0] ?? null;
  const [location, ll] = readObjects(ctx, r, 'locationCode', l)[0] ?? [];
  const info: RequestInfo = {
    patient,
    identifiers,
    code,
    statusCode,
    orderingProvider: requesterOf(ctx, node),
    priority,
    orderedAt: readDate(ctx, r, 'authoredOn', l, 'dateTime'),
    specimen,
    notes: readNotes(ctx, r, l),
    locationId: location && ll ? (readCoding(ctx, location, ll)?.code ?? null) : null,
  };
  ctx.requests.set(node, info);
  return info;
}

/** A ServiceRequest as an order to place, change or cancel. */
function mapOrder(ctx: Context, node: Node): { patient: PatientRef; order: LabOrder } | null {
  const info = mapRequest(ctx, node);
  if (!info) return null;
  const l = node.loc;
  let action: OrderAction | null = null;
  if (info.statusCode !== undefined) {
    action = lookup(REQUEST_STATUS, info.statusCode) ?? null;
    if (action === ORDER_ACTION.new && node.method === 'PUT') action = ORDER_ACTION.update;
    if (action === null)
      problem(
        ctx,
        422,
        'not-supported',
        at(l, 'status'),
        `${l.name}.status ${info.statusCode} cannot be placed as an order: send active or draft to place it, revoked to cancel it`,
      );
  }
  const numbers = orderNumbers(ctx, [], info.identifiers, l, 'order');
  if (!info.patient || !info.code || !action || !numbers) return null;
  return {
    patient: info.patient,
    order: {
      placerOrderNumber: numbers.placer?.value ?? null,
      fillerOrderNumber: numbers.filler?.value ?? null,
      placerAuthority: numbers.placer?.system || null,
      code: info.code,
      action,
      priority: info.priority,
      orderingProvider: info.orderingProvider,
      orderedAt: info.orderedAt,
      specimen: info.specimen,
      ...(info.notes.length ? { notes: info.notes } : {}),
      ...(info.locationId ? { locationId: info.locationId } : {}),
    },
  };
}

function readIdentifiers(ctx: Context, node: Node): { id: Identifier; loc: Loc }[] {
  const out: { id: Identifier; loc: Loc }[] = [];
  for (const [raw, il] of readObjects(ctx, node.resource, 'identifier', node.loc)) {
    const id = readIdentifier(ctx, raw, il);
    if (id) out.push({ id, loc: il });
  }
  return out;
}

/**
 * Placer and filler order numbers, as HL7 v2-to-FHIR maps ORC-2/ORC-3: the identifier typed PLAC
 * (v2 table 0203), else the request's first untyped one; the one typed FILL, else the report's
 * own first identifier (the lab's accession). Null, reported, when there is neither: an order
 * number names the order's workflow.
 */
function orderNumbers(
  ctx: Context,
  reportIds: { id: Identifier; loc: Loc }[],
  requestIds: { id: Identifier; loc: Loc }[],
  l: Loc,
  kind: 'order' | 'report',
): { placer: Identifier | null; filler: Identifier | null } | null {
  const typed = (list: typeof reportIds, type: string) => list.find((i) => i.id.type === type);
  const placer =
    typed(requestIds, 'PLAC') ??
    typed(reportIds, 'PLAC') ??
    requestIds.find((i) => i.id.type !== 'FILL') ??
    null;
  const filler =
    typed(reportIds, 'FILL') ??
    typed(requestIds, 'FILL') ??
    reportIds.find((i) => i.id.type !== 'PLAC' && i !== placer) ??
    null;
  let ok = true;
  for (const n of [placer, filler]) {
    if (n && n.id.value.length > MAX_ORDER_NUMBER_LENGTH) {
      problem(
        ctx,
        422,
        'too-long',
        at(n.loc, 'value'),
        `${n.loc.name}.value is longer than ${MAX_ORDER_NUMBER_LENGTH} characters`,
      );
      ok = false;
    }
  }
  if (!placer && !filler) {
    problem(
      ctx,
      422,
      'required',
      at(l, 'identifier'),
      kind === 'order'
        ? `${l.name} has no order number: give ServiceRequest.identifier (type PLAC for the placer's number)`
        : `${l.name} has no order number: give basedOn a ServiceRequest with an identifier, or an identifier of its own`,
    );
    return null;
  }
  return ok ? { placer: placer?.id ?? null, filler: filler?.id ?? null } : null;
}

/** The orders a result is based on: in-body ServiceRequests, and logical references by identifier. */
function basedOn(
  ctx: Context,
  node: Node,
): { requests: RequestInfo[]; identifiers: { id: Identifier; loc: Loc }[] } {
  const found = follow(
    ctx,
    node,
    'basedOn',
    ['ServiceRequest', 'CarePlan', 'MedicationRequest', 'NutritionOrder', 'ImmunizationRecommendation'],
    { allowIdentifier: true },
  );
  const requests = found.nodes
    .filter((n) => n.type === 'ServiceRequest')
    .map((n) => mapRequest(ctx, n))
    .filter((r): r is RequestInfo => r !== null);
  const identifiers = requests.flatMap((r) => r.identifiers);
  for (const { raw, loc } of found.identifiers) {
    const id = readIdentifier(ctx, raw, loc);
    if (id) identifiers.push({ id, loc });
  }
  return { requests, identifiers };
}

// ---------------------------------------------------------------------------------------------
// DiagnosticReport: https://hl7.org/fhir/R4/diagnosticreport.html

function mapReport(ctx: Context, node: Node): { patient: PatientRef | null; report: LabReport } | null {
  if (ctx.reports.has(node)) return ctx.reports.get(node)!;
  const r = node.resource;
  const l = node.loc;
  const status = readResultStatus(ctx, r, l, REPORT_STATUS);
  const code = readRequiredCoding(ctx, r, 'code', l, 400);
  const patient = subjectOf(ctx, node, 422);
  const orders = basedOn(ctx, node);
  const numbers = orderNumbers(ctx, readIdentifiers(ctx, node), orders.identifiers, l, 'report');
  const specimens = specimensOf(ctx, node);
  let effectiveAt = readEffective(ctx, r, l);
  effectiveAt ??= specimens.find((s) => s.collectedAt)?.collectedAt ?? null;
  const issuedAt = readDate(ctx, r, 'issued', l, 'instant');
  const observations = reportObservations(ctx, node, patient);
  const conclusion = readString(ctx, r, 'conclusion', l, { max: MAX_TEXT_LENGTH });
  const documents = readPresentedForm(ctx, r, l);
  const mapped =
    status && code && numbers && observations
      ? {
          patient,
          report: {
            placerOrderNumber: numbers.placer?.value ?? null,
            fillerOrderNumber: numbers.filler?.value ?? null,
            placerAuthority: numbers.placer?.system || null,
            code,
            status,
            orderingProvider: orders.requests.find((o) => o.orderingProvider)?.orderingProvider ?? null,
            effectiveAt,
            issuedAt,
            observations,
            ...(conclusion ? { notes: [conclusion] } : {}),
            ...(documents.length ? { documents } : {}),
          },
        }
      : null;
  ctx.reports.set(node, mapped);
  return mapped;
}

/**
 * DiagnosticReport.result, in order, with panels (`hasMember`) read into their members; a panel
 * with no value of its own is replaced by its members. Numbered 1.. in the order they come.
 */
function reportObservations(
  ctx: Context,
  report: Node,
  patient: PatientRef | null,
): ObservationResult[] | null {
  const refs = get(report.resource, 'result');
  const l = at(report.loc, 'result');
  if (Array.isArray(refs) && refs.length > MAX_OBSERVATIONS_PER_REPORT) {
    problem(
      ctx,
      422,
      'too-long',
      l,
      `${l.name} lists ${refs.length} results; at most ${MAX_OBSERVATIONS_PER_REPORT} are accepted in one report`,
    );
    return null;
  }
  const nodes: Node[] = [];
  collectObservations(ctx, report, 'result', nodes, new Set());
  if (nodes.length > MAX_OBSERVATIONS_PER_REPORT) {
    problem(
      ctx,
      422,
      'too-long',
      l,
      `${l.name} holds ${nodes.length} results with its panels' members; at most ${MAX_OBSERVATIONS_PER_REPORT} are accepted`,
    );
    return null;
  }
  const out: ObservationResult[] = [];
  for (const node of nodes) {
    checkSameSubject(ctx, node, patient, report);
    const obs = mapObservation(ctx, node);
    if (obs) out.push({ ...obs, sequence: out.length + 1 });
  }
  return out;
}

function collectObservations(ctx: Context, from: Node, key: string, out: Node[], seen: Set<Node>): void {
  for (const node of follow(ctx, from, key, ['Observation']).nodes) {
    if (seen.has(node) || out.length > MAX_OBSERVATIONS_PER_REPORT) continue;
    seen.add(node);
    const isPanel = Array.isArray(get(node.resource, 'hasMember'));
    if (!isPanel || OBSERVATION_VALUES.some((v) => get(node.resource, v) !== undefined)) out.push(node);
    if (isPanel) collectObservations(ctx, node, 'hasMember', out, seen);
  }
}

/** An Observation listed by a report must be about the report's patient, when it says whose it is. */
function checkSameSubject(ctx: Context, obs: Node, patient: PatientRef | null, report: Node): void {
  const ref = get(obs.resource, 'subject');
  if (!patient || ref === undefined) return;
  const target = resolve(ctx, obs, ref, at(obs.loc, 'subject'), false);
  let key: string | null = null;
  if (target?.kind === 'node') key = nodeKey(target.node);
  else if (target?.kind === 'external' && target.relative && target.type === 'Patient')
    key = `internal:${target.id}`;
  if (key && key.split(':')[0] === patient.key.split(':')[0] && key !== patient.key)
    problem(
      ctx,
      422,
      'invalid',
      at(obs.loc, 'subject'),
      `${obs.loc.name}.subject is not the patient of ${report.loc.name}, which lists it as a result`,
    );
}

/** presentedForm: the report as the lab rendered it (a PDF), kept as a document of the report. */
function readPresentedForm(ctx: Context, r: Json, l: Loc): ReportDocument[] {
  const documents: ReportDocument[] = [];
  for (const [form, fl] of readObjects(ctx, r, 'presentedForm', l)) {
    const contentType = readString(ctx, form, 'contentType', fl);
    const data = readString(ctx, form, 'data', fl, { max: Number.MAX_SAFE_INTEGER });
    const title = readString(ctx, form, 'title', fl) ?? null;
    if (data === undefined) {
      if (get(form, 'url') !== undefined)
        problem(
          ctx,
          422,
          'not-supported',
          at(fl, 'url'),
          `${fl.name}: a document by url is not fetched; send its bytes in presentedForm.data`,
        );
      else
        problem(ctx, 422, 'required', at(fl, 'data'), `${fl.name}.data (the document, base64) is required`);
      continue;
    }
    const base64 = data.replace(/\s+/g, '');
    if (base64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) {
      problem(ctx, 400, 'value', at(fl, 'data'), `${fl.name}.data is not base64`);
      continue;
    }
    if (contentType === undefined) {
      problem(
        ctx,
        422,
        'required',
        at(fl, 'contentType'),
        `${fl.name}.contentType is required (e.g. application/pdf)`,
      );
      continue;
    }
    if (!/^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/.test(contentType)) {
      problem(
        ctx,
        400,
        'value',
        at(fl, 'contentType'),
        `${fl.name}.contentType ${contentType} is not a MIME type`,
      );
      continue;
    }
    documents.push({ contentType, dataBase64: base64, title });
  }
  return documents;
}

// ---------------------------------------------------------------------------------------------
// Observation: https://hl7.org/fhir/R4/observation.html

/** One Observation as a result; `sequence` is set by the report that lists it. */
function mapObservation(ctx: Context, node: Node): ObservationResult | null {
  if (ctx.observations.has(node)) return ctx.observations.get(node)!;
  const r = node.resource;
  const l = node.loc;
  const status = readResultStatus(ctx, r, l, OBSERVATION_STATUS);
  const code = readRequiredCoding(ctx, r, 'code', l, 400);
  const value = readObservationValue(ctx, r, l);
  const [range, rl] = readObjects(ctx, r, 'referenceRange', l)[0] ?? [];
  const referenceRange = range && rl ? readReferenceRange(ctx, range, rl) : null;
  const sourceFlags: string[] = [];
  for (const [concept, cl] of readObjects(ctx, r, 'interpretation', l)) {
    for (const [coding, cdl] of readObjects(ctx, concept, 'coding', cl)) {
      const flag = readString(ctx, coding, 'code', cdl)?.trim();
      if (flag && !sourceFlags.includes(flag)) sourceFlags.push(flag);
    }
  }
  const notes = readNotes(ctx, r, l);
  const absent = readObject(ctx, r, 'dataAbsentReason', l);
  if (absent && !value) {
    const reason = readCoding(ctx, absent, at(l, 'dataAbsentReason'));
    if (reason) notes.push(`no value: ${reason.display ?? reason.code}`);
  }
  const effectiveAt = readEffective(ctx, r, l);
  const obs: ObservationResult | null =
    status && code && value !== null
      ? {
          sequence: 1,
          code,
          valueType: value?.valueType ?? OBSERVATION_VALUE_TYPE.text,
          numericValue: value?.numericValue ?? null,
          comparator: value?.comparator ?? null,
          textValue: value?.textValue ?? null,
          unit: value?.unit ?? null,
          referenceRange,
          sourceFlags,
          status,
          effectiveAt,
          ...(notes.length ? { notes } : {}),
        }
      : null;
  ctx.observations.set(node, obs);
  return obs;
}

type ObservationValue = Pick<
  ObservationResult,
  'valueType' | 'numericValue' | 'comparator' | 'textValue' | 'unit'
>;

/** Observation.value[x]: undefined when there is none, null when it could not be read (reported). */
function readObservationValue(ctx: Context, r: Json, l: Loc): ObservationValue | undefined | null {
  const present = Object.keys(r).filter((k) => k.startsWith('value') && get(r, k) !== undefined);
  if (present.length === 0) return undefined;
  const unknown = present.find((k) => !OBSERVATION_VALUES.includes(k));
  if (unknown) {
    problem(
      ctx,
      400,
      'structure',
      at(l, unknown),
      `${l.name}.${unknown} is not an R4 Observation.value[x] type`,
    );
    return null;
  }
  if (present.length > 1) {
    problem(
      ctx,
      400,
      'structure',
      at(l, present[1]!),
      `${l.name} has more than one value[x] (${present.join(', ')}); one is allowed`,
    );
    return null;
  }
  const key = present[0]!;
  const vl = at(l, key);
  const text = (textValue: string): ObservationValue => ({
    valueType: OBSERVATION_VALUE_TYPE.text,
    numericValue: null,
    comparator: null,
    textValue,
    unit: null,
  });
  switch (key) {
    case 'valueQuantity': {
      const q = readObject(ctx, r, key, l);
      return q ? readQuantityValue(ctx, q, vl) : null;
    }
    case 'valueInteger': {
      const n = get(r, key);
      if (typeof n !== 'number' || !Number.isInteger(n)) {
        problem(ctx, 400, 'value', vl, `${vl.name} must be an integer`);
        return null;
      }
      return {
        valueType: OBSERVATION_VALUE_TYPE.quantity,
        numericValue: n,
        comparator: null,
        textValue: String(n),
        unit: null,
      };
    }
    case 'valueString': {
      const s = readString(ctx, r, key, l, { max: MAX_TEXT_LENGTH });
      return s === undefined ? null : text(s);
    }
    case 'valueCodeableConcept': {
      const concept = readObject(ctx, r, key, l);
      const coding = concept ? readCoding(ctx, concept, vl) : null;
      if (!coding) {
        if (concept) problem(ctx, 400, 'required', vl, `${vl.name} has no coding with a code and no text`);
        return null;
      }
      return { ...text(coding.display ?? coding.code), valueType: OBSERVATION_VALUE_TYPE.coded };
    }
    case 'valueBoolean': {
      const b = get(r, key);
      if (typeof b !== 'boolean') {
        problem(ctx, 400, 'structure', vl, `${vl.name} must be true or false`);
        return null;
      }
      return text(String(b));
    }
    case 'valueDateTime': {
      const d = readDate(ctx, r, key, l, 'dateTime');
      return d === null ? null : text(get(r, key) as string);
    }
    case 'valueTime': {
      const t = readString(ctx, r, key, l);
      if (t === undefined) return null;
      if (!/^([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?$/.test(t)) {
        problem(ctx, 400, 'value', vl, `${vl.name} ${JSON.stringify(t)} is not a FHIR time (hh:mm:ss)`);
        return null;
      }
      return text(t);
    }
    case 'valueRange': {
      // A result reported as a range, e.g. "10-20 /[HPF]" in a urine sediment.
      const range = readObject(ctx, r, key, l);
      if (!range) return null;
      const low = readObject(ctx, range, 'low', vl);
      const high = readObject(ctx, range, 'high', vl);
      const lowQ = low ? readQuantityValue(ctx, low, at(vl, 'low')) : undefined;
      const highQ = high ? readQuantityValue(ctx, high, at(vl, 'high')) : undefined;
      if (lowQ === null || highQ === null) return null;
      const unit = highQ?.unit ?? lowQ?.unit ?? null;
      return { ...text(`${lowQ?.textValue ?? ''}-${highQ?.textValue ?? ''}`), unit };
    }
    case 'valueRatio': {
      // Titers: numerator 1, denominator 64 → "1:64".
      const ratio = readObject(ctx, r, key, l);
      if (!ratio) return null;
      const num = readObject(ctx, ratio, 'numerator', vl);
      const den = readObject(ctx, ratio, 'denominator', vl);
      const n = num ? readQuantityValue(ctx, num, at(vl, 'numerator')) : undefined;
      const d = den ? readQuantityValue(ctx, den, at(vl, 'denominator')) : undefined;
      if (!n || !d) {
        if (n !== null && d !== null)
          problem(ctx, 422, 'required', vl, `${vl.name} needs both a numerator and a denominator`);
        return null;
      }
      return text(`${n.textValue}:${d.textValue}`);
    }
    default:
      problem(
        ctx,
        422,
        'not-supported',
        vl,
        `${vl.name}: a ${key.slice('value'.length)} result cannot be stored; send a Quantity, CodeableConcept, string or integer`,
      );
      return null;
  }
}

/** A Quantity: value (a JSON number), comparator, and the UCUM `code` in preference to `unit`. */
function readQuantityValue(ctx: Context, q: Json, l: Loc): ObservationValue | null {
  const value = get(q, 'value');
  if (value === undefined) {
    problem(ctx, 422, 'required', at(l, 'value'), `${l.name}.value is required: a quantity without a number`);
    return null;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    problem(
      ctx,
      400,
      'value',
      at(l, 'value'),
      `${l.name}.value must be a JSON number, not ${JSON.stringify(value)}`,
    );
    return null;
  }
  const comparator = readCode(ctx, q, 'comparator', l, COMPARATORS) ?? null;
  const unitText = readString(ctx, q, 'unit', l);
  const system = readString(ctx, q, 'system', l);
  const unitCode = readString(ctx, q, 'code', l);
  const unit = (system === UCUM ? (unitCode ?? unitText) : (unitText ?? unitCode)) ?? null;
  return {
    valueType: OBSERVATION_VALUE_TYPE.quantity,
    numericValue: value,
    comparator,
    textValue: `${comparator ?? ''}${value}`,
    unit,
  };
}

/** Observation.referenceRange[0]: low/high as numbers, else the text read as labs write ranges. */
function readReferenceRange(ctx: Context, range: Json, l: Loc): ReferenceRange | null {
  const bound = (key: 'low' | 'high'): number | null => {
    const q = readObject(ctx, range, key, l);
    if (!q) return null;
    const v = get(q, 'value');
    if (v === undefined) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      problem(ctx, 400, 'value', at(at(l, key), 'value'), `${l.name}.${key}.value must be a JSON number`);
      return null;
    }
    return v;
  };
  const low = bound('low');
  const high = bound('high');
  const text = readString(ctx, range, 'text', l) ?? null;
  if (low === null && high === null) return text ? parseReferenceRange(text) : null;
  return { low, high, text };
}

/** An Observation no report lists: a report of its own (a panel: its members). */
function mapStandaloneObservation(
  ctx: Context,
  node: Node,
): { patient: PatientRef; report: LabReport } | null {
  const patient = subjectOf(ctx, node, 422);
  const l = node.loc;
  const obs = mapObservation(ctx, node);
  const orders = basedOn(ctx, node);
  const numbers = orderNumbers(ctx, readIdentifiers(ctx, node), orders.identifiers, l, 'report');
  const members: Node[] = [];
  collectObservations(ctx, node, 'hasMember', members, new Set([node]));
  if (members.length > MAX_OBSERVATIONS_PER_REPORT) {
    problem(
      ctx,
      422,
      'too-long',
      at(l, 'hasMember'),
      `${l.name} has more than ${MAX_OBSERVATIONS_PER_REPORT} members`,
    );
    return null;
  }
  const hasValue = OBSERVATION_VALUES.some((v) => get(node.resource, v) !== undefined);
  const observations: ObservationResult[] = [];
  if (obs && (hasValue || members.length === 0)) observations.push({ ...obs, sequence: 1 });
  for (const member of members) {
    checkSameSubject(ctx, member, patient, node);
    const m = mapObservation(ctx, member);
    if (m) observations.push({ ...m, sequence: observations.length + 1 });
  }
  const specimen = specimensOf(ctx, node).find((s) => s.collectedAt);
  const issuedAt = readDate(ctx, node.resource, 'issued', l, 'instant');
  if (!patient || !obs || !numbers) return null;
  return {
    patient,
    report: {
      placerOrderNumber: numbers.placer?.value ?? null,
      fillerOrderNumber: numbers.filler?.value ?? null,
      placerAuthority: numbers.placer?.system || null,
      code: obs.code,
      status: obs.status,
      orderingProvider: orders.requests.find((o) => o.orderingProvider)?.orderingProvider ?? null,
      effectiveAt: obs.effectiveAt ?? specimen?.collectedAt ?? null,
      issuedAt,
      observations,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Datatypes: https://hl7.org/fhir/R4/datatypes.html

function readResultStatus(
  ctx: Context,
  r: Json,
  l: Loc,
  table: Record<string, ResultStatus | 'unknown'>,
): ResultStatus | null {
  const code = readCode(ctx, r, 'status', l, Object.keys(table), 400);
  if (code === undefined) return null;
  const status = lookup(table, code);
  if (status === 'unknown') {
    problem(
      ctx,
      422,
      'not-supported',
      at(l, 'status'),
      `${l.name}.status unknown cannot be stored: send the result's actual status`,
    );
    return null;
  }
  return status ?? null;
}

/** effective[x]: effectiveDateTime, effectiveInstant or effectivePeriod.start. */
function readEffective(ctx: Context, r: Json, l: Loc): string | null {
  const dateTime = readDate(ctx, r, 'effectiveDateTime', l, 'dateTime');
  const instant = readDate(ctx, r, 'effectiveInstant', l, 'instant');
  const period = readObject(ctx, r, 'effectivePeriod', l);
  const start = period ? readDate(ctx, period, 'start', at(l, 'effectivePeriod'), 'dateTime') : null;
  return dateTime ?? instant ?? start;
}

function readNotes(ctx: Context, r: Json, l: Loc): string[] {
  const notes: string[] = [];
  for (const [note, nl] of readObjects(ctx, r, 'note', l)) {
    const text = readString(ctx, note, 'text', nl, { max: MAX_TEXT_LENGTH });
    if (text?.trim()) notes.push(text.trim());
  }
  return notes;
}

/** A required CodeableConcept, reduced to one Coding. */
function readRequiredCoding(ctx: Context, r: Json, key: string, l: Loc, missing: 400 | 422): Coding | null {
  const concept = readObject(ctx, r, key, l);
  const kl = at(l, key);
  if (!concept) {
    if (get(r, key) === undefined) problem(ctx, missing, 'required', kl, `${kl.name} is required`);
    return null;
  }
  const before = ctx.problems.length;
  const coding = readCoding(ctx, concept, kl);
  // A coding of the wrong shape is reported already; "no coding" would only repeat it.
  if (!coding && ctx.problems.length === before)
    problem(ctx, missing, 'required', at(kl, 'coding'), `${kl.name} has no coding with a code and no text`);
  return coding;
}

/**
 * A CodeableConcept as one Coding: the LOINC one when there are several, else the first with a
 * code; with no coding, its text stands for the code.
 */
function readCoding(ctx: Context, concept: Json, l: Loc): Coding | null {
  const text = readString(ctx, concept, 'text', l) ?? null;
  const codings: Coding[] = [];
  for (const [c, cl] of readObjects(ctx, concept, 'coding', l)) {
    const system = readString(ctx, c, 'system', cl) ?? null;
    const code = readString(ctx, c, 'code', cl);
    const display = readString(ctx, c, 'display', cl) ?? null;
    if (code !== undefined) codings.push({ system, code, display: display ?? text });
  }
  const chosen = codings.find((c) => c.system === LOINC) ?? codings[0];
  if (chosen) return chosen;
  return text ? { system: null, code: text, display: text } : null;
}

function readCode(
  ctx: Context,
  r: Json,
  key: string,
  l: Loc,
  allowed: readonly string[],
  required?: 400 | 422,
): string | undefined {
  const code = readString(ctx, r, key, l, required ? { required } : {});
  if (code === undefined) return undefined;
  if (!allowed.includes(code)) {
    problem(
      ctx,
      400,
      'value',
      at(l, key),
      `${l.name}.${key} ${JSON.stringify(code)} is not one of ${allowed.join(', ')}`,
    );
    return undefined;
  }
  return code;
}

/**
 * FHIR date (YYYY, YYYY-MM, YYYY-MM-DD), dateTime (a date, or a full time with a zone) or instant
 * (a full time with a zone). A dateTime or instant is returned as an ISO instant (a partial date
 * as its first moment, UTC); a date as given.
 */
function readDate(
  ctx: Context,
  r: Json,
  key: string,
  l: Loc,
  kind: 'date' | 'dateTime' | 'instant',
): string | null {
  const raw = readString(ctx, r, key, l);
  if (raw === undefined) return null;
  const iso = fhirDate(raw, kind);
  if (iso === null)
    problem(
      ctx,
      400,
      'value',
      at(l, key),
      `${l.name}.${key} ${JSON.stringify(raw)} is not a FHIR ${kind}${
        kind === 'date'
          ? ' (YYYY, YYYY-MM or YYYY-MM-DD)'
          : kind === 'instant'
            ? ' (YYYY-MM-DDThh:mm:ss with a zone, e.g. Z or +01:00)'
            : ' (a date, or YYYY-MM-DDThh:mm:ss with a zone, e.g. Z or +01:00)'
      }`,
    );
  return iso;
}

function fhirDate(raw: string, kind: 'date' | 'dateTime' | 'instant'): string | null {
  const m =
    /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(\.\d{1,9})?(Z|[+-](?:0\d|1[0-3]):[0-5]\d|[+-]14:00))?)?)?$/.exec(
      raw,
    );
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  if (Number(y) < 1) return null;
  if (mo !== undefined && (Number(mo) < 1 || Number(mo) > 12)) return null;
  if (d !== undefined && (Number(d) < 1 || Number(d) > daysInMonth(Number(y), Number(mo)))) return null;
  if (kind === 'date') return h === undefined ? raw : null;
  if (kind === 'instant' && h === undefined) return null;
  const iso =
    h === undefined
      ? `${y}-${mo ?? '01'}-${d ?? '01'}T00:00:00Z`
      : `${y}-${mo}-${d}T${h}:${mi}:${s}${(frac ?? '').slice(0, 4)}${zone}`;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

// ---------------------------------------------------------------------------------------------
// JSON readers: each reports an element of the wrong JSON type, and returns undefined for it.

function readString(
  ctx: Context,
  o: Json,
  key: string,
  l: Loc,
  options: { required?: 400 | 422; max?: number } = {},
): string | undefined {
  const v = get(o, key);
  const kl = at(l, key);
  if (v === undefined || v === '') {
    if (options.required) problem(ctx, options.required, 'required', kl, `${kl.name} is required`);
    return undefined;
  }
  if (typeof v !== 'string') {
    problem(ctx, 400, 'structure', kl, `${kl.name} must be a string, not ${jsonType(v)}`);
    return undefined;
  }
  const max = options.max ?? MAX_STRING_LENGTH;
  if (v.length > max) {
    problem(ctx, 422, 'too-long', kl, `${kl.name} is longer than ${max} characters`);
    return undefined;
  }
  return v;
}

function readStrings(ctx: Context, o: Json, key: string, l: Loc): string[] {
  const list = readArray(ctx, o, key, l);
  if (!list) return [];
  const out: string[] = [];
  for (const [i, v] of list.entries()) {
    const il = item(at(l, key), i);
    if (typeof v !== 'string')
      problem(ctx, 400, 'structure', il, `${il.name} must be a string, not ${jsonType(v)}`);
    else if (v.length > MAX_STRING_LENGTH)
      problem(ctx, 422, 'too-long', il, `${il.name} is longer than ${MAX_STRING_LENGTH} characters`);
    else if (v.trim()) out.push(v);
  }
  return out;
}

function readObject(ctx: Context, o: Json, key: string, l: Loc): Json | undefined {
  const v = get(o, key);
  if (v === undefined) return undefined;
  if (!isObject(v)) {
    const kl = at(l, key);
    problem(ctx, 400, 'structure', kl, `${kl.name} must be a JSON object, not ${jsonType(v)}`);
    return undefined;
  }
  return v;
}

function readArray(ctx: Context, o: Json, key: string, l: Loc): unknown[] | undefined {
  const v = get(o, key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) {
    const kl = at(l, key);
    problem(ctx, 400, 'structure', kl, `${kl.name} must be a JSON array, not ${jsonType(v)}`);
    return undefined;
  }
  return v;
}

/** A list of objects with where each one is; elements that are not objects are reported. */
function readObjects(ctx: Context, o: Json, key: string, l: Loc): [Json, Loc][] {
  const list = readArray(ctx, o, key, l);
  if (!list) return [];
  const out: [Json, Loc][] = [];
  for (const [i, v] of list.entries()) {
    const il = item(at(l, key), i);
    if (isObject(v)) out.push([v, il]);
    else problem(ctx, 400, 'structure', il, `${il.name} must be a JSON object, not ${jsonType(v)}`);
  }
  return out;
}

function jsonType(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.slice(0, 40))}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}
