import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { sql, type Kysely, type Transaction } from 'kysely';
import { ensureCriticalResult } from '../db/critical-results.ts';
import { ensureOrder, findOrder, ORDER_STATUS, setOrderStatus, type OrderStatus } from '../db/orders.ts';
import {
  addPatientIdentifiers,
  findPatients,
  findPatientsByIdentifiers,
  insertPatient,
} from '../db/patients.ts';
import {
  findObservationsOfReports,
  findReport,
  moveReport,
  REPORT_STAGE,
  saveObservationFlag,
  setReportPatient,
} from '../db/results.ts';
import { routingFactsOfReports } from '../db/routing-facts.ts';
import { findActiveRules } from '../db/routing-rules.ts';
import type {
  Database,
  Observation,
  ObservationDelta,
  RecordedRoutingDecision,
  Report,
} from '../db/schema.ts';
import { findTask, openTask, updateTask } from '../db/tasks.ts';
import { tenantScope, type Db } from '../db/tenant-scope.ts';
import { EXTRACTION_STATUS } from '../db/documents.ts';
import { DEFAULT_CRITICAL_TABLE, type CriticalLimit } from '../domain/critical-values.ts';
import { CRITICAL_STATUS } from '../domain/escalation.ts';
import { DEFAULT_DELTA_THRESHOLDS, deltaCheck } from '../domain/delta-check.ts';
import { flagObservation, isLoincCoding, type ObservationFlag } from '../domain/flags.ts';
import {
  RESULT_STATUS,
  type ObservationResult,
  type ObservationValueType,
  type PatientDemographics,
  type ReferenceRange,
  type ResultStatus,
} from '../domain/model.ts';
import { convertUnit } from '../domain/units.ts';
import { chooseDemographicMatch, demographicKey } from '../domain/reconciliation.ts';
import { routeReport, routingDefaults } from '../domain/routing-rules.ts';
import {
  agedPriority,
  DEFAULT_TASK_AGING_MINUTES,
  MAX_TASK_PRIORITY,
  REVIEW_DECISION,
  TASK_KIND,
  TASK_PRIORITY,
  TASK_STATUS,
  type ReviewDecision,
} from '../domain/tasks.ts';
import { turnaroundMinutesFor } from '../domain/turnaround.ts';
import { auditStep, loadReport, loadTenant, type ActivityDeps, type ReportRef } from './deps.ts';

const FINAL_STATUSES: string[] = [
  RESULT_STATUS.final,
  RESULT_STATUS.corrected,
  RESULT_STATUS.amended,
  RESULT_STATUS.cancelled,
];

export interface CriticalStart {
  criticalResultId: string;
  workflowId: string;
}

export interface TaskCheck {
  status: string;
  decision: Record<string, unknown> | null;
}

/** The forward path of an order; `corrected` and `cancelled` stand outside it. */
const ORDER_PROGRESS: OrderStatus[] = [
  ORDER_STATUS.ordered,
  ORDER_STATUS.partial,
  ORDER_STATUS.final,
  ORDER_STATUS.reviewed,
  ORDER_STATUS.delivered,
  ORDER_STATUS.notified,
];

/** The order workflow's side effects, one function each, each safe to run twice. */
export function createOrderActivities({ db, logger }: ActivityDeps) {
  const audit = auditStep;

  async function orderStatus(tenantId: string, orderKey: string, status: OrderStatus, detail?: string) {
    await db.transaction().execute(async (trx) => {
      const order = await findOrder(trx, tenantId, orderKey);
      if (!order || order.status === status) return;
      // Reports of one order move it side by side: it only ever moves forward (a correction
      // reopens it, a cancellation or closure ends it).
      if (
        ORDER_PROGRESS.indexOf(status) !== -1 &&
        ORDER_PROGRESS.indexOf(status) < ORDER_PROGRESS.indexOf(order.status as OrderStatus)
      )
        return;
      await setOrderStatus(trx, tenantId, orderKey, status, detail);
      await audit(trx, tenantId, `order.${status}`, `order/${order.id}`, detail ? { detail } : {});
    });
  }

  /**
   * Flags observations with the tenant's critical table and default ranges, runs the delta check
   * against the patient's previous value, and records a critical result for each critical value.
   */
  async function flagObservations(
    trx: Transaction<Database>,
    report: Report,
    observations: Observation[],
  ): Promise<{ flags: Map<string, ObservationFlag>; critical: CriticalStart[]; deltaReasons: string[] }> {
    const tenant = await loadTenant(trx as unknown as Kysely<Database>, report.tenant_id);
    const table: readonly CriticalLimit[] = tenant.settings.criticalTable ?? DEFAULT_CRITICAL_TABLE;
    const thresholds = tenant.settings.deltaThresholds ?? DEFAULT_DELTA_THRESHOLDS;
    const flags = new Map<string, ObservationFlag>();
    const critical: CriticalStart[] = [];
    const deltaReasons: string[] = [];
    for (const o of observations) {
      const flag = flagObservation(
        toObservationResult(o),
        table,
        defaultRangeFor(o, tenant.settings.referenceRanges),
      );
      flags.set(o.id, flag);
      await saveObservationFlag(trx, report.tenant_id, o.id, flag);
      const delta = await deltaOf(trx, report, o, thresholds, table);
      if (delta) {
        await tenantScope(trx, report.tenant_id)
          .updateTable('observations')
          .set({ delta: JSON.stringify(delta) })
          .where('id', '=', o.id)
          .execute();
        if (delta.exceeded && delta.reason) deltaReasons.push(`${nameOf(o)}: ${delta.reason}`);
      }
      if (flag.critical === true) {
        const workflowId = `critical/${report.tenant_id}/${o.id}`;
        const row = await ensureCriticalResult(trx, {
          tenantId: report.tenant_id,
          reportId: report.id,
          observationId: o.id,
          patientId: report.patient_id,
          workflowId,
          finding: findingOf(o, flag),
          identifiedAt: new Date(),
        });
        critical.push({ criticalResultId: row.id, workflowId });
      }
    }
    return { flags, critical, deltaReasons };
  }

  return {
    /**
     * Records the order (first time) and says how long until it is overdue, and whether it already
     * has its final results (a run reopened by a correction or an interpretation).
     */
    async openOrder(input: {
      tenantId: string;
      orderKey: string;
      workflowId: string;
      firstReportId: string | null;
    }): Promise<{ dueInMs: number | null; final: boolean }> {
      const tenant = await loadTenant(db, input.tenantId);
      const first = input.firstReportId
        ? await findReport(db, input.tenantId, input.firstReportId)
        : undefined;
      const turnaround = tenant.settings.turnaroundMinutes;
      const minutes = turnaroundMinutesFor(turnaround, first?.code.code);
      const order = await db.transaction().execute(async (trx) => {
        const existing = await findOrder(trx, input.tenantId, input.orderKey);
        if (existing) return existing;
        const orderedAt = first?.effective_at ?? new Date();
        const created = await ensureOrder(trx, {
          tenantId: input.tenantId,
          orderKey: input.orderKey,
          workflowId: input.workflowId,
          code: first?.code ?? null,
          orderedAt,
          dueAt: new Date(orderedAt.getTime() + minutes * 60_000),
        });
        await audit(trx, input.tenantId, 'order.opened', `order/${created.id}`, { orderKey: input.orderKey });
        return created;
      });
      const final = await db
        .selectFrom('reports')
        .select('id')
        .where('tenant_id', '=', input.tenantId)
        .where('order_key', '=', input.orderKey)
        .where('status', 'in', FINAL_STATUSES)
        .where('stage', 'in', [REPORT_STAGE.released, REPORT_STAGE.rejected])
        .limit(1)
        .executeTakeFirst();
      const dueInMs =
        order.due_at && !order.overdue_at && !final ? Math.max(0, order.due_at.getTime() - Date.now()) : null;
      return { dueInMs, final: Boolean(final) };
    },

    async setOrderStatus(input: {
      tenantId: string;
      orderKey: string;
      status: OrderStatus;
      detail?: string;
    }) {
      await orderStatus(input.tenantId, input.orderKey, input.status, input.detail);
    },

    /** An order whose results did not arrive in time: an alert task and an audit event. */
    async markOrderOverdue(input: { tenantId: string; orderKey: string; workflowId: string }): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const order = await findOrder(trx, input.tenantId, input.orderKey);
        if (!order || order.overdue_at) return;
        await tenantScope(trx, input.tenantId)
          .updateTable('orders')
          .set({ overdue_at: new Date(), updated_at: new Date() })
          .where('id', '=', order.id)
          .execute();
        await openTask(trx, {
          tenantId: input.tenantId,
          dedupeKey: `overdue/${order.id}`,
          kind: TASK_KIND.orderOverdue,
          priority: TASK_PRIORITY.urgent,
          title: `Results overdue for order ${input.orderKey}`,
          reason: `the final results were due at ${order.due_at?.toISOString() ?? 'the turnaround time'} and have not arrived`,
          orderKey: input.orderKey,
          workflowId: input.workflowId,
        });
        await audit(trx, input.tenantId, 'order.overdue', `order/${order.id}`, {
          dueAt: order.due_at?.toISOString() ?? null,
        });
      });
    },

    /**
     * Links the report to its patient, in this order: our own id, the sender's external id, an
     * identifier with its assigning authority, then name + birth date with exactly one match. Anything
     * uncertain opens a "match patient" task with the candidates: it never guesses. A report with no
     * candidate at all is a new patient.
     */
    async reconcilePatient(
      ref: ReportRef,
    ): Promise<{ patientId: string | null; matchTaskId: string | null }> {
      const report = await loadReport(db, ref);
      if (report.patient_id) return { patientId: report.patient_id, matchTaskId: null };
      return db.transaction().execute(async (trx) => {
        // One reconciliation at a time per tenant: two reports of a new patient arriving together
        // must find one patient, not create two.
        await sql`select pg_advisory_xact_lock(hashtextextended(${`patients:${ref.tenantId}`}, 0))`.execute(
          trx,
        );
        const current = await findReport(trx, ref.tenantId, ref.reportId);
        if (current?.patient_id) return { patientId: current.patient_id, matchTaskId: null };
        const d: PatientDemographics = report.patient;
        const link = async (patientId: string, how: string) => {
          await addPatientIdentifiers(trx, ref.tenantId, patientId, d.identifiers);
          // What the patient record lacks, the sender may fill; nothing it holds is overwritten.
          await tenantScope(trx, ref.tenantId)
            .updateTable('patients')
            .set({
              external_id: sql<string | null>`coalesce(external_id, ${d.externalId ?? null})`,
              email: sql<string | null>`coalesce(email, ${d.email ?? null})`,
              phone: sql<string | null>`coalesce(phone, ${d.phone ?? null})`,
              updated_at: new Date(),
            })
            .where('id', '=', patientId)
            .execute();
          await setReportPatient(trx, ref.tenantId, ref.reportId, patientId);
          await audit(trx, ref.tenantId, 'patient.matched', `report/${ref.reportId}`, { patientId, by: how });
          return { patientId, matchTaskId: null };
        };
        const needsPerson = async (reason: string, candidateIds: string[]) => {
          const candidates = await findPatients(trx, ref.tenantId, candidateIds);
          const { task } = await openTask(trx, {
            tenantId: ref.tenantId,
            dedupeKey: `match/${ref.reportId}`,
            kind: TASK_KIND.matchPatient,
            priority: TASK_PRIORITY.urgent,
            title: `Match the patient of report ${report.code.display ?? report.code.code}`,
            reason,
            reportId: ref.reportId,
            orderKey: report.order_key,
            workflowId: report.workflow_id,
            payload: {
              incoming: d,
              candidates: candidates.map((c) => ({
                id: c.id,
                familyName: c.family_name,
                givenNames: c.given_names,
                birthDate: c.birth_date,
                sex: c.sex,
                identifiers: c.identifiers,
              })),
            },
          });
          await moveReport(trx, ref.tenantId, ref.reportId, REPORT_STAGE.needsReview, reason);
          await audit(trx, ref.tenantId, 'patient.ambiguous', `report/${ref.reportId}`, {
            reason,
            candidates: candidateIds,
            taskId: task.id,
          });
          return { patientId: null, matchTaskId: task.id };
        };

        if (
          d.internalId &&
          !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(d.internalId)
        )
          return needsPerson(
            `the sender named patient ${d.internalId}, which is not a LabRelay patient id`,
            [],
          );
        if (d.internalId) {
          const [own] = await findPatients(trx, ref.tenantId, [d.internalId]);
          if (own) return link(own.id, 'internal id');
          return needsPerson(`the sender named patient ${d.internalId}, which this tenant does not have`, []);
        }
        if (d.externalId) {
          const byExternal = await trx
            .selectFrom('patients')
            .select('id')
            .where('tenant_id', '=', ref.tenantId)
            .where('external_id', '=', d.externalId)
            .executeTakeFirst();
          if (byExternal) return link(byExternal.id, 'external id');
        }
        const byIdentifier = await findPatientsByIdentifiers(trx, ref.tenantId, d.identifiers);
        if (byIdentifier.length > 1)
          return needsPerson('the identifiers belong to more than one patient', byIdentifier);
        if (byIdentifier.length === 1) return link(byIdentifier[0]!, 'identifier');
        const key = demographicKey(d);
        if (key) {
          const rows = await trx
            .selectFrom('patients')
            .select(['id', 'family_name', 'given_names', 'birth_date'])
            .where('tenant_id', '=', ref.tenantId)
            .where('demographic_key', '=', key)
            .execute();
          const choice = chooseDemographicMatch(
            d,
            rows.map((r) => ({
              id: r.id,
              familyName: r.family_name,
              givenNames: r.given_names,
              birthDate: r.birth_date,
            })),
          );
          if (choice.match) {
            // The one match already holds another number from the same assigning authority: likely
            // a different person (twins, a namesake), so a person decides.
            const [holder] = await findPatients(trx, ref.tenantId, [choice.match.id]);
            const conflicting = holder?.identifiers.some((h) =>
              d.identifiers.some((i) => i.system !== '' && i.system === h.system && i.value !== h.value),
            );
            if (!conflicting) return link(choice.match.id, 'name and birth date');
            return needsPerson(
              'a patient with this name and birth date holds a different identifier from the same authority',
              [choice.match.id],
            );
          }
          if (choice.candidates.length > 0)
            return needsPerson(
              'more than one patient has this name and birth date',
              choice.candidates.map((c) => c.id),
            );
        }
        const patientId = await insertPatient(trx, ref.tenantId, d);
        await setReportPatient(trx, ref.tenantId, ref.reportId, patientId);
        await audit(trx, ref.tenantId, 'patient.created', `report/${ref.reportId}`, { patientId });
        return { patientId, matchTaskId: null };
      });
    },

    /** Applies a completed "match patient" task: the chosen patient, a new one, or a rejection. */
    async applyPatientMatch(ref: ReportRef & { taskId: string }): Promise<{ rejected: boolean }> {
      return db.transaction().execute(async (trx) => {
        const task = await findTask(trx, ref.tenantId, ref.taskId);
        const decision = task?.decision as { decision?: string; patientId?: string; by?: string } | null;
        if (!task || task.status !== TASK_STATUS.completed || !decision)
          throw ApplicationFailure.nonRetryable(`task ${ref.taskId} is not completed`, 'TaskNotCompleted');
        const report = await findReport(trx, ref.tenantId, ref.reportId);
        if (!report) throw ApplicationFailure.nonRetryable(`report ${ref.reportId} does not exist`);
        if (report.patient_id) return { rejected: false };
        if (decision.decision === 'reject') {
          await moveReport(
            trx,
            ref.tenantId,
            ref.reportId,
            REPORT_STAGE.rejected,
            'rejected when matching the patient',
          );
          return { rejected: true };
        }
        const d = report.patient;
        let patientId = decision.patientId ?? null;
        if (decision.decision === 'new' || !patientId) {
          // A person said this is someone new: the external id stays with whoever holds it.
          patientId = await insertPatient(trx, ref.tenantId, { ...d, identifiers: [], externalId: null });
        }
        // An identifier already held by another patient stays with that patient.
        await addPatientIdentifiers(trx, ref.tenantId, patientId, d.identifiers);
        await setReportPatient(trx, ref.tenantId, ref.reportId, patientId);
        await moveReport(
          trx,
          ref.tenantId,
          ref.reportId,
          REPORT_STAGE.received,
          'patient matched by a person',
        );
        await audit(trx, ref.tenantId, 'patient.matched', `report/${ref.reportId}`, {
          patientId,
          by: task.completed_by,
          taskId: task.id,
        });
        return { rejected: false };
      });
    },

    /**
     * The same report sent again (same lab and report id, or same collection time and test, with
     * the same status and values) is a duplicate and is not processed again. A report that changes
     * an earlier one is a correction: the earlier one is kept as history. A final report repeated with
     * different values but not marked corrected goes to review.
     */
    async detectDuplicate(
      ref: ReportRef,
    ): Promise<{ duplicateOf: string | null; replaces: string | null; unmarkedChange: boolean }> {
      const report = await loadReport(db, ref);
      if (report.duplicate_of)
        return { duplicateOf: report.duplicate_of, replaces: null, unmarkedChange: false };
      const sender = await tenantScope(db, ref.tenantId)
        .selectFrom('messages')
        .select('sender')
        .where('id', '=', report.message_id)
        .executeTakeFirstOrThrow();
      let query = db
        .selectFrom('reports')
        .innerJoin('messages', 'messages.id', 'reports.message_id')
        .selectAll('reports')
        .where('reports.tenant_id', '=', ref.tenantId)
        .where('reports.id', '!=', ref.reportId)
        .where('reports.duplicate_of', 'is', null)
        .where('reports.stage', 'not in', [REPORT_STAGE.failed, REPORT_STAGE.rejected])
        // Only reports stored before this one (ties broken by id): two identical reports stored
        // together are never each other's duplicate, so one of them is processed.
        .where((eb) =>
          eb.or([
            eb('reports.created_at', '<', report.created_at),
            eb.and([eb('reports.created_at', '=', report.created_at), eb('reports.id', '<', report.id)]),
          ]),
        )
        .where(sql<boolean>`reports.code->>'code' = ${report.code.code}`);
      query =
        sender.sender === null
          ? query.where('messages.sender', 'is', null)
          : query.where('messages.sender', '=', sender.sender);
      // The lab's report id within the same order: a false duplicate would drop a real result.
      if (report.filler_order_number)
        query = query
          .where('reports.filler_order_number', '=', report.filler_order_number)
          .where('reports.order_key', '=', report.order_key);
      else if (report.effective_at)
        query = query
          .where('reports.effective_at', '=', report.effective_at)
          .where('reports.order_key', '=', report.order_key);
      else return { duplicateOf: null, replaces: null, unmarkedChange: false };
      const earlier = await query.orderBy('reports.created_at', 'desc').orderBy('reports.id').execute();
      if (earlier.length === 0) return { duplicateOf: null, replaces: null, unmarkedChange: false };
      const mine = contentHash(report, await findObservationsOfReports(db, ref.tenantId, [ref.reportId]));
      const observations = await findObservationsOfReports(
        db,
        ref.tenantId,
        earlier.map((e) => e.id),
      );
      const same = earlier.find(
        (e) =>
          contentHash(
            e,
            observations.filter((o) => o.report_id === e.id),
          ) === mine,
      );
      return db.transaction().execute(async (trx) => {
        if (same) {
          await tenantScope(trx, ref.tenantId)
            .updateTable('reports')
            .set({ duplicate_of: same.id, updated_at: new Date() })
            .where('id', '=', ref.reportId)
            .execute();
          await moveReport(
            trx,
            ref.tenantId,
            ref.reportId,
            REPORT_STAGE.duplicate,
            `a duplicate of report ${same.id}`,
          );
          await audit(trx, ref.tenantId, 'report.duplicate', `report/${ref.reportId}`, {
            duplicateOf: same.id,
          });
          return { duplicateOf: same.id, replaces: null, unmarkedChange: false };
        }
        const previous = earlier[0]!;
        await tenantScope(trx, ref.tenantId)
          .updateTable('reports')
          .set({ replaces: previous.id, updated_at: new Date() })
          .where('id', '=', ref.reportId)
          .execute();
        await audit(trx, ref.tenantId, 'report.corrects', `report/${ref.reportId}`, {
          replaces: previous.id,
        });
        const marked = report.status === RESULT_STATUS.corrected || report.status === RESULT_STATUS.amended;
        const unmarkedChange =
          !marked && FINAL_STATUSES.includes(previous.status) && FINAL_STATUSES.includes(report.status);
        return { duplicateOf: null, replaces: previous.id, unmarkedChange };
      });
    },

    /**
     * Flags every result of the report (reference ranges, the tenant's critical table with units
     * converted, sender flags, delta check) and records a critical result for each critical value.
     */
    async flagReport(ref: ReportRef & { holdForPatientMatch?: boolean }): Promise<{
      critical: CriticalStart[];
      needsReview: boolean;
      reasons: string[];
      final: boolean;
      cancelled: boolean;
      alreadyReleased: boolean;
    }> {
      const report = await loadReport(db, ref);
      const final = FINAL_STATUSES.includes(report.status);
      const cancelled = report.status === RESULT_STATUS.cancelled;
      if (report.stage === REPORT_STAGE.released) {
        return { critical: [], needsReview: false, reasons: [], final, cancelled, alreadyReleased: true };
      }
      const observations = await findObservationsOfReports(db, ref.tenantId, [ref.reportId]);
      return db.transaction().execute(async (trx) => {
        const { flags, critical, deltaReasons } = await flagObservations(trx, report, observations);
        const reasons = [
          ...[...flags.values()].flatMap((f) => (f.needsReview ? f.reasons : [])),
          ...deltaReasons.map((r) => `delta check: ${r}`),
          ...(await documentReasons(trx, ref)),
        ];
        const needsReview = reasons.length > 0;
        await moveReport(
          trx,
          ref.tenantId,
          ref.reportId,
          needsReview || ref.holdForPatientMatch ? REPORT_STAGE.needsReview : REPORT_STAGE.flagged,
          needsReview ? reasons.join('; ') : undefined,
        );
        await audit(trx, ref.tenantId, 'report.flagged', `report/${ref.reportId}`, {
          critical: critical.length > 0,
          needsReview,
          interpretations: [...flags.values()].map((f) => f.interpretation),
        });
        if (critical.length > 0)
          logger.info({ tenantId: ref.tenantId, reportId: ref.reportId }, 'critical result flagged');
        return { critical, needsReview, reasons, final, cancelled, alreadyReleased: false };
      });
    },

    /**
     * Evaluates the tenant's routing rules (the newest version) and records the decision with the
     * version that made it. A rule that fails opens review instead: a result is never skipped.
     */
    async decideRouting(ref: ReportRef): Promise<RecordedRoutingDecision> {
      const report = await loadReport(db, ref);
      const tenant = await loadTenant(db, ref.tenantId);
      const rules = await findActiveRules(db, ref.tenantId);
      const [facts] = await routingFactsOfReports(db, tenant.slug, [report]);
      // The tenant's own release delay is the default a rule may override.
      const decision: RecordedRoutingDecision = routeReport(rules, facts!, routingDefaults(tenant.settings));
      await db.transaction().execute(async (trx) => {
        await tenantScope(trx, ref.tenantId)
          .updateTable('reports')
          .set({ routing: JSON.stringify(decision) })
          .where('id', '=', ref.reportId)
          .execute();
        await audit(
          trx,
          ref.tenantId,
          decision.error ? 'report.routing_failed' : 'report.routed',
          `report/${ref.reportId}`,
          {
            ...decision,
          },
        );
      });
      return decision;
    },

    /** Opens the review task for a report (once) and holds the report for it. */
    async openReviewTask(
      ref: ReportRef & { reasons: string[]; priority: number },
    ): Promise<{ taskId: string; agingMinutes: number }> {
      const report = await loadReport(db, ref);
      const tenant = await loadTenant(db, ref.tenantId);
      // A report with a critical value, or one that could not be checked, is the most urgent thing a reviewer has: stat, whatever
      // priority the rules gave (the critical result is told to the provider meanwhile).
      // Undecided (null: a value the critical limits could not be checked against) counts as critical.
      const critical = (await findObservationsOfReports(db, ref.tenantId, [ref.reportId])).some(
        (o) => o.critical !== false,
      );
      const reason = ref.reasons.join('; ') || 'the routing rules require review';
      const { task } = await db.transaction().execute(async (trx) => {
        const opened = await openTask(trx, {
          tenantId: ref.tenantId,
          dedupeKey: `review/${ref.reportId}`,
          kind: TASK_KIND.reviewResult,
          priority: critical ? MAX_TASK_PRIORITY : Math.min(MAX_TASK_PRIORITY, Math.max(0, ref.priority)),
          title: `Review ${report.code.display ?? report.code.code}`,
          reason,
          reportId: ref.reportId,
          orderKey: report.order_key,
          workflowId: report.workflow_id,
          payload: { initialPriority: ref.priority },
        });
        if (opened.created) {
          await moveReport(trx, ref.tenantId, ref.reportId, REPORT_STAGE.needsReview, reason);
          await audit(trx, ref.tenantId, 'task.opened', `task/${opened.task.id}`, {
            kind: TASK_KIND.reviewResult,
            reportId: ref.reportId,
            reason,
          });
        }
        return opened;
      });
      return {
        taskId: task.id,
        agingMinutes: tenant.settings.taskAgingMinutes ?? DEFAULT_TASK_AGING_MINUTES,
      };
    },

    /**
     * Where a task stands (the database is the truth; the workflow's signal only wakes it). An open
     * task that has waited too long rises a priority level, audited.
     */
    async checkTask(input: { tenantId: string; taskId: string; agingMinutes: number }): Promise<TaskCheck> {
      const task = await findTask(db, input.tenantId, input.taskId);
      if (!task) throw ApplicationFailure.nonRetryable(`task ${input.taskId} does not exist`, 'TaskNotFound');
      if (task.status === TASK_STATUS.open || task.status === TASK_STATUS.claimed) {
        const initial = Number(
          (task.payload as { initialPriority?: number }).initialPriority ?? task.priority,
        );
        const age = (Date.now() - task.created_at.getTime()) / 60_000;
        const priority = agedPriority(initial, age, input.agingMinutes);
        if (priority > task.priority) {
          await db.transaction().execute(async (trx) => {
            await updateTask(trx, input.tenantId, task.id, { priority });
            await audit(trx, input.tenantId, 'task.escalated', `task/${task.id}`, {
              from: task.priority,
              to: priority,
            });
          });
        }
      }
      return { status: task.status, decision: task.decision };
    },

    /**
     * Applies a completed review: approve, correct values (the received value kept beside the
     * correction, and the corrected result flagged again), or reject (never released).
     */
    async applyReview(
      ref: ReportRef & { taskId: string },
    ): Promise<{ decision: ReviewDecision; critical: CriticalStart[] }> {
      const task = await findTask(db, ref.tenantId, ref.taskId);
      const decision = task?.decision as {
        decision: ReviewDecision;
        corrections?: { observationId: string; value: number | string; unit?: string | null }[];
        interpretation?: string | null;
      } | null;
      if (!task || task.status !== TASK_STATUS.completed || !decision)
        throw ApplicationFailure.nonRetryable(`task ${ref.taskId} is not completed`, 'TaskNotCompleted');
      const report = await loadReport(db, ref);
      return db.transaction().execute(async (trx) => {
        if (decision.decision === REVIEW_DECISION.reject) {
          if (report.stage !== REPORT_STAGE.rejected)
            await moveReport(trx, ref.tenantId, ref.reportId, REPORT_STAGE.rejected, 'rejected in review');
          return { decision: decision.decision, critical: [] };
        }
        if (decision.decision === REVIEW_DECISION.correct && !report.reviewed_at) {
          const observations = await findObservationsOfReports(trx, ref.tenantId, [ref.reportId]);
          const corrected: Observation[] = [];
          for (const c of decision.corrections ?? []) {
            const o = observations.find((x) => x.id === c.observationId);
            if (!o) continue;
            const numeric = typeof c.value === 'number' ? c.value : null;
            const unit = c.unit === undefined ? o.unit : c.unit;
            const correctedFrom = {
              numeric: o.value_numeric,
              text: o.value_text,
              unit: o.unit,
              by: task.completed_by ?? 'reviewer',
              at: (task.completed_at ?? new Date()).toISOString(),
            };
            await trx
              .updateTable('observations')
              .set({
                value_numeric: numeric,
                value_text: numeric === null ? String(c.value) : String(c.value),
                unit,
                value_type: numeric === null ? 'text' : 'quantity',
                value_comparator: null,
                corrected_from: JSON.stringify(correctedFrom),
              })
              .where('id', '=', o.id)
              .where('tenant_id', '=', ref.tenantId)
              .execute();
            corrected.push({
              ...o,
              value_numeric: numeric,
              value_text: String(c.value),
              unit,
              value_type: numeric === null ? 'text' : 'quantity',
              value_comparator: null,
            });
          }
          // Flagged again; a value the correction made critical is picked up with the rest below.
          const reflagged = await flagObservations(trx, report, corrected);
          // An open critical loop about a corrected value says so: the finding names both values,
          // and whether the corrected one is still critical.
          for (const o of corrected) {
            const was = observations.find((x) => x.id === o.id)!;
            const label = reflagged.flags.get(o.id)?.critical ? 'still critical' : 'no longer critical';
            await tenantScope(trx, ref.tenantId)
              .updateTable('critical_results')
              .set({
                finding: `${nameOf(o)} ${was.value_numeric ?? was.value_text ?? ''} corrected in review to ${o.value_numeric ?? o.value_text ?? ''}${o.unit ? ` ${o.unit}` : ''} (${label})`,
                updated_at: new Date(),
              })
              .where('observation_id', '=', o.id)
              .where('status', '!=', CRITICAL_STATUS.closed)
              .execute();
          }
        }
        if (!report.reviewed_at) {
          await tenantScope(trx, ref.tenantId)
            .updateTable('reports')
            .set({
              reviewed_at: task.completed_at ?? new Date(),
              reviewed_by: task.completed_by,
              interpretation: sql<
                string | null
              >`coalesce(${decision.interpretation ?? null}, interpretation)`,
              updated_at: new Date(),
            })
            .where('id', '=', ref.reportId)
            .execute();
          await moveReport(
            trx,
            ref.tenantId,
            ref.reportId,
            REPORT_STAGE.flagged,
            `reviewed by ${task.completed_by}`,
          );
          await audit(trx, ref.tenantId, 'report.reviewed', `report/${ref.reportId}`, {
            decision: decision.decision,
            by: task.completed_by,
            taskId: task.id,
          });
        }
        // Every critical value of the report, not only the ones this run found: a retry after a
        // committed first run must still start the loops (starting one twice is refused).
        const all = await trx
          .selectFrom('critical_results')
          .select(['id', 'workflow_id'])
          .where('tenant_id', '=', ref.tenantId)
          .where('report_id', '=', ref.reportId)
          .execute();
        const critical = all.map((r) => ({ criticalResultId: r.id, workflowId: r.workflow_id }));
        return { decision: decision.decision, critical };
      });
    },

    /** Makes the report visible in the tenant's result API and moves its message on. */
    async releaseReport(ref: ReportRef): Promise<void> {
      const report = await loadReport(db, ref);
      if (report.stage === REPORT_STAGE.released) return;
      await db.transaction().execute(async (trx) => {
        const current = await findReport(trx, ref.tenantId, ref.reportId);
        if (current?.stage === REPORT_STAGE.released) return;
        await moveReport(trx, ref.tenantId, ref.reportId, REPORT_STAGE.released);
        await audit(trx, ref.tenantId, 'report.released', `report/${ref.reportId}`, {
          messageId: report.message_id,
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
        // A step after release failed (e.g. telling the patient): the result stays released.
        if (report.stage !== REPORT_STAGE.released)
          await moveReport(trx, ref.tenantId, ref.reportId, REPORT_STAGE.failed, ref.reason);
        await audit(trx, ref.tenantId, 'report.failed', `report/${ref.reportId}`, { reason: ref.reason });
      });
    },
  };
}

/**
 * The tenant's default reference range for a result that came without one, converted into the
 * result's unit (UCUM); none when the units cannot be converted.
 */
function defaultRangeFor(
  o: Observation,
  ranges: { code: string; low: number | null; high: number | null; unit: string }[] | undefined,
): ReferenceRange | null {
  const range = ranges?.find((r) => r.code === o.code.code);
  if (!range || o.unit === null) return null;
  const low = range.low === null ? null : convertUnit(range.low, range.unit, o.unit);
  const high = range.high === null ? null : convertUnit(range.high, range.unit, o.unit);
  if ((range.low !== null && low === null) || (range.high !== null && high === null)) return null;
  return { low, high, text: `${range.low ?? ''}-${range.high ?? ''} ${range.unit} (tenant default)` };
}

async function deltaOf(
  trx: Transaction<Database>,
  report: Report,
  o: Observation,
  thresholds: readonly { code: string }[],
  table: readonly CriticalLimit[],
): Promise<ObservationDelta | null> {
  if (!report.patient_id || o.value_numeric === null || !o.effective_at) return null;
  const previous = await trx
    .selectFrom('observations')
    .innerJoin('reports', 'reports.id', 'observations.report_id')
    .select([
      'observations.id',
      'observations.value_numeric',
      'observations.unit',
      'observations.effective_at',
    ])
    .where('observations.tenant_id', '=', report.tenant_id)
    .where('reports.patient_id', '=', report.patient_id)
    .where('reports.id', '!=', report.id)
    .where('reports.duplicate_of', 'is', null)
    .where(sql<boolean>`observations.code->>'code' = ${o.code.code}`)
    .where('observations.value_numeric', 'is not', null)
    .where('observations.effective_at', '<', o.effective_at)
    .orderBy('observations.effective_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!previous || previous.value_numeric === null || !previous.effective_at) return null;
  const threshold = (thresholds as Parameters<typeof deltaCheck>[2][]).find((t) => t?.code === o.code.code);
  const limit = table.find((l) => l.loinc === o.code.code);
  const result = deltaCheck(
    { value: o.value_numeric, unit: o.unit, at: o.effective_at.toISOString() },
    { value: previous.value_numeric, unit: previous.unit, at: previous.effective_at.toISOString() },
    threshold,
    limit?.molecularWeight,
    limit?.charge,
  );
  return {
    previousObservationId: previous.id,
    previousValue: previous.value_numeric,
    previousAt: previous.effective_at.toISOString(),
    trend: result.trend,
    delta: result.delta,
    percent: result.percent,
    exceeded: result.exceeded,
    reason: result.reason,
  };
}

function contentHash(report: Report, observations: Observation[]): string {
  const content = {
    status: report.status,
    code: report.code.code,
    results: observations
      .map((o) => [o.code.code, o.value_numeric, o.value_text, o.unit, o.status])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
  };
  return createHash('sha256').update(JSON.stringify(content)).digest('hex');
}

/** How a result is named to people: as sent, else by the analyte its LOINC code stands for. */
function nameOf(o: Observation): string {
  if (o.code.display) return o.code.display;
  const known = isLoincCoding(o.code)
    ? DEFAULT_CRITICAL_TABLE.find((l) => l.loinc === o.code.code)
    : undefined;
  return known ? `${known.name} (${o.code.code})` : o.code.code;
}

function findingOf(o: Observation, flag: ObservationFlag): string {
  const value =
    o.value_numeric !== null ? `${o.value_comparator ?? ''}${o.value_numeric}` : (o.value_text ?? '');
  const label =
    flag.interpretation === 'LL'
      ? 'critical low'
      : flag.interpretation === 'HH'
        ? 'critical high'
        : 'critical';
  return `${nameOf(o)} ${value}${o.unit ? ` ${o.unit}` : ''} (${label})`;
}

export function toObservationResult(o: Observation): ObservationResult {
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

export type OrderActivities = ReturnType<typeof createOrderActivities>;
export { ORDER_STATUS };

/**
 * Results read from an uploaded document are never released unseen (seed 004): a person confirms
 * them against the document, and one that could not be read is processed by hand.
 */
async function documentReasons(db: Db, ref: ReportRef): Promise<string[]> {
  const documents = await tenantScope(db, ref.tenantId)
    .selectFrom('documents')
    .select(['extraction_status', 'extraction'])
    .where('report_id', '=', ref.reportId)
    .where('extraction_status', '!=', EXTRACTION_STATUS.notExtracted)
    .execute();
  return documents.map((d) => {
    const confidence = typeof d.extraction?.confidence === 'number' ? d.extraction.confidence : null;
    if (d.extraction_status === EXTRACTION_STATUS.unreadable)
      return 'the uploaded document could not be read: process it by hand from the attachment';
    return `results were read from an uploaded document${confidence === null ? '' : ` (confidence ${Math.round(confidence * 100)}%)`}${d.extraction_status === EXTRACTION_STATUS.partial ? ', partly' : ''}: confirm them against it`;
  });
}
