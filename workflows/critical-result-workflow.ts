import {
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
  let ackWake = false;
  let contactWake = false;
  setHandler(criticalAcknowledgedSignal, () => {
    ackWake = true;
  });
  setHandler(patientContactRecordedSignal, () => {
    contactWake = true;
  });
  setHandler(criticalStateQuery, () => state);

  const policy = await acts.loadEscalationPolicy(ref);
  for (const [step, { role, timeoutMinutes }] of policy.steps.entries()) {
    state.step = step;
    const sent = await acts.notifyCriticalStep({ ...ref, step, role, ackLinkHours: policy.ackLinkHours });
    if (sent.acknowledged) {
      state.acknowledged = true;
      break;
    }
    // Nobody fills this step: the next one is tried at once, not after a wait nobody can end.
    if (!sent.notified) continue;
    ackWake = false;
    const woken = await condition(() => ackWake, `${timeoutMinutes} minutes`);
    const check = await acts.checkCriticalAcknowledged({ ...ref, step, timedOut: !woken });
    if (check.acknowledged) {
      state.acknowledged = true;
      break;
    }
  }

  if (!state.acknowledged) {
    state.phase = 'unacknowledged';
    await acts.openUnacknowledgedTask({ ...ref, workflowId });
    while (!state.acknowledged) {
      ackWake = false;
      await condition(() => ackWake, RECHECK);
      state.acknowledged = (
        await acts.checkCriticalAcknowledged({ ...ref, step: -1, timedOut: false })
      ).acknowledged;
    }
  }

  state.phase = 'patient-contact';
  await acts.openPatientContactTask({ ...ref, workflowId });
  let contact = await acts.checkPatientContact(ref);
  while (!contact.reached && contact.attempts < policy.patientContactAttempts) {
    contactWake = false;
    await condition(() => contactWake, RECHECK);
    contact = await acts.checkPatientContact(ref);
    state.patientContactAttempts = contact.attempts;
  }
  state.patientContactAttempts = contact.attempts;
  await acts.closeCriticalResult({ ...ref, attempts: contact.attempts, reached: contact.reached });
  state.phase = 'closed';
  return state;
}
