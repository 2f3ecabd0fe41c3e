import { createHash, randomUUID } from 'node:crypto';
import {
  ACK_CODE,
  ackTargetFromRaw,
  ackTargetOf,
  buildAck,
  HL7_ERROR,
  type AckError,
} from '../../adapters/hl7v2/ack.ts';
import { Hl7ParseError, parseHl7, type Hl7Message } from '../../adapters/hl7v2/message.ts';
import { Hl7ContentError, oruToResultMessage } from '../../adapters/hl7v2/oru.ts';
import { appendAudit } from '../../db/audit.ts';
import type { InboxRow } from '../../db/inbox.ts';
import { insertInboxRow } from '../../db/inbox.ts';
import {
  findDuplicateMessage,
  insertMessage,
  insertRejectedMessage,
  MESSAGE_STATUS,
} from '../../db/messages.ts';
import { insertReport } from '../../db/results.ts';
import type { Message, Tenant } from '../../db/schema.ts';
import { orderKeyOf, orderWorkflowId } from '../../domain/order-key.ts';
import type { Services } from '../env.ts';

export interface Hl7Submission {
  tenant: Tenant;
  transport: 'http' | 'mllp';
  raw: string;
  /** Scopes of the submitting credential; null for an MLLP connection (its configuration is the grant). */
  scopes: string[] | null;
  credentialId: string | null;
  connectionId: string | null;
  idempotencyKey: string | null;
  remoteAddress: string | null;
}

export interface Hl7Outcome {
  ack: string;
  /** The HTTP status that agrees with the ACK: 200 AA, 422 AE, 400 AR (403 for a missing scope). */
  httpStatus: number;
  messageId: string | null;
  outcome: 'accepted' | 'duplicate' | 'rejected';
}

/** Scope a credential needs per message code (MSH-9.1). */
const REQUIRED_SCOPE: Record<string, string> = {
  ORU: 'results:write',
  ORM: 'orders:write',
  OML: 'orders:write',
};

/**
 * Receives one HL7 v2 message for a tenant: parse, map to the canonical model, store the raw message,
 * its reports and observations and the workflow inbox rows in ONE transaction, and only then answer
 * `MSA|AA`. A message that cannot be accepted is answered AR/AE and its bytes go to the rejected log
 * only. A retry (same sender + MSH-10, or same Idempotency-Key) gets the stored answer again.
 */
export async function receiveHl7(services: Services, input: Hl7Submission): Promise<Hl7Outcome> {
  const { db, metrics } = services;
  const reject = async (
    httpStatus: number,
    code: 'AR' | 'AE',
    errors: AckError[],
    message: Hl7Message | null,
  ): Promise<Hl7Outcome> => {
    const ack = buildAck(message ? ackTargetOf(message) : ackTargetFromRaw(input.raw), code, errors);
    await insertRejectedMessage(db, {
      tenantId: input.tenant.id,
      transport: input.transport,
      format: 'hl7v2',
      remoteAddress: input.remoteAddress,
      reason: errors.map((e) => (e.location ? `${e.location}: ${e.message}` : e.message)).join('; '),
      raw: input.raw,
    });
    metrics.inboundMessages.inc({ transport: input.transport, format: 'hl7v2', outcome: 'rejected' });
    // Where and which HL7 error, never the text: reasons can quote a patient's values.
    services.logger.info(
      {
        tenantId: input.tenant.id,
        transport: input.transport,
        ack: code,
        errors: errors.map((e) => `${e.code}@${e.location ?? '-'}`),
      },
      'HL7 message refused',
    );
    return { ack, httpStatus, messageId: null, outcome: 'rejected' };
  };

  let message: Hl7Message;
  try {
    message = parseHl7(input.raw);
  } catch (error) {
    if (!(error instanceof Hl7ParseError)) throw error;
    return reject(
      400,
      ACK_CODE.reject,
      [{ code: HL7_ERROR.segmentSequence, location: error.location, message: error.message }],
      null,
    );
  }

  const messageCode = message.header.get(9, 1);
  const needed = REQUIRED_SCOPE[messageCode];
  if (input.scopes && needed && !input.scopes.includes(needed)) {
    return reject(
      403,
      ACK_CODE.reject,
      [
        {
          code: HL7_ERROR.unknownKey,
          location: 'MSH-9',
          message: `this credential lacks the ${needed} scope needed for ${message.messageType}`,
        },
      ],
      message,
    );
  }

  let canonical;
  try {
    canonical = oruToResultMessage(message);
  } catch (error) {
    if (!(error instanceof Hl7ContentError)) throw error;
    return error.reject
      ? reject(400, ACK_CODE.reject, error.errors, message)
      : reject(422, ACK_CODE.error, error.errors, message);
  }

  const header = message.header;
  const sender = `${header.field(3).raw}|${header.field(4).raw}`;
  const sendingFacility = header.get(4) || header.field(4).raw;
  const keys = { sender, controlId: message.controlId, idempotencyKey: input.idempotencyKey };
  const contentHash = contentHashOf(message);
  // A retry repeats the stored answer; a different message under a used key is refused, not dropped.
  const answerFor = (duplicate: Message): Hl7Outcome | Promise<Hl7Outcome> => {
    if (duplicate.content_hash === contentHash) return repeatAnswer(duplicate);
    const byKey = input.idempotencyKey !== null && duplicate.idempotency_key === input.idempotencyKey;
    return reject(
      422,
      ACK_CODE.error,
      [
        {
          code: HL7_ERROR.duplicateKey,
          location: byKey ? null : 'MSH-10',
          message: byKey
            ? `Idempotency-Key ${input.idempotencyKey} was already used for a different message (${duplicate.id})`
            : `control id ${message.controlId} from this sender was already used for a different message (${duplicate.id})`,
        },
      ],
      message,
    );
  };

  const stored = async (): Promise<Stored> =>
    db.transaction().execute(async (trx) => {
      const duplicate = await findDuplicateMessage(trx, input.tenant.id, keys);
      if (duplicate) return { outcome: null, duplicate, rows: [] };
      const id = randomUUID();
      const ack = buildAck(ackTargetOf(message), ACK_CODE.accept);
      await insertMessage(trx, {
        id,
        tenant_id: input.tenant.id,
        credential_id: input.credentialId,
        connection_id: input.connectionId,
        transport: input.transport,
        format: 'hl7v2',
        message_type: message.messageType,
        control_id: message.controlId,
        sender,
        idempotency_key: input.idempotencyKey,
        content_hash: contentHash,
        raw: input.raw,
        status: MESSAGE_STATUS.received,
        status_detail: null,
        response: ack,
        response_status: 200,
      });
      const rows: InboxRow[] = [];
      for (const report of canonical.reports) {
        const orderKey = orderKeyOf(sendingFacility, report);
        const workflowId = orderWorkflowId(input.tenant.id, orderKey);
        const reportId = await insertReport(trx, {
          tenantId: input.tenant.id,
          messageId: id,
          patient: canonical.patient,
          orderKey,
          workflowId,
          report,
        });
        await insertInboxRow(trx, { reportId, tenantId: input.tenant.id, workflowId });
        rows.push({
          report_id: reportId,
          tenant_id: input.tenant.id,
          workflow_id: workflowId,
          order_key: orderKey,
          message_id: id,
          attempts: 0,
        });
      }
      await appendAudit(trx, {
        tenantId: input.tenant.id,
        actor: input.credentialId ? `credential/${input.credentialId}` : `connection/${input.connectionId}`,
        action: 'message.received',
        subject: `message/${id}`,
        details: {
          transport: input.transport,
          type: message.messageType,
          controlId: message.controlId,
          reports: rows.length,
        },
      });
      const outcome: Hl7Outcome = { ack, httpStatus: 200, messageId: id, outcome: 'accepted' };
      return { outcome, duplicate: null, rows };
    });

  let result: Stored;
  try {
    result = await stored();
  } catch (error) {
    if (isDataException(error)) {
      // Something the parser let through that the database refuses (an out-of-range value):
      // the transaction rolled back, so nothing is half-stored; the sender gets AE, not a 5xx.
      services.logger.warn({ err: error, tenantId: input.tenant.id }, 'HL7 message refused by the database');
      return reject(
        422,
        ACK_CODE.error,
        [
          {
            code: HL7_ERROR.internalError,
            location: null,
            message: `the message could not be stored: ${(error as Error).message}`,
          },
        ],
        message,
      );
    }
    // Two copies of one message raced: the loser answers what the winner stored.
    if (!isUniqueViolation(error)) throw error;
    const duplicate = await findDuplicateMessage(db, input.tenant.id, keys);
    if (!duplicate) throw error;
    result = { outcome: null, duplicate, rows: [] };
  }
  if (result.duplicate) {
    const answer = await answerFor(result.duplicate);
    if (answer.outcome === 'duplicate')
      metrics.inboundMessages.inc({ transport: input.transport, format: 'hl7v2', outcome: 'duplicate' });
    return answer;
  }
  metrics.inboundMessages.inc({
    transport: input.transport,
    format: 'hl7v2',
    outcome: 'accepted',
  });
  if (result.rows.length > 0) {
    // After the commit, never before: a failure here is retried by the relay.
    void services.starter.start(result.rows, 'intake');
  }
  return result.outcome!;
}

type Stored =
  | { outcome: Hl7Outcome; duplicate: null; rows: InboxRow[] }
  | { outcome: null; duplicate: Message; rows: [] };

/**
 * The message's content hash, without MSH-7 (the time of sending), which a sender's retry may
 * renew while the message itself stays the same.
 */
function contentHashOf(message: Hl7Message): string {
  const hash = createHash('sha256');
  for (const segment of message.segments) {
    const fields =
      segment.name === 'MSH' ? segment.rawFields.map((f, i) => (i === 7 ? '' : f)) : segment.rawFields;
    hash.update(fields.join('|')).update('\r');
  }
  return hash.digest('hex');
}

/** Postgres class 22 (data exception): a value out of range, an invalid date, a NUL byte. */
function isDataException(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('22');
}

function repeatAnswer(message: Message): Hl7Outcome {
  return {
    ack: message.response,
    httpStatus: message.response_status,
    messageId: message.id,
    outcome: 'duplicate',
  };
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505';
}
