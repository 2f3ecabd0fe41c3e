import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import type { Transaction } from 'kysely';
import { appendAudit } from '../db/audit.ts';
import {
  findCriticalResult,
  listCriticalAttempts,
  recordCriticalAttempt,
  updateCriticalResult,
} from '../db/critical-results.ts';
import { enqueueMail } from '../db/mail.ts';
import { findPatients } from '../db/patients.ts';
import { findEscalationRecipient } from '../db/providers.ts';
import { findReport } from '../db/results.ts';
import type { CriticalResult, Database, Provider } from '../db/schema.ts';
import { openTask, updateTask } from '../db/tasks.ts';
import { signAckToken } from '../domain/ack-link.ts';
import {
  CRITICAL_STATUS,
  DEFAULT_ESCALATION_POLICY,
  ESCALATION_ROLE,
  PATIENT_CONTACT_OUTCOME,
  type EscalationPolicy,
  type EscalationRole,
} from '../domain/escalation.ts';
import { TASK_KIND, TASK_PRIORITY, TASK_STATUS } from '../domain/tasks.ts';
import { loadTenant, type ActivityDeps } from './deps.ts';
import { sendQueuedMail } from './mail.ts';

export interface CriticalRef {
  tenantId: string;
  criticalResultId: string;
}

/** A uuid derived from a key, so an attempt recorded by a retried activity is recorded once. */
function stableId(key: string): string {
  const h = createHash('sha256').update(key).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The critical-result workflow's side effects: notify, check, escalate, follow up, close. */
export function createCriticalActivities(deps: ActivityDeps) {
  const { db } = deps;

  async function load(
    ref: CriticalRef,
    trx: Transaction<Database> | typeof db = db,
  ): Promise<CriticalResult> {
    const row = await findCriticalResult(trx, ref.tenantId, ref.criticalResultId);
    if (!row)
      throw ApplicationFailure.nonRetryable(
        `critical result ${ref.criticalResultId} does not exist`,
        'NotFound',
      );
    return row;
  }

  async function audit(
    trx: Transaction<Database>,
    ref: CriticalRef,
    action: string,
    details: Record<string, unknown>,
  ) {
    await appendAudit(trx, {
      tenantId: ref.tenantId,
      actor: 'workflow',
      action,
      subject: `critical-result/${ref.criticalResultId}`,
      details,
    });
  }

  /** Who fills a step: the report's ordering provider, or the first provider holding the role. */
  async function recipientFor(row: CriticalResult, role: EscalationRole): Promise<Provider | null> {
    const report =
      role === ESCALATION_ROLE.ordering ? await findReport(db, row.tenant_id, row.report_id) : undefined;
    return findEscalationRecipient(db, row.tenant_id, role, report?.ordering_provider?.id ?? null);
  }

  return {
    async loadEscalationPolicy(ref: CriticalRef): Promise<EscalationPolicy> {
      const tenant = await loadTenant(db, ref.tenantId);
      return tenant.settings.escalation ?? DEFAULT_ESCALATION_POLICY;
    },

    /**
     * Tells one step's recipient: an e-mail with a single-use signed acknowledgement link, and the
     * critical board in the console. A step whose role nobody with an e-mail address fills is
     * recorded and skipped at once.
     */
    async notifyCriticalStep(
      ref: CriticalRef & { step: number; role: EscalationRole; ackLinkHours: number },
    ): Promise<{ notified: boolean; acknowledged: boolean; recipient: string | null }> {
      const row = await load(ref);
      if (row.status === CRITICAL_STATUS.acknowledged || row.status === CRITICAL_STATUS.closed)
        return { notified: false, acknowledged: true, recipient: row.recipient };
      const provider = await recipientFor(row, ref.role);
      const attemptId = stableId(`critical/${row.id}/step/${ref.step}`);
      if (!provider) {
        await db.transaction().execute(async (trx) => {
          await recordCriticalAttempt(trx, {
            id: attemptId,
            tenantId: ref.tenantId,
            criticalResultId: row.id,
            target: 'provider',
            step: ref.step,
            role: ref.role,
            recipient: null,
            channel: 'email',
            outcome: 'no_recipient',
            detail: `no ${ref.role.replace('_', '-')} provider with an e-mail address is known`,
            actor: 'workflow',
          });
          await updateCriticalResult(trx, ref.tenantId, row.id, { step: ref.step });
          await audit(trx, ref, 'critical.step_skipped', { step: ref.step, role: ref.role });
        });
        return { notified: false, acknowledged: false, recipient: null };
      }
      const report = await findReport(db, ref.tenantId, row.report_id);
      const [patient] = row.patient_id ? await findPatients(db, ref.tenantId, [row.patient_id]) : [];
      const tenant = await loadTenant(db, ref.tenantId);
      const mail = await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('ack_tokens')
          .values({
            id: stableId(`ack/${row.id}/${ref.step}`),
            tenant_id: ref.tenantId,
            critical_result_id: row.id,
            step: ref.step,
            recipient: provider.email!,
            expires_at: new Date(Date.now() + ref.ackLinkHours * 3_600_000),
            used_at: null,
          })
          .onConflict((oc) => oc.columns(['critical_result_id', 'step']).doNothing())
          .execute();
        const token = await trx
          .selectFrom('ack_tokens')
          .selectAll()
          .where('critical_result_id', '=', row.id)
          .where('step', '=', ref.step)
          .executeTakeFirstOrThrow();
        const link = `${deps.publicUrl}/ack/${signAckToken(deps.masterKey, {
          tokenId: token.id,
          expiresAt: Math.floor(token.expires_at.getTime() / 1000),
        })}`;
        const who = patient
          ? [patient.family_name, ...(patient.given_names ?? [])].filter(Boolean).join(', ')
          : 'unknown patient';
        const ids = patient?.identifiers.map((i) => `${i.type ?? 'ID'} ${i.value}`).join(', ') ?? '';
        const queued = await enqueueMail(trx, {
          tenantId: ref.tenantId,
          dedupeKey: `critical/${row.id}/step/${ref.step}`,
          kind: 'critical_result',
          to: provider.email!,
          subject: `CRITICAL RESULT: ${row.finding} (${tenant.name})`,
          text: [
            `${provider.name},`,
            '',
            `A critical result needs your acknowledgement:`,
            '',
            `  Finding:   ${row.finding}`,
            `  Patient:   ${who}${ids ? ` (${ids})` : ''}`,
            `  Test:      ${report?.code.display ?? report?.code.code ?? ''}`,
            `  Identified: ${row.identified_at.toISOString()}`,
            '',
            `Acknowledge it with read-back of the value and the patient's identifier here:`,
            link,
            '',
            `The link works once and expires ${token.expires_at.toISOString()}. If it is not acknowledged`,
            `within the escalation time the result goes to the next person on the chain.`,
          ].join('\n'),
        });
        await recordCriticalAttempt(trx, {
          id: attemptId,
          tenantId: ref.tenantId,
          criticalResultId: row.id,
          target: 'provider',
          step: ref.step,
          role: ref.role,
          recipient: `${provider.name} <${provider.email}>`,
          channel: 'email',
          outcome: 'sent',
          actor: 'workflow',
        });
        await updateCriticalResult(trx, ref.tenantId, row.id, { step: ref.step });
        await audit(trx, ref, 'critical.notified', {
          step: ref.step,
          role: ref.role,
          providerId: provider.id,
          channel: 'email',
        });
        return queued;
      });
      await sendQueuedMail(deps, mail);
      return { notified: true, acknowledged: false, recipient: provider.email };
    },

    /**
     * Whether the result has been acknowledged (the database is the truth; the signal only wakes the
     * workflow). A step that ran out of time is recorded as such.
     */
    async checkCriticalAcknowledged(
      ref: CriticalRef & { step: number; timedOut: boolean },
    ): Promise<{ acknowledged: boolean }> {
      const row = await load(ref);
      const acknowledged =
        row.status === CRITICAL_STATUS.acknowledged || row.status === CRITICAL_STATUS.closed;
      if (!acknowledged && ref.timedOut) {
        await db.transaction().execute(async (trx) => {
          await recordCriticalAttempt(trx, {
            id: stableId(`critical/${row.id}/step/${ref.step}/timeout`),
            tenantId: ref.tenantId,
            criticalResultId: row.id,
            target: 'provider',
            step: ref.step,
            role: null,
            recipient: null,
            channel: 'email',
            outcome: 'not_acknowledged',
            detail: 'no acknowledgement within the step time; escalating',
            actor: 'workflow',
          });
          await audit(trx, ref, 'critical.escalated', { fromStep: ref.step });
        });
      }
      return { acknowledged };
    },

    /** A step whose notification could not be sent at all (after retries): recorded, the chain moves on. */
    async recordNotificationFailure(
      ref: CriticalRef & { step: number; role: EscalationRole; reason: string },
    ): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await recordCriticalAttempt(trx, {
          id: stableId(`critical/${ref.criticalResultId}/step/${ref.step}/failed`),
          tenantId: ref.tenantId,
          criticalResultId: ref.criticalResultId,
          target: 'provider',
          step: ref.step,
          role: ref.role,
          recipient: null,
          channel: 'email',
          outcome: 'failed',
          detail: ref.reason.slice(0, 500),
          actor: 'workflow',
        });
        await updateCriticalResult(trx, ref.tenantId, ref.criticalResultId, { step: ref.step });
        await audit(trx, ref, 'critical.notification_failed', { step: ref.step, role: ref.role });
      });
    },

    /**
     * Nobody in the chain answered: the result waits on the critical board as an open stat task. An
     * acknowledgement that landed meanwhile wins (the row is locked and read first).
     */
    async openUnacknowledgedTask(
      ref: CriticalRef & { workflowId: string },
    ): Promise<{ acknowledged: boolean }> {
      return db.transaction().execute(async (trx) => {
        const row = await findCriticalResult(trx, ref.tenantId, ref.criticalResultId, { lock: true });
        if (!row)
          throw ApplicationFailure.nonRetryable(`critical result ${ref.criticalResultId} does not exist`);
        if (row.status === CRITICAL_STATUS.acknowledged || row.status === CRITICAL_STATUS.closed)
          return { acknowledged: true };
        const { created } = await openTask(trx, {
          tenantId: ref.tenantId,
          dedupeKey: `critical-unacknowledged/${row.id}`,
          kind: TASK_KIND.criticalUnacknowledged,
          priority: TASK_PRIORITY.stat,
          title: `Critical result not acknowledged: ${row.finding}`,
          reason: 'every step of the escalation chain was tried without an acknowledgement',
          reportId: row.report_id,
          criticalResultId: row.id,
          workflowId: ref.workflowId,
        });
        if (created) {
          await updateCriticalResult(trx, ref.tenantId, row.id, { status: CRITICAL_STATUS.unacknowledged });
          await audit(trx, ref, 'critical.unacknowledged', {});
        }
        return { acknowledged: false };
      });
    },

    /** After acknowledgement: a task to contact the patient, whose attempts are recorded against it. */
    async openPatientContactTask(ref: CriticalRef & { workflowId: string }): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const row = await load(ref, trx);
        const { created } = await openTask(trx, {
          tenantId: ref.tenantId,
          dedupeKey: `contact-patient/${row.id}`,
          kind: TASK_KIND.contactPatient,
          priority: TASK_PRIORITY.stat,
          title: `Contact the patient about: ${row.finding}`,
          reason: 'a critical result requires patient contact; record each attempt',
          reportId: row.report_id,
          criticalResultId: row.id,
          workflowId: ref.workflowId,
        });
        if (created) await audit(trx, ref, 'critical.patient_contact_required', {});
      });
    },

    async checkPatientContact(ref: CriticalRef): Promise<{ attempts: number; reached: boolean }> {
      const attempts = (await listCriticalAttempts(db, ref.tenantId, ref.criticalResultId)).filter(
        (a) => a.target === 'patient',
      );
      return {
        attempts: attempts.length,
        reached: attempts.some((a) => a.outcome === PATIENT_CONTACT_OUTCOME.reached),
      };
    },

    /**
     * Closes the loop with the documented facts (finding, time identified, communicator, recipient,
     * time received, method) and the patient follow-up's outcome.
     */
    async closeCriticalResult(ref: CriticalRef & { attempts: number; reached: boolean }): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const row = await findCriticalResult(trx, ref.tenantId, ref.criticalResultId, { lock: true });
        if (!row || row.status === CRITICAL_STATUS.closed) return;
        const at = new Date();
        const patientContact = {
          outcome: ref.reached ? PATIENT_CONTACT_OUTCOME.reached : 'not_reached',
          attempts: ref.attempts,
          at: at.toISOString(),
        };
        await updateCriticalResult(trx, ref.tenantId, row.id, {
          status: CRITICAL_STATUS.closed,
          closedAt: at,
          patientContact,
        });
        const open = await trx
          .selectFrom('tasks')
          .select('id')
          .where('tenant_id', '=', ref.tenantId)
          .where('critical_result_id', '=', row.id)
          .where('status', 'in', [TASK_STATUS.open, TASK_STATUS.claimed])
          .execute();
        for (const t of open)
          await updateTask(trx, ref.tenantId, t.id, {
            status: TASK_STATUS.completed,
            completedAt: at,
            completedBy: 'workflow',
            decision: { decision: 'closed', patientContact },
          });
        await audit(trx, ref, 'critical.closed', {
          finding: row.finding,
          identifiedAt: row.identified_at.toISOString(),
          communicator: row.communicator,
          recipient: row.recipient,
          receivedAt: row.received_at?.toISOString() ?? null,
          method: row.method,
          patientContact,
        });
      });
    },
  };
}

export type CriticalActivities = ReturnType<typeof createCriticalActivities>;
