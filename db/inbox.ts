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

/** Records, in the intake transaction, that reports' workflows must be started or signalled. */
export async function insertInboxRows(
  db: Db,
  rows: { reportId: string; tenantId: string; workflowId: string }[],
): Promise<void> {
  for (let start = 0; start < rows.length; start += 5000) {
    await db
      .insertInto('inbox')
      .values(
        rows
          .slice(start, start + 5000)
          .map((row) => ({ report_id: row.reportId, tenant_id: row.tenantId, workflow_id: row.workflowId })),
      )
      .execute();
  }
}

/**
 * Claims up to `limit` rows whose workflow has not been started and whose next attempt is due:
 * their next attempt moves `claimSeconds` ahead in the same statement, and rows another relay is
 * claiming are skipped, so no row is started by two relays at once.
 */
export async function claimDueInboxRows(
  db: Db,
  options: { limit: number; claimSeconds: number },
): Promise<InboxRow[]> {
  const claimed = await sql<{ report_id: string }>`
    update inbox set next_attempt_at = now() + make_interval(secs => ${options.claimSeconds})
    where report_id in (
      select report_id from inbox
      where started_at is null and next_attempt_at <= now()
      order by next_attempt_at
      limit ${options.limit}
      for update skip locked
    )
    returning report_id`.execute(db);
  const ids = claimed.rows.map((r) => r.report_id);
  if (ids.length === 0) return [];
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
    .where('inbox.report_id', 'in', ids)
    .orderBy('inbox.created_at')
    .execute();
}

export async function markInboxStarted(db: Db, reportId: string): Promise<void> {
  await db.updateTable('inbox').set({ started_at: new Date() }).where('report_id', '=', reportId).execute();
}

/** Records a failed start; the next attempt backs off (2, 4, 8 ... up to 30 seconds). */
export async function markInboxFailed(db: Db, reportId: string, error: string): Promise<void> {
  await db
    .updateTable('inbox')
    .set((eb) => ({
      attempts: eb('attempts', '+', 1),
      last_error: error.slice(0, 1000),
      next_attempt_at: sql<Date>`now() + make_interval(secs => least(30, power(2, attempts + 1)))`,
    }))
    .where('report_id', '=', reportId)
    .execute();
}

export interface OrderInboxRow {
  order_id: string;
  tenant_id: string;
  workflow_id: string;
  order_key: string;
  message_id: string;
  attempts: number;
  /** The order is cancelled: its workflow is told so. */
  cancelled: boolean;
}

/** Records, in the intake transaction, that a placed order's workflow must be started (or told). */
export async function insertOrderInboxRow(
  db: Db,
  row: { orderId: string; tenantId: string; workflowId: string; orderKey: string; messageId: string },
): Promise<void> {
  await db
    .insertInto('order_inbox')
    .values({
      order_id: row.orderId,
      tenant_id: row.tenantId,
      workflow_id: row.workflowId,
      order_key: row.orderKey,
      message_id: row.messageId,
    })
    // The same order placed again (an update, a cancel): its start is due again.
    .onConflict((oc) =>
      oc.column('order_id').doUpdateSet({
        message_id: row.messageId,
        started_at: null,
        attempts: 0,
        next_attempt_at: sql<Date>`now() + interval '30 seconds'`,
      }),
    )
    .execute();
}

/** Like {@link claimDueInboxRows}, for placed orders. */
export async function claimDueOrderInboxRows(
  db: Db,
  options: { limit: number; claimSeconds: number },
): Promise<OrderInboxRow[]> {
  const claimed = await sql<OrderInboxRow>`
    update order_inbox set next_attempt_at = now() + make_interval(secs => ${options.claimSeconds})
    where order_id in (
      select order_id from order_inbox
      where started_at is null and next_attempt_at <= now()
      order by next_attempt_at
      limit ${options.limit}
      for update skip locked
    )
    returning order_id, tenant_id, workflow_id, order_key, message_id, attempts,
      coalesce((select o.status = 'cancelled' from orders o where o.id = order_inbox.order_id), false) as cancelled`.execute(
    db,
  );
  return claimed.rows;
}

export async function markOrderInboxStarted(db: Db, orderId: string): Promise<void> {
  await db
    .updateTable('order_inbox')
    .set({ started_at: new Date() })
    .where('order_id', '=', orderId)
    .execute();
}

export async function markOrderInboxFailed(db: Db, orderId: string, error: string): Promise<void> {
  await db
    .updateTable('order_inbox')
    .set((eb) => ({
      attempts: eb('attempts', '+', 1),
      last_error: error.slice(0, 1000),
      next_attempt_at: sql<Date>`now() + make_interval(secs => least(30, power(2, attempts + 1)))`,
    }))
    .where('order_id', '=', orderId)
    .execute();
}

/**
 * Makes reports' workflow starts due again (a person re-processing their message): a row is
 * created where none is left, and an existing one forgets that it was started. Due in 30 s, like
 * intake's, so the relay takes over should the immediate start fail.
 */
export async function requeueInboxRows(
  db: Db,
  rows: { reportId: string; tenantId: string; workflowId: string }[],
): Promise<void> {
  if (rows.length === 0) return;
  await db
    .insertInto('inbox')
    .values(rows.map((r) => ({ report_id: r.reportId, tenant_id: r.tenantId, workflow_id: r.workflowId })))
    .onConflict((oc) =>
      oc.column('report_id').doUpdateSet({
        started_at: null,
        attempts: 0,
        last_error: null,
        next_attempt_at: sql<Date>`now() + interval '30 seconds'`,
      }),
    )
    .execute();
}

/** Like {@link requeueInboxRows}, for placed orders that already have their inbox row. */
export async function requeueOrderInboxRows(db: Db, tenantId: string, orderIds: string[]): Promise<void> {
  if (orderIds.length === 0) return;
  await db
    .updateTable('order_inbox')
    .set({
      started_at: null,
      attempts: 0,
      last_error: null,
      next_attempt_at: sql<Date>`now() + interval '30 seconds'`,
    })
    .where('tenant_id', '=', tenantId)
    .where('order_id', 'in', orderIds)
    .execute();
}
