import { Hono } from 'hono';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { receiveHl7 } from '../intake/hl7.ts';

const HL7_CONTENT_TYPES = ['application/hl7-v2', 'x-application/hl7-v2+er7', 'text/plain'];

/** `POST /v1/t/{slug}/hl7`: one ER7 message in, one HL7 ACK out (HTTP status agrees with MSA-1). */
export function hl7Routes() {
  const app = new Hono<AppEnv>();
  app.post('/', async (c) => {
    const contentType = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (!HL7_CONTENT_TYPES.includes(contentType)) {
      throw new AppError(
        'unsupported_media_type',
        `Content-Type must be one of ${HL7_CONTENT_TYPES.join(', ')}`,
      );
    }
    const idempotencyKey = idempotencyKeyOf(c.req.header('idempotency-key'));
    const raw = new TextDecoder('utf-8').decode(c.get('rawBody'));
    if (raw.trim() === '')
      throw new AppError('invalid_request', 'the request body is empty: send one HL7 v2 message');
    const result = await receiveHl7(c.get('services'), {
      tenant: c.get('tenant'),
      transport: 'http',
      raw,
      scopes: c.get('credential').scopes,
      credentialId: c.get('credential').id,
      access: { clientIds: c.get('credential').client_ids, locationIds: c.get('credential').location_ids },
      connectionId: null,
      idempotencyKey,
      remoteAddress: null,
    });
    if (result.messageId) {
      c.header('Location', `/v1/t/${c.get('tenant').slug}/messages/${result.messageId}`);
      c.header('LabRelay-Message-Id', result.messageId);
    }
    // MSH-15/16 asked for no acknowledgement at all (NE|NE): the status alone answers.
    if (result.ack === '') return c.body(null, result.httpStatus === 200 ? 204 : (result.httpStatus as 400));
    return c.body(result.ack, result.httpStatus as 200, {
      'Content-Type': 'application/hl7-v2; charset=utf-8',
    });
  });
  return app;
}

/** Validates an `Idempotency-Key` header: printable ASCII, at most 255 characters. */
export function idempotencyKeyOf(value: string | undefined): string | null {
  if (value === undefined) return null;
  if (!/^[\x21-\x7e]{1,255}$/.test(value))
    throw new AppError('invalid_request', 'Idempotency-Key must be 1-255 printable ASCII characters');
  return value;
}
