import { randomUUID } from 'node:crypto';
import { TASK_STATUS, type TaskKind } from '../domain/tasks.ts';
import type { Task } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

export interface NewTask {
  tenantId: string;
  /** One task per reason and subject, e.g. `review/{reportId}`: opening it again finds the same task. */
  dedupeKey: string;
  kind: TaskKind;
  priority: number;
  title: string;
  reason: string;
  reportId?: string | null;
  criticalResultId?: string | null;
  orderKey?: string | null;
  workflowId: string;
  payload?: Record<string, unknown>;
}

/** Opens a task, or returns the one already opened under the same dedupe key. */
export async function openTask(db: Db, task: NewTask): Promise<{ task: Task; created: boolean }> {
  const inserted = await db
    .insertInto('tasks')
    .values({
      id: randomUUID(),
      tenant_id: task.tenantId,
      dedupe_key: task.dedupeKey,
      kind: task.kind,
      status: TASK_STATUS.open,
      priority: task.priority,
      title: task.title,
      reason: task.reason,
      report_id: task.reportId ?? null,
      critical_result_id: task.criticalResultId ?? null,
      order_key: task.orderKey ?? null,
      workflow_id: task.workflowId,
      payload: JSON.stringify(task.payload ?? {}),
      assignee: null,
      decision: null,
      claimed_at: null,
      completed_at: null,
      completed_by: null,
    })
    .onConflict((oc) => oc.columns(['tenant_id', 'dedupe_key']).doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted) return { task: inserted, created: true };
  const existing = await tenantScope(db, task.tenantId)
    .selectFrom('tasks')
    .selectAll()
    .where('dedupe_key', '=', task.dedupeKey)
    .executeTakeFirstOrThrow();
  return { task: existing, created: false };
}

export async function findTask(db: Db, tenantId: string, id: string): Promise<Task | undefined> {
  return tenantScope(db, tenantId).selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Locks the task row for a change (claim, reassign, complete) made in the caller's transaction. */
export async function lockTask(db: Db, tenantId: string, id: string): Promise<Task | undefined> {
  return tenantScope(db, tenantId)
    .selectFrom('tasks')
    .selectAll()
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
}

export interface TaskFilter {
  status?: string[];
  kind?: string[];
  priority?: number[];
  assignee?: string;
  reportId?: string;
  limit: number;
  offset?: number;
}

/** The tenant's tasks, most urgent first, then oldest first. */
export async function listTasks(db: Db, tenantId: string, filter: TaskFilter): Promise<Task[]> {
  let query = tenantScope(db, tenantId).selectFrom('tasks').selectAll();
  if (filter.status) query = query.where('status', 'in', filter.status);
  if (filter.kind) query = query.where('kind', 'in', filter.kind);
  if (filter.priority) query = query.where('priority', 'in', filter.priority);
  if (filter.assignee) query = query.where('assignee', '=', filter.assignee);
  if (filter.reportId) query = query.where('report_id', '=', filter.reportId);
  return query
    .orderBy('priority', 'desc')
    .orderBy('created_at')
    .orderBy('id')
    .limit(filter.limit)
    .offset(filter.offset ?? 0)
    .execute();
}

export async function updateTask(
  db: Db,
  tenantId: string,
  id: string,
  changes: Partial<{
    status: string;
    priority: number;
    assignee: string | null;
    decision: Record<string, unknown>;
    claimedAt: Date | null;
    completedAt: Date;
    completedBy: string;
  }>,
): Promise<Task> {
  return tenantScope(db, tenantId)
    .updateTable('tasks')
    .set({
      updated_at: new Date(),
      ...(changes.status !== undefined ? { status: changes.status } : {}),
      ...(changes.priority !== undefined ? { priority: changes.priority } : {}),
      ...(changes.assignee !== undefined ? { assignee: changes.assignee } : {}),
      ...(changes.decision !== undefined ? { decision: JSON.stringify(changes.decision) } : {}),
      ...(changes.claimedAt !== undefined ? { claimed_at: changes.claimedAt } : {}),
      ...(changes.completedAt !== undefined ? { completed_at: changes.completedAt } : {}),
      ...(changes.completedBy !== undefined ? { completed_by: changes.completedBy } : {}),
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}
