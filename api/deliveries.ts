import { appendAudit } from '../db/audit.ts';
import { DELIVERY_STATUS, findDelivery, lockDelivery, updateDelivery } from '../db/deliveries.ts';
import type { Delivery, Tenant } from '../db/schema.ts';
import { AppError } from './errors.ts';
import type { Services } from './env.ts';

/**
 * Sends a dead-lettered (or delivered) report to its destination again, as the report is now,
 * with fresh attempts: committed and audited first, then the delivery workflow is started. When
 * Temporal does not take it, the delivery is put back as it was (nothing hangs as "pending") and
 * the caller is told to try later. Shared by the admin API and the console.
 */
export async function resendDelivery(
  services: Pick<Services, 'db' | 'starter'>,
  tenant: Tenant,
  id: string,
  actor: string,
  reason: string | null,
): Promise<Delivery> {
  const before = await services.db.transaction().execute(async (trx) => {
    const delivery = await lockDelivery(trx, tenant.id, id);
    if (!delivery) throw new AppError('not_found', `tenant ${tenant.slug} has no delivery ${id}`);
    if (delivery.status !== DELIVERY_STATUS.deadLetter && delivery.status !== DELIVERY_STATUS.delivered)
      throw new AppError('conflict', `delivery ${id} is ${delivery.status}; wait for it to finish`);
    const workflowId = `delivery/${id}/${delivery.sends + 1}`;
    await updateDelivery(trx, tenant.id, id, {
      status: DELIVERY_STATUS.pending,
      resent: true,
      workflowId,
      lastError: null,
      deadLetterReason: null,
    });
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'delivery.resent',
      subject: `delivery/${id}`,
      details: { reportId: delivery.report_id, previousStatus: delivery.status, reason },
    });
    return { delivery, workflowId };
  });
  try {
    await services.starter.startDelivery(tenant.id, id, before.workflowId);
  } catch (error) {
    // Only this re-send's own row is put back: should its workflow have started after all (and moved
    // the delivery on), what it did stands.
    await updateDelivery(
      services.db,
      tenant.id,
      id,
      {
        status: before.delivery.status as 'dead_letter' | 'delivered',
        deadLetterReason: before.delivery.dead_letter_reason,
        lastError: `re-send could not start: ${(error as Error).message}`,
      },
      { workflowId: before.workflowId, status: DELIVERY_STATUS.pending },
    );
    throw new AppError(
      'unavailable',
      'Temporal is not reachable; the delivery was not sent again, try later',
    );
  }
  return (await findDelivery(services.db, tenant.id, id))!;
}
