import type { ObservationView, PatientView, ReleasedResult, ReportView } from '../adapters/fhir/resources.ts';
import type { Interpretation, ObservationValueType } from '../domain/model.ts';
import { findPatients, type PatientWithIdentifiers } from './patients.ts';
import { findObservationsOfReports, findReport, type ObservationWithReport } from './results.ts';
import type { Observation, Report } from './schema.ts';
import type { Db } from './tenant-scope.ts';

/**
 * Stored rows as the views every outgoing format is built from: the FHIR result API reads them,
 * and so does each delivery (FHIR Bundle, HL7 ORU^R01, webhook).
 */

export function reportView(r: Report, observations: Pick<Observation, 'id'>[]): ReportView {
  return {
    id: r.id,
    status: r.status,
    code: r.code,
    patientId: r.patient_id,
    placerOrderNumber: r.placer_order_number,
    fillerOrderNumber: r.filler_order_number,
    orderIdentifierSystem: `urn:labrelay:order:${r.order_key.split('|')[0]}`,
    effectiveAt: r.effective_at ? new Date(r.effective_at) : null,
    issuedAt: r.issued_at ? new Date(r.issued_at) : null,
    updatedAt: new Date(r.updated_at),
    orderingProvider: r.ordering_provider,
    observationIds: observations.map((o) => o.id),
  };
}

export function observationView(o: ObservationWithReport): ObservationView {
  return {
    id: o.id,
    status: o.status,
    code: o.code,
    patientId: o.patient_id,
    valueType: o.value_type as ObservationValueType,
    numericValue: o.value_numeric,
    comparator: o.value_comparator,
    textValue: o.value_text,
    unit: o.unit,
    referenceRange: o.reference_range,
    interpretation: o.interpretation as Interpretation | null,
    effectiveAt: o.effective_at ? new Date(o.effective_at) : null,
    issuedAt: o.report_issued_at ? new Date(o.report_issued_at) : null,
    updatedAt: new Date(o.flagged_at ?? o.report_updated_at),
  };
}

export function patientView(p: PatientWithIdentifiers): PatientView {
  return {
    id: p.id,
    identifiers: p.identifiers,
    familyName: p.family_name,
    givenNames: p.given_names,
    birthDate: p.birth_date,
    sex: p.sex,
    updatedAt: new Date(p.updated_at),
  };
}

/** A tenant's URI for LabRelay's own ids, so a destination can find again what it received. */
export function labRelayIdentifierSystem(tenantSlug: string): string {
  return `urn:labrelay:${tenantSlug}`;
}

/**
 * A report as it leaves LabRelay, with its results (corrected values as corrected) and its patient.
 * Undefined when the report does not exist in the tenant.
 */
export async function loadReleasedResult(
  db: Db,
  tenant: { id: string; slug: string },
  reportId: string,
): Promise<ReleasedResult | undefined> {
  const report = await findReport(db, tenant.id, reportId);
  if (!report) return undefined;
  const observations = await findObservationsOfReports(db, tenant.id, [report.id]);
  const [patient] = report.patient_id ? await findPatients(db, tenant.id, [report.patient_id]) : [];
  // A correction replaces an earlier report: the line is known by its first report.
  let reportKey = report.id;
  let replaces = report.replaces;
  for (let depth = 0; replaces && depth < 50; depth++) {
    reportKey = replaces;
    replaces = (await findReport(db, tenant.id, replaces))?.replaces ?? null;
  }
  return {
    identifierSystem: labRelayIdentifierSystem(tenant.slug),
    reportKey,
    report: reportView(report, observations),
    observations: observations.map((o) =>
      observationView({
        ...o,
        patient_id: report.patient_id,
        report_updated_at: report.updated_at,
        report_issued_at: report.issued_at,
      }),
    ),
    patient: patient ? patientView(patient) : null,
    notes: (report.notes ?? []).filter((n): n is string => typeof n === 'string'),
  };
}
