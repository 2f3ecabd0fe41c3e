import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { listCriticalAttempts, listCriticalResults, findCriticalResult } from '../../db/critical-results.ts';
import type { CriticalAttempt, CriticalResult, Task } from '../../db/schema.ts';
import { findObservationsOfReports, findReport } from '../../db/results.ts';
import { findTask, listTasks } from '../../db/tasks.ts';
import { CRITICAL_STATUS, PATIENT_CONTACT_OUTCOME } from '../../domain/escalation.ts';
import { TASK_KIND, TASK_STATUS } from '../../domain/tasks.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import {
  acknowledgeCriticalResultDirectly,
  addInterpretation,
  claimTask,
  completeTask,
  reassignTask,
  recordPatientContact,
  type TaskDecision,
} from '../lifecycle.ts';
import { requireScope } from '../middleware/tenant-auth.ts';
import { validationHook } from '../validation.ts';
import { ErrorOut, json } from './openapi-common.ts';

const errors = {
  400: { description: 'Invalid request', ...json(ErrorOut) },
  403: { description: 'Missing scope or another tenant', ...json(ErrorOut) },
  404: { description: 'Not found', ...json(ErrorOut) },
};
const Id = z.object({ slug: z.string(), id: z.string().uuid() });
/** Who acts, when a system acts for a person: recorded in the audit trail beside the credential. */
const By = z.string().trim().min(1).max(200).optional().openapi({
  description: 'The person acting (e-mail or name), recorded in the audit trail with the API key.',
});

const TaskOut = z
  .object({
    id: z.string(),
    kind: z.enum(Object.values(TASK_KIND) as [string, ...string[]]),
    status: z.enum(Object.values(TASK_STATUS) as [string, ...string[]]),
    priority: z.number().openapi({ description: '0 routine, 1 urgent, 2 stat; rises while the task waits.' }),
    title: z.string(),
    reason: z.string(),
    reportId: z.string().nullable(),
    criticalResultId: z.string().nullable(),
    orderKey: z.string().nullable(),
    workflowId: z.string(),
    payload: z.record(z.string(), z.unknown()),
    assignee: z.string().nullable(),
    decision: z.record(z.string(), z.unknown()).nullable(),
    createdAt: z.string(),
    completedAt: z.string().nullable(),
    completedBy: z.string().nullable(),
  })
  .openapi('Task');

const Correction = z
  .object({
    observationId: z.string().uuid(),
    value: z.union([z.number(), z.string().trim().min(1).max(1000)]),
    unit: z.string().trim().max(50).nullable().optional(),
  })
  .strict();
const CompleteBody = z
  .discriminatedUnion(
    'decision',
    [
      z
        .object({
          decision: z.literal('approve'),
          interpretation: z.string().max(10_000).nullable().optional(),
          comment: z.string().max(2000).nullable().optional(),
          by: By,
        })
        .strict(),
      z
        .object({
          decision: z.literal('correct'),
          corrections: z.array(Correction).min(1).max(500),
          interpretation: z.string().max(10_000).nullable().optional(),
          comment: z.string().max(2000).nullable().optional(),
          by: By,
        })
        .strict(),
      z
        .object({
          decision: z.literal('reject'),
          comment: z.string().max(2000).nullable().optional(),
          by: By,
        })
        .strict(),
      z
        .object({
          decision: z.literal('match'),
          patientId: z.string().uuid(),
          comment: z.string().max(2000).nullable().optional(),
          by: By,
        })
        .strict(),
      z
        .object({ decision: z.literal('new'), comment: z.string().max(2000).nullable().optional(), by: By })
        .strict(),
      z
        .object({
          decision: z.literal('acknowledge'),
          comment: z.string().max(2000).nullable().optional(),
          by: By,
        })
        .strict(),
    ],
    {
      error: (issue) =>
        issue.code === 'invalid_union'
          ? 'decision is required: approve, correct or reject (review_result); match, new or reject (match_patient); acknowledge (order_overdue, delivery_failed)'
          : undefined,
    },
  )
  .openapi('TaskCompletion', {
    description:
      'review_result: approve | correct (with corrections) | reject; match_patient: match (with patientId) | new | reject; order_overdue and delivery_failed: acknowledge.',
  });

const CriticalOut = z
  .object({
    id: z.string(),
    status: z.enum(Object.values(CRITICAL_STATUS) as [string, ...string[]]),
    step: z.number(),
    finding: z.string(),
    reportId: z.string(),
    observationId: z.string(),
    patientId: z.string().nullable(),
    workflowId: z.string(),
    identifiedAt: z.string(),
    communicator: z.string().nullable(),
    recipient: z.string().nullable(),
    receivedAt: z.string().nullable(),
    method: z.string().nullable(),
    patientContact: z.any().nullable(),
    closedAt: z.string().nullable(),
    attempts: z
      .array(
        z.object({
          target: z.string(),
          step: z.number(),
          role: z.string().nullable(),
          recipient: z.string().nullable(),
          channel: z.string(),
          outcome: z.string(),
          detail: z.string().nullable(),
          actor: z.string(),
          at: z.string(),
        }),
      )
      .optional(),
  })
  .openapi('CriticalResult');

function actorOf(credentialId: string, by: string | undefined): string {
  return by ? `${by} (credential:${credentialId})` : `credential:${credentialId}`;
}

/**
 * Human tasks (`/tasks`), the critical board (`/critical-results`) and interpretations
 * (`/reports/{id}/interpretation`): how people, through an EHR or the console, act on workflows.
 */
export function taskRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('/tasks/*', requireScope('tasks:write'));
  app.use('/tasks', requireScope('tasks:write'));
  app.use('/critical-results/:id/patient-contacts', requireScope('tasks:write'));
  app.use('/critical-results/:id/acknowledge', requireScope('tasks:write'));
  app.use('/critical-results', requireScope('results:read'));
  app.use('/reports/*', requireScope('results:write'));

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks',
      summary: 'List tasks, most urgent first',
      request: {
        params: z.object({ slug: z.string() }),
        query: z.object({
          status: z.enum(Object.values(TASK_STATUS) as [string, ...string[]]).optional(),
          kind: z.enum(Object.values(TASK_KIND) as [string, ...string[]]).optional(),
          assignee: z.string().optional(),
          reportId: z.string().uuid().optional(),
          limit: z.coerce.number().int().min(1).max(500).default(50),
        }),
      },
      responses: { 200: { description: 'Tasks', ...json(z.object({ tasks: z.array(TaskOut) })) }, ...errors },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const tasks = await listTasks(c.get('services').db, c.get('tenant').id, {
        ...(q.status ? { status: [q.status] } : {}),
        ...(q.kind ? { kind: [q.kind] } : {}),
        ...(q.assignee ? { assignee: q.assignee } : {}),
        ...(q.reportId ? { reportId: q.reportId } : {}),
        limit: q.limit,
      });
      return c.json({ tasks: tasks.map(taskOut) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks/{id}',
      summary: 'Read a task',
      request: { params: Id },
      responses: {
        200: {
          description: 'The task, with the report and results it is about (values, ranges, flags)',
          ...json(TaskOut.extend({ report: z.any().nullable() })),
        },
        ...errors,
      },
    }),
    async (c) => {
      const tenant = c.get('tenant');
      const { db } = c.get('services');
      const task = await findTask(db, tenant.id, c.req.valid('param').id);
      if (!task)
        throw new AppError('not_found', `tenant ${tenant.slug} has no task ${c.req.valid('param').id}`);
      // What the reviewer decides on: the report as received and flagged (not yet in the result API).
      const report = task.report_id ? await findReport(db, tenant.id, task.report_id) : undefined;
      const observations = report ? await findObservationsOfReports(db, tenant.id, [report.id]) : [];
      return c.json(
        {
          ...taskOut(task),
          report: report
            ? {
                id: report.id,
                code: report.code,
                status: report.status,
                stage: report.stage,
                patient: report.patient,
                patientId: report.patient_id,
                observations: observations.map((o) => ({
                  id: o.id,
                  code: o.code,
                  valueType: o.value_type,
                  value: o.value_numeric,
                  text: o.value_text,
                  unit: o.unit,
                  referenceRange: o.reference_range,
                  interpretation: o.interpretation,
                  critical: o.critical,
                  flagReasons: o.flag_reasons,
                  delta: o.delta,
                  correctedFrom: o.corrected_from,
                })),
              }
            : null,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tasks/{id}/claim',
      summary: 'Claim a task',
      request: { params: Id, body: { required: false, ...json(z.object({ by: By }).strict()) } },
      responses: {
        200: { description: 'Claimed', ...json(TaskOut) },
        409: { description: 'Taken or closed', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const parsed = z
        .object({ by: By })
        .strict()
        .safeParse(optionalJson<unknown>(c.get('rawBody')));
      if (!parsed.success)
        throw new AppError('invalid_request', 'the body may only name who claims the task: {"by": "..."}', [
          { path: 'by', message: parsed.error.issues[0]?.message ?? 'invalid' },
        ]);
      const body = parsed.data;
      const actor = actorOf(c.get('credential').id, body.by);
      return c.json(
        taskOut(await claimTask(c.get('services'), c.get('tenant'), c.req.valid('param').id, actor)),
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tasks/{id}/reassign',
      summary: 'Reassign a task (assignee null: back to the queue)',
      request: {
        params: Id,
        body: {
          required: true,
          ...json(z.object({ assignee: z.string().trim().min(1).max(200).nullable(), by: By }).strict()),
        },
      },
      responses: {
        200: { description: 'Reassigned', ...json(TaskOut) },
        409: { description: 'Closed', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const actor = actorOf(c.get('credential').id, body.by);
      const task = await reassignTask(
        c.get('services'),
        c.get('tenant'),
        c.req.valid('param').id,
        body.assignee,
        actor,
      );
      return c.json(taskOut(task), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tasks/{id}/complete',
      summary: 'Complete a task with a decision',
      request: { params: Id, body: { required: true, ...json(CompleteBody) } },
      responses: {
        200: { description: 'Completed', ...json(TaskOut) },
        409: { description: 'Already closed', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { by, ...decision } = c.req.valid('json');
      const actor = actorOf(c.get('credential').id, by);
      const task = await completeTask(
        c.get('services'),
        c.get('tenant'),
        c.req.valid('param').id,
        decision as TaskDecision,
        actor,
      );
      return c.json(taskOut(task), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/critical-results',
      summary: 'The critical board: critical results and where each is in its loop',
      request: {
        params: z.object({ slug: z.string() }),
        query: z.object({
          status: z.enum(Object.values(CRITICAL_STATUS) as [string, ...string[]]).optional(),
          open: z
            .enum(['true', 'false'])
            .optional()
            .openapi({ description: 'true: everything not yet closed.' }),
          limit: z.coerce.number().int().min(1).max(500).default(50),
        }),
      },
      responses: {
        200: {
          description: 'Critical results',
          ...json(z.object({ criticalResults: z.array(CriticalOut) })),
        },
        ...errors,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const status = q.status
        ? [q.status]
        : q.open === 'true'
          ? [CRITICAL_STATUS.notifying, CRITICAL_STATUS.unacknowledged, CRITICAL_STATUS.acknowledged]
          : undefined;
      const rows = await listCriticalResults(c.get('services').db, c.get('tenant').id, {
        ...(status ? { status } : {}),
        limit: q.limit,
      });
      return c.json({ criticalResults: rows.map((r) => criticalOut(r)) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/critical-results/{id}',
      summary: 'A critical result with every notification and patient contact attempt',
      request: { params: Id },
      responses: { 200: { description: 'The critical result', ...json(CriticalOut) }, ...errors },
    }),
    async (c) => {
      const tenant = c.get('tenant');
      if (!c.get('credential').scopes.includes('results:read'))
        throw new AppError('forbidden', 'this API key lacks the results:read scope');
      const { db } = c.get('services');
      const row = await findCriticalResult(db, tenant.id, c.req.valid('param').id);
      if (!row)
        throw new AppError(
          'not_found',
          `tenant ${tenant.slug} has no critical result ${c.req.valid('param').id}`,
        );
      return c.json(criticalOut(row, await listCriticalAttempts(db, tenant.id, row.id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/critical-results/{id}/patient-contacts',
      summary: 'Record an attempt to contact the patient about a critical result',
      request: {
        params: Id,
        body: {
          required: true,
          ...json(
            z
              .object({
                method: z.enum(['phone', 'email', 'sms', 'letter', 'in_person', 'portal']),
                outcome: z.enum(Object.values(PATIENT_CONTACT_OUTCOME) as [string, ...string[]]),
                note: z
                  .string()
                  .max(2000)
                  .nullable()
                  .optional()
                  .openapi({ description: 'Action taken, appointment booked.' }),
                by: By,
              })
              .strict(),
          ),
        },
      },
      responses: {
        204: { description: 'Recorded' },
        409: { description: 'Not acknowledged yet, or closed', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      await recordPatientContact(
        c.get('services'),
        c.get('tenant'),
        c.req.valid('param').id,
        { method: body.method, outcome: body.outcome as never, note: body.note ?? null },
        actorOf(c.get('credential').id, body.by),
      );
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/critical-results/{id}/acknowledge',
      summary: "Record a provider's acknowledgement given by phone or in person, with read-back",
      request: {
        params: Id,
        body: {
          required: true,
          ...json(
            z
              .object({
                recipient: z
                  .string()
                  .trim()
                  .min(1)
                  .max(200)
                  .openapi({ description: 'Who received it (name or e-mail).' }),
                channel: z.enum(['phone', 'in_person', 'secure_message']),
                value: z.string().trim().min(1).max(200),
                patientIdentifier: z.string().trim().min(1).max(200),
                by: By,
              })
              .strict(),
          ),
        },
      },
      responses: {
        200: {
          description: 'Acknowledged',
          ...json(z.object({ criticalResultId: z.string(), acknowledgedAt: z.string() })),
        },
        409: { description: 'Already acknowledged', ...json(ErrorOut) },
        422: { description: 'The read-back did not match', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { by, ...input } = c.req.valid('json');
      const result = await acknowledgeCriticalResultDirectly(
        c.get('services'),
        c.get('tenant'),
        c.req.valid('param').id,
        input,
        actorOf(c.get('credential').id, by),
      );
      return c.json(result, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/reports/{id}/interpretation',
      summary: "Add a provider's interpretation to a released report (the patient is told)",
      request: {
        params: Id,
        body: {
          required: true,
          ...json(z.object({ text: z.string().trim().min(1).max(10_000), by: By }).strict()),
        },
      },
      responses: {
        204: { description: 'Added' },
        409: { description: 'Not released', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      await addInterpretation(
        c.get('services'),
        c.get('tenant'),
        c.req.valid('param').id,
        body.text,
        actorOf(c.get('credential').id, body.by),
      );
      return c.body(null, 204);
    },
  );

  return app;
}

/** The body the auth middleware read (and checked the signature of), as JSON; none is `{}`. */
function optionalJson<T>(raw: Uint8Array | undefined): T {
  const text = raw ? new TextDecoder().decode(raw) : '';
  if (!text.trim()) return {} as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new AppError('invalid_request', 'the body is not JSON');
  }
}

export function taskOut(t: Task) {
  return {
    id: t.id,
    kind: t.kind,
    status: t.status,
    priority: t.priority,
    title: t.title,
    reason: t.reason,
    reportId: t.report_id,
    criticalResultId: t.critical_result_id,
    orderKey: t.order_key,
    workflowId: t.workflow_id,
    payload: t.payload,
    assignee: t.assignee,
    decision: t.decision,
    createdAt: t.created_at.toISOString(),
    completedAt: t.completed_at?.toISOString() ?? null,
    completedBy: t.completed_by,
  };
}

export function criticalOut(r: CriticalResult, attempts?: CriticalAttempt[]) {
  return {
    id: r.id,
    status: r.status,
    step: r.step,
    finding: r.finding,
    reportId: r.report_id,
    observationId: r.observation_id,
    patientId: r.patient_id,
    workflowId: r.workflow_id,
    identifiedAt: r.identified_at.toISOString(),
    communicator: r.communicator,
    recipient: r.recipient,
    receivedAt: r.received_at?.toISOString() ?? null,
    method: r.method,
    patientContact: r.patient_contact,
    closedAt: r.closed_at?.toISOString() ?? null,
    ...(attempts
      ? {
          attempts: attempts.map((a) => ({
            target: a.target,
            step: a.step,
            role: a.role,
            recipient: a.recipient,
            channel: a.channel,
            outcome: a.outcome,
            detail: a.detail,
            actor: a.actor,
            at: a.at.toISOString(),
          })),
        }
      : {}),
  };
}
