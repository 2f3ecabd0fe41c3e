import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';

/**
 * Wakes the workflow when a provider's acknowledgement has been committed (the database row holds
 * it; a refused read-back sends nothing).
 */
export const criticalAcknowledgedSignal = defineSignal('criticalAcknowledged');
/** Wakes the workflow when a patient contact attempt is recorded. */
export const patientContactRecordedSignal = defineSignal('patientContactRecorded');
export const criticalStateQuery = defineQuery<CriticalState>('criticalState');

export interface CriticalResultWorkflowInput {
  tenantId: string;
  criticalResultId: string;
}

export interface CriticalState {
  phase: 'notifying' | 'unacknowledged' | 'patient-contact' | 'closed';
  /** The escalation step being waited on (0: the ordering provider). */
  step: number;
  acknowledged: boolean;
  patientContactAttempts: number;
}

const acts = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});
/**
 * Telling a person can fail for good (SMTP down, an address refused): after two minutes of tries
 * the step is recorded as failed and the chain moves on, never stalls.
 */
const notify = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '20 seconds' },
});

/** How often a result nobody acknowledged, or a patient follow-up, is looked at again. */
const RECHECK = '1 hour';

/**
 * One critical result's loop (seed 000 "Critical Results"; CLSI GP47): notify the ordering provider
 * at once, wait for acknowledgement with read-back, escalate along the tenant's chain after each
 * step's timeout, and if nobody answers leave an open stat task on the critical board — never wait
 * silently. Once acknowledged, the patient is contacted (attempts recorded by people, up to the
 * configured count), and the loop closes with its documented facts.
 */
export async function criticalResultWorkflow(input: CriticalResultWorkflowInput): Promise<CriticalState> {
  const ref = { tenantId: input.tenantId, criticalResultId: input.criticalResultId };
  const { workflowId } = workflowInfo();
  const state: CriticalState = {
    phase: 'notifying',
    step: 0,
    acknowledged: false,
    patientContactAttempts: 0,
  };
  // Counters, not flags: a signal that arrives while an activity runs is still seen afterwards.
  let ackSignals = 0;
  let contactSignals = 0;
  setHandler(criticalAcknowledgedSignal, () => {
    ackSignals += 1;
  });
  setHandler(patientContactRecordedSignal, () => {
    contactSignals += 1;
  });
  setHandler(criticalStateQuery, () => state);

  const policy = await acts.loadEscalationPolicy(ref);
  for (const [step, { role, timeoutMinutes }] of policy.steps.entries()) {
    state.step = step;
    const seen = ackSignals;
    let sent: { notified: boolean; acknowledged: boolean };
    try {
      sent = await notify.notifyCriticalStep({ ...ref, step, role, ackLinkHours: policy.ackLinkHours });
    } catch (error) {
      if (!(error instanceof ActivityFailure)) throw error;
      await acts.recordNotificationFailure({ ...ref, step, role, reason: failureMessage(error) });
      continue;
    }
    if (sent.acknowledged) {
      state.acknowledged = true;
      break;
    }
    // Nobody fills this step: the next one is tried at once, not after a wait nobody can end.
    if (!sent.notified) continue;
    const woken = await condition(() => ackSignals > seen, `${timeoutMinutes} minutes`);
    const check = await acts.checkCriticalAcknowledged({ ...ref, step, timedOut: !woken });
    if (check.acknowledged) {
      state.acknowledged = true;
      break;
    }
  }

  if (!state.acknowledged) {
    state.phase = 'unacknowledged';
    const seen = ackSignals;
    state.acknowledged = (await acts.openUnacknowledgedTask({ ...ref, workflowId })).acknowledged;
    let last = seen;
    while (!state.acknowledged) {
      await condition(() => ackSignals > last, RECHECK);
      last = ackSignals;
      state.acknowledged = (
        await acts.checkCriticalAcknowledged({ ...ref, step: -1, timedOut: false })
      ).acknowledged;
    }
  }

  state.phase = 'patient-contact';
  await acts.openPatientContactTask({ ...ref, workflowId });
  let last = contactSignals;
  let contact = await acts.checkPatientContact(ref);
  while (!contact.reached && contact.attempts < policy.patientContactAttempts) {
    await condition(() => contactSignals > last, RECHECK);
    last = contactSignals;
    contact = await acts.checkPatientContact(ref);
    state.patientContactAttempts = contact.attempts;
  }
  state.patientContactAttempts = contact.attempts;
  await acts.closeCriticalResult({ ...ref, attempts: contact.attempts, reached: contact.reached });
  state.phase = 'closed';
  return state;
}

function failureMessage(error: ActivityFailure): string {
  return error.cause instanceof ApplicationFailure || error.cause instanceof Error
    ? error.cause.message
    : error.message;
}
