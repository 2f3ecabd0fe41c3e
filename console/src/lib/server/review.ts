import { fail } from '@sveltejs/kit';
import { AppError } from '../../../../api/errors.ts';
import { personOf } from '../../../../api/lifecycle.ts';
import type { ConsoleUser } from '../../../../api/console-auth.ts';
import type { Task } from '../../../../db/schema.ts';
import { listTasks } from '../../../../db/tasks.ts';
import { tenantScope, type Db } from '../../../../db/tenant-scope.ts';
import type { PatientDemographics } from '../../../../domain/model.ts';
import { TASK_KIND, TASK_STATUS } from '../../../../domain/tasks.ts';
import { patientName } from '../result-flags.ts';
import { actorOf } from './access.ts';

// What the review queue and a task's page read: the tenant's open and claimed tasks, most urgent
// first, then oldest, exactly as the tasks API lists them (db/tasks.ts listTasks).

export const QUEUE_STATUSES = ['open', 'claimed', 'mine'] as const;
export type QueueStatus = (typeof QUEUE_STATUSES)[number];
export const TASK_KINDS: string[] = Object.values(TASK_KIND);
const QUEUE_LIMIT = 500;

/** Who a console user is on a task they claim (the assignee), as api/lifecycle.ts names them. */
export function assigneeOf(user: ConsoleUser): string {
  return personOf(actorOf(user));
}

export interface QueueFilter {
  kind: string | null;
  priority: number | null;
  status: QueueStatus | null;
}

/** The queue's filter from the page's query string; anything unknown is no filter. */
export function queueFilter(url: URL): QueueFilter {
  const kind = url.searchParams.get('kind');
  const priority = url.searchParams.get('priority');
  const status = url.searchParams.get('status');
  return {
    kind: kind && TASK_KINDS.includes(kind) ? kind : null,
    priority: priority && /^[012]$/.test(priority) ? Number(priority) : null,
    status: QUEUE_STATUSES.find((s) => s === status) ?? null,
  };
}

/** The tasks waiting for a person, filtered, most urgent first and then oldest. */
export async function queueTasks(
  db: Db,
  tenantId: string,
  user: ConsoleUser,
  filter: QueueFilter,
): Promise<Task[]> {
  const status =
    filter.status === 'open'
      ? [TASK_STATUS.open]
      : filter.status === null
        ? [TASK_STATUS.open, TASK_STATUS.claimed]
        : [TASK_STATUS.claimed];
  return listTasks(db, tenantId, {
    status,
    ...(filter.kind ? { kind: [filter.kind] } : {}),
    ...(filter.priority !== null ? { priority: [filter.priority] } : {}),
    ...(filter.status === 'mine' ? { assignee: assigneeOf(user) } : {}),
    limit: QUEUE_LIMIT,
  });
}

/** The patient each task is about, by report: the matched patient's name, or as the sender wrote it. */
export async function patientsOfReports(
  db: Db,
  tenantId: string,
  reportIds: string[],
): Promise<Map<string, { name: string; identifier: string | null; birthDate: string | null }>> {
  const found = new Map<string, { name: string; identifier: string | null; birthDate: string | null }>();
  if (reportIds.length === 0) return found;
  const rows = await tenantScope(db, tenantId)
    .selectFrom('reports')
    .leftJoin('patients', 'patients.id', 'reports.patient_id')
    .select([
      'reports.id as id',
      'reports.patient as sent',
      'patients.family_name as family',
      'patients.given_names as given',
      'patients.birth_date as birthDate',
    ])
    .where('reports.id', 'in', reportIds)
    .execute();
  for (const r of rows) {
    const sent = r.sent as PatientDemographics;
    found.set(r.id, {
      name:
        r.family !== null || r.given
          ? patientName(r.family, (r.given as string[] | null) ?? [])
          : patientName(sent.familyName, sent.givenNames),
      identifier: sent.identifiers[0]?.value ?? null,
      birthDate: r.birthDate ?? sent.birthDate,
    });
  }
  return found;
}

/**
 * A lifecycle call's refusal (409 claimed by someone else, 400 a decision the task does not take)
 * as the form's answer; anything else is not the person's doing and is thrown on.
 */
export function refusal(action: string, e: unknown, extra: Record<string, unknown> = {}) {
  if (!(e instanceof AppError)) throw e;
  return fail(e.status, { action, message: e.message, ...extra });
}
