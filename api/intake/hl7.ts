import { createHash } from 'node:crypto';
import {
  ACK_CODE,
  acknowledgementsFor,
  ackModeFromRaw,
  ackModeOf,
  ackTargetFromRaw,
  ackTargetOf,
  HL7_ERROR,
  type AckError,
} from '../../adapters/hl7v2/ack.ts';
import { HL7_MESSAGE_KIND, hl7MessageKind, ormToOrderMessage } from '../../adapters/hl7v2/orm.ts';
import { Hl7ParseError, parseHl7, type Hl7Message } from '../../adapters/hl7v2/message.ts';
import { Hl7ContentError, oruToResultMessage } from '../../adapters/hl7v2/oru.ts';
import { insertRejectedMessage } from '../../db/messages.ts';
import type { Message, Tenant } from '../../db/schema.ts';
import type { Services } from '../env.ts';
import {
  accessViolations,
  isDataException,
  storeInbound,
  type InboundContent,
  type StoreOutcome,
} from './store.ts';

export interface Hl7Submission {
  tenant: Tenant;
  transport: 'http' | 'mllp';
  raw: string;
  /** The message already parsed from `raw` (the MLLP listener parses it to route it). */
  parsed?: Hl7Message;
  /** Client and location scope of the submitting credential (seed 003); null when unscoped or MLLP. */
  access?: { clientIds: string[] | null; locationIds: string[] | null } | null;
  /** Scopes of the submitting credential; null for an MLLP connection (its configuration is the grant). */
  scopes: string[] | null;
  credentialId: string | null;
  connectionId: string | null;
  idempotencyKey: string | null;
  remoteAddress: string | null;
}

export interface Hl7Outcome {
  /**
   * The ACKs to send, in order, as MSH-15/16 ask (HL7 v2.5.1 2.9.2): original mode one application
   * ACK; enhanced mode a commit ACK and/or an application ACK, or none at all (NE|NE).
   */
  acks: string[];
  /** The one ACK an HTTP response carries: the application ACK when asked for, else the commit ACK, else ''. */
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
    const acks = acknowledgementsFor(
      message ? ackTargetOf(message) : ackTargetFromRaw(input.raw),
      message ? ackModeOf(message) : ackModeFromRaw(input.raw),
      { code, errors },
    );
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
    return { acks, ack: httpAck(acks), httpStatus, messageId: null, outcome: 'rejected' };
  };

  let message: Hl7Message;
  try {
    message = input.parsed ?? parseHl7(input.raw);
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

  let content: InboundContent;
  try {
    content =
      hl7MessageKind(message) === HL7_MESSAGE_KIND.orders
        ? { results: [], orders: [ormToOrderMessage(message)] }
        : { results: [oruToResultMessage(message)], orders: [] };
  } catch (error) {
    if (!(error instanceof Hl7ContentError)) throw error;
    return error.reject
      ? reject(400, ACK_CODE.reject, error.errors, message)
      : reject(422, ACK_CODE.error, error.errors, message);
  }

  const violations = accessViolations(input.access ?? null, content);
  if (violations.length > 0)
    return reject(
      403,
      ACK_CODE.reject,
      violations.map((v) => ({ code: HL7_ERROR.unknownKey, location: null, message: v })),
      message,
    );

  const header = message.header;
  const sender = `${header.field(3).raw}|${header.field(4).raw}`;
  const sendingFacility = header.get(4) || header.field(4).raw;
  const contentHash = contentHashOf(message);
  let stored: StoreOutcome;
  try {
    stored = await storeInbound(
      services,
      {
        tenant: input.tenant,
        transport: input.transport,
        format: 'hl7v2',
        messageType: message.messageType,
        sender,
        controlId: message.controlId,
        idempotencyKey: input.idempotencyKey,
        contentHash,
        raw: input.raw,
        credentialId: input.credentialId,
        connectionId: input.connectionId,
        orderNamespace: sendingFacility,
      },
      content,
      () => ({
        // Kept as sent, so a retry is answered with the very same ACKs.
        response: acknowledgementsFor(ackTargetOf(message), ackModeOf(message), {
          code: ACK_CODE.accept,
        }).join(ACK_SEPARATOR),
        status: 200,
      }),
    );
  } catch (error) {
    if (!isDataException(error)) throw error;
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

  if (stored.kind === 'duplicate') {
    const duplicate = stored.message;
    // A retry repeats the stored answer; a different message under a used key is refused, not dropped.
    if (duplicate.content_hash === contentHash) {
      metrics.inboundMessages.inc({ transport: input.transport, format: 'hl7v2', outcome: 'duplicate' });
      return repeatAnswer(duplicate);
    }
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
  }
  metrics.inboundMessages.inc({ transport: input.transport, format: 'hl7v2', outcome: 'accepted' });
  const acks = splitAcks(stored.answer.response);
  return {
    acks,
    ack: httpAck(acks),
    httpStatus: stored.answer.status,
    messageId: stored.messageId,
    outcome: 'accepted',
  };
}

/** Stored ACKs are joined by FS (0x1C), which never occurs inside an ACK. */
const ACK_SEPARATOR = '\x1c';
function splitAcks(response: string): string[] {
  return response === '' ? [] : response.split(ACK_SEPARATOR);
}
/** The application ACK (MSA-1 A*) when there is one, else the commit ACK (C*), else nothing. */
function httpAck(acks: string[]): string {
  return acks.find((a) => /\rMSA\|A[AER]\|/.test(a)) ?? acks[0] ?? '';
}

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

function repeatAnswer(message: Message): Hl7Outcome {
  const acks = splitAcks(message.response);
  return {
    acks,
    ack: httpAck(acks),
    httpStatus: message.response_status,
    messageId: message.id,
    outcome: 'duplicate',
  };
}
