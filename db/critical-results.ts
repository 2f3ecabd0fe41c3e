import { randomUUID } from 'node:crypto';
import { CRITICAL_STATUS } from '../domain/escalation.ts';
import type { CriticalAttempt, CriticalResult } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/** Records a critical result once per observation; returns the stored row either way. */
export async function ensureCriticalResult(
  db: Db,
  input: {
    tenantId: string;
    reportId: string;
    observationId: string;
    patientId: string | null;
    workflowId: string;
    finding: string;
    identifiedAt: Date;
  },
): Promise<CriticalResult> {
  await db
    .insertInto('critical_results')
    .values({
      id: randomUUID(),
      tenant_id: input.tenantId,
      report_id: input.reportId,
      observation_id: input.observationId,
      patient_id: input.patientId,
      workflow_id: input.workflowId,
      status: CRITICAL_STATUS.notifying,
      step: 0,
      finding: input.finding,
      identified_at: input.identifiedAt,
      communicator: null,
      recipient: null,
      received_at: null,
      method: null,
      patient_contact: null,
      closed_at: null,
    })
    // A reviewer's correction of a critical value changes the finding of a loop still open; a
    // closed loop keeps what was communicated.
    .onConflict((oc) =>
      oc
        .column('observation_id')
        .doUpdateSet({ finding: input.finding, updated_at: new Date() })
        .where('critical_results.status', '!=', CRITICAL_STATUS.closed)
        .where('critical_results.finding', '!=', input.finding),
    )
    .execute();
  return tenantScope(db, input.tenantId)
    .selectFrom('critical_results')
    .selectAll()
    .where('observation_id', '=', input.observationId)
    .executeTakeFirstOrThrow();
}

export async function findCriticalResult(
  db: Db,
  tenantId: string,
  id: string,
  options: { lock?: boolean } = {},
): Promise<CriticalResult | undefined> {
  let query = tenantScope(db, tenantId).selectFrom('critical_results').selectAll().where('id', '=', id);
  if (options.lock) query = query.forUpdate();
  return query.executeTakeFirst();
}

export async function listCriticalResults(
  db: Db,
  tenantId: string,
  filter: { status?: string[]; limit: number },
): Promise<CriticalResult[]> {
  let query = tenantScope(db, tenantId).selectFrom('critical_results').selectAll();
  if (filter.status) query = query.where('status', 'in', filter.status);
  return query.orderBy('identified_at', 'desc').orderBy('id').limit(filter.limit).execute();
}

export async function updateCriticalResult(
  db: Db,
  tenantId: string,
  id: string,
  changes: Partial<{
    status: string;
    step: number;
    communicator: string;
    recipient: string;
    receivedAt: Date;
    method: string;
    patientContact: { outcome: string; attempts: number; at: string };
    closedAt: Date;
  }>,
): Promise<void> {
  await tenantScope(db, tenantId)
    .updateTable('critical_results')
    .set({
      updated_at: new Date(),
      ...(changes.status !== undefined ? { status: changes.status } : {}),
      ...(changes.step !== undefined ? { step: changes.step } : {}),
      ...(changes.communicator !== undefined ? { communicator: changes.communicator } : {}),
      ...(changes.recipient !== undefined ? { recipient: changes.recipient } : {}),
      ...(changes.receivedAt !== undefined ? { received_at: changes.receivedAt } : {}),
      ...(changes.method !== undefined ? { method: changes.method } : {}),
      ...(changes.patientContact !== undefined
        ? { patient_contact: JSON.stringify(changes.patientContact) }
        : {}),
      ...(changes.closedAt !== undefined ? { closed_at: changes.closedAt } : {}),
    })
    .where('id', '=', id)
    .execute();
}

export interface NewCriticalAttempt {
  tenantId: string;
  criticalResultId: string;
  target: 'provider' | 'patient';
  step: number;
  role: string | null;
  recipient: string | null;
  channel: string;
  outcome: string;
  detail?: string | null;
  actor: string;
  /** A deterministic id makes a retried activity record its attempt once. */
  id?: string;
}

export async function recordCriticalAttempt(db: Db, attempt: NewCriticalAttempt): Promise<void> {
  await db
    .insertInto('critical_attempts')
    .values({
      id: attempt.id ?? randomUUID(),
      tenant_id: attempt.tenantId,
      critical_result_id: attempt.criticalResultId,
      target: attempt.target,
      step: attempt.step,
      role: attempt.role,
      recipient: attempt.recipient,
      channel: attempt.channel,
      outcome: attempt.outcome,
      detail: attempt.detail ?? null,
      actor: attempt.actor,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}

export async function listCriticalAttempts(
  db: Db,
  tenantId: string,
  criticalResultId: string,
): Promise<CriticalAttempt[]> {
  return tenantScope(db, tenantId)
    .selectFrom('critical_attempts')
    .selectAll()
    .where('critical_result_id', '=', criticalResultId)
    .orderBy('at')
    .orderBy('id')
    .execute();
}
