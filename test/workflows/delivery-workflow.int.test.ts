import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Activities } from '../../activities/index.ts';
import { WORKFLOWS_PATH } from '../../api/temporal.ts';
import type { DeliveryState } from '../../workflows/delivery-workflow.ts';

const TEST_SERVER = path.resolve(
  import.meta.dirname,
  '..',
  '..',
  '.tools',
  'temporal-test-server',
  'bin',
  'temporal-test-server',
);

/** Delivery activities that record calls; `attempt(n)` decides what the n-th attempt does. */
function deliveryActivities(plan: { critical: boolean; maxAttempts: number }, attempt: (n: number) => void) {
  const calls: string[] = [];
  let attempts = 0;
  const activities = {
    async beginDelivery() {
      return { status: 'delivering', criticalDeliveryMinutes: 15, ...plan };
    },
    async deliverReport() {
      attempts += 1;
      attempt(attempts);
      calls.push(`delivered after ${attempts}`);
      return { remoteReference: 'DiagnosticReport/1' };
    },
    async deadLetterDelivery(input: { reason: string }) {
      calls.push(`dead letter: ${input.reason}`);
    },
    async escalateDelivery(input: { reason: string }) {
      calls.push(`escalate: ${input.reason}`);
      return { taskId: 'task-1' };
    },
    async closeDeliveryTask(input: { taskId: string }) {
      calls.push(`close ${input.taskId}`);
    },
  } as unknown as Activities;
  return { calls, activities, attempts: () => attempts };
}

describe('deliveryWorkflow on the time-skipping test server', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEST_SERVER } },
    });
  });
  afterAll(() => env?.teardown());

  async function run(activities: Activities): Promise<DeliveryState> {
    const taskQueue = `delivery-${Math.random().toString(36).slice(2)}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: WORKFLOWS_PATH,
      activities,
    });
    return worker.runUntil(
      env.client.workflow.execute('deliveryWorkflow', {
        workflowId: `delivery/${taskQueue}/1`,
        taskQueue,
        args: [{ tenantId: 't1', deliveryId: 'd1' }],
      }),
    );
  }

  test('a critical result still undelivered after 15 minutes goes to a person; the task closes when it arrives', async () => {
    // The destination is down for its first 12 attempts (backoff 2 s doubling to 5 min: about 40 minutes).
    const { calls, activities } = deliveryActivities({ critical: true, maxAttempts: 50 }, (n) => {
      if (n <= 12) throw new Error('connection refused by 127.0.0.1:2576');
    });
    const state = await run(activities);
    expect(state).toMatchObject({ status: 'delivered', escalationTaskId: 'task-1' });
    expect(calls).toEqual([
      'escalate: the critical result is still not delivered after 15 minutes',
      'delivered after 13',
      'close task-1',
    ]);
  });

  test('a refusal is dead-lettered at once; a critical one is put before a person', async () => {
    const { calls, activities, attempts } = deliveryActivities({ critical: true, maxAttempts: 8 }, () => {
      throw ApplicationFailure.nonRetryable('the receiver answered AR: unknown patient', 'DeliveryRefused');
    });
    const state = await run(activities);
    expect(state.status).toBe('dead_letter');
    expect(attempts()).toBe(1);
    expect(calls[0]).toMatch(/^dead letter: .*the receiver answered AR: unknown patient/);
    expect(calls[1]).toMatch(/^escalate: the critical result was dead-lettered/);
    expect(calls).toHaveLength(2);
  });

  test('a routine result is dead-lettered after its last attempt, and nobody is paged', async () => {
    const { calls, activities, attempts } = deliveryActivities({ critical: false, maxAttempts: 3 }, () => {
      throw new Error('http://127.0.0.1:9/fhir answered 503');
    });
    const state = await run(activities);
    expect(state.status).toBe('dead_letter');
    expect(attempts()).toBe(3);
    expect(calls).toEqual([
      expect.stringMatching(/^dead letter: not delivered after 3 attempt\(s\) at most: .*503/),
    ]);
  });

  test('a send that a re-send replaced stops quietly: no dead letter, nobody paged', async () => {
    const { calls, activities, attempts } = deliveryActivities({ critical: true, maxAttempts: 8 }, () => {
      throw ApplicationFailure.nonRetryable(
        'delivery d1 was sent again by a newer send',
        'DeliverySuperseded',
      );
    });
    const state = await run(activities);
    expect(state.status).toBe('superseded');
    expect(attempts()).toBe(1);
    expect(calls).toEqual([]);
  });

  test('a send replaced before it began does not attempt at all', async () => {
    const { calls, activities, attempts } = deliveryActivities({ critical: true, maxAttempts: 8 }, () => {});
    (activities as unknown as Record<string, () => Promise<unknown>>).beginDelivery = async () => ({
      status: 'superseded',
      critical: true,
      maxAttempts: 8,
      criticalDeliveryMinutes: 15,
    });
    const state = await run(activities);
    expect(state.status).toBe('superseded');
    expect(attempts()).toBe(0);
    expect(calls).toEqual([]);
  });
});
