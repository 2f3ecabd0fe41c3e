import { randomUUID } from 'node:crypto';
import { appendAudit } from '../../db/audit.ts';
import { EXTRACTION_STATUS, insertDocument, type ExtractionStatus } from '../../db/documents.ts';
import { insertInboxRow, insertOrderInboxRow, type InboxRow, type OrderInboxRow } from '../../db/inbox.ts';
import { findDuplicateMessage, insertMessage, MESSAGE_STATUS } from '../../db/messages.ts';
import { recordPlacedOrder } from '../../db/orders.ts';
import { insertReport } from '../../db/results.ts';
import type { Message, MessageProgress, Tenant } from '../../db/schema.ts';
import type { Db } from '../../db/tenant-scope.ts';
import type { OrderMessage, PatientDemographics, ResultMessage } from '../../domain/model.ts';
import { upsertPatient } from '../../db/patients.ts';
import { AppError } from '../errors.ts';
import { orderKeyOf, orderWorkflowId } from '../../domain/order-key.ts';
import { turnaroundMinutesFor } from '../../domain/turnaround.ts';
import type { Services } from '../env.ts';

export type InboundFormat = 'hl7v2' | 'fhir' | 'csv' | 'json' | 'pdf';

/** Who sent a message, how, and the keys a retry of it is recognised by. */
export interface InboundEnvelope {
  tenant: Tenant;
  transport: 'http' | 'mllp';
  format: InboundFormat;
  /** e.g. `ORU^R01`, `Bundle/transaction`, `text/csv`, `results`, `document`. */
  messageType: string;
  /** Natural key: the same sender + control id is the same message (MSH-3|MSH-4 + MSH-10; a Bundle's identifier; a content hash). */
  sender: string | null;
  controlId: string | null;
  idempotencyKey: string | null;
  contentHash: string;
  /** The message as received (text; a binary upload stores a description and keeps its bytes as a document). */
  raw: string;
  credentialId: string | null;
  connectionId: string | null;
  /** Namespace of order numbers whose sender names none (HL7 MSH-4; the tenant slug otherwise). */
  orderNamespace: string;
}

/** What a message carries, in the canonical model. */
export interface InboundContent {
  results: ResultMessage[];
  orders: OrderMessage[];
  /** Patients sent on their own (a FHIR Patient): created or updated at once. */
  patients?: PatientDemographics[];
  /**
   * Documents sent on their own (a PDF upload), each with the report it belongs to: the index of a
   * report in `results` (flattened across messages), or null when nothing could be read from it.
   */
  documents?: {
    contentType: string;
    filename: string | null;
    title: string | null;
    data: Uint8Array;
    reportIndex: number | null;
    extractionStatus: ExtractionStatus;
    extractedText: string | null;
    extraction: Record<string, unknown> | null;
  }[];
}

/** The answer stored with the message and repeated byte for byte to a retry. */
export interface InboundAnswer {
  response: string;
  status: number;
}

export type StoreOutcome =
  | { kind: 'accepted'; messageId: string; answer: InboundAnswer; reports: number; orders: number }
  | { kind: 'duplicate'; message: Message };

/**
 * Stores one inbound message and everything it carries in ONE transaction: the raw message, its
 * reports and observations, its placed orders, its documents, the inbox rows that start their
 * workflows, and the audit event. Only after the commit are the workflows started (a failure there
 * is retried by the relay), so the ACK a caller sends is never ahead of the data. A message already
 * stored under the same natural key or Idempotency-Key comes back as `duplicate`, nothing stored.
 */
export async function storeInbound(
  services: Services,
  envelope: InboundEnvelope,
  content: InboundContent,
  answerFor: (messageId: string) => InboundAnswer,
  options: { progress?: MessageProgress | null; status?: string } = {},
): Promise<StoreOutcome> {
  const { db } = services;
  const tenantId = envelope.tenant.id;
  const keys = {
    sender: envelope.sender,
    controlId: envelope.controlId,
    idempotencyKey: envelope.idempotencyKey,
  };

  let written: Written;
  try {
    written = await db.transaction().execute(async (trx): Promise<Written> => {
      const duplicate = await findDuplicateMessage(trx, tenantId, keys);
      if (duplicate) return { duplicate };
      const id = randomUUID();
      const answer = answerFor(id);
      await insertMessage(trx, {
        id,
        tenant_id: tenantId,
        credential_id: envelope.credentialId,
        connection_id: envelope.connectionId,
        transport: envelope.transport,
        format: envelope.format,
        message_type: envelope.messageType,
        control_id: envelope.controlId,
        sender: envelope.sender,
        idempotency_key: envelope.idempotencyKey,
        content_hash: envelope.contentHash,
        raw: envelope.raw,
        status: options.status ?? MESSAGE_STATUS.received,
        status_detail: null,
        response: answer.response,
        response_status: answer.status,
        progress: options.progress ? JSON.stringify(options.progress) : null,
      });
      const stored = await storeContent(trx, envelope, id, content);
      await appendAudit(trx, {
        tenantId,
        actor: envelope.credentialId
          ? `credential/${envelope.credentialId}`
          : `connection/${envelope.connectionId}`,
        action: 'message.received',
        subject: `message/${id}`,
        details: {
          transport: envelope.transport,
          format: envelope.format,
          type: envelope.messageType,
          controlId: envelope.controlId,
          reports: stored.rows.length,
          orders: stored.orderRows.length,
          documents: content.documents?.length ?? 0,
        },
      });
      return { id, answer, ...stored };
    });
  } catch (error) {
    // Two copies of one message raced: the loser answers what the winner stored.
    if (!isUniqueViolation(error)) throw error;
    const duplicate = await findDuplicateMessage(db, tenantId, keys);
    if (!duplicate) throw error;
    written = { duplicate };
  }
  if ('duplicate' in written) return { kind: 'duplicate', message: written.duplicate };
  startWorkflows(services, written);
  return {
    kind: 'accepted',
    messageId: written.id,
    answer: written.answer,
    reports: written.rows.length,
    orders: written.orderRows.length,
  };
}

type Written = { duplicate: Message } | ({ id: string; answer: InboundAnswer } & StoredContent);

interface StoredContent {
  rows: InboxRow[];
  orderRows: OrderInboxRow[];
}

/** After the commit, never before: a failure here is retried by the relay. */
export function startWorkflows(services: Services, stored: StoredContent): void {
  // Orders first, so the workflow a placed order starts is there when its results arrive.
  if (stored.orderRows.length > 0) void services.starter.startOrders(stored.orderRows, 'intake');
  if (stored.rows.length > 0) void services.starter.start(stored.rows, 'intake');
}

/**
 * Writes a message's reports, orders and documents under an already stored message row (inside
 * the caller's transaction). Used once per message, and once per batch of a streamed upload.
 */
export async function storeContent(
  trx: Db,
  envelope: Pick<InboundEnvelope, 'tenant' | 'orderNamespace'>,
  messageId: string,
  content: InboundContent,
): Promise<StoredContent> {
  const tenantId = envelope.tenant.id;
  const rows: InboxRow[] = [];
  const reportIds: string[] = [];
  for (const result of content.results) {
    for (const report of result.reports) {
      const orderKey = orderKeyOf(report.placerAuthority || envelope.orderNamespace, report);
      const workflowId = orderWorkflowId(tenantId, orderKey);
      const reportId = await insertReport(trx, {
        tenantId,
        messageId,
        patient: result.patient,
        orderKey,
        workflowId,
        report,
        extraSegments: result.extraSegments,
      });
      reportIds.push(reportId);
      for (const document of report.documents ?? []) {
        await insertDocument(trx, {
          tenantId,
          messageId,
          reportId,
          contentType: document.contentType,
          title: document.title,
          data: Buffer.from(document.dataBase64, 'base64'),
          extractionStatus: EXTRACTION_STATUS.notExtracted,
        });
      }
      await insertInboxRow(trx, { reportId, tenantId, workflowId });
      rows.push({
        report_id: reportId,
        tenant_id: tenantId,
        workflow_id: workflowId,
        order_key: orderKey,
        message_id: messageId,
        attempts: 0,
      });
    }
  }
  for (const document of content.documents ?? []) {
    await insertDocument(trx, {
      tenantId,
      messageId,
      reportId: document.reportIndex === null ? null : (reportIds[document.reportIndex] ?? null),
      contentType: document.contentType,
      filename: document.filename,
      title: document.title,
      data: document.data,
      extractionStatus: document.extractionStatus,
      extractedText: document.extractedText,
      extraction: document.extraction,
    });
  }

  for (const [index, patient] of (content.patients ?? []).entries()) {
    const upserted = await upsertPatient(trx, tenantId, patient);
    // Refused inside the transaction: nothing of the message is kept.
    if ('ambiguous' in upserted)
      throw new AppError(
        'conflict',
        `patient ${index + 1}: its identifiers belong to ${upserted.ambiguous.length} different patients`,
      );
    if ('unknownId' in upserted)
      throw new AppError('unprocessable', `patient ${index + 1}: there is no patient ${upserted.unknownId}`);
  }

  const orderRows: OrderInboxRow[] = [];
  const turnaround = envelope.tenant.settings.turnaroundMinutes;
  for (const placed of content.orders) {
    for (const order of placed.orders) {
      const orderKey = orderKeyOf(order.placerAuthority || envelope.orderNamespace, order);
      const workflowId = orderWorkflowId(tenantId, orderKey);
      const minutes = turnaroundMinutesFor(turnaround, order.code.code);
      const orderedAt = order.orderedAt ? new Date(order.orderedAt) : new Date();
      const recorded = await recordPlacedOrder(trx, {
        tenantId,
        orderKey,
        workflowId,
        messageId,
        order,
        patient: placed.patient,
        dueAt: new Date(orderedAt.getTime() + minutes * 60_000),
      });
      await insertOrderInboxRow(trx, { orderId: recorded.id, tenantId, workflowId, orderKey, messageId });
      orderRows.push({
        order_id: recorded.id,
        tenant_id: tenantId,
        workflow_id: workflowId,
        order_key: orderKey,
        message_id: messageId,
        attempts: 0,
        cancelled: recorded.cancelled,
      });
    }
  }
  return { rows, orderRows };
}

export function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505';
}

/** Postgres class 22 (data exception): a value out of range, an invalid date, a NUL byte. */
export function isDataException(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('22');
}

/**
 * What in a message lies outside the sending credential's client and location scope (seed 003):
 * one sentence per report or order, empty when all is inside (or the credential is not scoped).
 */
export function accessViolations(
  access: { clientIds: string[] | null; locationIds: string[] | null } | null,
  content: InboundContent,
): string[] {
  if (!access || (!access.clientIds && !access.locationIds)) return [];
  const items = [
    ...content.results.flatMap((r) => r.reports.map((x) => ({ what: 'report', ...x }))),
    ...content.orders.flatMap((o) => o.orders.map((x) => ({ what: 'order', ...x }))),
  ];
  const violations: string[] = [];
  for (const item of items) {
    const name = `${item.what} ${item.placerOrderNumber ?? item.fillerOrderNumber ?? item.code.code}`;
    if (access.clientIds && !(item.clientId && access.clientIds.includes(item.clientId)))
      violations.push(
        `${name}: client ${item.clientId ?? '(none given)'} is outside this key's client scope`,
      );
    if (access.locationIds && !(item.locationId && access.locationIds.includes(item.locationId)))
      violations.push(
        `${name}: location ${item.locationId ?? '(none given)'} is outside this key's location scope`,
      );
  }
  return violations;
}
