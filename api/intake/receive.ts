import type { Context } from 'hono';
import type { Message } from '../../db/schema.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { idempotencyKeyOf } from '../routes/hl7.ts';
import { accessViolations, storeIntake, type InboundAnswer, type Intake } from './store.ts';

/** What the HTTP routes store: the same as every other intake. */
export type HttpIntake = Intake;

/**
 * Receives one non-HL7 message over HTTP (FHIR, JSON, a PDF upload) for the authenticated tenant:
 * stores it and its content in one transaction and answers; a retry (the same Idempotency-Key, the
 * same natural key, or the same bytes from the same tenant) gets the stored answer again and
 * creates nothing. A different body under a used Idempotency-Key is refused (409).
 */
export async function receiveOverHttp(c: Context<AppEnv>, intake: HttpIntake): Promise<Response> {
  const tenant = c.get('tenant');
  const credential = c.get('credential');
  const idempotencyKey = idempotencyKeyOf(c.req.header('idempotency-key'));
  const violations = accessViolations(
    { clientIds: credential.client_ids, locationIds: credential.location_ids },
    intake.content,
  );
  if (violations.length > 0)
    throw new AppError(
      'forbidden',
      violations.join('; '),
      violations.map((message) => ({ message })),
    );
  const stored = await storeIntake(
    c.get('services'),
    { tenant, transport: 'http', credentialId: credential.id, idempotencyKey },
    intake,
  );
  if (stored.kind === 'duplicate')
    return repeatOrRefuse(c, stored.message, stored.contentHash, idempotencyKey);
  setMessageHeaders(c, stored.messageId);
  return answerResponse(c, stored.answer);
}

/** A retry gets the stored answer byte for byte; a different body under a used key is refused. */
export function repeatOrRefuse(
  c: Context<AppEnv>,
  duplicate: Message,
  contentHash: string,
  idempotencyKey: string | null,
): Response {
  if (duplicate.content_hash !== contentHash) {
    const byKey = idempotencyKey !== null && duplicate.idempotency_key === idempotencyKey;
    throw new AppError(
      'conflict',
      byKey
        ? `Idempotency-Key ${idempotencyKey} was already used for a different request (message ${duplicate.id})`
        : `this identifier was already used for a different message (${duplicate.id})`,
    );
  }
  if (duplicate.progress && !duplicate.progress.done) {
    throw new AppError(
      'conflict',
      `this upload is still being received or was interrupted (message ${duplicate.id}); see its status`,
    );
  }
  setMessageHeaders(c, duplicate.id);
  return answerResponse(c, { response: duplicate.response, status: duplicate.response_status });
}

export function setMessageHeaders(c: Context<AppEnv>, messageId: string): void {
  c.header('Location', `/v1/t/${c.get('tenant').slug}/messages/${messageId}`);
  c.header('LabRelay-Message-Id', messageId);
}

function answerResponse(c: Context<AppEnv>, answer: InboundAnswer): Response {
  const isFhir = answer.response.startsWith('{"resourceType"');
  return c.body(answer.response, answer.status as 202, {
    'Content-Type': isFhir ? 'application/fhir+json; charset=utf-8' : 'application/json; charset=utf-8',
  });
}
