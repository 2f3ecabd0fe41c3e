import { bundleWorkflowCode } from '@temporalio/worker';
import { expect, test } from 'vitest';
import { WORKFLOWS_PATH } from '../../api/temporal.ts';

// The worker bundles workflows/ for Temporal's deterministic sandbox; a stray Node import or an
// activity imported as a value fails here, long before a workflow task would fail in production.
test('the workflow code bundles for the Temporal sandbox', async () => {
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { info() {}, warn() {}, error() {}, debug() {}, trace() {}, log() {} } as never,
  });
  expect(code).toContain('orderWorkflow');
  // Activities run in the worker: their implementation (and so the database code) stays out.
  expect(code).not.toContain('createActivities');
  expect(code).not.toContain('kysely');
}, 120_000);
