import type { Context } from 'hono';
import {
  FhirIntakeError,
  operationOutcome,
  parseFhirIntake,
  type FhirIntake,
} from '../../adapters/fhir/intake.ts';
import { insertRejectedMessage } from '../../db/messages.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { receiveOverHttp } from './receive.ts';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const FHIR_MEDIA_TYPES = ['application/fhir+json', 'application/json', 'application/json+fhir'];

/**
 * `POST /v1/t/{slug}/fhir`: a FHIR R4 Bundle (transaction, batch, collection, message) or a single
 * ServiceRequest, DiagnosticReport, Observation or Patient. Structural problems are answered with an
 * OperationOutcome naming each failing element, and nothing is stored; accepted content is stored in
 * one transaction and answered 202 with a transaction-response (batch-response) Bundle, or an
 * OperationOutcome for other bundle types. A retry (same `Bundle.identifier`, Idempotency-Key, or
 * body) gets the same answer.
 */
export async function receiveFhir(c: Context<AppEnv>): Promise<Response> {
  const header = c.req.header('content-type') ?? '';
  const [mediaType, ...params] = header.split(';').map((s) => s.trim());
  if (!FHIR_MEDIA_TYPES.includes((mediaType ?? '').toLowerCase()))
    throw new AppError(
      'unsupported_media_type',
      `Content-Type must be application/fhir+json (got ${mediaType || 'none'})`,
    );
  const fhirVersion =
    params.find((p) => p.toLowerCase().startsWith('fhirversion='))?.slice('fhirversion='.length) ?? null;
  const raw = new TextDecoder().decode(c.get('rawBody'));
  if (raw.trim() === '')
    throw new AppError('invalid_request', 'the request body is empty: send a FHIR R4 resource or Bundle');

  let intake: FhirIntake;
  try {
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch (error) {
      throw new FhirIntakeError(
        operationOutcome([
          {
            severity: 'error',
            code: 'structure',
            diagnostics: `the body is not JSON: ${(error as Error).message}`,
          },
        ]),
        400,
      );
    }
    intake = parseFhirIntake(body, { fhirVersion });
  } catch (error) {
    if (!(error instanceof FhirIntakeError)) throw error;
    const { db, metrics } = c.get('services');
    await insertRejectedMessage(db, {
      tenantId: c.get('tenant').id,
      transport: 'http',
      format: 'fhir',
      remoteAddress: c.get('remoteAddress'),
      reason: error.outcome.issue
        .map((i) => `${i.expression?.join(', ') ?? ''}: ${i.diagnostics ?? i.code}`)
        .join('; ')
        .slice(0, 4000),
      raw,
    });
    metrics.inboundMessages.inc({ transport: 'http', format: 'fhir', outcome: 'rejected' });
    return c.body(JSON.stringify(error.outcome), error.httpStatus, { 'Content-Type': FHIR_JSON });
  }

  const scopes = c.get('credential').scopes;
  const needed = [
    ...(intake.results.length > 0 ? ['results:write'] : []),
    ...(intake.orders.length > 0 ? ['orders:write'] : []),
    ...(intake.patients.length > 0 ? ['patients:write'] : []),
  ];
  const missing = needed.filter((s) => !scopes.includes(s));
  if (missing.length > 0)
    throw new AppError(
      'forbidden',
      `this API key lacks the ${missing.join(' and ')} scope needed for this content`,
    );

  return receiveOverHttp(c, {
    format: 'fhir',
    messageType:
      intake.kind === 'resource' ? (intake.entries[0]?.resourceType ?? 'resource') : `Bundle/${intake.kind}`,
    raw,
    hashOf: c.get('rawBody'),
    naturalKey: intake.bundleIdentifier,
    content: { results: intake.results, orders: intake.orders, patients: intake.patients },
    answer: () => ({ response: JSON.stringify(responseOf(intake)), status: 202 }),
  });
}

/** The answer: a transaction-response / batch-response Bundle, else an informational OperationOutcome. */
function responseOf(intake: FhirIntake): object {
  if (intake.kind === 'transaction' || intake.kind === 'batch') {
    return {
      resourceType: 'Bundle',
      type: `${intake.kind}-response`,
      entry: intake.entries.map((e) => ({ response: { status: e.status } })),
    };
  }
  const reports = intake.results.reduce((n, r) => n + r.reports.length, 0);
  const orders = intake.orders.reduce((n, o) => n + o.orders.length, 0);
  return operationOutcome([
    {
      severity: 'information',
      code: 'informational',
      diagnostics: `accepted: ${reports} report(s), ${orders} order(s), ${intake.patients.length} patient(s)`,
    },
  ]);
}
