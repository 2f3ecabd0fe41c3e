import { sql } from 'kysely';
import { appendAudit } from '../db/audit.ts';
import { requeueInboxRows, requeueOrderInboxRows, type InboxRow, type OrderInboxRow } from '../db/inbox.ts';
import type { Tenant } from '../db/schema.ts';
import { tenantScope } from '../db/tenant-scope.ts';
import { AppError } from './errors.ts';
import type { Services } from './env.ts';

export interface ReprocessOutcome {
  messageId: string;
  reportIds: string[];
  orderIds: string[];
  workflowIds: string[];
  /**
   * Temporal took every start now. When false, the starts are committed and the relay makes them
   * as soon as Temporal answers again.
   */
  started: boolean;
}

/**
 * Processes a stored message again, on a person's explicit request: its reports' and orders' inbox
 * rows are made due again and the re-processing is audited in one transaction, then their order
 * workflows are started or signalled through the same starter intake and the relay use. Nothing is
 * parsed or stored again, so no record is duplicated: the workflow ids are the message's own; a
 * running workflow takes again a report that failed for good, and leaves one in progress or done as
 * it is; a new run finds a released report already released (and a duplicate already marked).
 * Shared by the admin API and the console.
 */
export async function reprocessMessage(
  services: Pick<Services, 'db' | 'starter'>,
  tenant: Tenant,
  messageId: string,
  actor: string,
  reason: string | null,
): Promise<ReprocessOutcome> {
  const { db, starter } = services;
  const plan = await db.transaction().execute(async (trx) => {
    const scope = tenantScope(trx, tenant.id);
    const message = await scope
      .selectFrom('messages')
      .select(['id', 'status'])
      .where('id', '=', messageId)
      .forUpdate()
      .executeTakeFirst();
    if (!message) throw new AppError('not_found', `tenant ${tenant.slug} has no message ${messageId}`);
    const reports = await scope
      .selectFrom('reports')
      .select(['id', 'workflow_id', 'order_key'])
      .where('message_id', '=', messageId)
      .orderBy('created_at')
      .execute();
    const orders = await scope
      .selectFrom('orders')
      .innerJoin('order_inbox', 'order_inbox.order_id', 'orders.id')
      .select([
        'orders.id',
        'orders.workflow_id',
        'orders.order_key',
        'orders.status',
        'order_inbox.message_id',
      ])
      .where((eb) =>
        eb.or([
          eb('orders.message_id', '=', messageId),
          sql<boolean>`orders.history @> ${JSON.stringify([{ messageId }])}::jsonb`,
        ]),
      )
      .orderBy('orders.created_at')
      .execute();
    if (reports.length === 0 && orders.length === 0)
      throw new AppError(
        'conflict',
        `message ${messageId} stored no results or orders: there is nothing to process again`,
      );
    await requeueInboxRows(
      trx,
      reports.map((r) => ({ reportId: r.id, tenantId: tenant.id, workflowId: r.workflow_id })),
    );
    await requeueOrderInboxRows(
      trx,
      tenant.id,
      orders.map((o) => o.id),
    );
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'message.reprocessed',
      subject: `message/${messageId}`,
      details: {
        reason,
        previousStatus: message.status,
        reports: reports.map((r) => r.id),
        orders: orders.map((o) => o.id),
      },
    });
    const rows: InboxRow[] = reports.map((r) => ({
      report_id: r.id,
      tenant_id: tenant.id,
      workflow_id: r.workflow_id,
      order_key: r.order_key,
      message_id: messageId,
      attempts: 0,
    }));
    const orderRows: OrderInboxRow[] = orders.map((o) => ({
      order_id: o.id,
      tenant_id: tenant.id,
      workflow_id: o.workflow_id,
      order_key: o.order_key,
      message_id: o.message_id,
      attempts: 0,
      cancelled: o.status === 'cancelled',
    }));
    return { rows, orderRows };
  });

  // After the commit, never before; orders first, as intake does.
  await starter.startOrders(plan.orderRows, 'reprocess');
  await starter.start(plan.rows, 'reprocess');
  const reportIds = plan.rows.map((r) => r.report_id);
  const orderIds = plan.orderRows.map((o) => o.order_id);
  const waiting = await Promise.all([
    reportIds.length === 0
      ? []
      : tenantScope(db, tenant.id)
          .selectFrom('inbox')
          .select('report_id')
          .where('report_id', 'in', reportIds)
          .where('started_at', 'is', null)
          .execute(),
    orderIds.length === 0
      ? []
      : tenantScope(db, tenant.id)
          .selectFrom('order_inbox')
          .select('order_id')
          .where('order_id', 'in', orderIds)
          .where('started_at', 'is', null)
          .execute(),
  ]);
  return {
    messageId,
    reportIds,
    orderIds,
    workflowIds: [...new Set([...plan.orderRows, ...plan.rows].map((r) => r.workflow_id))],
    started: waiting.every((w) => w.length === 0),
  };
}
