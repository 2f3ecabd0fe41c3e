import { Hono } from 'hono';
import { sql } from 'kysely';
import { findMessage, MESSAGE_STATUS } from '../../db/messages.ts';
import { listDocumentsOfMessage } from '../../db/documents.ts';
import { tenantScope } from '../../db/tenant-scope.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `GET /v1/t/{slug}/messages/{id}`: an inbound message's status and the workflows carrying it;
 * `GET /v1/t/{slug}/messages?controlId=&status=&limit=`: the tenant's messages, newest first (how an
 * MLLP sender, whose ACK carries no LabRelay id, finds its message).
 */
export function messageRoutes() {
  const app = new Hono<AppEnv>();
  app.get('/', async (c) => {
    const { db } = c.get('services');
    const tenant = c.get('tenant');
    const limit = c.req.query('limit') === undefined ? 50 : Number(c.req.query('limit'));
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw new AppError('invalid_request', 'limit must be a whole number from 1 to 500');
    const status = c.req.query('status');
    if (status !== undefined && !(Object.values(MESSAGE_STATUS) as string[]).includes(status)) {
      throw new AppError(
        'invalid_request',
        `status must be one of ${Object.values(MESSAGE_STATUS).join(', ')}`,
      );
    }
    let query = tenantScope(db, tenant.id)
      .selectFrom('messages')
      .select([
        'id',
        'status',
        'status_detail',
        'transport',
        'format',
        'message_type',
        'control_id',
        'received_at',
      ]);
    const controlId = c.req.query('controlId');
    if (controlId) query = query.where('control_id', '=', controlId);
    if (status) query = query.where('status', '=', status);
    const rows = await query.orderBy('received_at', 'desc').limit(limit).execute();
    return c.json({
      messages: rows.map((m) => ({
        id: m.id,
        status: m.status,
        statusDetail: m.status_detail,
        transport: m.transport,
        format: m.format,
        messageType: m.message_type,
        controlId: m.control_id,
        receivedAt: new Date(m.received_at).toISOString(),
        href: `/v1/t/${tenant.slug}/messages/${m.id}`,
      })),
    });
  });
  app.get('/:id', async (c) => {
    const id = c.req.param('id');
    const tenant = c.get('tenant');
    const { db } = c.get('services');
    const message = UUID.test(id) ? await findMessage(db, tenant.id, id) : undefined;
    if (!message) throw new AppError('not_found', `tenant ${tenant.slug} has no message ${id}`);
    const reports = await tenantScope(db, tenant.id)
      .selectFrom('reports')
      .select(['id', 'workflow_id', 'stage', 'status', 'patient_id'])
      .where('message_id', '=', message.id)
      .orderBy('created_at')
      .execute();
    const orders = await tenantScope(db, tenant.id)
      .selectFrom('orders')
      .select(['id', 'order_key', 'status', 'workflow_id', 'placer_order_number'])
      .where((eb) =>
        eb.or([
          eb('message_id', '=', message.id),
          sql<boolean>`history @> ${JSON.stringify([{ messageId: message.id }])}::jsonb`,
        ]),
      )
      .orderBy('created_at')
      .execute();
    const documents = await listDocumentsOfMessage(db, tenant.id, message.id);
    return c.json({
      id: message.id,
      status: message.status,
      statusDetail: message.status_detail,
      workflowId: reports[0]?.workflow_id ?? null,
      workflowIds: [...new Set([...reports, ...orders].map((r) => r.workflow_id))],
      transport: message.transport,
      format: message.format,
      messageType: message.message_type,
      controlId: message.control_id,
      receivedAt: new Date(message.received_at).toISOString(),
      updatedAt: new Date(message.updated_at).toISOString(),
      reports: reports.map((r) => ({
        id: r.id,
        workflowId: r.workflow_id,
        stage: r.stage,
        status: r.status,
        patientId: r.patient_id,
      })),
      orders: orders.map((o) => ({
        id: o.id,
        orderKey: o.order_key,
        placerOrderNumber: o.placer_order_number,
        status: o.status,
        workflowId: o.workflow_id,
      })),
      documents: documents.map((d) => ({
        id: d.id,
        reportId: d.report_id,
        contentType: d.content_type,
        filename: d.filename,
        size: d.size,
        extraction: d.extraction_status,
      })),
      /** A streamed upload's rows read, accepted and rejected so far. */
      progress: message.progress,
    });
  });
  return app;
}
