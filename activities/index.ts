import { ApplicationFailure } from '@temporalio/activity';
import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import { appendAudit } from '../db/audit.ts';
import { addPatientIdentifiers, findPatientsByIdentifiers, insertPatient } from '../db/patients.ts';
import {
  findObservationsOfReports,
  findReport,
  moveReport,
  REPORT_STAGE,
  saveObservationFlag,
  setReportPatient,
} from '../db/results.ts';
import type { Database, Observation } from '../db/schema.ts';
import { findTenantById } from '../db/tenants.ts';
import { DEFAULT_CRITICAL_TABLE } from '../domain/critical-values.ts';
import { flagObservation } from '../domain/flags.ts';
import {
  RESULT_STATUS,
  type ObservationResult,
  type ObservationValueType,
  type ResultStatus,
} from '../domain/model.ts';

export interface ActivityDeps {
  db: Kysely<Database>;
  logger: Logger;
}

export interface ReportRef {
  tenantId: string;
  reportId: string;
}

/**
 * The order workflow's side effects, one function each. Every one is idempotent: Temporal may run an
 * activity again after a worker dies, and the second run must leave the same data as the first.
 */
export function createActivities({ db, logger }: ActivityDeps) {
  async function loadReport({ tenantId, reportId }: ReportRef) {
    const report = await findReport(db, tenantId, reportId);
    if (!report) throw ApplicationFailure.nonRetryable(`report ${reportId} does not exist`, 'ReportNotFound');
    return report;
  }

  return {
    /**
     * Links the report to the tenant's patient holding one of its identifiers, or creates the
     * patient. Identifiers held by two different patients need a person to decide.
     */
    async reconcilePatient(ref: ReportRef): Promise<{ patientId: string | null; needsReview: boolean }> {
      const report = await loadReport(ref);
      if (report.patient_id) return { patientId: report.patient_id, needsReview: false };
      return db.transaction().execute(async (trx) => {
        // One reconciliation at a time per tenant: two reports of a new patient arriving together
        // (two orders in one message) must find one patient, not create two.
        await sql`select pg_advisory_xact_lock(hashtextextended(${`patients:${ref.tenantId}`}, 0))`.execute(
          trx,
        );
        const current = await findReport(trx, ref.tenantId, ref.reportId);
        if (current?.patient_id) return { patientId: current.patient_id, needsReview: false };
        const demographics = report.patient;
        const matches = await findPatientsByIdentifiers(trx, ref.tenantId, demographics.identifiers);
        if (matches.length > 1) {
          await moveReport(
            trx,
            ref.tenantId,
            ref.reportId,
            REPORT_STAGE.needsReview,
            'the identifiers belong to more than one patient',
          );
          await appendAudit(trx, {
            tenantId: ref.tenantId,
            actor: 'workflow',
            action: 'patient.ambiguous',
            subject: `report/${ref.reportId}`,
            details: { candidates: matches },
          });
          return { patientId: null, needsReview: true };
        }
        const patientId = matches[0] ?? (await insertPatient(trx, ref.tenantId, demographics));
        if (matches[0]) await addPatientIdentifiers(trx, ref.tenantId, patientId, demographics.identifiers);
        await setReportPatient(trx, ref.tenantId, ref.reportId, patientId);
        await appendAudit(trx, {
          tenantId: ref.tenantId,
          actor: 'workflow',
          action: matches[0] ? 'patient.matched' : 'patient.created',
          subject: `report/${ref.reportId}`,
          details: { patientId },
        });
        return { patientId, needsReview: false };
      });
    },

    /** Flags every result of the report and records why; says whether a person must look first. */
    async flagReport(ref: ReportRef): Promise<{
      critical: boolean;
      needsReview: boolean;
      final: boolean;
      releaseDelaySeconds: number;
      alreadyReleased: boolean;
    }> {
      const report = await loadReport(ref);
      const final = (
        [
          RESULT_STATUS.final,
          RESULT_STATUS.corrected,
          RESULT_STATUS.amended,
          RESULT_STATUS.cancelled,
        ] as string[]
      ).includes(report.status);
      // A report signalled twice (a duplicate start after its workflow closed) is never re-flagged.
      if (report.stage === REPORT_STAGE.released) {
        return { critical: false, needsReview: false, final, releaseDelaySeconds: 0, alreadyReleased: true };
      }
      const tenant = await findTenantById(db, ref.tenantId);
      const observations = await findObservationsOfReports(db, ref.tenantId, [ref.reportId]);
      const flags = observations.map((o) => ({
        id: o.id,
        flag: flagObservation(toObservationResult(o), DEFAULT_CRITICAL_TABLE),
      }));
      const critical = flags.some((f) => f.flag.critical === true);
      const needsReview = flags.some((f) => f.flag.needsReview);
      // A report already held for a person (e.g. an ambiguous patient) stays held.
      const held = needsReview || report.stage === REPORT_STAGE.needsReview;
      await db.transaction().execute(async (trx) => {
        for (const { id, flag } of flags) await saveObservationFlag(trx, ref.tenantId, id, flag);
        const reasons = flags.flatMap((f) => (f.flag.needsReview ? f.flag.reasons : []));
        await moveReport(
          trx,
          ref.tenantId,
          ref.reportId,
          held ? REPORT_STAGE.needsReview : REPORT_STAGE.flagged,
          needsReview ? reasons.join('; ') : undefined,
        );
        await appendAudit(trx, {
          tenantId: ref.tenantId,
          actor: 'workflow',
          action: 'report.flagged',
          subject: `report/${ref.reportId}`,
          details: { critical, needsReview, interpretations: flags.map((f) => f.flag.interpretation) },
        });
      });
      if (critical)
        logger.info({ tenantId: ref.tenantId, reportId: ref.reportId }, 'critical result flagged');
      return {
        critical,
        needsReview,
        final,
        releaseDelaySeconds: Math.max(0, tenant?.settings.releaseDelaySeconds ?? 0),
        alreadyReleased: false,
      };
    },

    /** Makes the report visible in the tenant's result API and moves its message on. */
    async releaseReport(ref: ReportRef): Promise<void> {
      const report = await loadReport(ref);
      if (report.stage === REPORT_STAGE.released) return;
      await db.transaction().execute(async (trx) => {
        const current = await findReport(trx, ref.tenantId, ref.reportId);
        if (current?.stage === REPORT_STAGE.released) return;
        await moveReport(trx, ref.tenantId, ref.reportId, REPORT_STAGE.released);
        await appendAudit(trx, {
          tenantId: ref.tenantId,
          actor: 'workflow',
          action: 'report.released',
          subject: `report/${ref.reportId}`,
          details: { messageId: report.message_id },
        });
      });
    },

    /** Records a report that cannot be processed; its message shows failed with the reason. */
    async markReportFailed(ref: ReportRef & { reason: string }): Promise<void> {
      const report = await findReport(db, ref.tenantId, ref.reportId);
      if (!report) {
        logger.error(
          { tenantId: ref.tenantId, reportId: ref.reportId, reason: ref.reason },
          'a report that does not exist failed',
        );
        return;
      }
      await db.transaction().execute(async (trx) => {
        await moveReport(trx, ref.tenantId, ref.reportId, REPORT_STAGE.failed, ref.reason);
        await appendAudit(trx, {
          tenantId: ref.tenantId,
          actor: 'workflow',
          action: 'report.failed',
          subject: `report/${ref.reportId}`,
          details: { reason: ref.reason },
        });
      });
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

function toObservationResult(o: Observation): ObservationResult {
  return {
    sequence: o.sequence,
    code: o.code,
    valueType: o.value_type as ObservationValueType,
    numericValue: o.value_numeric,
    comparator: o.value_comparator,
    textValue: o.value_text,
    unit: o.unit,
    referenceRange: o.reference_range,
    sourceFlags: o.source_flags,
    status: o.status as ResultStatus,
    effectiveAt: o.effective_at ? new Date(o.effective_at).toISOString() : null,
  };
}
