import { sql } from 'kysely';
import type { Db } from './tenant-scope.ts';

export interface InboxRow {
  report_id: string;
  tenant_id: string;
  workflow_id: string;
  order_key: string;
  message_id: string;
  attempts: number;
}

/** Records, in the intake transaction, that a report's workflow must be started or signalled. */
export async function insertInboxRow(
  db: Db,
  row: { reportId: string; tenantId: string; workflowId: string },
): Promise<void> {
  await db
    .insertInto('inbox')
    .values({ report_id: row.reportId, tenant_id: row.tenantId, workflow_id: row.workflowId })
    .execute();
}

/** Rows whose workflow start has not succeeded yet and that nobody has tried in `retryAfterSeconds`. */
export async function pendingInboxRows(
  db: Db,
  options: { limit: number; olderThanSeconds: number },
): Promise<InboxRow[]> {
  return db
    .selectFrom('inbox')
    .innerJoin('reports', 'reports.id', 'inbox.report_id')
    .select([
      'inbox.report_id',
      'inbox.tenant_id',
      'inbox.workflow_id',
      'inbox.attempts',
      'reports.order_key',
      'reports.message_id',
    ])
    .where('inbox.started_at', 'is', null)
    .where('inbox.created_at', '<=', sql<Date>`now() - make_interval(secs => ${options.olderThanSeconds})`)
    .orderBy('inbox.created_at')
    .limit(options.limit)
    .execute();
}

export async function markInboxStarted(db: Db, reportId: string): Promise<void> {
  await db.updateTable('inbox').set({ started_at: new Date() }).where('report_id', '=', reportId).execute();
}

export async function markInboxFailed(db: Db, reportId: string, error: string): Promise<void> {
  await db
    .updateTable('inbox')
    .set((eb) => ({ attempts: eb('attempts', '+', 1), last_error: error.slice(0, 1000) }))
    .where('report_id', '=', reportId)
    .execute();
}
