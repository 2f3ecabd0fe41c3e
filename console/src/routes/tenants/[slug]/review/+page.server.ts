import { fail, redirect } from '@sveltejs/kit';
import { claimTask } from '../../../../../../api/lifecycle.ts';
import { actorOf, tenantFor } from '../../../../lib/server/access.ts';
import {
  assigneeOf,
  patientsOfReports,
  queueFilter,
  queueTasks,
  refusal,
  TASK_KINDS,
} from '../../../../lib/server/review.ts';
import { services } from '../../../../lib/server/services.ts';
import { DONE_MESSAGE } from '../../../../lib/task-labels.ts';
import type { Actions, PageServerLoad } from './$types';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The review queue: the tenant's open and claimed tasks, most urgent first, then oldest. */
export const load = (async ({ locals, params, url }) => {
  const { tenant, user } = await tenantFor(locals, params.slug, 'review');
  const { db } = services();
  const filter = queueFilter(url);
  const tasks = await queueTasks(db, tenant.id, user, filter);
  const patients = await patientsOfReports(db, tenant.id, [
    ...new Set(tasks.flatMap((t) => (t.report_id ? [t.report_id] : []))),
  ]);
  const now = Date.now();
  const done = url.searchParams.get('done');
  return {
    filter,
    kinds: TASK_KINDS,
    me: assigneeOf(user),
    done: done && done in DONE_MESSAGE ? done : null,
    tasks: tasks.map((t) => ({
      id: t.id,
      kind: t.kind,
      status: t.status,
      priority: t.priority,
      title: t.title,
      reason: t.reason,
      patient: t.report_id ? (patients.get(t.report_id) ?? null) : null,
      createdAt: new Date(t.created_at).toISOString(),
      waitedMinutes: Math.floor((now - new Date(t.created_at).getTime()) / 60_000),
      assignee: t.assignee,
    })),
  };
}) satisfies PageServerLoad;

export const actions = {
  /** Claims a task and opens it; the reviewer's role is checked again here, whatever the page showed. */
  claim: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'review');
    const taskId = String((await request.formData()).get('taskId') ?? '');
    if (!UUID.test(taskId)) return fail(400, { action: 'claim', message: 'No task was named.' });
    try {
      await claimTask(services().app, tenant, taskId, actorOf(user));
    } catch (e) {
      return refusal('claim', e, { taskId });
    }
    redirect(303, `/tenants/${params.slug}/review/${taskId}`);
  },
} satisfies Actions;
