import { error, fail } from '@sveltejs/kit';
import { sql } from 'kysely';
import { AppError } from '../../../../../../../api/errors.ts';
import { reprocessMessage } from '../../../../../../../api/reprocess.ts';
import { listAuditEvents } from '../../../../../../../db/audit.ts';
import { listDeliveries } from '../../../../../../../db/deliveries.ts';
import { listDocumentsOfMessage } from '../../../../../../../db/documents.ts';
import { findMessage, findRejectedMessage, readMessageRaw } from '../../../../../../../db/messages.ts';
import { findObservationsOfReports } from '../../../../../../../db/results.ts';
import type { Observation } from '../../../../../../../db/schema.ts';
import { tenantScope } from '../../../../../../../db/tenant-scope.ts';
import { mayAct } from '../../../../../../../domain/console-access.ts';
import { actorOf, tenantFor } from '../../../../../lib/server/access.ts';
import { services } from '../../../../../lib/server/services.ts';
import { deliveryView, resendDeliveryAction } from '../../../../../lib/server/deliveries.ts';
import { describeWorkflows } from '../../../../../lib/server/workflows.ts';
import type { Actions, PageServerLoad } from './$types';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Characters of a raw message shown on the page; a larger upload is cut with a note. */
const RAW_SHOWN = 200_000;

/** The raw text laid out to read: HL7 one segment a line, FHIR/JSON pretty-printed, the rest as sent. */
function readable(format: string, raw: string): string {
  if (format === 'hl7v2') return raw.split(/\r\n|\r|\n/).join('\n');
  if (format === 'fhir' || format === 'json' || format === 'pdf') {
    try {
      return JSON.stringify(JSON.parse(raw), null, 2);
    } catch {
      return raw;
    }
  }
  return raw;
}

function valueOf(o: Observation): string {
  if (o.value_numeric !== null) return `${o.value_comparator ?? ''}${o.value_numeric}`;
  return o.value_text ?? '';
}

/** One message: what was sent, what was stored from it, what was answered, and what happened since. */
export const load = (async ({ locals, params }) => {
  const { tenant, user } = await tenantFor(locals, params.slug, 'read');
  const { db } = services();
  if (!UUID.test(params.id)) error(404, `there is no message ${params.id}`);
  const message = await findMessage(db, tenant.id, params.id);
  if (!message) {
    const refused = await findRejectedMessage(db, tenant.id, params.id);
    if (!refused) error(404, `there is no message ${params.id}`);
    return {
      refused: {
        id: refused.id,
        transport: refused.transport,
        format: refused.format,
        reason: refused.reason,
        remoteAddress: refused.remote_address,
        receivedAt: new Date(refused.received_at).toISOString(),
        raw: readable(refused.format, refused.raw.slice(0, RAW_SHOWN)),
        rawLength: refused.raw.length,
      },
      message: null,
    };
  }

  const scope = tenantScope(db, tenant.id);
  const reports = await scope
    .selectFrom('reports')
    .selectAll()
    .where('message_id', '=', message.id)
    .orderBy('created_at')
    .execute();
  const reportIds = reports.map((r) => r.id);
  const orderKeys = [...new Set(reports.map((r) => r.order_key))];
  const [observations, orders, documents, raw, tasks, criticals, resultOrders] = await Promise.all([
    findObservationsOfReports(db, tenant.id, reportIds),
    scope
      .selectFrom('orders')
      .select(['id', 'order_key', 'status', 'workflow_id', 'placer_order_number', 'code'])
      .where((eb) =>
        eb.or([
          eb('message_id', '=', message.id),
          sql<boolean>`history @> ${JSON.stringify([{ messageId: message.id }])}::jsonb`,
        ]),
      )
      .orderBy('created_at')
      .execute(),
    listDocumentsOfMessage(db, tenant.id, message.id),
    readMessageRaw(db, message, RAW_SHOWN),
    reportIds.length
      ? scope.selectFrom('tasks').select('id').where('report_id', 'in', reportIds).execute()
      : [],
    reportIds.length
      ? scope.selectFrom('critical_results').select('id').where('report_id', 'in', reportIds).execute()
      : [],
    // The orders its results belong to: their opening, finalisation and closing belong on the timeline.
    orderKeys.length
      ? scope.selectFrom('orders').select('id').where('order_key', 'in', orderKeys).execute()
      : [],
  ]);
  const deliveries = (
    await Promise.all(
      reportIds.map((reportId) => listDeliveries(db, tenant.id, { reportId, limit: 100, offset: 0 })),
    )
  ).flat();
  const subjects = [
    `message/${message.id}`,
    ...reportIds.map((id) => `report/${id}`),
    ...[...new Set([...orders, ...resultOrders].map((o) => o.id))].map((id) => `order/${id}`),
    ...deliveries.map((d) => `delivery/${d.id}`),
    ...tasks.map((t) => `task/${t.id}`),
    ...criticals.map((c) => `critical-result/${c.id}`),
  ];
  const [timeline, workflows] = await Promise.all([
    listAuditEvents(db, tenant.id, { subjects, limit: 500, offset: 0, oldestFirst: true }),
    describeWorkflows([...new Set([...reports, ...orders].map((r) => r.workflow_id))]),
  ]);

  return {
    refused: null,
    message: {
      id: message.id,
      transport: message.transport,
      format: message.format,
      type: message.message_type,
      controlId: message.control_id,
      sender: message.sender,
      status: message.status,
      statusDetail: message.status_detail,
      receivedAt: new Date(message.received_at).toISOString(),
      updatedAt: new Date(message.updated_at).toISOString(),
      raw: readable(message.format, raw.text),
      rawLength: raw.length,
      rawCut: raw.text.length < raw.length,
      ack: { status: message.response_status, body: readable(message.format, message.response) },
    },
    mayReprocess: mayAct(user, tenant.id, 'configure'),
    reports: reports.map((r) => ({
      id: r.id,
      test: r.code.display ?? r.code.code,
      code: r.code.code,
      orderKey: r.order_key,
      status: r.status,
      stage: r.stage,
      duplicateOf: r.duplicate_of,
      workflowId: r.workflow_id,
      observations: observations
        .filter((o) => o.report_id === r.id)
        .map((o) => ({
          id: o.id,
          name: o.code.display ?? o.code.code,
          code: o.code.code,
          value: valueOf(o),
          unit: o.unit,
          range: o.reference_range?.text ?? null,
          interpretation: o.interpretation,
          critical: o.critical === true,
        })),
    })),
    orders: orders.map((o) => ({
      id: o.id,
      orderKey: o.order_key,
      placer: o.placer_order_number,
      test: o.code ? (o.code.display ?? o.code.code) : null,
      status: o.status,
      workflowId: o.workflow_id,
    })),
    documents: documents.map((d) => ({
      id: d.id,
      filename: d.filename,
      contentType: d.content_type,
      size: d.size,
      extraction: d.extraction_status,
    })),
    workflows,
    timeline: timeline.events.map((e) => ({
      sequence: String(e.sequence),
      at: new Date(e.at).toISOString(),
      actor: e.actor,
      action: e.action,
      subject: e.subject,
      details: JSON.stringify(e.details),
    })),
    deliveries: deliveries.map(deliveryView),
  };
}) satisfies PageServerLoad;

export const actions = {
  /** Processes the message again through its order workflows; admins only, audited with the person. */
  reprocess: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const reason =
      String(form.get('reason') ?? '')
        .trim()
        .slice(0, 1000) || null;
    if (!UUID.test(params.id)) return fail(404, { message: 'There is no such message.' });
    try {
      const outcome = await reprocessMessage(services().app, tenant, params.id, actorOf(user), reason);
      return { reprocessed: { reports: outcome.reportIds.length, started: outcome.started } };
    } catch (e) {
      if (e instanceof AppError) return fail(e.status, { message: e.message });
      throw e;
    }
  },
  /** Re-sends one delivery of this message's reports (the same action as the deliveries page). */
  resend: resendDeliveryAction,
} satisfies Actions;
