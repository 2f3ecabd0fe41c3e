import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Runtime, DefaultLogger, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Activities, ReportRef } from '../../activities/index.ts';
import { WORKFLOWS_PATH } from '../../api/temporal.ts';
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

/** Activities that record what the workflow asked for; `flag` decides what flagging answers. */
function recordingActivities(flag: (reportId: string) => Awaited<ReturnType<Activities['flagReport']>>) {
  const calls: string[] = [];
  const activities: Activities = {
    async reconcilePatient(ref: ReportRef) {
      calls.push(`reconcile:${ref.reportId}`);
      return { patientId: 'patient-1', needsReview: false };
    },
    async flagReport(ref: ReportRef) {
      calls.push(`flag:${ref.reportId}`);
      return flag(ref.reportId);
    },
    async releaseReport(ref: ReportRef) {
      calls.push(`release:${ref.reportId}`);
    },
    async markReportFailed(ref: ReportRef & { reason: string }) {
      calls.push(`failed:${ref.reportId}:${ref.reason}`);
    },
  };
  return { calls, activities };
}

const normal = {
  critical: false,
  needsReview: false,
  final: true,
  releaseDelaySeconds: 0,
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
    const { calls, activities } = recordingActivities(() => ({ ...normal, releaseDelaySeconds: 3600 }));
    await run(activities, async (taskQueue) => {
      const before = await env.currentTimeMs();
      const handle = await signalReport(taskQueue, 'order-delay', 'r1');
      const state = await handle.result();
      expect(state).toMatchObject({ released: ['r1'], failed: [], final: true });
      expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(3600 * 1000);
    });
    expect(calls).toEqual(['reconcile:r1', 'flag:r1', 'release:r1']);
  });

  test('the same report signalled twice is processed once; a preliminary report keeps the order open for the final one', async () => {
    const { calls, activities } = recordingActivities((id) => ({ ...normal, final: id === 'final' }));
    await run(activities, async (taskQueue) => {
      const handle = await signalReport(taskQueue, 'order-twice', 'prelim');
      await signalReport(taskQueue, 'order-twice', 'prelim');
      await env.sleep('1 hour');
      expect((await handle.query<OrderState>('orderState')).step).toBe('waiting');
      await signalReport(taskQueue, 'order-twice', 'final');
      expect((await handle.result()).released).toEqual(['prelim', 'final']);
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
    });
    expect(calls).toContain('failed:broken:report broken does not exist');
  });

  test('a report that needs review waits for the decision; a rejected one is never released', async () => {
    const { calls, activities } = recordingActivities(() => ({ ...normal, needsReview: true }));
    await run(activities, async (taskQueue) => {
      const handle = await signalReport(taskQueue, 'order-review', 'r1');
      await env.sleep('2 days');
      expect((await handle.query<OrderState>('orderState')).step).toBe('awaiting-review');
      await handle.signal('reviewCompleted', { reportId: 'r1', decision: 'reject' });
      expect((await handle.result()).released).toEqual([]);
    });
    expect(calls).not.toContain('release:r1');
  });
});
