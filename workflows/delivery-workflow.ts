import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  proxyActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';

export interface DeliveryWorkflowInput {
  tenantId: string;
  deliveryId: string;
}

export interface DeliveryState {
  /** `superseded`: a re-send replaced this send before it started; the newer one reports. */
  status: 'delivered' | 'dead_letter' | 'superseded';
  reason: string | null;
  escalationTaskId: string | null;
}

const acts = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/**
 * One released report to one destination: attempts with backoff (Temporal retries, as many as the
 * connection allows; a 4xx other than 408/429 or an HL7 AR is not retried), then delivered or
 * dead-lettered with its reason. A critical result whose delivery is still not through after
 * `criticalDeliveryMinutes`, or dead-lettered, opens a stat task for a person; the task closes
 * itself if the delivery arrives after all.
 */
export async function deliveryWorkflow(input: DeliveryWorkflowInput): Promise<DeliveryState> {
  const { tenantId, deliveryId } = input;
  const { workflowId } = workflowInfo();
  const plan = await acts.beginDelivery({ tenantId, deliveryId, workflowId });
  const state: DeliveryState = { status: 'delivered', reason: null, escalationTaskId: null };
  if (plan.status === 'delivered') return state;
  if (plan.status === 'superseded') return { ...state, status: 'superseded' };
  if (plan.status === 'dead_letter')
    return { ...state, status: 'dead_letter', reason: 'dead-lettered before it started' };

  const send = proxyActivities<Activities>({
    // Longer than an attempt can take, so an attempt is never abandoned while it is still sending.
    startToCloseTimeout: plan.attemptSeconds ? `${plan.attemptSeconds} seconds` : '2 minutes',
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '5 minutes',
      maximumAttempts: plan.maxAttempts,
    },
  });
  let done = false;
  const sending = send.deliverReport({ tenantId, deliveryId, workflowId }).then(
    () => {
      done = true;
    },
    (error: unknown) => {
      done = true;
      if (!(error instanceof ActivityFailure)) throw error;
      if (error.cause instanceof ApplicationFailure && error.cause.type === 'DeliverySuperseded') {
        state.status = 'superseded';
        return;
      }
      state.status = 'dead_letter';
      state.reason =
        error.cause instanceof ApplicationFailure || error.cause instanceof Error
          ? error.cause.message
          : error.message;
    },
  );

  if (plan.critical) {
    const arrived = await condition(() => done, `${plan.criticalDeliveryMinutes} minutes`);
    if (!arrived)
      state.escalationTaskId = (
        await acts.escalateDelivery({
          tenantId,
          deliveryId,
          workflowId,
          reason: `the critical result is still not delivered after ${plan.criticalDeliveryMinutes} minutes`,
        })
      ).taskId;
  }
  await sending;
  if (state.status === 'superseded') return state;

  if (state.status === 'dead_letter') {
    const reason = `not delivered after ${plan.maxAttempts} attempt(s) at most: ${state.reason ?? 'unknown'}`;
    state.reason = reason;
    await acts.deadLetterDelivery({ tenantId, deliveryId, workflowId, reason });
    if (plan.critical && !state.escalationTaskId)
      state.escalationTaskId = (
        await acts.escalateDelivery({
          tenantId,
          deliveryId,
          workflowId,
          reason: `the critical result was dead-lettered: ${reason}`,
        })
      ).taskId;
  } else if (state.escalationTaskId) {
    await acts.closeDeliveryTask({ tenantId, taskId: state.escalationTaskId });
  }
  return state;
}
