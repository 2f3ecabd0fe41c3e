import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { ORDER_ACTION, type Coding, type LabOrder, type PatientDemographics } from '../domain/model.ts';
import type { Order } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/**
 * Where an order is in its life (issue 4): ordered → partial → final → reviewed → delivered →
 * notified → closed; a correction reopens it (`corrected`), a cancellation closes it.
 */
export const ORDER_STATUS = {
  ordered: 'ordered',
  partial: 'partial',
  final: 'final',
  reviewed: 'reviewed',
  delivered: 'delivered',
  notified: 'notified',
  corrected: 'corrected',
  closed: 'closed',
  cancelled: 'cancelled',
} as const;
export type OrderStatus = (typeof ORDER_STATUS)[keyof typeof ORDER_STATUS];

/** Records the order the first time its workflow sees it; later calls return the stored order. */
export async function ensureOrder(
  db: Db,
  input: {
    tenantId: string;
    orderKey: string;
    workflowId: string;
    code?: Coding | null;
    orderedAt?: Date | null;
    dueAt?: Date | null;
  },
): Promise<Order> {
  const now = new Date();
  await db
    .insertInto('orders')
    .values({
      id: randomUUID(),
      tenant_id: input.tenantId,
      order_key: input.orderKey,
      workflow_id: input.workflowId,
      status: ORDER_STATUS.ordered,
      patient_id: null,
      code: input.code ? JSON.stringify(input.code) : null,
      ordered_at: input.orderedAt ?? now,
      due_at: input.dueAt ?? null,
      overdue_at: null,
      closed_at: null,
      history: JSON.stringify([{ status: ORDER_STATUS.ordered, at: now.toISOString() }]),
    })
    .onConflict((oc) => oc.columns(['tenant_id', 'order_key']).doNothing())
    .execute();
  return tenantScope(db, input.tenantId)
    .selectFrom('orders')
    .selectAll()
    .where('order_key', '=', input.orderKey)
    .executeTakeFirstOrThrow();
}

export async function findOrder(db: Db, tenantId: string, orderKey: string): Promise<Order | undefined> {
  return tenantScope(db, tenantId)
    .selectFrom('orders')
    .selectAll()
    .where('order_key', '=', orderKey)
    .executeTakeFirst();
}

/** Moves the order to `status`, appending to its history; the same status twice is recorded once. */
export async function setOrderStatus(
  db: Db,
  tenantId: string,
  orderKey: string,
  status: OrderStatus,
  detail?: string,
  extra: { patientId?: string | null; dueAt?: Date | null; overdueAt?: Date } = {},
): Promise<void> {
  const at = new Date();
  const entry = JSON.stringify([{ status, at: at.toISOString(), ...(detail ? { detail } : {}) }]);
  await tenantScope(db, tenantId)
    .updateTable('orders')
    .set({
      status,
      updated_at: at,
      history: sql`case when status = ${status} then history else history || ${entry}::jsonb end`,
      closed_at: status === ORDER_STATUS.closed || status === ORDER_STATUS.cancelled ? at : null,
      ...(extra.patientId ? { patient_id: extra.patientId } : {}),
      ...(extra.dueAt !== undefined ? { due_at: extra.dueAt } : {}),
      ...(extra.overdueAt ? { overdue_at: extra.overdueAt } : {}),
    })
    .where('order_key', '=', orderKey)
    .execute();
}

/**
 * Records an order as the placer sent it (ORM/OML, ServiceRequest), inside the intake transaction:
 * a new order is created with its due time; a repeated or updated one refreshes what the placer
 * said; a cancellation moves it to `cancelled` unless results have closed it already. Returns the
 * order's id and whether it is (now) cancelled.
 */
export async function recordPlacedOrder(
  db: Db,
  input: {
    tenantId: string;
    orderKey: string;
    workflowId: string;
    messageId: string;
    order: LabOrder;
    patient: PatientDemographics;
    dueAt: Date;
  },
): Promise<{ id: string; cancelled: boolean }> {
  const o = input.order;
  const now = new Date();
  const placed = {
    placer_order_number: o.placerOrderNumber,
    filler_order_number: o.fillerOrderNumber,
    priority: o.priority,
    ordering_provider: o.orderingProvider ? JSON.stringify(o.orderingProvider) : null,
    patient: JSON.stringify(input.patient),
    specimen: o.specimen ? JSON.stringify(o.specimen) : null,
    notes: o.notes?.length ? JSON.stringify(o.notes) : null,
    client_id: o.clientId ?? null,
    location_id: o.locationId ?? null,
    code: JSON.stringify(o.code),
  };
  const orderedAt = o.orderedAt ? new Date(o.orderedAt) : now;
  await db
    .insertInto('orders')
    .values({
      id: randomUUID(),
      tenant_id: input.tenantId,
      order_key: input.orderKey,
      workflow_id: input.workflowId,
      status: ORDER_STATUS.ordered,
      patient_id: null,
      ordered_at: orderedAt,
      due_at: input.dueAt,
      overdue_at: null,
      closed_at: null,
      history: JSON.stringify([
        { status: ORDER_STATUS.ordered, at: now.toISOString(), messageId: input.messageId },
      ]),
      message_id: input.messageId,
      ...placed,
    })
    .onConflict((oc) =>
      oc.columns(['tenant_id', 'order_key']).doUpdateSet({
        // A cancellation says only "cancel": what the placer said before stays.
        ...(o.action === ORDER_ACTION.cancel ? {} : placed),
        // The first message that placed the order stays its message; later ones are in the history.
        message_id: sql<string>`coalesce(orders.message_id, excluded.message_id)`,
        history:
          o.action === ORDER_ACTION.cancel
            ? sql`orders.history`
            : sql`orders.history || ${JSON.stringify([
                {
                  status: ORDER_STATUS.ordered,
                  at: now.toISOString(),
                  detail:
                    o.action === ORDER_ACTION.update
                      ? 'the placer changed the order'
                      : 'the placer sent the order again',
                  messageId: input.messageId,
                },
              ])}::jsonb`,
        updated_at: now,
      }),
    )
    .execute();
  if (o.action === ORDER_ACTION.cancel) {
    const entry = JSON.stringify([
      {
        status: ORDER_STATUS.cancelled,
        at: now.toISOString(),
        detail: 'the placer cancelled the order',
        messageId: input.messageId,
      },
    ]);
    await tenantScope(db, input.tenantId)
      .updateTable('orders')
      .set({
        status: ORDER_STATUS.cancelled,
        closed_at: now,
        updated_at: now,
        history: sql`history || ${entry}::jsonb`,
      })
      .where('order_key', '=', input.orderKey)
      .where('status', 'not in', [ORDER_STATUS.cancelled, ORDER_STATUS.closed])
      .execute();
  }
  const row = await tenantScope(db, input.tenantId)
    .selectFrom('orders')
    .select(['id', 'status'])
    .where('order_key', '=', input.orderKey)
    .executeTakeFirstOrThrow();
  return { id: row.id, cancelled: row.status === ORDER_STATUS.cancelled };
}
