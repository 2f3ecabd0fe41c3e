import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Runtime, DefaultLogger, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Activities, ReportRef } from '../../activities/index.ts';
import { WORKFLOWS_PATH } from '../../api/temporal.ts';
import { recordHistory } from '../support/histories.ts';
import { DEFAULT_ROUTING_DECISION } from '../../domain/routing-rules.ts';
import type { OrderState } from '../../workflows/order-workflow.ts';

const TEST_SERVER = path.resolve(
  import.meta.dirname,
  '..',
  '..',
  '.tools',
  'temporal-test-server',
  'bin',
  'temporal-test-server',
);

type FlagAnswer = Awaited<ReturnType<Activities['flagReport']>>;

/**
 * Activities that record what the workflow asked for. `flag` decides what flagging answers;
 * `routing` what the rules decide; tasks complete when the test says so (`completed`).
 */
function recordingActivities(
  flag: (reportId: string) => FlagAnswer,
  routing: Partial<Awaited<ReturnType<Activities['decideRouting']>>> = {},
) {
  const calls: string[] = [];
  const completed = new Map<string, string>();
  const activities = {
    async openOrder() {
      return { dueInMs: null, final: false };
    },
    async setOrderStatus(input: { status: string }) {
      calls.push(`order:${input.status}`);
    },
    async markOrderOverdue() {
      calls.push('overdue');
    },
    async reconcilePatient(ref: ReportRef) {
      calls.push(`reconcile:${ref.reportId}`);
      return { patientId: 'patient-1', matchTaskId: null };
    },
    async detectDuplicate() {
      return { duplicateOf: null, replaces: null, unmarkedChange: false };
    },
    async flagReport(ref: ReportRef) {
      calls.push(`flag:${ref.reportId}`);
      return flag(ref.reportId);
    },
    async decideRouting() {
      return { ...DEFAULT_ROUTING_DECISION, ruleVersion: 0, ...routing };
    },
    async openReviewTask(ref: ReportRef) {
      calls.push(`review:${ref.reportId}`);
      return { taskId: `task-${ref.reportId}`, agingMinutes: 240 };
    },
    async checkTask(input: { taskId: string }) {
      const decision = completed.get(input.taskId);
      return decision ? { status: 'completed', decision: { decision } } : { status: 'open', decision: null };
    },
    async applyReview(ref: ReportRef & { taskId: string }) {
      return { decision: completed.get(ref.taskId) as 'approve' | 'reject', critical: [] };
    },
    async releaseReport(ref: ReportRef) {
      calls.push(`release:${ref.reportId}`);
    },
    async planReportDeliveries() {
      return { deliveries: [] };
    },
    async notifyPatient(input: { reportId: string; kind: string }) {
      calls.push(`notify:${input.reportId}:${input.kind}`);
      return { status: 'sent' };
    },
    async markReportFailed(ref: ReportRef & { reason: string }) {
      calls.push(`failed:${ref.reportId}:${ref.reason}`);
    },
  } as unknown as Activities;
  return { calls, activities, completed };
}

const normal: FlagAnswer = {
  critical: [],
  needsReview: false,
  reasons: [],
  final: true,
  cancelled: false,
  alreadyReleased: false,
};

describe('orderWorkflow on the time-skipping test server', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEST_SERVER } },
    });
  });
  afterAll(() => env?.teardown());

  async function run(activities: Activities, body: (taskQueue: string) => Promise<void>) {
    const taskQueue = `order-${Math.random().toString(36).slice(2)}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: WORKFLOWS_PATH,
      activities,
    });
    await worker.runUntil(body(taskQueue));
  }

  async function signalReport(taskQueue: string, workflowId: string, reportId: string) {
    return env.client.workflow.signalWithStart('orderWorkflow', {
      workflowId,
      taskQueue,
      args: [{ tenantId: 't1', orderKey: 'LAB|P|1' }],
      signal: 'resultReceived',
      signalArgs: [{ reportId }],
    });
  }

  test("a tenant's release delay of an hour is waited out on a durable timer, then the report is released", async () => {
    const { calls, activities } = recordingActivities(() => normal, { releaseDelaySeconds: 3600 });
    await run(activities, async (taskQueue) => {
      const before = await env.currentTimeMs();
      const handle = await signalReport(taskQueue, 'order-delay', 'r1');
      const state = await handle.result();
      expect(state).toMatchObject({ released: ['r1'], failed: [], final: true });
      expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(3600 * 1000);
      await recordHistory('order-release-delay', handle);
    });
    expect(calls).toEqual([
      'reconcile:r1',
      'flag:r1',
      'order:final',
      'release:r1',
      'order:delivered',
      'notify:r1:available',
      'order:notified',
      'order:closed',
    ]);
  });

  test('the same report signalled twice is processed once; a preliminary report keeps the order open for the final one', async () => {
    const { calls, activities } = recordingActivities((id) => ({ ...normal, final: id === 'final' }));
    await run(activities, async (taskQueue) => {
      const handle = await signalReport(taskQueue, 'order-twice', 'prelim');
      await signalReport(taskQueue, 'order-twice', 'prelim');
      await env.sleep('1 hour');
      const waiting = await handle.query<OrderState>('orderState');
      expect(waiting).toMatchObject({ final: false, released: ['prelim'], reports: { prelim: 'done' } });
      await signalReport(taskQueue, 'order-twice', 'final');
      expect((await handle.result()).released).toEqual(['prelim', 'final']);
      await recordHistory('order-partial-then-final', handle);
    });
    expect(calls.filter((c) => c === 'reconcile:prelim')).toHaveLength(1);
  });

  test('a report that fails permanently is recorded as failed and the order goes on', async () => {
    const { calls, activities } = recordingActivities((id) => {
      if (id === 'broken')
        throw ApplicationFailure.nonRetryable('report broken does not exist', 'ReportNotFound');
      return normal;
    });
    await run(activities, async (taskQueue) => {
      const handle = await signalReport(taskQueue, 'order-fail', 'broken');
      await signalReport(taskQueue, 'order-fail', 'good');
      const state = await handle.result();
      expect(state).toMatchObject({ failed: ['broken'], released: ['good'] });
      await recordHistory('order-permanent-failure', handle);
    });
    expect(calls).toContain('failed:broken:report broken does not exist');
  });

  test('a report that failed for good is taken again when it is re-processed while its order is still open', async () => {
    let attempts = 0;
    const { calls, activities } = recordingActivities((id) => {
      // The first time the report cannot be processed; by the re-process its cause was fixed.
      if (id === 'broken' && attempts++ === 0)
        throw ApplicationFailure.nonRetryable('unknown unit mmol/dL', 'UnknownUnit');
      return normal;
    });
    await run(activities, async (taskQueue) => {
      const handle = await signalReport(taskQueue, 'order-reprocess', 'broken');
      await env.sleep('1 minute');
      expect(await handle.query<OrderState>('orderState')).toMatchObject({
        failed: ['broken'],
        released: [],
        final: false,
      });
      await signalReport(taskQueue, 'order-reprocess', 'broken');
      const state = await handle.result();
      expect(state).toMatchObject({ failed: [], released: ['broken'], final: true });
      await recordHistory('order-reprocess-failed-report', handle);
    });
    expect(calls.filter((c) => c === 'flag:broken')).toHaveLength(2);
    expect(calls).toContain('failed:broken:unknown unit mmol/dL');
  });

  test('a report that needs review waits for its task without holding up the rest of the order; a rejected one is never released', async () => {
    const { calls, activities, completed } = recordingActivities((id) => ({
      ...normal,
      final: id === 'r2',
      needsReview: id === 'r1',
      reasons: id === 'r1' ? ['unit cannot be converted'] : [],
    }));
    await run(activities, async (taskQueue) => {
      const handle = await signalReport(taskQueue, 'order-review', 'r1');
      await signalReport(taskQueue, 'order-review', 'r2');
      await env.sleep('2 days');
      const state = await handle.query<OrderState>('orderState');
      expect(state.reports.r1).toBe('awaiting-review');
      expect(state.released).toEqual(['r2']);
      completed.set('task-r1', 'reject');
      await handle.signal('taskCompleted', { taskId: 'task-r1' });
      const done = await handle.result();
      expect(done.released).toEqual(['r2']);
      expect(done.rejected).toEqual(['r1']);
      await recordHistory('order-review-rejected', handle);
    });
    expect(calls).not.toContain('release:r1');
  });

  test('an order whose final results have not arrived by the turnaround time raises an overdue alert, once', async () => {
    const { calls, activities } = recordingActivities((id) => ({ ...normal, final: id === 'final' }));
    (activities as { openOrder: Activities['openOrder'] }).openOrder = async () => ({
      dueInMs: 24 * 3600 * 1000,
      final: false,
    });
    await run(activities, async (taskQueue) => {
      const handle = await signalReport(taskQueue, 'order-overdue', 'prelim');
      await env.sleep('23 hours');
      expect(calls).not.toContain('overdue');
      await env.sleep('2 hours');
      expect((await handle.query<OrderState>('orderState')).overdue).toBe(true);
      await signalReport(taskQueue, 'order-overdue', 'final');
      expect((await handle.result()).released).toEqual(['prelim', 'final']);
    });
    expect(calls.filter((c) => c === 'overdue')).toHaveLength(1);
  });

  test('a task nobody completes is checked again each aging period (and the database answer is taken without a signal)', async () => {
    const { activities, completed } = recordingActivities(() => ({
      ...normal,
      needsReview: true,
      reasons: ['rule'],
    }));
    let checks = 0;
    const checkTask = activities.checkTask;
    (activities as { checkTask: Activities['checkTask'] }).checkTask = async (input) => {
      checks += 1;
      return checkTask(input);
    };
    await run(activities, async (taskQueue) => {
      const handle = await signalReport(taskQueue, 'order-aging', 'r1');
      await env.sleep('13 hours');
      expect(checks).toBe(3);
      completed.set('task-r1', 'approve');
      await env.sleep('4 hours');
      expect((await handle.result()).released).toEqual(['r1']);
    });
  });
});
