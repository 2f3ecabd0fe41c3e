import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import {
  admin,
  ADMIN_TOKEN,
  createTenantWithCredential,
  postHl7,
  startTestLabRelay,
  waitForMessageStatus,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

/** Review when a potassium (LOINC 2823-3) is above `limit` mmol/L. */
const potassiumAbove = (limit: number) => ({
  reviewRequired: {
    some: [
      { var: 'results' },
      { and: [{ '==': [{ var: 'code' }, '2823-3'] }, { '>': [{ var: 'value' }, limit] }] },
    ],
  },
});

interface DryRun {
  evaluated: number;
  nextOffset: number | null;
  changes: {
    reportId: string;
    recorded: { reviewRequired: boolean; ruleVersion: number };
    draft: { reviewRequired: boolean };
    differences: string[];
  }[];
}

describe('POST /v1/admin/tenants/{slug}/routing-rules/dry-run', () => {
  let lr: TestLabRelay;
  let cred: TenantCredential;
  const reportOf: Record<string, string> = {};

  beforeAll(async () => {
    lr = await startTestLabRelay('pglite');
    cred = await createTenantWithCredential(lr.baseUrl, 'dryrun');
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/dryrun/routing-rules', { rules: potassiumAbove(5) });
    // Normal glucose, so neither result is critical: only the rule decides about review.
    for (const [potassium, status] of [
      ['4.1', 'delivered'],
      ['5.6', 'needs_review'],
    ] as const) {
      const response = await postHl7(
        lr.baseUrl,
        cred,
        basicMetabolicPanel({
          controlId: `DRY-${potassium}`,
          placer: `ORD-DRY-${potassium}`,
          potassium,
          glucose: '5.0',
        }),
      );
      expect(response.status).toBe(200);
      const done = await waitForMessageStatus(
        lr.baseUrl,
        cred,
        response.headers.get('labrelay-message-id')!,
        status,
      );
      reportOf[potassium] = done.reports[0].id;
    }
  }, 120_000);
  afterAll(async () => {
    await lr?.stop();
  });

  test('lists exactly the results a stricter draft would route differently, with both decisions, storing nothing', async () => {
    const outcome = await admin<DryRun>(
      lr.baseUrl,
      'POST',
      '/v1/admin/tenants/dryrun/routing-rules/dry-run',
      { rules: potassiumAbove(4), limit: 10 },
      200,
    );
    expect(outcome.evaluated).toBe(2);
    expect(outcome.nextOffset).toBeNull();
    expect(outcome.changes).toHaveLength(1);
    expect(outcome.changes[0]).toMatchObject({
      reportId: reportOf['4.1'],
      recorded: { reviewRequired: false, ruleVersion: 1 },
      draft: { reviewRequired: true },
      differences: ['reviewRequired'],
    });

    // The rules in force are what they were.
    const versions = await admin<{ versions: unknown[] }>(
      lr.baseUrl,
      'GET',
      '/v1/admin/tenants/dryrun/routing-rules',
      undefined,
      200,
    );
    expect(versions.versions).toHaveLength(1);
  });

  test('pages through a large run, newest first', async () => {
    const first = await admin<DryRun>(
      lr.baseUrl,
      'POST',
      '/v1/admin/tenants/dryrun/routing-rules/dry-run',
      { rules: potassiumAbove(4), limit: 2, pageSize: 1 },
      200,
    );
    // The newest is the 5.6, already reviewed under v1 and still reviewed under the draft.
    expect(first).toEqual({ evaluated: 1, nextOffset: 1, changes: [] });
    const second = await admin<DryRun>(
      lr.baseUrl,
      'POST',
      '/v1/admin/tenants/dryrun/routing-rules/dry-run',
      { rules: potassiumAbove(4), limit: 2, offset: 1, pageSize: 1 },
      200,
    );
    expect(second.nextOffset).toBeNull();
    expect(second.changes.map((c) => c.reportId)).toEqual([reportOf['4.1']]);
  });

  test('refuses a draft outside the whitelist with the failing path, and a run over more than 1000 results', async () => {
    const post = (body: unknown) =>
      fetch(`${lr.baseUrl}/v1/admin/tenants/dryrun/routing-rules/dry-run`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const invalid = await post({ rules: { reviewRequired: { and: [true, { log: 1 }] } }, limit: 10 });
    expect(invalid.status).toBe(400);
    const problem = (await invalid.json()) as { error: { details: { path: string }[] } };
    expect(problem.error.details[0]!.path).toBe('reviewRequired.and[1]');
    expect((await post({ rules: {}, limit: 1001 })).status).toBe(400);
    expect((await post({ rules: {}, limit: 10 })).status).toBe(200);
  });

  test('is described in the OpenAPI document', async () => {
    const spec = (await (await fetch(`${lr.baseUrl}/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const path = Object.keys(spec.paths).find((p) => p.endsWith('/tenants/{slug}/routing-rules/dry-run'));
    expect(path).toBeDefined();
    expect(spec.paths[path!]!.post).toBeDefined();
  });
});
