import { fail, type RequestEvent } from '@sveltejs/kit';
import { AppError } from '../../../../api/errors.ts';
import type { listDeliveries } from '../../../../db/deliveries.ts';
import { actorOf, tenantFor } from './access.ts';
import { services } from './services.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type DeliveryRow = Awaited<ReturnType<typeof listDeliveries>>[number];

/** One delivery as the deliveries page and a message's page show it (DeliveriesTable.svelte). */
export function deliveryView(d: DeliveryRow) {
  return {
    id: d.id,
    reportId: d.report_id,
    connection: d.connection_name,
    format: d.connection_format,
    status: d.status,
    critical: d.critical,
    sends: d.sends,
    attempts: d.attempts,
    problem: d.dead_letter_reason ?? d.last_error,
    updatedAt: new Date(d.updated_at).toISOString(),
    resendable: d.status === 'dead_letter' || d.status === 'delivered',
  };
}

/**
 * The `resend` form action of every page that lists deliveries: the admin role is checked again
 * here, whatever the page showed, and the re-send is audited with the person.
 */
export async function resendDeliveryAction({ locals, params, request }: RequestEvent) {
  const slug = params.slug ?? '';
  const { user } = await tenantFor(locals, slug, 'configure');
  const id = String((await request.formData()).get('id') ?? '');
  if (!UUID.test(id)) return fail(400, { message: 'No delivery was named.' });
  try {
    await services().resendDelivery(slug, id, actorOf(user), null);
  } catch (e) {
    if (e instanceof AppError) return fail(e.status, { message: e.message });
    throw e;
  }
  return { resent: id };
}
