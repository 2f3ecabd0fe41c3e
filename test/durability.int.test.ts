import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import {
  readTemporalDevSettings,
  startTemporalDevServer,
  freePort,
  type DevServer,
} from '../api/temporal-dev.ts';
import { createMailer } from '../adapters/mail/mailer.ts';
import { startWorker, type WorkerHandle } from '../api/temporal.ts';
import type { OrderState } from '../workflows/order-workflow.ts';
import { basicMetabolicPanel } from './fixtures/hl7.ts';
import {
  admin,
  createTenantWithCredential,
  eventually,
  getJson,
  postHl7,
  startTestLabRelay,
  testEnv,
  waitForMessageStatus,
  type TestLabRelay,
} from './support/labrelay.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

/** Runs `npm run start:worker`'s entry point as its own process, as production does. */
function spawnWorker(env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string } {
  let output = '';
  const child = spawn(process.execPath, [path.join(ROOT, 'api', 'main.ts'), '--role=worker'], {
    cwd: ROOT,
    env: { ...process.env, ...env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output };
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));
}

async function auditCount(lr: TestLabRelay, action: string, subject: string): Promise<number> {
  const rows = await lr.labrelay
    .services!.db.selectFrom('audit_events')
    .select('id')
    .where('action', '=', action)
    .where('subject', '=', subject)
    .execute();
  return rows.length;
}

describe('durability', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    cleanups.length = 0;
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  });

  test('a worker killed with SIGKILL mid-way is replaced and the workflow completes exactly once', async () => {
    const env = await testEnv('postgres');
    const api = await startTestLabRelay('postgres', { role: 'api', env });
    cleanups.push(() => api.stop());
    const cred = await createTenantWithCredential(api.baseUrl, 'killtest');
    // Hold released results for a few seconds: the workflow waits there, mid-way, on a durable timer.
    await admin(
      api.baseUrl,
      'PATCH',
      '/v1/admin/tenants/killtest',
      { settings: { releaseDelaySeconds: 4 } },
      200,
    );

    const first = spawnWorker(env);
    cleanups.push(async () => {
      first.child.kill('SIGKILL');
      await exited(first.child);
    });
    const response = await postHl7(
      api.baseUrl,
      cred,
      basicMetabolicPanel({ controlId: 'KILL-1', placer: 'ORD-KILL' }),
    );
    expect(response.status).toBe(200);
    const messageId = response.headers.get('labrelay-message-id')!;
    const status = await getJson(api.baseUrl, cred, `/v1/t/killtest/messages/${messageId}`);
    const workflowId: string = status.body.workflowId;
    const reportId: string = status.body.reports[0].id;

    const client = new Client({
      connection: await Connection.connect({ address: env.TEMPORAL_ADDRESS! }),
      namespace: env.TEMPORAL_NAMESPACE!,
    });
    cleanups.push(() => client.connection.close());
    const handle = client.workflow.getHandle(workflowId);
    await eventually(
      async () =>
        Object.values((await handle.query<OrderState>('orderState')).reports).includes('release-delay')
          ? true
          : undefined,
      60_000,
      'the workflow to reach its release delay',
    );

    first.child.kill('SIGKILL');
    await exited(first.child);
    expect(first.child.signalCode).toBe('SIGKILL');
    const midway = await getJson(api.baseUrl, cred, `/v1/t/killtest/messages/${messageId}`);
    expect(midway.body.status).toBe('processing');

    const second = spawnWorker(env);
    cleanups.push(async () => {
      second.child.kill('SIGTERM');
      await exited(second.child);
    });
    await waitForMessageStatus(api.baseUrl, cred, messageId, 'delivered', 90_000);
    await handle.result();

    expect((await handle.describe()).status.name).toBe('COMPLETED');
    const history = await handle.fetchHistory();
    const completed = (history.events ?? []).filter((e) => e.workflowExecutionCompletedEventAttributes);
    expect(completed).toHaveLength(1);
    expect(await auditCount(api, 'report.flagged', `report/${reportId}`)).toBe(1);
    expect(await auditCount(api, 'report.released', `report/${reportId}`)).toBe(1);
    const observations = await api.labrelay
      .services!.db.selectFrom('observations')
      .select('id')
      .where('report_id', '=', reportId)
      .execute();
    expect(observations).toHaveLength(3);
    const bundle = await getJson(
      api.baseUrl,
      cred,
      '/v1/t/killtest/fhir/DiagnosticReport?patient.identifier=MRN123456',
    );
    expect(bundle.body.total).toBe(1);
  });

  test('a message committed while Temporal is down is started by the relay when Temporal is back', async () => {
    const settings = readTemporalDevSettings();
    const dir = mkdtempSync(path.join(tmpdir(), 'labrelay-temporal-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const dbFile = path.join(dir, 'temporal.sqlite');
    let server: DevServer = await startTemporalDevServer({ settings, dbFile, port });
    cleanups.push(() => server.stop());
    const address = server.address;

    const env = await testEnv('postgres', {
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: settings.namespace,
    });
    const api = await startTestLabRelay('postgres', { role: 'api', env });
    cleanups.push(() => api.stop());
    const cred = await createTenantWithCredential(api.baseUrl, 'relaytest');

    await server.stop();
    const response = await postHl7(
      api.baseUrl,
      cred,
      basicMetabolicPanel({ controlId: 'RELAY-1', placer: 'ORD-RELAY' }),
    );
    expect(response.status).toBe(200);
    expect(await response.text()).toMatch(/\rMSA\|AA\|RELAY-1\|/);
    const messageId = response.headers.get('labrelay-message-id')!;

    // Committed, but no workflow could be started: the inbox row records the failed attempt.
    const db = api.labrelay.services!.db;
    const pending = await eventually(
      async () => {
        const row = await db
          .selectFrom('inbox')
          .innerJoin('reports', 'reports.id', 'inbox.report_id')
          .select(['inbox.started_at', 'inbox.attempts', 'inbox.last_error'])
          .where('reports.message_id', '=', messageId)
          .executeTakeFirst();
        return row && row.attempts > 0 ? row : undefined;
      },
      60_000,
      'a failed start to be recorded',
    );
    expect(pending.started_at).toBeNull();
    expect((await getJson(api.baseUrl, cred, `/v1/t/relaytest/messages/${messageId}`)).body.status).toBe(
      'received',
    );

    server = await startTemporalDevServer({ settings, dbFile, port });
    const worker: WorkerHandle = await startWorker(
      { address, namespace: settings.namespace, taskQueue: env.LABRELAY_TASK_QUEUE! },
      {
        db,
        logger: pino({ level: 'silent' }),
        mailer: createMailer(undefined, 'test@localhost'),
        masterKey: randomBytes(32),
        publicUrl: 'http://localhost',
      },
    );
    cleanups.push(() => worker.shutdown());
    const done = await waitForMessageStatus(api.baseUrl, cred, messageId, 'delivered', 90_000);
    expect(done.reports[0].stage).toBe('released');
    const started = await db
      .selectFrom('inbox')
      .select('started_at')
      .where('report_id', '=', done.reports[0].id)
      .executeTakeFirstOrThrow();
    expect(started.started_at).not.toBeNull();
  });
});
