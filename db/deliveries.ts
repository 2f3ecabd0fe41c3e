import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Delivery } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/** Where one report's delivery to one connection stands. */
export const DELIVERY_STATUS = {
  pending: 'pending',
  delivering: 'delivering',
  delivered: 'delivered',
  deadLetter: 'dead_letter',
} as const;
export type DeliveryStatus = (typeof DELIVERY_STATUS)[keyof typeof DELIVERY_STATUS];

export interface PlannedDelivery {
  tenantId: string;
  reportId: string;
  connectionId: string;
  environment: string;
  critical: boolean;
  /** Set when the delivery must not be attempted (e.g. sandbox result, production connection). */
  refusal?: string;
}

/**
 * Records the deliveries of a released report, one per connection; a report planned again (an
 * activity retried, a correction released) finds its rows already there and they are returned as
 * they are. A refused delivery is stored dead-lettered at once with its reason.
 */
export async function planDeliveries(db: Db, planned: PlannedDelivery[]): Promise<Delivery[]> {
  if (planned.length === 0) return [];
  const now = new Date();
  await db
    .insertInto('deliveries')
    .values(
      planned.map((p) => ({
        id: randomUUID(),
        tenant_id: p.tenantId,
        report_id: p.reportId,
        connection_id: p.connectionId,
        environment: p.environment,
        status: p.refusal ? DELIVERY_STATUS.deadLetter : DELIVERY_STATUS.pending,
        critical: p.critical,
        workflow_id: null,
        payload: null,
        response: null,
        remote_reference: null,
        last_error: p.refusal ?? null,
        dead_letter_reason: p.refusal ?? null,
        delivered_at: null,
        dead_lettered_at: p.refusal ? now : null,
      })),
    )
    .onConflict((oc) => oc.columns(['report_id', 'connection_id']).doNothing())
    .execute();
  const tenantId = planned[0]!.tenantId;
  return tenantScope(db, tenantId)
    .selectFrom('deliveries')
    .selectAll()
    .where('report_id', '=', planned[0]!.reportId)
    .where(
      'connection_id',
      'in',
      planned.map((p) => p.connectionId),
    )
    .orderBy('created_at')
    .execute();
}

export async function findDelivery(db: Db, tenantId: string, id: string): Promise<Delivery | undefined> {
  return tenantScope(db, tenantId)
    .selectFrom('deliveries')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function lockDelivery(db: Db, tenantId: string, id: string): Promise<Delivery | undefined> {
  return tenantScope(db, tenantId)
    .selectFrom('deliveries')
    .selectAll()
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
}

export interface DeliveryFilter {
  ids?: string[];
  status?: string[];
  reportId?: string;
  connectionId?: string;
  limit: number;
  offset: number;
}

/** A tenant's deliveries, newest first, with the connection's name. */
export async function listDeliveries(db: Db, tenantId: string, filter: DeliveryFilter) {
  let query = tenantScope(db, tenantId)
    .selectFrom('deliveries')
    .innerJoin('connections', 'connections.id', 'deliveries.connection_id')
    .selectAll('deliveries')
    .select(['connections.name as connection_name', 'connections.format as connection_format']);
  if (filter.ids)
    query = query.where(
      'deliveries.id',
      'in',
      filter.ids.length ? filter.ids : ['00000000-0000-0000-0000-000000000000'],
    );
  if (filter.status?.length) query = query.where('deliveries.status', 'in', filter.status);
  if (filter.reportId) query = query.where('deliveries.report_id', '=', filter.reportId);
  if (filter.connectionId) query = query.where('deliveries.connection_id', '=', filter.connectionId);
  return query
    .orderBy('deliveries.updated_at', 'desc')
    .orderBy('deliveries.id')
    .limit(filter.limit)
    .offset(filter.offset)
    .execute();
}

export interface DeliveryChange {
  status?: DeliveryStatus;
  workflowId?: string;
  payload?: string | null;
  response?: string | null;
  remoteReference?: string | null;
  lastError?: string | null;
  deadLetterReason?: string | null;
  /** Counts one more attempt. */
  attempted?: boolean;
  /** Counts one more send from the start (a re-send). */
  resent?: boolean;
}

/**
 * Conditions an update holds to: a late attempt of an earlier send must not overwrite the send
 * that replaced it (a re-send gives the delivery a new workflow id).
 */
export interface DeliveryGuard {
  workflowId?: string;
  status?: DeliveryStatus;
}

/** Changes a delivery; false when it does not exist or no longer matches `guard`. */
export async function updateDelivery(
  db: Db,
  tenantId: string,
  id: string,
  change: DeliveryChange,
  guard: DeliveryGuard = {},
): Promise<boolean> {
  const now = new Date();
  let query = tenantScope(db, tenantId)
    .updateTable('deliveries')
    .set({
      updated_at: now,
      ...(change.status ? { status: change.status } : {}),
      ...(change.status === DELIVERY_STATUS.delivered ? { delivered_at: now, dead_letter_reason: null } : {}),
      ...(change.status === DELIVERY_STATUS.deadLetter ? { dead_lettered_at: now } : {}),
      ...(change.status === DELIVERY_STATUS.pending ? { dead_lettered_at: null, delivered_at: null } : {}),
      ...(change.workflowId !== undefined ? { workflow_id: change.workflowId } : {}),
      ...(change.payload !== undefined ? { payload: change.payload } : {}),
      ...(change.response !== undefined ? { response: change.response } : {}),
      ...(change.remoteReference !== undefined ? { remote_reference: change.remoteReference } : {}),
      ...(change.lastError !== undefined ? { last_error: change.lastError } : {}),
      ...(change.deadLetterReason !== undefined ? { dead_letter_reason: change.deadLetterReason } : {}),
      ...(change.attempted ? { attempts: sql<number>`attempts + 1` } : {}),
      ...(change.resent ? { sends: sql<number>`sends + 1`, attempts: 0 } : {}),
    })
    .where('id', '=', id);
  if (guard.workflowId !== undefined) query = query.where('workflow_id', '=', guard.workflowId);
  if (guard.status !== undefined) query = query.where('status', '=', guard.status);
  const [result] = await query.execute();
  return Number(result?.numUpdatedRows ?? 0) > 0;
}
