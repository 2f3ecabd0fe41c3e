import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { freePort } from '../../api/temporal-dev.ts';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import {
  admin,
  createTenantWithCredential,
  eventually,
  getJson,
  postHl7,
  signature,
  startTestLabRelay,
  testEnv,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';
import { recordHistory } from '../support/histories.ts';
import { startSmtpServer } from '../support/smtp.ts';

const TEST_SERVER = path.resolve(
  import.meta.dirname,
  '..',
  '..',
  '.tools',
  'temporal-test-server',
  'bin',
  'temporal-test-server',
);

const WELBY = 'welby@stmarys.example';
const COVER = 'cover@stmarys.example';
const DIRECTOR = 'director@acmelab.example';

/**
 * The critical-result loop end to end — intake, provider e-mail through a real SMTP server, the
 * escalation ladder on durable timers, the link in the e-mail followed, read-back, patient contact,
 * closure — with the hour of escalation run in seconds on the time-skipping test server.
 */
describe('critical results on the time-skipping test server', () => {
  let env: TestWorkflowEnvironment;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let lr: TestLabRelay;
  let cred: TenantCredential;

  // A fresh test server per test: its clock is shared by every workflow on it, and one test's
  // leftovers must not hold another's time still.
  beforeEach(async () => {
    smtp = await startSmtpServer();
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEST_SERVER } },
    });
    const port = await freePort();
    lr = await startTestLabRelay('pglite', {
      env: await testEnv('pglite', {
        PORT: String(port),
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_NAMESPACE: env.namespace ?? 'default',
        SMTP_URL: smtp.url,
        LABRELAY_PUBLIC_URL: `http://127.0.0.1:${port}`,
      }),
    });
    cred = await createTenantWithCredential(lr.baseUrl, 'critical', [
      'results:write',
      'results:read',
      'tasks:write',
    ]);
    for (const provider of [
      { name: 'Marcus Welby', externalId: '1234', email: WELBY, roles: ['ordering'] },
      { name: 'Casey Cover', email: COVER, roles: ['covering'] },
      { name: 'Dana Director', email: DIRECTOR, roles: ['lab_director'] },
    ])
      await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/critical/providers', provider);
  }, 120_000);
  afterEach(async () => {
    await lr?.stop();
    await env?.teardown();
    await smtp?.close();
  });

  async function sendCriticalPotassium(controlId: string, mrn: string) {
    const response = await postHl7(
      lr.baseUrl,
      cred,
      basicMetabolicPanel({
        controlId,
        placer: `ORD-${controlId}`,
        filler: `FIL-${controlId}`,
        mrn,
        glucose: '5.0',
      }),
    );
    expect(response.status).toBe(200);
    return eventually(async () => {
      const board = await getJson(lr.baseUrl, cred, '/v1/t/critical/critical-results?limit=50');
      return board.body.criticalResults.find(
        (r: { finding: string; patientId: string | null; id: string }) =>
          r.finding.startsWith('Potassium') && !seen.has(r.id) && seen.add(r.id),
      );
    });
  }
  const seen = new Set<string>();

  const mailTo = (address: string, count: number) =>
    eventually(
      async () => (smtp.to(address).length >= count ? smtp.to(address) : undefined),
      30_000,
      `mail to ${address}`,
    );

  async function postJson(pathname: string, body: unknown) {
    const text = JSON.stringify(body);
    return fetch(`${lr.baseUrl}${pathname}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${cred.apiKey}`,
        'content-type': 'application/json',
        ...(cred.signingSecret ? { 'labrelay-signature': signature(cred.signingSecret, text) } : {}),
      },
      body: text,
    });
  }

  /**
   * Waits until no workflow has an activity or workflow task in flight. Skipping time while an
   * activity runs can leave the test server's clock locked, so every `env.sleep` comes after this.
   */
  async function skip(duration: string) {
    const client = lr.labrelay.services!.temporal()!;
    const db = lr.labrelay.services!.db;
    await eventually(
      async () => {
        const ids = [
          ...(await db.selectFrom('reports').select('workflow_id').execute()).map((r) => r.workflow_id),
          ...(await db.selectFrom('critical_results').select('workflow_id').execute()).map(
            (r) => r.workflow_id,
          ),
        ];
        for (const id of new Set(ids)) {
          const { raw } = await client.workflow.getHandle(id).describe();
          if ((raw.pendingActivities?.length ?? 0) > 0 || raw.pendingWorkflowTask) return undefined;
        }
        return true;
      },
      30_000,
      'the workflows to be idle',
    );
    await env.sleep(duration);
  }

  const linkIn = (text: string) => /http:\/\/\S+\/ack\/\S+/.exec(text)?.[0] ?? '';

  async function readBack(link: string, value: string, patientIdentifier: string) {
    return fetch(link, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ value, patientIdentifier }).toString(),
    });
  }

  test('nobody answers the ordering provider or the covering provider; the lab director acknowledges with read-back; the patient is reached; the loop closes with its six facts', async () => {
    const critical = await sendCriticalPotassium('CRIT-1', 'MRN-CRIT-1');
    expect(critical.finding).toMatch(/^Potassium .*6\.8 mmol\/L \(critical high\)$/);

    const [first] = await mailTo(WELBY, 1);
    expect(first!.subject).toContain('CRITICAL RESULT');
    expect(first!.text).toContain('MRN-CRIT-1');
    expect(linkIn(first!.text)).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ack\//);
    expect(smtp.to(COVER)).toHaveLength(0);

    // 15 minutes without an acknowledgement: the covering provider is told.
    await skip('15 minutes');
    await mailTo(COVER, 1);
    expect(smtp.to(DIRECTOR)).toHaveLength(0);

    // Another 15: no one is on call (skipped at once), so the lab director is told.
    await skip('15 minutes');
    const [toDirector] = await mailTo(DIRECTOR, 1);
    const link = linkIn(toDirector!.text);

    // The director follows the link: a form, no answers on it.
    const pageResponse = await fetch(link);
    expect(pageResponse.status).toBe(200);
    const pageText = await pageResponse.text();
    expect(pageText).toContain('<form method="post">');
    // (Times on the page may contain the digits "6.8"; the value with its unit must not appear.)
    expect(pageText).not.toMatch(/6\.8\s*mmol|mmol\/L|Potassium/);
    expect(pageText).not.toContain('MRN-CRIT-1');

    // A wrong read-back is refused and the link stays usable.
    const wrong = await readBack(link, '5.8', 'MRN-CRIT-1');
    expect(wrong.status).toBe(422);
    expect(await wrong.text()).toContain('value');
    const right = await readBack(link, '6.80 mmol/L', 'mrn-crit-1');
    expect(right.status).toBe(200);
    expect(await right.text()).toContain('Acknowledged');
    // Single use.
    expect((await readBack(link, '6.8', 'MRN-CRIT-1')).status).toBe(409);

    const acknowledged = await eventually(async () => {
      const { body } = await getJson(lr.baseUrl, cred, `/v1/t/critical/critical-results/${critical.id}`);
      return body.status === 'acknowledged' ? body : undefined;
    });
    expect(acknowledged.recipient).toBe(DIRECTOR);
    expect(acknowledged.attempts.map((a: any) => [a.role, a.recipient, a.outcome])).toEqual([
      ['ordering', `Marcus Welby <${WELBY}>`, 'sent'],
      [null, null, 'not_acknowledged'],
      ['covering', `Casey Cover <${COVER}>`, 'sent'],
      [null, null, 'not_acknowledged'],
      ['on_call', null, 'no_recipient'],
      ['lab_director', `Dana Director <${DIRECTOR}>`, 'sent'],
      [null, DIRECTOR, 'read_back_refused'],
      [null, DIRECTOR, 'acknowledged'],
    ]);

    // Then the patient: a task to contact them, attempts recorded until one reaches them.
    const contactTask = await eventually(async () => {
      const { body } = await getJson(
        lr.baseUrl,
        cred,
        '/v1/t/critical/tasks?kind=contact_patient&status=open',
      );
      return body.tasks.find((t: any) => t.criticalResultId === critical.id);
    });
    expect(contactTask.priority).toBe(2);
    for (const outcome of ['no_answer', 'reached']) {
      const response = await postJson(`/v1/t/critical/critical-results/${critical.id}/patient-contacts`, {
        method: 'phone',
        outcome,
        note: 'urgent ED visit arranged',
        by: 'nurse@stmarys.example',
      });
      expect(response.status).toBe(204);
    }
    // The follow-up is complete: no attempt after the patient was reached.
    const late = await postJson(`/v1/t/critical/critical-results/${critical.id}/patient-contacts`, {
      method: 'phone',
      outcome: 'no_answer',
    });
    expect(late.status).toBe(409);

    const closed = await eventually(async () => {
      const { body } = await getJson(lr.baseUrl, cred, `/v1/t/critical/critical-results/${critical.id}`);
      return body.status === 'closed' ? body : undefined;
    });
    // CLSI GP47's documented facts: finding, time identified, communicator, recipient, time received, method.
    expect(closed).toMatchObject({
      finding: critical.finding,
      communicator: expect.any(String),
      recipient: DIRECTOR,
      method: expect.stringContaining('read-back'),
      patientContact: { outcome: 'reached', attempts: 2 },
    });
    expect(Date.parse(closed.receivedAt)).toBeGreaterThan(Date.parse(closed.identifiedAt));
    const client = lr.labrelay.services!.temporal()!;
    await recordHistory(
      'critical-escalated-acknowledged-closed',
      client.workflow.getHandle(critical.workflowId),
    );
    const { body: message } = await getJson(lr.baseUrl, cred, `/v1/t/critical/messages?controlId=CRIT-1`);
    const { body: status } = await getJson(lr.baseUrl, cred, message.messages[0].href);
    await recordHistory('order-with-critical-child', client.workflow.getHandle(status.workflowId));
    const { body: tasks } = await getJson(lr.baseUrl, cred, `/v1/t/critical/tasks?kind=contact_patient`);
    expect(tasks.tasks.find((t: any) => t.id === contactTask.id).status).toBe('completed');
  }, 120_000);

  test('when nobody in the chain acknowledges, the result waits on the critical board as an open stat task, and a late acknowledgement closes it', async () => {
    const critical = await sendCriticalPotassium('CRIT-2', 'MRN-CRIT-2');
    await mailTo(WELBY, 1);
    await skip('15 minutes');
    await mailTo(COVER, 1);
    await skip('15 minutes');
    await mailTo(DIRECTOR, 1);
    await skip('15 minutes');

    const task = await eventually(async () => {
      const { body } = await getJson(
        lr.baseUrl,
        cred,
        '/v1/t/critical/tasks?kind=critical_unacknowledged&status=open',
      );
      return body.tasks.find((t: any) => t.criticalResultId === critical.id);
    });
    expect(task).toMatchObject({ priority: 2, title: expect.stringContaining('Potassium') });
    const board = await getJson(lr.baseUrl, cred, '/v1/t/critical/critical-results?open=true');
    expect(board.body.criticalResults.find((r: any) => r.id === critical.id).status).toBe('unacknowledged');

    // The ordering provider answers the first e-mail late: the loop goes on from there.
    const welbyMail = smtp.to(WELBY).find((m) => m.text.includes('MRN-CRIT-2'))!;
    expect(welbyMail.text).toContain(critical.finding);
    expect((await readBack(linkIn(welbyMail.text), '6.8', '1980-01-15')).status).toBe(200);
    const { body: after } = await getJson(lr.baseUrl, cred, `/v1/t/critical/tasks/${task.id}`);
    expect(after).toMatchObject({ status: 'completed', completedBy: WELBY });
    const { body: result } = await getJson(
      lr.baseUrl,
      cred,
      `/v1/t/critical/critical-results/${critical.id}`,
    );
    expect(result).toMatchObject({ status: 'acknowledged', recipient: WELBY });
    await recordHistory(
      'critical-unacknowledged-then-late',
      lr.labrelay.services!.temporal()!.workflow.getHandle(critical.workflowId),
    );
  }, 120_000);

  test('a provider reached by phone acknowledges with read-back recorded by the person who called; a wrong read-back is refused', async () => {
    const critical = await sendCriticalPotassium('CRIT-3', 'MRN-CRIT-3');
    await mailTo(WELBY, 1);
    const acknowledge = (value: string, recipient = 'Dr Marcus Welby') =>
      postJson(`/v1/t/critical/critical-results/${critical.id}/acknowledge`, {
        recipient,
        channel: 'phone',
        value,
        patientIdentifier: 'MRN-CRIT-3',
        by: 'tech.lee@acmelab.example',
      });
    expect((await acknowledge('8.6')).status).toBe(422);
    // Read-back is not a guessing game: after five wrong ones that recipient is stopped.
    for (const guess of ['1', '2', '3', '4', '5'])
      expect((await acknowledge(guess, 'Someone Else')).status).toBe(422);
    expect((await acknowledge('6.8', 'Someone Else')).status).toBe(403);
    expect((await acknowledge('6.8')).status).toBe(200);
    expect((await acknowledge('6.8')).status).toBe(409);
    const { body } = await getJson(lr.baseUrl, cred, `/v1/t/critical/critical-results/${critical.id}`);
    expect(body).toMatchObject({
      status: 'acknowledged',
      recipient: 'Dr Marcus Welby',
      method: 'phone, read-back confirmed',
      communicator: expect.stringContaining('tech.lee@acmelab.example'),
    });
    expect(body.attempts.map((a: any) => a.outcome)).toEqual([
      'sent',
      ...Array(6).fill('read_back_refused'),
      'acknowledged',
    ]);
  }, 120_000);
});
