import { Hono } from 'hono';
import { ORDER_STATUS } from '../../db/orders.ts';
import type { Order } from '../../db/schema.ts';
import { tenantScope } from '../../db/tenant-scope.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { requireScope } from '../middleware/tenant-auth.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `GET /v1/t/{slug}/orders?status=&placerOrderNumber=&limit=` and `GET /orders/{id}`: the tenant's
 * orders as placed (ORM/OML, ServiceRequest) or opened by their first result, with their status
 * history (ordered → partial → final → … → closed, or cancelled).
 */
export function orderRoutes() {
  const app = new Hono<AppEnv>();
  app.use('*', requireScope('results:read'));
  app.get('/', async (c) => {
    const { db } = c.get('services');
    const tenant = c.get('tenant');
    const limit = c.req.query('limit') === undefined ? 50 : Number(c.req.query('limit'));
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw new AppError('invalid_request', 'limit must be a whole number from 1 to 500');
    const status = c.req.query('status');
    if (status !== undefined && !(Object.values(ORDER_STATUS) as string[]).includes(status))
      throw new AppError(
        'invalid_request',
        `status must be one of ${Object.values(ORDER_STATUS).join(', ')}`,
      );
    let query = tenantScope(db, tenant.id).selectFrom('orders').selectAll();
    if (status) query = query.where('status', '=', status);
    const placer = c.req.query('placerOrderNumber');
    if (placer) query = query.where('placer_order_number', '=', placer);
    const rows = await query.orderBy('created_at', 'desc').limit(limit).execute();
    return c.json({ orders: rows.map(orderView) });
  });
  app.get('/:id', async (c) => {
    const { db } = c.get('services');
    const tenant = c.get('tenant');
    const id = c.req.param('id');
    const order = UUID.test(id)
      ? await tenantScope(db, tenant.id)
          .selectFrom('orders')
          .selectAll()
          .where('id', '=', id)
          .executeTakeFirst()
      : undefined;
    if (!order) throw new AppError('not_found', `tenant ${tenant.slug} has no order ${id}`);
    return c.json(orderView(order));
  });
  return app;
}

function orderView(o: Order) {
  return {
    id: o.id,
    orderKey: o.order_key,
    placerOrderNumber: o.placer_order_number,
    fillerOrderNumber: o.filler_order_number,
    status: o.status,
    code: o.code,
    priority: o.priority,
    orderingProvider: o.ordering_provider,
    specimen: o.specimen,
    notes: o.notes ?? [],
    patientId: o.patient_id,
    orderedAt: o.ordered_at ? new Date(o.ordered_at).toISOString() : null,
    dueAt: o.due_at ? new Date(o.due_at).toISOString() : null,
    overdueAt: o.overdue_at ? new Date(o.overdue_at).toISOString() : null,
    closedAt: o.closed_at ? new Date(o.closed_at).toISOString() : null,
    history: o.history,
    workflowId: o.workflow_id,
    messageId: o.message_id,
  };
}
