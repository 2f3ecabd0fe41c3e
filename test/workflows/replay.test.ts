import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { describe, expect, test } from 'vitest';
import { WORKFLOWS_PATH } from '../../api/temporal.ts';
import { HISTORIES_DIR } from '../support/histories.ts';

const fixtures = readdirSync(HISTORIES_DIR).filter((f) => f.endsWith('.json'));

/**
 * Recorded histories of real runs (committed under test/fixtures/histories) replayed against the
 * workflow code as it is now: a change that would break a running order or critical-result loop
 * fails here, and must go behind `patched()` instead.
 */
describe('replaying recorded workflow histories', () => {
  test('there are recorded histories of both workflows to replay', () => {
    expect(fixtures.some((f) => f.startsWith('order-'))).toBe(true);
    expect(fixtures.some((f) => f.startsWith('critical-'))).toBe(true);
  });

  test.each(fixtures)('%s replays without non-determinism', async (file) => {
    const json = JSON.parse(readFileSync(path.join(HISTORIES_DIR, file), 'utf8')) as Record<string, unknown>;
    // The proto classes themselves (historyFromJSON sits on a second protobufjs copy that rejects them).
    const history = temporal.api.history.v1.History.fromObject(json);
    await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history, file.replace(/\.json$/, ''));
  });
});
