import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy } from '@temporalio/common';
import type { Activities, CriticalStart } from '../activities/index.ts';
import { criticalResultWorkflow } from './critical-result-workflow.ts';
import { deliveryWorkflow } from './delivery-workflow.ts';

/** Sent for every stored report of this order; the same report twice is processed once. */
export const resultReceivedSignal = defineSignal<[{ reportId: string }]>('resultReceived');
/** Wakes the workflow when a person completes one of its tasks (the task row holds the decision). */
export const taskCompletedSignal = defineSignal<[{ taskId: string }]>('taskCompleted');
/** A provider added an interpretation to a released report: the patient is told. */
export const interpretationAddedSignal = defineSignal<[{ reportId: string }]>('interpretationAdded');
/** The placer sent (or changed, or cancelled) the order; the order row holds what they said. */
export const orderPlacedSignal = defineSignal<[{ orderId: string; cancelled: boolean }]>('orderPlaced');
export const orderStateQuery = defineQuery<OrderState>('orderState');

export interface OrderWorkflowInput {
  tenantId: string;
  orderKey: string;
}

export type ReportStep =
  | 'reconciling'
  | 'awaiting-patient-match'
  | 'checking-duplicates'
  | 'flagging'
  | 'routing'
  | 'awaiting-review'
  | 'release-delay'
  | 'releasing'
  | 'notifying-patient'
  | 'done';

export interface OrderState {
  /** Reports being processed, and where each is. */
  reports: Record<string, ReportStep>;
  released: string[];
  /** Reports that failed permanently (recorded as failed, with the reason, on the message). */
  failed: string[];
  duplicates: string[];
  rejected: string[];
  /** Critical-result workflows started for this order's results. */
  criticalWorkflows: string[];
  /** Delivery workflows started for this order's released reports. */
  deliveries: string[];
  final: boolean;
  cancelled: boolean;
  overdue: boolean;
}

/** How long an order that has only partial results stays open for the rest of them. */
const ORDER_OPEN_FOR = '30 days';

const acts = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});
/** Telling the patient may fail for good (mail refused); that is recorded and the order goes on. */
const mail = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/**
 * One order from its first result (or the order itself) to closure: each report is reconciled to a
 * patient, checked for duplicates, flagged, routed by the tenant's rules, held for review when a
 * person must look, held for the release delay, released, and the patient told. Critical values
 * start a critical-result workflow each, at once. Reports of one order run side by side, so one
 * waiting for review never holds up another. An order without its final results by the turnaround
 * time raises an overdue task.
 */
export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderState> {
  const { tenantId, orderKey } = input;
  const state: OrderState = {
    reports: {},
    released: [],
    failed: [],
    duplicates: [],
    rejected: [],
    criticalWorkflows: [],
    deliveries: [],
    final: false,
    cancelled: false,
    overdue: false,
  };
  const seen = new Set<string>();
  const pending: string[] = [];
  const interpretations: string[] = [];
  const completedTasks = new Set<string>();
  let inFlight = 0;

  setHandler(resultReceivedSignal, ({ reportId }) => {
    if (seen.has(reportId)) {
      // A report taken once is taken again only when it failed for good and someone re-processes
      // it (having fixed the cause); one still in progress, or done, is left as it is.
      const failed =
        state.failed.includes(reportId) &&
        state.reports[reportId] === 'done' &&
        !state.released.includes(reportId);
      if (!failed || !patched('reprocess-failed-report')) return;
      state.failed = state.failed.filter((id) => id !== reportId);
    }
    seen.add(reportId);
    pending.push(reportId);
  });
  setHandler(taskCompletedSignal, ({ taskId }) => {
    completedTasks.add(taskId);
  });
  setHandler(orderPlacedSignal, ({ cancelled }) => {
    // A cancelled order stops waiting for results (and is never overdue); the row says cancelled.
    if (cancelled) state.cancelled = true;
  });
  setHandler(interpretationAddedSignal, ({ reportId }) => {
    interpretations.push(reportId);
  });
  setHandler(orderStateQuery, () => state);

  const { workflowId } = workflowInfo();
  const opened = await acts.openOrder({ tenantId, orderKey, workflowId, firstReportId: pending[0] ?? null });
  state.final = opened.final;

  /** Waits for a person to complete a task; the task ages (rises in priority) while it waits. */
  async function waitForTask(taskId: string, agingMinutes: number) {
    for (;;) {
      const woken = await condition(() => completedTasks.has(taskId), `${agingMinutes} minutes`);
      const check = await acts.checkTask({ tenantId, taskId, agingMinutes });
      if (check.status === 'completed' || check.status === 'cancelled') return check;
      if (woken) completedTasks.delete(taskId);
    }
  }

  async function startCriticalWorkflows(critical: CriticalStart[]) {
    for (const c of critical) {
      try {
        await startChild(criticalResultWorkflow, {
          workflowId: c.workflowId,
          args: [{ tenantId, criticalResultId: c.criticalResultId }],
          // The critical loop outlives the order: closing the order must never cut it short.
          parentClosePolicy: ParentClosePolicy.ABANDON,
          // A loop that already ran (and closed) for this value is never run again.
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        });
      } catch (error) {
        // Already running (a report processed again after a worker crash): that loop goes on.
        if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      }
      state.criticalWorkflows.push(c.workflowId);
    }
  }

  /** Sends a released report to its destinations, each in its own workflow that outlives the order. */
  async function startDeliveries(reportId: string) {
    const { deliveries } = await acts.planReportDeliveries({ tenantId, reportId });
    for (const d of deliveries) {
      try {
        await startChild(deliveryWorkflow, {
          workflowId: d.workflowId,
          args: [{ tenantId, deliveryId: d.deliveryId }],
          parentClosePolicy: ParentClosePolicy.ABANDON,
        });
      } catch (error) {
        // Already started (the report processed again after a worker crash): that delivery goes on.
        if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      }
      state.deliveries.push(d.workflowId);
    }
  }

  async function processReport(reportId: string): Promise<void> {
    const ref = { tenantId, reportId };
    state.reports[reportId] = 'reconciling';
    const patient = await acts.reconcilePatient(ref);
    if (patient.matchTaskId) {
      // A critical value is told at once, not after someone has matched the patient.
      const early = await acts.flagReport({ ...ref, holdForPatientMatch: true });
      await startCriticalWorkflows(early.critical);
      state.reports[reportId] = 'awaiting-patient-match';
      await waitForTask(patient.matchTaskId, 60);
      const match = await acts.applyPatientMatch({ ...ref, taskId: patient.matchTaskId });
      if (match.rejected) {
        state.rejected.push(reportId);
        return;
      }
    }

    state.reports[reportId] = 'checking-duplicates';
    const duplicate = await acts.detectDuplicate(ref);
    if (duplicate.duplicateOf) {
      state.duplicates.push(reportId);
      return;
    }
    if (duplicate.replaces)
      await acts.setOrderStatus({
        tenantId,
        orderKey,
        status: 'corrected',
        detail: `report ${reportId} corrects an earlier one`,
      });

    state.reports[reportId] = 'flagging';
    const flags = await acts.flagReport(ref);
    if (flags.alreadyReleased) {
      state.released.push(reportId);
      return;
    }
    state.final = state.final || flags.final;
    // The provider is told of a critical value at once, before any review or release delay.
    await startCriticalWorkflows(flags.critical);
    if (flags.cancelled) {
      state.cancelled = true;
      await acts.setOrderStatus({
        tenantId,
        orderKey,
        status: 'cancelled',
        detail: 'the lab cancelled the order',
      });
    } else {
      await acts.setOrderStatus({ tenantId, orderKey, status: flags.final ? 'final' : 'partial' });
    }

    state.reports[reportId] = 'routing';
    const routing = await acts.decideRouting(ref);
    const reasons = [...flags.reasons];
    if (routing.error) reasons.push(`the routing rules failed: ${routing.error}`);
    else if (routing.reviewRequired) reasons.push('the routing rules require review');
    if (duplicate.unmarkedChange) reasons.push('a final report was sent again with different values');

    let reviewed = false;
    if (reasons.length > 0) {
      state.reports[reportId] = 'awaiting-review';
      const priority = routing.priority === 'stat' ? 2 : routing.priority === 'urgent' ? 1 : 0;
      const task = await acts.openReviewTask({ ...ref, reasons, priority });
      await waitForTask(task.taskId, task.agingMinutes);
      const review = await acts.applyReview({ ...ref, taskId: task.taskId });
      await startCriticalWorkflows(review.critical);
      if (review.decision === 'reject') {
        state.rejected.push(reportId);
        return;
      }
      reviewed = true;
      await acts.setOrderStatus({ tenantId, orderKey, status: 'reviewed' });
    }

    if (routing.releaseDelaySeconds > 0) {
      state.reports[reportId] = 'release-delay';
      await sleep(routing.releaseDelaySeconds * 1000);
    }
    state.reports[reportId] = 'releasing';
    await acts.releaseReport(ref);
    state.released.push(reportId);
    await acts.setOrderStatus({ tenantId, orderKey, status: 'delivered' });
    if (patched('deliver-released-reports')) await startDeliveries(reportId);

    if (routing.notifyPatient) {
      state.reports[reportId] = 'notifying-patient';
      const told = await notifyPatient(reportId, reviewed ? 'reviewed' : 'available');
      if (told === 'sent') await acts.setOrderStatus({ tenantId, orderKey, status: 'notified' });
    }
  }

  async function notifyPatient(reportId: string, kind: 'available' | 'reviewed' | 'interpreted') {
    try {
      return (await mail.notifyPatient({ tenantId, reportId, kind })).status;
    } catch (error) {
      if (!(error instanceof ActivityFailure)) throw error;
      const reason = error.cause instanceof Error ? error.cause.message : error.message;
      await acts.recordPatientNotificationFailure({ tenantId, reportId, kind, reason });
      return 'failed';
    }
  }

  function run(reportId: string, work: () => Promise<void>) {
    inFlight += 1;
    void (async () => {
      try {
        await work();
      } catch (error) {
        // Transport failures are retried by Temporal without end; only a permanent failure (a
        // report that cannot be processed as stored) lands here. It is recorded, never left hanging.
        if (!(error instanceof ActivityFailure)) throw error;
        const reason = error.cause instanceof ApplicationFailure ? error.cause.message : error.message;
        await acts.markReportFailed({ tenantId, reportId, reason });
        state.failed.push(reportId);
      } finally {
        state.reports[reportId] = 'done';
        inFlight -= 1;
      }
    })();
  }

  if (opened.dueInMs !== null) {
    const dueInMs = opened.dueInMs;
    void (async () => {
      const arrived = await condition(() => state.final || state.cancelled, dueInMs);
      if (!arrived) {
        state.overdue = true;
        await acts.markOrderOverdue({ tenantId, orderKey, workflowId });
      }
    })();
  }

  for (;;) {
    const work = await condition(
      () =>
        pending.length > 0 ||
        interpretations.length > 0 ||
        (inFlight === 0 && (state.final || state.cancelled)),
      ORDER_OPEN_FOR,
    );
    if (!work && inFlight === 0 && pending.length === 0 && interpretations.length === 0) {
      log.info('order closed without a final result', { orderKey });
      break;
    }
    while (pending.length > 0) {
      const reportId = pending.shift()!;
      run(reportId, () => processReport(reportId));
    }
    while (interpretations.length > 0) {
      const reportId = interpretations.shift()!;
      run(reportId, async () => {
        await notifyPatient(reportId, 'interpreted');
      });
    }
    if (inFlight === 0 && (state.final || state.cancelled)) {
      if (!state.cancelled) await acts.setOrderStatus({ tenantId, orderKey, status: 'closed' });
      // A result or interpretation that arrived while the order was closing is taken, not dropped.
      if (pending.length === 0 && interpretations.length === 0) break;
    }
  }
  return state;
}
