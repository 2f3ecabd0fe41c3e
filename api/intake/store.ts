import { createHash, randomUUID } from 'node:crypto';
import { appendAuditEvents } from '../../db/audit.ts';
import { EXTRACTION_STATUS, insertDocument, type ExtractionStatus } from '../../db/documents.ts';
import { insertInboxRows, insertOrderInboxRow, type InboxRow, type OrderInboxRow } from '../../db/inbox.ts';
import { findDuplicateMessage, findDuplicateMessages, MESSAGE_STATUS } from '../../db/messages.ts';
import { recordPlacedOrder } from '../../db/orders.ts';
import { insertReports } from '../../db/results.ts';
import type { Database, Message, Tenant } from '../../db/schema.ts';
import type { Transaction } from 'kysely';
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
  /** `console`: a person entered or uploaded it in the console. */
  transport: 'http' | 'mllp' | 'pull' | 'console';
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
  /** Who the audit event names; the credential or connection when absent. */
  actor?: string;
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

/** One non-HL7 message read into the canonical model, ready to store (FHIR, JSON, a PDF upload). */
export interface Intake {
  format: InboundFormat;
  messageType: string;
  /** The message as text (for the message log); a binary upload passes a description. */
  raw: string;
  /** Bytes the content hash is taken over (the body as received). */
  hashOf: Uint8Array | string;
  /** A natural key the sender gave (a Bundle's identifier); the content hash otherwise. */
  naturalKey?: string | null;
  content: InboundContent;
  /** The answer to store and send, given the new message's id. */
  answer: (messageId: string) => InboundAnswer;
}

/** Where an intake came from: the tenant, the transport, and who sent it. */
export interface IntakeSource {
  tenant: Tenant;
  transport: InboundEnvelope['transport'];
  credentialId: string | null;
  /** Who the audit event names; the credential when absent. */
  actor?: string;
  idempotencyKey: string | null;
}

/**
 * Stores one read intake for a tenant, whoever sent it (the HTTP routes, the console): one
 * transaction, then its workflows started. A retry (the same Idempotency-Key, natural key or bytes)
 * comes back as `duplicate` with the stored message and this intake's content hash, so the caller
 * can tell a repeat from a different body under a used key. A value the database refuses is an
 * `unprocessable` AppError, nothing stored.
 */
export async function storeIntake(
  services: Services,
  source: IntakeSource,
  intake: Intake,
): Promise<
  | { kind: 'accepted'; messageId: string; answer: InboundAnswer }
  | { kind: 'duplicate'; message: Message; contentHash: string }
> {
  const { tenant } = source;
  const contentHash = createHash('sha256').update(intake.hashOf).digest('hex');
  let stored;
  try {
    stored = await storeInbound(
      services,
      {
        tenant,
        transport: source.transport,
        format: intake.format,
        messageType: intake.messageType,
        sender: `${intake.format}`,
        controlId: intake.naturalKey ? `id:${intake.naturalKey}` : `sha256:${contentHash}`,
        idempotencyKey: source.idempotencyKey,
        contentHash,
        raw: intake.raw,
        credentialId: source.credentialId,
        connectionId: null,
        ...(source.actor ? { actor: source.actor } : {}),
        orderNamespace: tenant.slug,
      },
      intake.content,
      intake.answer,
    );
  } catch (error) {
    if (!isDataException(error)) throw error;
    services.logger.warn({ err: error, tenantId: tenant.id }, 'inbound message refused by the database');
    throw new AppError('unprocessable', `the message could not be stored: ${(error as Error).message}`);
  }
  const labels = { transport: source.transport, format: intake.format };
  if (stored.kind === 'duplicate') {
    services.metrics.inboundMessages.inc({ ...labels, outcome: 'duplicate' });
    return { kind: 'duplicate', message: stored.message, contentHash };
  }
  services.metrics.inboundMessages.inc({ ...labels, outcome: 'accepted' });
  return { kind: 'accepted', messageId: stored.messageId, answer: stored.answer };
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
): Promise<StoreOutcome> {
  const keys = {
    sender: envelope.sender,
    controlId: envelope.controlId,
    idempotencyKey: envelope.idempotencyKey,
  };
  let written: Written;
  try {
    written = await groupCommit(services, { envelope, content, answerFor });
  } catch (error) {
    // Two copies of one message raced: the loser answers what the winner stored.
    if (!isUniqueViolation(error)) throw error;
    const duplicate = await findDuplicateMessage(services.db, envelope.tenant.id, keys);
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

interface PendingWrite {
  envelope: InboundEnvelope;
  content: InboundContent;
  answerFor: (messageId: string) => InboundAnswer;
  resolve(written: Written): void;
  reject(error: unknown): void;
}

/** Most messages one intake transaction carries. */
const MAX_GROUP = 64;
/**
 * Transactions of one tenant in flight at once. Measured (bench/intake.ts): two in flight make
 * smaller groups that contend for the audit chain's lock, and lower throughput; one is best.
 */
const GROUPS_IN_FLIGHT = 1;
const queues = new WeakMap<Services, Map<string, { waiting: PendingWrite[]; running: number }>>();

/**
 * Group commit: messages of one tenant that arrive while its previous transactions are committing
 * are written together in the next one, so a burst pays one commit (one fsync, one audit-chain
 * lock) per group rather than per message. Each sender is still answered only after the commit
 * that holds its message. When a group's transaction fails (one message the database refuses),
 * its messages are written again one by one, so only that message fails and nothing is half-stored.
 */
function groupCommit(services: Services, write: Omit<PendingWrite, 'resolve' | 'reject'>): Promise<Written> {
  let byTenant = queues.get(services);
  if (!byTenant) queues.set(services, (byTenant = new Map()));
  const tenantId = write.envelope.tenant.id;
  let state = byTenant.get(tenantId);
  if (!state) byTenant.set(tenantId, (state = { waiting: [], running: 0 }));
  const tenantState = state;
  const tenants = byTenant;
  return new Promise<Written>((resolve, reject) => {
    tenantState.waiting.push({ ...write, resolve, reject });
    if (tenantState.running >= GROUPS_IN_FLIGHT) return;
    tenantState.running += 1;
    void (async () => {
      while (tenantState.waiting.length > 0) {
        await commitGroup(services, tenantState.waiting.splice(0, MAX_GROUP));
      }
      tenantState.running -= 1;
      if (tenantState.running === 0 && tenantState.waiting.length === 0) tenants.delete(tenantId);
    })();
  });
}

async function commitGroup(services: Services, group: PendingWrite[]): Promise<void> {
  try {
    const written = await services.db.transaction().execute((trx) => writeGroup(trx, group));
    group.forEach((item, i) => item.resolve(written[i]!));
  } catch (error) {
    if (group.length === 1) {
      group[0]!.reject(error);
      return;
    }
    for (const item of group) {
      try {
        item.resolve((await services.db.transaction().execute((trx) => writeGroup(trx, [item])))[0]!);
      } catch (single) {
        item.reject(single);
      }
    }
  }
}

/**
 * The messages of a group and everything they carry, inside the group's transaction: one query
 * for the retries among them, one statement each for messages, reports, observations, inbox rows
 * and audit events.
 */
async function writeGroup(trx: Transaction<Database>, group: PendingWrite[]): Promise<Written[]> {
  const tenant = group[0]!.envelope.tenant;
  const keysOf = (e: InboundEnvelope) => ({
    sender: e.sender,
    controlId: e.controlId,
    idempotencyKey: e.idempotencyKey,
  });
  const natural = (k: ReturnType<typeof keysOf>) =>
    k.sender !== null && k.controlId ? `${k.sender}\u0000${k.controlId}` : null;
  // Two copies of one message in the same group: the second must see the first, so one by one.
  const seen = new Set<string>();
  for (const item of group) {
    const k = keysOf(item.envelope);
    for (const key of [natural(k), k.idempotencyKey ? `idem\u0000${k.idempotencyKey}` : null]) {
      if (key === null) continue;
      if (seen.has(key)) {
        const out: Written[] = [];
        for (const one of group) out.push((await writeGroup(trx, [one]))[0]!);
        return out;
      }
      seen.add(key);
    }
  }
  const stored = await findDuplicateMessages(
    trx,
    tenant.id,
    group.map((g) => keysOf(g.envelope)),
  );
  const duplicateOf = (e: InboundEnvelope) =>
    stored.find(
      (m) =>
        (e.idempotencyKey !== null && m.idempotency_key === e.idempotencyKey) ||
        (e.sender !== null && e.controlId !== null && m.sender === e.sender && m.control_id === e.controlId),
    );
  const fresh = group
    .map((item) => ({ item, duplicate: duplicateOf(item.envelope) }))
    .filter((x) => !x.duplicate)
    .map(({ item }) => {
      const id = randomUUID();
      return { item, id, answer: item.answerFor(id) };
    });
  if (fresh.length > 0) {
    await trx
      .insertInto('messages')
      .values(
        fresh.map(({ item: { envelope }, id, answer }) => ({
          id,
          tenant_id: tenant.id,
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
          status: MESSAGE_STATUS.received,
          status_detail: null,
          response: answer.response,
          response_status: answer.status,
          progress: null,
        })),
      )
      .execute();
  }
  const contents = await storeContents(
    trx,
    tenant,
    fresh.map(({ item, id }) => ({
      messageId: id,
      orderNamespace: item.envelope.orderNamespace,
      content: item.content,
    })),
  );
  await appendAuditEvents(
    trx,
    fresh.map(({ item: { envelope, content }, id }, i) => ({
      tenantId: tenant.id,
      actor:
        envelope.actor ??
        (envelope.credentialId
          ? `credential/${envelope.credentialId}`
          : `connection/${envelope.connectionId}`),
      action: 'message.received',
      subject: `message/${id}`,
      details: {
        transport: envelope.transport,
        format: envelope.format,
        type: envelope.messageType,
        controlId: envelope.controlId,
        reports: contents[i]!.rows.length,
        orders: contents[i]!.orderRows.length,
        documents: content.documents?.length ?? 0,
      },
    })),
  );
  let next = 0;
  return group.map((item) => {
    const duplicate = duplicateOf(item.envelope);
    if (duplicate) return { duplicate };
    const { id, answer } = fresh[next]!;
    return { id, answer, ...contents[next++]! };
  });
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
  return (
    await storeContents(trx, envelope.tenant, [
      { messageId, orderNamespace: envelope.orderNamespace, content },
    ])
  )[0]!;
}

/**
 * Writes the content of several stored messages of one tenant, their reports and observations in
 * as few statements as possible (a group commit), everything else message by message.
 */
export async function storeContents(
  trx: Db,
  tenant: Tenant,
  messages: { messageId: string; orderNamespace: string; content: InboundContent }[],
): Promise<StoredContent[]> {
  const tenantId = tenant.id;
  const planned = messages.flatMap((m, messageIndex) =>
    m.content.results.flatMap((result) =>
      result.reports.map((report) => {
        const orderKey = orderKeyOf(report.placerAuthority || m.orderNamespace, report);
        return {
          messageIndex,
          input: {
            tenantId,
            messageId: m.messageId,
            patient: result.patient,
            orderKey,
            workflowId: orderWorkflowId(tenantId, orderKey),
            report,
            extraSegments: result.extraSegments,
          },
        };
      }),
    ),
  );
  const reportIds = await insertReports(
    trx,
    planned.map((p) => p.input),
  );
  await insertInboxRows(
    trx,
    planned.map((p, i) => ({ reportId: reportIds[i]!, tenantId, workflowId: p.input.workflowId })),
  );
  const stored: StoredContent[] = messages.map(() => ({ rows: [], orderRows: [] }));
  const idsByMessage: string[][] = messages.map(() => []);
  for (const [i, p] of planned.entries()) {
    const reportId = reportIds[i]!;
    idsByMessage[p.messageIndex]!.push(reportId);
    stored[p.messageIndex]!.rows.push({
      report_id: reportId,
      tenant_id: tenantId,
      workflow_id: p.input.workflowId,
      order_key: p.input.orderKey,
      message_id: p.input.messageId,
      attempts: 0,
    });
    for (const document of p.input.report.documents ?? []) {
      await insertDocument(trx, {
        tenantId,
        messageId: p.input.messageId,
        reportId,
        contentType: document.contentType,
        title: document.title,
        data: Buffer.from(document.dataBase64, 'base64'),
        extractionStatus: EXTRACTION_STATUS.notExtracted,
      });
    }
  }
  for (const [index, { messageId, orderNamespace, content }] of messages.entries()) {
    for (const document of content.documents ?? []) {
      await insertDocument(trx, {
        tenantId,
        messageId,
        reportId: document.reportIndex === null ? null : (idsByMessage[index]![document.reportIndex] ?? null),
        contentType: document.contentType,
        filename: document.filename,
        title: document.title,
        data: document.data,
        extractionStatus: document.extractionStatus,
        extractedText: document.extractedText,
        extraction: document.extraction,
      });
    }
    for (const [n, patient] of (content.patients ?? []).entries()) {
      const upserted = await upsertPatient(trx, tenantId, patient);
      // Refused inside the transaction: nothing of the message is kept.
      if ('ambiguous' in upserted)
        throw new AppError(
          'conflict',
          `patient ${n + 1}: its identifiers belong to ${upserted.ambiguous.length} different patients`,
        );
      if ('unknownId' in upserted)
        throw new AppError('unprocessable', `patient ${n + 1}: there is no patient ${upserted.unknownId}`);
    }
    const turnaround = tenant.settings.turnaroundMinutes;
    for (const placed of content.orders) {
      for (const order of placed.orders) {
        const orderKey = orderKeyOf(order.placerAuthority || orderNamespace, order);
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
        stored[index]!.orderRows.push({
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
  }
  return stored;
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
