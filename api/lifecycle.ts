import { appendAudit } from '../db/audit.ts';
import {
  findCriticalResult,
  listCriticalAttempts,
  recordCriticalAttempt,
  updateCriticalResult,
} from '../db/critical-results.ts';
import { findPatients } from '../db/patients.ts';
import { findObservationsOfReports, findReport, REPORT_STAGE } from '../db/results.ts';
import type { Transaction } from 'kysely';
import type { Database, Task, Tenant, TenantSettings } from '../db/schema.ts';
import { lockTask, updateTask } from '../db/tasks.ts';
import { verifyAckToken } from '../domain/ack-link.ts';
import {
  CRITICAL_STATUS,
  DEFAULT_ESCALATION_POLICY,
  type PatientContactOutcome,
} from '../domain/escalation.ts';
import { checkReadBack } from '../domain/read-back.ts';
import { REVIEW_DECISION, TASK_KIND, TASK_STATUS, type ReviewDecision } from '../domain/tasks.ts';
import { AppError } from './errors.ts';
import type { Services } from './env.ts';

/**
 * What people do to workflows, shared by the tenant API and the console: each action is checked,
 * committed with its audit event, and only then signalled to the waiting workflow (which re-reads
 * the database, so a lost signal delays and never loses the action).
 */

export type TaskDecision =
  | {
      decision: ReviewDecision;
      corrections?: { observationId: string; value: number | string; unit?: string | null }[];
      interpretation?: string | null;
      comment?: string | null;
    }
  | { decision: 'match'; patientId: string; comment?: string | null }
  | { decision: 'new' | 'reject' | 'acknowledge'; comment?: string | null };

const OPEN: string[] = [TASK_STATUS.open, TASK_STATUS.claimed];
/** Wrong read-backs one recipient may give before only a person at the lab can record the acknowledgement. */
const MAX_READ_BACK_REFUSALS = 5;

/**
 * The person behind an actor ("dave (credential:…)" and "dave@lab.example (console)" are dave and
 * dave@lab.example): who a task is assigned to.
 */
export function personOf(actor: string): string {
  return actor.replace(/ \((credential:[^)]+|console)\)$/, '');
}

/** Locks a task that is still open or claimed, for a change in the caller's transaction. */
async function lockOpenTask(trx: Transaction<Database>, tenant: Tenant, taskId: string): Promise<Task> {
  const task = await lockTask(trx, tenant.id, taskId);
  if (!task) throw new AppError('not_found', `tenant ${tenant.slug} has no task ${taskId}`);
  if (!OPEN.includes(task.status)) throw new AppError('conflict', `task ${taskId} is already ${task.status}`);
  return task;
}

async function signalTask(services: Services, task: Task) {
  await services.starter.wake(task.workflow_id, 'taskCompleted', [{ taskId: task.id }]);
}

/** Claims an open task for `actor`; a task claimed by someone else must be reassigned first. */
export async function claimTask(
  services: Services,
  tenant: Tenant,
  taskId: string,
  actor: string,
): Promise<Task> {
  return services.db.transaction().execute(async (trx) => {
    const task = await lockOpenTask(trx, tenant, taskId);
    if (task.status === TASK_STATUS.claimed && task.assignee !== personOf(actor))
      throw new AppError('conflict', `task ${taskId} is claimed by ${task.assignee}; reassign it first`);
    const claimed = await updateTask(trx, tenant.id, taskId, {
      status: TASK_STATUS.claimed,
      assignee: personOf(actor),
      claimedAt: new Date(),
    });
    await appendAudit(trx, { tenantId: tenant.id, actor, action: 'task.claimed', subject: `task/${taskId}` });
    return claimed;
  });
}

/** Hands an open task to someone else (or back to the queue with `assignee` null). */
export async function reassignTask(
  services: Services,
  tenant: Tenant,
  taskId: string,
  assignee: string | null,
  actor: string,
): Promise<Task> {
  return services.db.transaction().execute(async (trx) => {
    const task = await lockOpenTask(trx, tenant, taskId);
    const updated = await updateTask(trx, tenant.id, taskId, {
      status: assignee ? TASK_STATUS.claimed : TASK_STATUS.open,
      assignee,
      claimedAt: assignee ? new Date() : null,
    });
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'task.reassigned',
      subject: `task/${taskId}`,
      details: { from: task.assignee, to: assignee },
    });
    return updated;
  });
}

/**
 * Completes a task with a decision fit for its kind: a review is approved, corrected (values of
 * the report's own results) or rejected; a patient match names one of the tenant's patients, a new
 * patient, or a rejection; an overdue alert is acknowledged. Critical-result tasks close with
 * their workflow and cannot be completed by hand.
 */
export async function completeTask(
  services: Services,
  tenant: Tenant,
  taskId: string,
  decision: TaskDecision,
  actor: string,
): Promise<Task> {
  const completed = await services.db.transaction().execute(async (trx) => {
    const task = await lockOpenTask(trx, tenant, taskId);
    if (task.status === TASK_STATUS.claimed && task.assignee !== personOf(actor))
      throw new AppError('conflict', `task ${taskId} is claimed by ${task.assignee}; reassign it first`);
    const allowed: Record<string, string[]> = {
      [TASK_KIND.reviewResult]: Object.values(REVIEW_DECISION),
      [TASK_KIND.matchPatient]: ['match', 'new', 'reject'],
      [TASK_KIND.orderOverdue]: ['acknowledge'],
      [TASK_KIND.deliveryFailed]: ['acknowledge'],
    };
    const options = allowed[task.kind];
    if (!options)
      throw new AppError(
        'conflict',
        `a ${task.kind} task closes on its own when the critical result's loop does (acknowledge it, record patient contacts)`,
      );
    if (!options.includes(decision.decision))
      throw new AppError('invalid_request', `a ${task.kind} task takes decision ${options.join(', ')}`, [
        { path: 'decision', message: `expected one of ${options.join(', ')}` },
      ]);
    if (decision.decision === 'match') {
      // Only a patient the task offered: matching is a choice among candidates, never a free pick.
      const candidates = ((task.payload as { candidates?: { id: string }[] }).candidates ?? []).map(
        (c) => c.id,
      );
      if (!candidates.includes(decision.patientId))
        throw new AppError(
          'invalid_request',
          `patient ${decision.patientId} is not one of this task's candidates (${candidates.join(', ') || 'none'}); choose one of them or a new patient`,
          [{ path: 'patientId', message: 'not a candidate of this task' }],
        );
    }
    if (decision.decision === REVIEW_DECISION.correct) {
      const corrections = 'corrections' in decision ? (decision.corrections ?? []) : [];
      if (corrections.length === 0)
        throw new AppError(
          'invalid_request',
          'a correction names at least one result and its corrected value',
          [{ path: 'corrections', message: 'required for decision correct' }],
        );
      const observations = task.report_id
        ? await findObservationsOfReports(trx, tenant.id, [task.report_id])
        : [];
      const unknown = corrections.filter((c) => !observations.some((o) => o.id === c.observationId));
      const notNumbers = corrections.filter((c) => {
        const o = observations.find((x) => x.id === c.observationId);
        return o?.value_type === 'quantity' && !(typeof c.value === 'number' && Number.isFinite(c.value));
      });
      if (notNumbers.length > 0)
        throw new AppError(
          'invalid_request',
          `results ${notNumbers.map((n) => n.observationId).join(', ')} are numeric: correct them with a number`,
          notNumbers.map((n) => ({
            path: `corrections.${corrections.indexOf(n)}.value`,
            message: 'a number is required',
          })),
        );
      if (unknown.length > 0)
        throw new AppError(
          'invalid_request',
          `results ${unknown.map((u) => u.observationId).join(', ')} are not part of this report`,
          unknown.map((_, i) => ({
            path: `corrections[${i}].observationId`,
            message: 'not a result of this report',
          })),
        );
    }
    const done = await updateTask(trx, tenant.id, taskId, {
      status: TASK_STATUS.completed,
      decision: { ...decision },
      completedAt: new Date(),
      completedBy: actor,
      assignee: task.assignee ?? personOf(actor),
    });
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'task.completed',
      subject: `task/${taskId}`,
      details: { kind: task.kind, decision: decision.decision, reportId: task.report_id },
    });
    return done;
  });
  await signalTask(services, completed);
  return completed;
}

/** What the acknowledgement page shows before the provider reads back (nothing that answers it). */
export async function describeAckLink(services: Services, token: string) {
  const { row, ack } = await resolveAckToken(services, token);
  const report = await findReport(services.db, row.tenant_id, row.report_id);
  return {
    test: report?.code.display ?? report?.code.code ?? null,
    identifiedAt: row.identified_at.toISOString(),
    recipient: ack.recipient,
    expiresAt: ack.expires_at.toISOString(),
    acknowledged: row.status === CRITICAL_STATUS.acknowledged || row.status === CRITICAL_STATUS.closed,
    used: ack.used_at !== null,
  };
}

async function resolveAckToken(services: Services, token: string) {
  const verified = verifyAckToken(services.config.masterKey, token, Date.now() / 1000);
  if (!verified.ok) {
    if (verified.reason === 'expired')
      throw new AppError(
        'forbidden',
        'this acknowledgement link has expired; ask the lab to record your acknowledgement (POST .../critical-results/{id}/acknowledge)',
      );
    throw new AppError('not_found', 'this acknowledgement link is not valid');
  }
  const ack = await services.db
    .selectFrom('ack_tokens')
    .selectAll()
    .where('id', '=', verified.claims.tokenId)
    .executeTakeFirst();
  if (!ack) throw new AppError('not_found', 'this acknowledgement link is not valid');
  const row = await findCriticalResult(services.db, ack.tenant_id, ack.critical_result_id);
  if (!row) throw new AppError('not_found', 'this acknowledgement link is not valid');
  return { ack, row };
}

/** Checks a read-back against the stored value and the patient (or, before matching, as sent). */
async function checkCriticalReadBack(
  services: Services,
  row: NonNullable<Awaited<ReturnType<typeof findCriticalResult>>>,
  readBack: { value: string; patientIdentifier: string },
) {
  const observation = (await findObservationsOfReports(services.db, row.tenant_id, [row.report_id])).find(
    (o) => o.id === row.observation_id,
  );
  const [patient] = row.patient_id ? await findPatients(services.db, row.tenant_id, [row.patient_id]) : [];
  const sent = patient ? null : (await findReport(services.db, row.tenant_id, row.report_id))?.patient;
  const who = {
    patientIdentifiers: (patient?.identifiers ?? sent?.identifiers ?? []).map((i) => i.value),
    birthDate: patient?.birth_date ?? sent?.birthDate ?? null,
    familyName: patient?.family_name ?? sent?.familyName ?? null,
  };
  const current = checkReadBack(
    {
      value: observation?.value_numeric ?? null,
      text: observation?.value_text ?? null,
      unit: observation?.unit ?? null,
      ...who,
    },
    readBack,
  );
  // A provider told the value before a reviewer corrected it reads back what they were told.
  const before = observation?.corrected_from;
  if (current.ok || !before) return current;
  const original = checkReadBack(
    { value: before.numeric, text: before.text, unit: before.unit, ...who },
    readBack,
  );
  return original.ok ? original : current;
}

interface Acknowledgement {
  step: number;
  recipient: string;
  communicator: string;
  method: string;
  channel: string;
  /** The single-use link used, when acknowledged from the e-mail. */
  tokenId?: string;
}

/**
 * Records an acknowledgement (or a refused read-back) in one transaction with its attempt and audit
 * event; a match closes any "not acknowledged" task, then the critical-result workflow is woken.
 */
async function recordAcknowledgement(
  services: Services,
  row: NonNullable<Awaited<ReturnType<typeof findCriticalResult>>>,
  ack: Acknowledgement,
  readBack: { value: string; patientIdentifier: string },
): Promise<{ criticalResultId: string; acknowledgedAt: string }> {
  const refusals = (await listCriticalAttempts(services.db, row.tenant_id, row.id)).filter(
    (a) => a.outcome === 'read_back_refused' && a.recipient === ack.recipient,
  ).length;
  // A read-back is not a guessing game: after a few wrong ones the lab must confirm with the provider.
  if (refusals >= MAX_READ_BACK_REFUSALS)
    throw new AppError(
      'forbidden',
      'too many read-backs did not match; the lab will contact you to confirm this result by phone',
    );
  const outcome = await checkCriticalReadBack(services, row, readBack);
  const at = new Date();
  const result = await services.db.transaction().execute(async (trx) => {
    if (ack.tokenId) {
      const token = await trx
        .selectFrom('ack_tokens')
        .selectAll()
        .where('id', '=', ack.tokenId)
        .forUpdate()
        .executeTakeFirstOrThrow();
      if (token.used_at) throw new AppError('conflict', 'this acknowledgement link has already been used');
    }
    const locked = await findCriticalResult(trx, row.tenant_id, row.id, { lock: true });
    if (locked?.status === CRITICAL_STATUS.acknowledged || locked?.status === CRITICAL_STATUS.closed)
      throw new AppError('conflict', `this critical result was already acknowledged by ${locked.recipient}`);
    await recordCriticalAttempt(trx, {
      tenantId: row.tenant_id,
      criticalResultId: row.id,
      target: 'provider',
      step: ack.step,
      role: null,
      recipient: ack.recipient,
      channel: ack.channel,
      outcome: outcome.ok ? 'acknowledged' : 'read_back_refused',
      detail: outcome.ok ? 'read-back confirmed' : outcome.message,
      actor: ack.communicator,
    });
    if (!outcome.ok) {
      await appendAudit(trx, {
        tenantId: row.tenant_id,
        actor: ack.recipient,
        action: 'critical.read_back_refused',
        subject: `critical-result/${row.id}`,
        details: { mismatches: outcome.mismatches, channel: ack.channel },
      });
      return outcome;
    }
    if (ack.tokenId)
      await trx.updateTable('ack_tokens').set({ used_at: at }).where('id', '=', ack.tokenId).execute();
    await updateCriticalResult(trx, row.tenant_id, row.id, {
      status: CRITICAL_STATUS.acknowledged,
      recipient: ack.recipient,
      receivedAt: at,
      method: ack.method,
      communicator: ack.communicator,
    });
    const open = await trx
      .selectFrom('tasks')
      .select('id')
      .where('tenant_id', '=', row.tenant_id)
      .where('critical_result_id', '=', row.id)
      .where('kind', '=', TASK_KIND.criticalUnacknowledged)
      .where('status', 'in', OPEN)
      .execute();
    for (const t of open)
      await updateTask(trx, row.tenant_id, t.id, {
        status: TASK_STATUS.completed,
        completedAt: at,
        completedBy: ack.recipient,
        decision: { decision: 'acknowledged' },
      });
    await appendAudit(trx, {
      tenantId: row.tenant_id,
      actor: ack.recipient,
      action: 'critical.acknowledged',
      subject: `critical-result/${row.id}`,
      details: {
        step: ack.step,
        readBack: 'confirmed',
        channel: ack.channel,
        communicator: ack.communicator,
      },
    });
    return outcome;
  });
  // The refusal is committed (and audited) before it is answered: attempts are never lost.
  if (!result.ok)
    throw new AppError(
      'unprocessable',
      result.message,
      result.mismatches.map((m) => ({ path: m, message: 'did not match' })),
    );
  await services.starter.wake(row.workflow_id, 'criticalAcknowledged', []);
  return { criticalResultId: row.id, acknowledgedAt: at.toISOString() };
}

/**
 * A provider acknowledges a critical result from the e-mailed link, reading back the value and the
 * patient's identifier (CLSI GP47). A mismatch is refused and the link stays usable; a match uses
 * the link up, records the documented facts and wakes the critical-result workflow.
 */
export async function acknowledgeCriticalResult(
  services: Services,
  token: string,
  readBack: { value: string; patientIdentifier: string },
): Promise<{ criticalResultId: string; acknowledgedAt: string }> {
  const { ack, row } = await resolveAckToken(services, token);
  return recordAcknowledgement(
    services,
    row,
    {
      step: ack.step,
      recipient: ack.recipient,
      communicator: 'LabRelay critical-result service',
      method: 'e-mail with signed link, read-back confirmed',
      channel: 'email',
      tokenId: ack.id,
    },
    readBack,
  );
}

/**
 * A person at the lab or the hospital reached a provider another way (phone, in person) and
 * records the acknowledgement with the provider's read-back: the loop never depends on e-mail.
 */
export async function acknowledgeCriticalResultDirectly(
  services: Services,
  tenant: Tenant,
  criticalResultId: string,
  input: {
    recipient: string;
    channel: 'phone' | 'in_person' | 'secure_message';
    value: string;
    patientIdentifier: string;
  },
  communicator: string,
) {
  const row = await findCriticalResult(services.db, tenant.id, criticalResultId);
  if (!row)
    throw new AppError('not_found', `tenant ${tenant.slug} has no critical result ${criticalResultId}`);
  return recordAcknowledgement(
    services,
    row,
    {
      step: row.step,
      recipient: input.recipient,
      communicator,
      method: `${input.channel.replace('_', ' ')}, read-back confirmed`,
      channel: input.channel,
    },
    { value: input.value, patientIdentifier: input.patientIdentifier },
  );
}

/** Records one attempt to reach the patient about an acknowledged critical result. */
export async function recordPatientContact(
  services: Services,
  tenant: Tenant,
  criticalResultId: string,
  attempt: { method: string; outcome: PatientContactOutcome; note?: string | null },
  actor: string,
) {
  await services.db.transaction().execute(async (trx) => {
    const row = await findCriticalResult(trx, tenant.id, criticalResultId, { lock: true });
    if (!row)
      throw new AppError('not_found', `tenant ${tenant.slug} has no critical result ${criticalResultId}`);
    if (row.status === CRITICAL_STATUS.closed)
      throw new AppError('conflict', 'this critical result is closed; its follow-up is complete');
    if (row.status !== CRITICAL_STATUS.acknowledged)
      throw new AppError('conflict', 'the patient is contacted after a provider has acknowledged the result');
    const attempts = (await listCriticalAttempts(trx, tenant.id, row.id)).filter(
      (a) => a.target === 'patient',
    );
    // The row lock above serialises attempts: no more than the policy allows, none after "reached".
    const policy = (tenant.settings as TenantSettings).escalation ?? DEFAULT_ESCALATION_POLICY;
    if (attempts.some((a) => a.outcome === 'reached') || attempts.length >= policy.patientContactAttempts)
      throw new AppError(
        'conflict',
        `the patient follow-up is complete (${attempts.length} attempt(s) recorded); it closes shortly`,
      );
    await recordCriticalAttempt(trx, {
      tenantId: tenant.id,
      criticalResultId: row.id,
      target: 'patient',
      step: attempts.length + 1,
      role: null,
      recipient: 'patient',
      channel: attempt.method,
      outcome: attempt.outcome,
      detail: attempt.note ?? null,
      actor,
    });
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'critical.patient_contact',
      subject: `critical-result/${row.id}`,
      details: { method: attempt.method, outcome: attempt.outcome, attempt: attempts.length + 1 },
    });
  });
  const row = await findCriticalResult(services.db, tenant.id, criticalResultId);
  if (row) await services.starter.wake(row.workflow_id, 'patientContactRecorded', []);
}

/** A provider's interpretation of a released report: stored, audited, and the patient told. */
export async function addInterpretation(
  services: Services,
  tenant: Tenant,
  reportId: string,
  text: string,
  actor: string,
) {
  const report = await services.db.transaction().execute(async (trx) => {
    const report = await findReport(trx, tenant.id, reportId);
    if (!report) throw new AppError('not_found', `tenant ${tenant.slug} has no report ${reportId}`);
    if (report.stage !== REPORT_STAGE.released)
      throw new AppError('conflict', 'an interpretation is added to a released report');
    await trx
      .updateTable('reports')
      .set({ interpretation: text, updated_at: new Date() })
      .where('id', '=', reportId)
      .where('tenant_id', '=', tenant.id)
      .execute();
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'report.interpreted',
      subject: `report/${reportId}`,
    });
    return report;
  });
  await services.starter.wake(report.workflow_id, 'interpretationAdded', [{ reportId }], {
    tenantId: tenant.id,
    orderKey: report.order_key,
  });
}
