import { ApplicationFailure } from '@temporalio/activity';
import { randomUUID } from 'node:crypto';
import { appendAudit } from '../db/audit.ts';
import { enqueueMail } from '../db/mail.ts';
import { findObservationsOfReports, findReport } from '../db/results.ts';
import { tenantScope } from '../db/tenant-scope.ts';
import { summariseReport } from '../domain/patient-summary.ts';
import type { ActivityDeps } from './deps.ts';
import { sendQueuedMail } from './mail.ts';

/** Why a patient is told: results available, reviewed by a provider, or an interpretation added (seed 000). */
export const PATIENT_NOTIFICATION_KIND = {
  available: 'available',
  reviewed: 'reviewed',
  interpreted: 'interpreted',
} as const;
export type PatientNotificationKind =
  (typeof PATIENT_NOTIFICATION_KIND)[keyof typeof PATIENT_NOTIFICATION_KIND];

export const PATIENT_NOTIFICATION_STATUS = {
  sent: 'sent',
  /** No e-mail address: no notification, recorded ("no e-mail, no account"). */
  notNotifiable: 'not_notifiable',
} as const;

export function createNotificationActivities(deps: ActivityDeps) {
  const { db } = deps;
  return {
    /** The patient could not be told (the mail server refused, or kept failing): recorded, audited. */
    async recordPatientNotificationFailure(input: {
      tenantId: string;
      reportId: string;
      kind: PatientNotificationKind;
      reason: string;
    }): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const report = await findReport(trx, input.tenantId, input.reportId);
        await trx
          .insertInto('patient_notifications')
          .values({
            id: randomUUID(),
            tenant_id: input.tenantId,
            patient_id: report?.patient_id ?? null,
            report_id: input.reportId,
            kind: input.kind,
            status: 'failed',
            reason: input.reason.slice(0, 500),
            mail_id: null,
          })
          .onConflict((oc) =>
            oc
              .columns(['report_id', 'kind'])
              .doUpdateSet({ status: 'failed', reason: input.reason.slice(0, 500) })
              .where('patient_notifications.status', '!=', 'sent'),
          )
          .execute();
        await appendAudit(trx, {
          tenantId: input.tenantId,
          actor: 'workflow',
          action: 'patient.notification_failed',
          subject: `report/${input.reportId}`,
          details: { kind: input.kind },
        });
      });
    },

    /**
     * E-mails the patient a plain-language summary of a released report, once per report and kind;
     * a patient without an e-mail address is recorded as not notifiable.
     */
    async notifyPatient(input: {
      tenantId: string;
      reportId: string;
      kind: PatientNotificationKind;
    }): Promise<{ status: string }> {
      const report = await findReport(db, input.tenantId, input.reportId);
      if (!report) throw ApplicationFailure.nonRetryable(`report ${input.reportId} does not exist`);
      const existing = await db
        .selectFrom('patient_notifications')
        .selectAll()
        .where('report_id', '=', report.id)
        .where('kind', '=', input.kind)
        .executeTakeFirst();
      if (existing?.status === PATIENT_NOTIFICATION_STATUS.notNotifiable) return { status: existing.status };
      const patient = report.patient_id
        ? await tenantScope(db, input.tenantId)
            .selectFrom('patients')
            .selectAll()
            .where('id', '=', report.patient_id)
            .executeTakeFirst()
        : undefined;
      if (!patient?.email) {
        await db.transaction().execute(async (trx) => {
          await trx
            .insertInto('patient_notifications')
            .values({
              id: randomUUID(),
              tenant_id: input.tenantId,
              patient_id: patient?.id ?? null,
              report_id: report.id,
              kind: input.kind,
              status: PATIENT_NOTIFICATION_STATUS.notNotifiable,
              reason: 'the patient has no e-mail address',
              mail_id: null,
            })
            .onConflict((oc) => oc.columns(['report_id', 'kind']).doNothing())
            .execute();
          await appendAudit(trx, {
            tenantId: input.tenantId,
            actor: 'workflow',
            action: 'patient.not_notifiable',
            subject: `report/${report.id}`,
            details: { kind: input.kind, patientId: patient?.id ?? null },
          });
        });
        return { status: PATIENT_NOTIFICATION_STATUS.notNotifiable };
      }
      const observations = await findObservationsOfReports(db, input.tenantId, [report.id]);
      const summary = summariseReport(
        {
          title: report.code.display ?? '',
          results: observations.map((o) => ({
            // Never a bare LOINC code in a patient's e-mail.
            name: o.code.display ?? 'one of the results',
            value: o.value_numeric,
            text: o.value_text,
            unit: o.unit,
            interpretation: o.interpretation,
            low: o.reference_range?.low ?? null,
            high: o.reference_range?.high ?? null,
            rangeText: o.reference_range?.text ?? null,
          })),
        },
        input.kind,
        report.interpretation,
      );
      const mail = await db.transaction().execute(async (trx) => {
        const queued = await enqueueMail(trx, {
          tenantId: input.tenantId,
          dedupeKey: `patient/${report.id}/${input.kind}`,
          kind: `patient_${input.kind}`,
          to: patient.email!,
          subject: summary.subject,
          text: summary.text,
        });
        const inserted = await trx
          .insertInto('patient_notifications')
          .values({
            id: randomUUID(),
            tenant_id: input.tenantId,
            patient_id: patient.id,
            report_id: report.id,
            kind: input.kind,
            status: PATIENT_NOTIFICATION_STATUS.sent,
            reason: null,
            mail_id: queued.id,
          })
          .onConflict((oc) => oc.columns(['report_id', 'kind']).doNothing())
          .returning('id')
          .executeTakeFirst();
        if (inserted)
          await appendAudit(trx, {
            tenantId: input.tenantId,
            actor: 'workflow',
            action: 'patient.notified',
            subject: `report/${report.id}`,
            details: { kind: input.kind, patientId: patient.id, mailId: queued.id },
          });
        return queued;
      });
      await sendQueuedMail(deps, mail);
      return { status: PATIENT_NOTIFICATION_STATUS.sent };
    },
  };
}
