import type {
  Coding,
  Identifier,
  Interpretation,
  ObservationValueType,
  Practitioner,
  ReferenceRange,
} from '../../domain/model.ts';

/**
 * Builders of FHIR R4 resources from LabRelay's stored results.
 * DiagnosticReport: https://hl7.org/fhir/R4/diagnosticreport.html
 * Observation: https://hl7.org/fhir/R4/observation.html
 * Patient: https://hl7.org/fhir/R4/patient.html
 * Bundle (searchset): https://hl7.org/fhir/R4/bundle.html
 */

export type FhirResource = { resourceType: string; id?: string; [key: string]: unknown };

const V3_INTERPRETATION = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const V2_0074 = 'http://terminology.hl7.org/CodeSystem/v2-0074';
const UCUM = 'http://unitsofmeasure.org';
const IDENTIFIER_TYPE = 'http://terminology.hl7.org/CodeSystem/v2-0203';

const INTERPRETATION_DISPLAY: Record<Interpretation, string> = {
  N: 'Normal',
  L: 'Low',
  H: 'High',
  LL: 'Critical low',
  HH: 'Critical high',
  A: 'Abnormal',
  AA: 'Critical abnormal',
};

export interface ReportView {
  id: string;
  status: string;
  code: Coding;
  patientId: string | null;
  placerOrderNumber: string | null;
  fillerOrderNumber: string | null;
  /** System URI for order identifiers (the sending facility). */
  orderIdentifierSystem: string;
  effectiveAt: Date | null;
  issuedAt: Date | null;
  updatedAt: Date;
  orderingProvider: Practitioner | null;
  observationIds: string[];
}

export interface ObservationView {
  id: string;
  status: string;
  code: Coding;
  patientId: string | null;
  valueType: ObservationValueType;
  numericValue: number | null;
  comparator: string | null;
  textValue: string | null;
  unit: string | null;
  referenceRange: ReferenceRange | null;
  interpretation: Interpretation | null;
  effectiveAt: Date | null;
  issuedAt: Date | null;
  updatedAt: Date;
}

export interface PatientView {
  id: string;
  identifiers: Identifier[];
  familyName: string | null;
  givenNames: string[];
  birthDate: string | null;
  sex: string | null;
  updatedAt: Date;
}

/**
 * A released report as it leaves LabRelay: what every outbound format (FHIR transaction Bundle,
 * HL7 ORU^R01, webhook) is built from. `identifierSystem` is the tenant's URI for LabRelay's own
 * ids (e.g. `urn:labrelay:demo`), so a destination can find again what it received.
 */
export interface ReleasedResult {
  identifierSystem: string;
  /**
   * The id of the first report of this report's line (a correction replaces an earlier report):
   * what a destination knows the report by, so a correction updates what was delivered before.
   */
  reportKey: string;
  report: ReportView;
  observations: ObservationView[];
  patient: PatientView | null;
  /** Report-level comments (NTE), in order. */
  notes: string[];
}

function codeableConcept(coding: Coding) {
  return {
    coding: [
      {
        ...(coding.system ? { system: coding.system } : {}),
        code: coding.code,
        ...(coding.display ? { display: coding.display } : {}),
      },
    ],
    ...(coding.display ? { text: coding.display } : {}),
  };
}

function meta(updatedAt: Date) {
  return { lastUpdated: updatedAt.toISOString() };
}

/** DiagnosticReport for one lab report, referencing its Observations and Patient. */
export function toDiagnosticReport(r: ReportView): FhirResource {
  const identifier = [];
  if (r.placerOrderNumber)
    identifier.push({
      type: { coding: [{ system: IDENTIFIER_TYPE, code: 'PLAC' }] },
      system: r.orderIdentifierSystem,
      value: r.placerOrderNumber,
    });
  if (r.fillerOrderNumber)
    identifier.push({
      type: { coding: [{ system: IDENTIFIER_TYPE, code: 'FILL' }] },
      system: r.orderIdentifierSystem,
      value: r.fillerOrderNumber,
    });
  return {
    resourceType: 'DiagnosticReport',
    id: r.id,
    meta: meta(r.updatedAt),
    ...(identifier.length ? { identifier } : {}),
    status: r.status,
    category: [{ coding: [{ system: V2_0074, code: 'LAB', display: 'Laboratory' }] }],
    code: codeableConcept(r.code),
    ...(r.patientId ? { subject: { reference: `Patient/${r.patientId}` } } : {}),
    ...(r.effectiveAt ? { effectiveDateTime: r.effectiveAt.toISOString() } : {}),
    ...(r.issuedAt ? { issued: r.issuedAt.toISOString() } : {}),
    result: r.observationIds.map((id) => ({ reference: `Observation/${id}` })),
  };
}

/** Observation for one result: value with its UCUM unit, reference range and interpretation. */
export function toObservation(o: ObservationView): FhirResource {
  const value: Record<string, unknown> = {};
  if (o.valueType === 'quantity' && o.numericValue !== null) {
    value.valueQuantity = {
      value: o.numericValue,
      ...(o.comparator ? { comparator: o.comparator } : {}),
      ...(o.unit ? { unit: o.unit, system: UCUM, code: o.unit } : {}),
    };
  } else if (o.textValue !== null) {
    value.valueString = o.textValue;
  }
  const range = o.referenceRange;
  const referenceRange =
    range && (range.low !== null || range.high !== null || range.text)
      ? [
          {
            ...(range.low !== null
              ? { low: { value: range.low, ...(o.unit ? { unit: o.unit, system: UCUM, code: o.unit } : {}) } }
              : {}),
            ...(range.high !== null
              ? {
                  high: {
                    value: range.high,
                    ...(o.unit ? { unit: o.unit, system: UCUM, code: o.unit } : {}),
                  },
                }
              : {}),
            ...(range.text ? { text: range.text } : {}),
          },
        ]
      : undefined;
  return {
    resourceType: 'Observation',
    id: o.id,
    meta: meta(o.updatedAt),
    status: o.status,
    category: [{ coding: [{ system: OBSERVATION_CATEGORY, code: 'laboratory', display: 'Laboratory' }] }],
    code: codeableConcept(o.code),
    ...(o.patientId ? { subject: { reference: `Patient/${o.patientId}` } } : {}),
    ...(o.effectiveAt ? { effectiveDateTime: o.effectiveAt.toISOString() } : {}),
    ...(o.issuedAt ? { issued: o.issuedAt.toISOString() } : {}),
    ...value,
    ...(o.interpretation
      ? {
          interpretation: [
            {
              coding: [
                {
                  system: V3_INTERPRETATION,
                  code: o.interpretation,
                  display: INTERPRETATION_DISPLAY[o.interpretation],
                },
              ],
            },
          ],
        }
      : {}),
    ...(referenceRange ? { referenceRange } : {}),
  };
}

export function toPatient(p: PatientView): FhirResource {
  return {
    resourceType: 'Patient',
    id: p.id,
    meta: meta(p.updatedAt),
    identifier: p.identifiers.map((i) => ({
      ...(i.type ? { type: { coding: [{ system: IDENTIFIER_TYPE, code: i.type }] } } : {}),
      ...(i.system ? { system: i.system } : {}),
      value: i.value,
    })),
    ...(p.familyName || p.givenNames.length
      ? {
          name: [
            {
              ...(p.familyName ? { family: p.familyName } : {}),
              ...(p.givenNames.length ? { given: p.givenNames } : {}),
            },
          ],
        }
      : {}),
    ...(p.sex ? { gender: p.sex } : {}),
    ...(p.birthDate ? { birthDate: p.birthDate } : {}),
  };
}

export interface SearchEntry {
  resource: FhirResource;
  mode: 'match' | 'include';
}

/** A searchset Bundle with `self` (and `next` when there is another page) links. */
export function searchsetBundle(
  baseUrl: string,
  selfUrl: string,
  total: number,
  entries: SearchEntry[],
  nextUrl: string | null,
): FhirResource {
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total,
    link: [{ relation: 'self', url: selfUrl }, ...(nextUrl ? [{ relation: 'next', url: nextUrl }] : [])],
    entry: entries.map((e) => ({
      fullUrl: `${baseUrl}/${e.resource.resourceType}/${e.resource.id}`,
      resource: e.resource,
      search: { mode: e.mode },
    })),
  };
}

export type IssueType =
  | 'invalid'
  | 'security'
  | 'login'
  | 'forbidden'
  | 'not-found'
  | 'too-costly'
  | 'throttled'
  | 'exception'
  | 'processing'
  | 'not-supported';

/** OperationOutcome with one issue per problem: https://hl7.org/fhir/R4/operationoutcome.html */
export function operationOutcome(
  issues: {
    severity: 'error' | 'warning' | 'information';
    code: IssueType;
    diagnostics: string;
    expression?: string[];
  }[],
): FhirResource {
  return { resourceType: 'OperationOutcome', issue: issues };
}
