import { sql } from 'kysely';
import { CRITICAL_STATUS } from '../domain/escalation.ts';
import { INTERPRETATION } from '../domain/model.ts';
import { TASK_KIND, TASK_STATUS } from '../domain/tasks.ts';
import { REPORT_STAGE } from './results.ts';
import type { Observation, Report } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/**
 * What the console's result dashboard (seed 000 "Result Dashboard") and a patient's page read:
 * the counts at the top, the recent reports with their values, and one patient's reports for
 * trends. Every query goes through `tenantScope`.
 */

export interface DashboardCounts {
  /** Open or claimed review and patient-match tasks: what reviewers have to do. */
  pendingReview: number;
  /** Critical results not yet closed (notifying, unacknowledged, acknowledged awaiting closure). */
  criticalOpen: number;
  /** Reports received since `since` (the start of today). */
  receivedToday: number;
}

/** The three counts at the top of the dashboard. */
export async function dashboardCounts(db: Db, tenantId: string, since: Date): Promise<DashboardCounts> {
  const scope = tenantScope(db, tenantId);
  const [review, critical, received] = await Promise.all([
    scope
      .selectFrom('tasks')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('status', 'in', [TASK_STATUS.open, TASK_STATUS.claimed])
      .where('kind', 'in', [TASK_KIND.reviewResult, TASK_KIND.matchPatient])
      .executeTakeFirstOrThrow(),
    scope
      .selectFrom('critical_results')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('status', '!=', CRITICAL_STATUS.closed)
      .executeTakeFirstOrThrow(),
    scope
      .selectFrom('reports')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('created_at', '>=', since)
      .executeTakeFirstOrThrow(),
  ]);
  return {
    pendingReview: Number(review.n),
    criticalOpen: Number(critical.n),
    receivedToday: Number(received.n),
  };
}

export interface RecentReportFilter {
  /** Part of a patient's name, or an identifier / external id (exact, case-insensitive). */
  patient?: string | null;
  /** Only reports with at least one value outside its reference range (any flag but N). */
  outOfRangeOnly?: boolean;
  limit: number;
}

export interface RecentReport {
  report: Report;
  patientName: { family: string | null; given: string[] } | null;
  observations: Observation[];
}

/** The latest reports of a tenant (newest first), with their patient and values. */
export async function recentReports(
  db: Db,
  tenantId: string,
  filter: RecentReportFilter,
): Promise<RecentReport[]> {
  const scope = tenantScope(db, tenantId);
  let query = scope
    .selectFrom('reports')
    .leftJoin('patients', 'patients.id', 'reports.patient_id')
    .selectAll('reports')
    .select(['patients.family_name', 'patients.given_names'])
    .where('reports.stage', '!=', REPORT_STAGE.duplicate)
    .orderBy('reports.created_at', 'desc')
    .orderBy('reports.id')
    .limit(filter.limit);
  const text = filter.patient?.trim();
  if (text) {
    const like = `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    query = query.where((eb) =>
      eb.or([
        eb('patients.family_name', 'ilike', like),
        eb(sql<string>`patients.given_names::text`, 'ilike', like),
        eb(
          sql<string>`(coalesce(patients.family_name, '') || ', ' || (patients.given_names->>0))`,
          'ilike',
          like,
        ),
        eb(sql<string>`lower(patients.external_id)`, '=', text.toLowerCase()),
        eb.exists(
          scope
            .selectFrom('patient_identifiers')
            .select('patient_identifiers.patient_id')
            .where('patient_identifiers.patient_id', '=', sql<string>`reports.patient_id`)
            .where(sql<string>`lower(patient_identifiers.value)`, '=', text.toLowerCase()),
        ),
        // Not yet matched to a patient: the patient as the sender described them.
        eb.and([eb('reports.patient_id', 'is', null), eb(sql<string>`reports.patient::text`, 'ilike', like)]),
      ]),
    );
  }
  if (filter.outOfRangeOnly)
    query = query.where((eb) =>
      eb.exists(
        scope
          .selectFrom('observations')
          .select('observations.id')
          .where('observations.report_id', '=', sql<string>`reports.id`)
          .where('observations.interpretation', 'is not', null)
          .where('observations.interpretation', '!=', INTERPRETATION.normal),
      ),
    );
  const rows = await query.execute();
  const observations = await observationsOf(
    db,
    tenantId,
    rows.map((r) => r.id),
  );
  return rows.map(({ family_name, given_names, ...report }) => ({
    report: report as Report,
    patientName: report.patient_id ? { family: family_name, given: given_names ?? [] } : null,
    observations: observations.filter((o) => o.report_id === report.id),
  }));
}

/**
 * Every report of one patient that counts for their history (not rejected, failed or a duplicate),
 * oldest first, with their values: the patient page's list and trends.
 */
export async function patientReports(
  db: Db,
  tenantId: string,
  patientId: string,
): Promise<{ report: Report; observations: Observation[] }[]> {
  const reports = await tenantScope(db, tenantId)
    .selectFrom('reports')
    .selectAll()
    .where('patient_id', '=', patientId)
    .where('stage', 'not in', [REPORT_STAGE.rejected, REPORT_STAGE.failed, REPORT_STAGE.duplicate])
    .orderBy(sql`coalesce(effective_at, created_at)`)
    .orderBy('created_at')
    .limit(500)
    .execute();
  const observations = await observationsOf(
    db,
    tenantId,
    reports.map((r) => r.id),
  );
  return reports.map((report) => ({
    report,
    observations: observations.filter((o) => o.report_id === report.id),
  }));
}

/** Patients whose name, identifier or external id matches (for picking one), at most `limit`. */
export async function searchPatients(
  db: Db,
  tenantId: string,
  text: string,
  limit = 20,
): Promise<
  {
    id: string;
    family_name: string | null;
    given_names: string[];
    birth_date: string | null;
    identifiers: string[];
  }[]
> {
  const scope = tenantScope(db, tenantId);
  const needle = text.trim();
  if (!needle) return [];
  const like = `%${needle.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const patients = await scope
    .selectFrom('patients')
    .select(['id', 'family_name', 'given_names', 'birth_date'])
    .where((eb) =>
      eb.or([
        eb('family_name', 'ilike', like),
        eb(sql<string>`given_names::text`, 'ilike', like),
        eb(sql<string>`lower(external_id)`, '=', needle.toLowerCase()),
        eb.exists(
          scope
            .selectFrom('patient_identifiers')
            .select('patient_identifiers.patient_id')
            .where('patient_identifiers.patient_id', '=', sql<string>`patients.id`)
            .where(sql<string>`lower(patient_identifiers.value)`, '=', needle.toLowerCase()),
        ),
      ]),
    )
    .orderBy('family_name')
    .orderBy('id')
    .limit(limit)
    .execute();
  if (patients.length === 0) return [];
  const identifiers = await scope
    .selectFrom('patient_identifiers')
    .select(['patient_id', 'value'])
    .where(
      'patient_id',
      'in',
      patients.map((p) => p.id),
    )
    .execute();
  return patients.map((p) => ({
    ...p,
    identifiers: identifiers.filter((i) => i.patient_id === p.id).map((i) => i.value),
  }));
}

async function observationsOf(db: Db, tenantId: string, reportIds: string[]): Promise<Observation[]> {
  if (reportIds.length === 0) return [];
  return tenantScope(db, tenantId)
    .selectFrom('observations')
    .selectAll()
    .where('report_id', 'in', reportIds)
    .orderBy('report_id')
    .orderBy('sequence')
    .execute();
}
