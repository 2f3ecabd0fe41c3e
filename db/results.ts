import { randomUUID } from 'node:crypto';
import { sql, type ExpressionBuilder } from 'kysely';
import type { ObservationFlag } from '../domain/flags.ts';
import type { LabReport, PatientDemographics } from '../domain/model.ts';
import { MESSAGE_STATUS, setMessageStatus, type MessageStatus } from './messages.ts';
import type { Observation, Report } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/** Where a report is on its way through the order workflow. */
export const REPORT_STAGE = {
  received: 'received',
  flagged: 'flagged',
  needsReview: 'needs_review',
  released: 'released',
  /** The same report received before: recorded, not processed again. */
  duplicate: 'duplicate',
  /** A reviewer rejected it: never released. */
  rejected: 'rejected',
  failed: 'failed',
} as const;
export type ReportStage = (typeof REPORT_STAGE)[keyof typeof REPORT_STAGE];

export interface NewReport {
  tenantId: string;
  messageId: string;
  patient: PatientDemographics;
  orderKey: string;
  workflowId: string;
  report: LabReport;
  /** Segments of the message LabRelay does not read (HL7 Z-segments), kept with each report. */
  extraSegments?: string[];
}

/** Stores one canonical report and its observations (inside the intake transaction). */
export async function insertReport(db: Db, input: NewReport): Promise<string> {
  return (await insertReports(db, [input]))[0]!;
}

/**
 * Stores canonical reports and their observations in as few statements as the parameter limit
 * allows (a group commit writes many messages' reports at once). Returns the reports' ids in order.
 */
export async function insertReports(db: Db, inputs: NewReport[]): Promise<string[]> {
  const ids = inputs.map(() => randomUUID());
  // One statement may carry at most 65,535 parameters: 23 per report, 19 per observation.
  for (let start = 0; start < inputs.length; start += 1000) {
    await db
      .insertInto('reports')
      .values(
        inputs.slice(start, start + 1000).map((input, i) => {
          const r = input.report;
          return {
            id: ids[start + i]!,
            tenant_id: input.tenantId,
            message_id: input.messageId,
            patient_id: null,
            patient: JSON.stringify(input.patient),
            order_key: input.orderKey,
            placer_order_number: r.placerOrderNumber,
            filler_order_number: r.fillerOrderNumber,
            code: JSON.stringify(r.code),
            status: r.status,
            ordering_provider: r.orderingProvider ? JSON.stringify(r.orderingProvider) : null,
            effective_at: r.effectiveAt,
            issued_at: r.issuedAt,
            workflow_id: input.workflowId,
            stage: REPORT_STAGE.received,
            notes: r.notes?.length ? JSON.stringify(r.notes) : null,
            extra_segments: input.extraSegments?.length ? JSON.stringify(input.extraSegments) : null,
            client_id: r.clientId ?? null,
            location_id: r.locationId ?? null,
            interpretation: r.interpretation ?? null,
          };
        }),
      )
      .execute();
  }
  const observations = inputs.flatMap((input, i) =>
    input.report.observations.map((o) => ({
      id: randomUUID(),
      tenant_id: input.tenantId,
      report_id: ids[i]!,
      sequence: o.sequence,
      code: JSON.stringify(o.code),
      value_type: o.valueType,
      value_numeric: o.numericValue,
      value_comparator: o.comparator,
      value_text: o.textValue,
      unit: o.unit,
      reference_range: o.referenceRange ? JSON.stringify(o.referenceRange) : null,
      source_flags: JSON.stringify(o.sourceFlags),
      status: o.status,
      effective_at: o.effectiveAt ?? input.report.effectiveAt,
      interpretation: null,
      critical: null,
      flag_reasons: null,
      flagged_at: null,
      notes: o.notes?.length ? JSON.stringify(o.notes) : null,
    })),
  );
  for (let start = 0; start < observations.length; start += 1000) {
    await db
      .insertInto('observations')
      .values(observations.slice(start, start + 1000))
      .execute();
  }
  return ids;
}

export async function findReport(db: Db, tenantId: string, reportId: string): Promise<Report | undefined> {
  return tenantScope(db, tenantId)
    .selectFrom('reports')
    .selectAll()
    .where('id', '=', reportId)
    .executeTakeFirst();
}

export async function findObservationsOfReports(
  db: Db,
  tenantId: string,
  reportIds: string[],
): Promise<Observation[]> {
  if (reportIds.length === 0) return [];
  return tenantScope(db, tenantId)
    .selectFrom('observations')
    .selectAll()
    .where('report_id', 'in', reportIds)
    .orderBy('report_id')
    .orderBy('sequence')
    .execute();
}

export async function saveObservationFlag(
  db: Db,
  tenantId: string,
  observationId: string,
  flag: ObservationFlag,
): Promise<void> {
  await tenantScope(db, tenantId)
    .updateTable('observations')
    .set({
      interpretation: flag.interpretation,
      critical: flag.critical,
      flag_reasons: JSON.stringify(flag.reasons),
      flagged_at: new Date(),
    })
    .where('id', '=', observationId)
    .execute();
}

export async function setReportPatient(
  db: Db,
  tenantId: string,
  reportId: string,
  patientId: string,
): Promise<void> {
  await tenantScope(db, tenantId)
    .updateTable('reports')
    .set({ patient_id: patientId, updated_at: new Date() })
    .where('id', '=', reportId)
    .execute();
}

/**
 * Moves a report to `stage` and derives its message's status from the stages of all the message's
 * reports (one failed: failed; all released: delivered; one held for review: needs_review; else
 * processing). The message row is locked first, so reports of one message moved together see each
 * other. `detail` explains the status; without one a status that does not change keeps its detail.
 */
export async function moveReport(
  db: Db,
  tenantId: string,
  reportId: string,
  stage: ReportStage,
  detail?: string,
): Promise<void> {
  const scope = tenantScope(db, tenantId);
  const { message_id: messageId } = await scope
    .selectFrom('reports')
    .select('message_id')
    .where('id', '=', reportId)
    .executeTakeFirstOrThrow();
  const message = await scope
    .selectFrom('messages')
    .select(['status', 'status_detail'])
    .where('id', '=', messageId)
    .forUpdate()
    .executeTakeFirstOrThrow();
  await scope
    .updateTable('reports')
    .set({ stage, updated_at: new Date() })
    .where('id', '=', reportId)
    .execute();
  const stages = await scope
    .selectFrom('reports')
    .select('stage')
    .where('message_id', '=', messageId)
    .execute();
  const status = messageStatusOf(stages.map((r) => r.stage));
  const statusDetail = detail ?? (status === message.status ? message.status_detail : null);
  await setMessageStatus(db, tenantId, messageId, status, statusDetail);
}

const DONE: string[] = [REPORT_STAGE.released, REPORT_STAGE.duplicate, REPORT_STAGE.rejected];

function messageStatusOf(stages: string[]): MessageStatus {
  if (stages.some((s) => s === REPORT_STAGE.failed)) return MESSAGE_STATUS.failed;
  if (stages.every((s) => DONE.includes(s))) {
    // A message whose every report a reviewer rejected delivered nothing.
    return stages.every((s) => s === REPORT_STAGE.rejected)
      ? MESSAGE_STATUS.failed
      : MESSAGE_STATUS.delivered;
  }
  if (stages.some((s) => s === REPORT_STAGE.needsReview)) return MESSAGE_STATUS.needsReview;
  return MESSAGE_STATUS.processing;
}

export interface ReportSearch {
  patientIds?: string[];
  codes?: { system: string | null; code: string }[];
  statuses?: string[];
  /** Inclusive bounds on the report's effective time. */
  effectiveFrom?: Date;
  effectiveTo?: Date;
  updatedFrom?: Date;
  updatedTo?: Date;
  ids?: string[];
  count: number;
  offset: number;
  /** Seed 003's client and location scope of the reading credential. */
  access?: AccessScope;
}

/** The clients and locations a credential may see; null lists mean all. */
export interface AccessScope {
  clientIds: string[] | null;
  locationIds: string[] | null;
}

/** Keeps only reports inside the access scope (a report outside every listed client is not seen). */
function withinScope(access: AccessScope | undefined) {
  return (eb: ExpressionBuilder<any, any>) =>
    eb.and([
      ...(access?.clientIds ? [eb('reports.client_id', 'in', access.clientIds)] : []),
      ...(access?.locationIds ? [eb('reports.location_id', 'in', access.locationIds)] : []),
    ]);
}

/** Released reports of a tenant matching a search, newest first, with the total before paging. */
export async function searchReleasedReports(
  db: Db,
  tenantId: string,
  search: ReportSearch,
): Promise<{ total: number; reports: Report[] }> {
  let query = tenantScope(db, tenantId).selectFrom('reports').where('stage', '=', REPORT_STAGE.released);
  if (search.ids)
    query = query.where(
      'id',
      'in',
      search.ids.length > 0 ? search.ids : ['00000000-0000-0000-0000-000000000000'],
    );
  if (search.patientIds)
    query = query.where(
      'patient_id',
      'in',
      search.patientIds.length > 0 ? search.patientIds : ['00000000-0000-0000-0000-000000000000'],
    );
  if (search.statuses) query = query.where('status', 'in', search.statuses);
  if (search.codes) query = query.where(codeMatches('reports.code', search.codes));
  if (search.effectiveFrom) query = query.where('effective_at', '>=', search.effectiveFrom);
  if (search.effectiveTo) query = query.where('effective_at', '<=', search.effectiveTo);
  if (search.updatedFrom) query = query.where('updated_at', '>=', search.updatedFrom);
  if (search.updatedTo) query = query.where('updated_at', '<=', search.updatedTo);
  query = query.where(withinScope(search.access));
  const totalRow = await query.select(sql<number>`count(*)::int`.as('total')).executeTakeFirstOrThrow();
  const reports = await query
    .selectAll()
    .orderBy('effective_at', 'desc')
    .orderBy('id')
    .limit(search.count)
    .offset(search.offset)
    .execute();
  return { total: Number(totalRow.total), reports };
}

export interface ObservationSearch {
  patientIds?: string[];
  codes?: { system: string | null; code: string }[];
  ids?: string[];
  statuses?: string[];
  /** Observation.effective (collection time) bounds. */
  effectiveFrom?: Date;
  effectiveTo?: Date;
  /** meta.lastUpdated bounds: when the result was flagged, else when its report changed. */
  updatedFrom?: Date;
  updatedTo?: Date;
  count: number;
  offset: number;
  access?: AccessScope;
}

export interface ObservationWithReport extends Observation {
  patient_id: string | null;
  report_updated_at: Date;
  report_issued_at: Date | null;
}

/** Observations of released reports matching a search, newest first, with the total before paging. */
export async function searchReleasedObservations(
  db: Db,
  tenantId: string,
  search: ObservationSearch,
): Promise<{ total: number; observations: ObservationWithReport[] }> {
  const none = ['00000000-0000-0000-0000-000000000000'];
  let query = tenantScope(db, tenantId)
    .selectFrom('observations')
    .innerJoin('reports', 'reports.id', 'observations.report_id')
    .where('reports.stage', '=', REPORT_STAGE.released);
  if (search.ids) query = query.where('observations.id', 'in', search.ids.length > 0 ? search.ids : none);
  if (search.patientIds)
    query = query.where('reports.patient_id', 'in', search.patientIds.length > 0 ? search.patientIds : none);
  if (search.codes) query = query.where(codeMatches('observations.code', search.codes));
  if (search.statuses) query = query.where('observations.status', 'in', search.statuses);
  if (search.effectiveFrom) query = query.where('observations.effective_at', '>=', search.effectiveFrom);
  if (search.effectiveTo) query = query.where('observations.effective_at', '<=', search.effectiveTo);
  const lastUpdated = sql<Date>`coalesce(observations.flagged_at, reports.updated_at)`;
  if (search.updatedFrom) query = query.where(lastUpdated, '>=', search.updatedFrom);
  if (search.updatedTo) query = query.where(lastUpdated, '<=', search.updatedTo);
  query = query.where(withinScope(search.access));
  const totalRow = await query.select(sql<number>`count(*)::int`.as('total')).executeTakeFirstOrThrow();
  const observations = await query
    .selectAll('observations')
    .select([
      'reports.patient_id',
      'reports.updated_at as report_updated_at',
      'reports.issued_at as report_issued_at',
    ])
    .orderBy('observations.effective_at', 'desc')
    .orderBy('observations.id')
    .limit(search.count)
    .offset(search.offset)
    .execute();
  return { total: Number(totalRow.total), observations };
}

/** `column` (a jsonb Coding) matches any of `codes`; a code without a system matches any system. */
function codeMatches(
  column: 'reports.code' | 'observations.code',
  codes: { system: string | null; code: string }[],
) {
  const code = sql<string>`${sql.ref(column)}->>'code'`;
  const system = sql<string>`${sql.ref(column)}->>'system'`;
  return (eb: ExpressionBuilder<any, any>) =>
    eb.or(
      codes.map((c) =>
        c.system === null
          ? eb(code, '=', c.code)
          : eb.and([eb(code, '=', c.code), eb(system, '=', c.system)]),
      ),
    );
}
