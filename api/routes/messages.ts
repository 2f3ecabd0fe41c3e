import { Hono } from 'hono';
import { findMessage } from '../../db/messages.ts';
import { tenantScope } from '../../db/tenant-scope.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `GET /v1/t/{slug}/messages/{id}`: an inbound message's status and the workflows carrying it. */
export function messageRoutes() {
  const app = new Hono<AppEnv>();
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
    return c.json({
      id: message.id,
      status: message.status,
      statusDetail: message.status_detail,
      workflowId: reports[0]?.workflow_id ?? null,
      workflowIds: [...new Set(reports.map((r) => r.workflow_id))],
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
    });
  });
  return app;
}
