import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';

export const HISTORIES_DIR = path.resolve(import.meta.dirname, '..', 'fixtures', 'histories');

/**
 * With LABRELAY_RECORD_HISTORIES=1, saves a finished workflow's history as a replay fixture
 * (test/workflows/replay.test.ts replays every one against the current workflow code). Record
 * again only on purpose: a fixture is the proof that running workflows survive a code change.
 */
export async function recordHistory(name: string, handle: WorkflowHandle): Promise<void> {
  if (process.env.LABRELAY_RECORD_HISTORIES !== '1') return;
  const history = await handle.fetchHistory();
  // protobufjs's own JSON form (enum names, base64 bytes): what the replayer's historyFromJSON reads.
  const json = (history as unknown as { toJSON(): unknown }).toJSON();
  writeFileSync(path.join(HISTORIES_DIR, `${name}.json`), JSON.stringify(json, null, 1) + '\n');
}
