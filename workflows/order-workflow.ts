import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  log,
  proxyActivities,
  setHandler,
  sleep,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';

/** Sent for every stored report of this order; the same report twice is processed once. */
export const resultReceivedSignal = defineSignal<[{ reportId: string }]>('resultReceived');
/** Sent when a person has reviewed a report that needed it (unit not convertible, ambiguous patient). */
export const reviewCompletedSignal =
  defineSignal<[{ reportId: string; decision: 'release' | 'reject' }]>('reviewCompleted');
export const orderStateQuery = defineQuery<OrderState>('orderState');

export interface OrderWorkflowInput {
  tenantId: string;
  orderKey: string;
}

export interface OrderState {
  pending: string[];
  current: string | null;
  step: 'waiting' | 'reconciling' | 'flagging' | 'release-delay' | 'awaiting-review' | 'releasing';
  released: string[];
  /** Reports that failed permanently (recorded as failed, with the reason, on the message). */
  failed: string[];
  final: boolean;
}

/** How long an order that has only partial results stays open for the rest of them. */
const ORDER_OPEN_FOR = '30 days';

const acts = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/**
 * One order, from its first result to its final one: each report is reconciled to a patient, its
 * results flagged (reference ranges, critical table), held for review when a person must look,
 * held for the tenant's release delay, then released to the result API.
 */
export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderState> {
  const state: OrderState = {
    pending: [],
    current: null,
    step: 'waiting',
    released: [],
    failed: [],
    final: false,
  };
  const seen = new Set<string>();
  const reviews = new Map<string, 'release' | 'reject'>();
  setHandler(resultReceivedSignal, ({ reportId }) => {
    if (seen.has(reportId)) return;
    seen.add(reportId);
    state.pending.push(reportId);
  });
  setHandler(reviewCompletedSignal, ({ reportId, decision }) => {
    reviews.set(reportId, decision);
  });
  setHandler(orderStateQuery, () => state);

  for (;;) {
    if (state.pending.length === 0) {
      if (state.final) break;
      const more = await condition(() => state.pending.length > 0, ORDER_OPEN_FOR);
      if (!more) {
        log.info('order closed without a final result', { orderKey: input.orderKey });
        break;
      }
    }
    const reportId = state.pending.shift()!;
    state.current = reportId;
    try {
      await processReport(input.tenantId, reportId, state, reviews);
    } catch (error) {
      // Transport failures are retried by Temporal without end; only a permanent failure (a report
      // that cannot be processed as stored) lands here. It is recorded, never left "processing".
      if (!(error instanceof ActivityFailure)) throw error;
      const reason = error.cause instanceof ApplicationFailure ? error.cause.message : error.message;
      await acts.markReportFailed({ tenantId: input.tenantId, reportId, reason });
      state.failed.push(reportId);
    }
    state.current = null;
    state.step = 'waiting';
  }
  return state;
}

async function processReport(
  tenantId: string,
  reportId: string,
  state: OrderState,
  reviews: Map<string, 'release' | 'reject'>,
): Promise<void> {
  const report = { tenantId, reportId };
  state.step = 'reconciling';
  const patient = await acts.reconcilePatient(report);

  state.step = 'flagging';
  const flags = await acts.flagReport(report);
  state.final = flags.final;
  if (flags.alreadyReleased) {
    state.released.push(reportId);
    return;
  }
  if (flags.needsReview || patient.needsReview) {
    state.step = 'awaiting-review';
    await condition(() => reviews.has(reportId));
    if (reviews.get(reportId) === 'reject') return;
  }
  if (flags.releaseDelaySeconds > 0) {
    state.step = 'release-delay';
    await sleep(flags.releaseDelaySeconds * 1000);
  }
  state.step = 'releasing';
  await acts.releaseReport(report);
  state.released.push(reportId);
}
