import { adminUserRoutes } from './routes/admin-users.ts';
import { randomUUID } from 'node:crypto';
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { sql } from 'kysely';
import { ackTargetFromRaw, buildAck, HL7_ERROR } from '../adapters/hl7v2/ack.ts';
import { operationOutcome, type IssueType } from '../adapters/fhir/resources.ts';
import { SearchParamError } from '../adapters/fhir/search-params.ts';
import { OPENAPI_INFO, registerTenantRoutes, renderApiReference } from './docs.ts';
import { AppError, errorBody, type ErrorCode } from './errors.ts';
import type { AppEnv, Services } from './env.ts';
import { tenantAuth } from './middleware/tenant-auth.ts';
import { ackPageRoutes } from './routes/ack-page.ts';
import { ackRoutes } from './routes/ack.ts';
import { adminLifecycleRoutes } from './routes/admin-lifecycle.ts';
import { adminMessageRoutes } from './routes/admin-messages.ts';
import { adminRoutes } from './routes/admin.ts';
import { adminConnectionRoutes, jwksRoutes } from './routes/admin-connections.ts';
import { taskRoutes } from './routes/tasks.ts';
import { fhirRoutes } from './routes/fhir.ts';
import { hl7Routes } from './routes/hl7.ts';
import { intakeRoutes } from './routes/intake.ts';
import { orderRoutes } from './routes/orders.ts';
import { messageRoutes } from './routes/messages.ts';
import { smartRoutes } from './routes/smart.ts';

export interface AppOptions {
  /** Serves everything the API does not (the built SvelteKit console). */
  fallback?: MiddlewareHandler<AppEnv>;
}

/**
 * The HTTP application: health and metrics, the platform admin API, the tenant API (HL7, FHIR,
 * message status), the OpenAPI document, and the console behind them on the same port.
 */
export function createApp(services: Services, options: AppOptions = {}) {
  const app = new OpenAPIHono<AppEnv>();

  app.use('*', async function servicesAndRequestId(c, next) {
    c.set('services', services);
    const requestId = c.req.header('x-request-id')?.slice(0, 100) || randomUUID();
    c.set('requestId', requestId);
    c.header('X-Request-Id', requestId);
    const started = performance.now();
    await next();
    const route = c.req.routePath || 'unmatched';
    services.metrics.httpRequests.observe(
      { method: c.req.method, route, status: String(c.res.status) },
      (performance.now() - started) / 1000,
    );
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const checks: Record<string, string> = {};
    try {
      await sql`select 1`.execute(services.db);
      checks.database = 'ok';
    } catch (error) {
      checks.database = `failing: ${(error as Error).message}`;
    }
    const ready = Object.values(checks).every((v) => v === 'ok');
    return c.json({ status: ready ? 'ready' : 'not ready', checks }, ready ? 200 : 503);
  });
  app.get('/metrics', async (c) =>
    c.body(await services.metrics.registry.metrics(), 200, {
      'Content-Type': services.metrics.registry.contentType,
    }),
  );

  const limit = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw new AppError('payload_too_large', `the request body is larger than ${maxSize} bytes`);
      },
    });
  const messageLimit = limit(services.config.maxBodyBytes);
  // A CSV upload is streamed to disk, never held in memory: it may be much larger than a message.
  const uploadLimit = limit(services.config.maxUploadBytes);
  app.use('/v1/*', async function bodyLimits(c, next) {
    return (/^\/v1\/t\/[^/]+\/csv\/?$/.test(c.req.path) ? uploadLimit : messageLimit)(c, next);
  });
  app.route('/v1/admin', adminRoutes());
  app.route('/v1/admin', adminLifecycleRoutes());
  app.route('/v1/admin', adminConnectionRoutes());
  app.route('/v1/admin', adminUserRoutes());
  app.route('/v1/admin', adminMessageRoutes());
  app.route('/v1/jwks', jwksRoutes());
  app.route('/v1/ack', ackRoutes());
  app.route('/ack', ackPageRoutes());
  app.route('/smart', smartRoutes());

  const tenant = new OpenAPIHono<AppEnv>();
  tenant.use('*', tenantAuth());
  tenant.route('/hl7', hl7Routes());
  tenant.route('/messages', messageRoutes());
  tenant.route('/fhir', fhirRoutes());
  tenant.route('/', taskRoutes());
  tenant.route('/', intakeRoutes());
  tenant.route('/orders', orderRoutes());
  app.route('/v1/t/:slug', tenant);

  registerTenantRoutes(app);
  app.doc31('/v1/openapi.json', OPENAPI_INFO);
  app.get('/docs', (c) => c.html(renderApiReference(app.getOpenAPI31Document(OPENAPI_INFO))));

  app.all('/v1/*', () => {
    throw new AppError('not_found', 'there is no such API route');
  });
  if (options.fallback) app.all('*', options.fallback);

  app.onError((error, c) => renderError(error, c));
  app.notFound((c) => renderError(new AppError('not_found', 'there is no such route'), c));
  return app;
}

const ISSUE_TYPE: Record<ErrorCode, IssueType> = {
  unauthorized: 'login',
  forbidden: 'forbidden',
  not_found: 'not-found',
  invalid_request: 'invalid',
  unprocessable: 'processing',
  conflict: 'processing',
  payload_too_large: 'too-costly',
  unsupported_media_type: 'not-supported',
  rate_limited: 'throttled',
  unavailable: 'exception',
  internal: 'exception',
};

/** The one place errors become responses: JSON, FHIR OperationOutcome or HL7 ACK by route. */
async function renderError(error: Error, c: Context<AppEnv>) {
  const appError = toAppError(error, c);
  closeIfUnread(c, appError);
  for (const [name, value] of Object.entries(appError.headers)) c.header(name, value);
  const path = c.req.path;
  if (/^\/v1\/t\/[^/]+\/hl7\/?$/.test(path)) {
    // Echo the sender's MSH-10 in MSA-2 whenever the body is at hand (not when it was too large).
    let raw = '';
    const body = c.get('rawBody');
    if (body) raw = new TextDecoder().decode(body.subarray(0, 4096));
    else if (appError.code !== 'payload_too_large')
      raw = await c.req.text().then(
        (t) => t.slice(0, 4096),
        () => '',
      );
    const ack = buildAck(ackTargetFromRaw(raw), 'AR', [
      {
        code: appError.status >= 500 ? HL7_ERROR.internalError : HL7_ERROR.unknownKey,
        location: null,
        message: appError.message,
      },
    ]);
    return c.body(ack, appError.status as 400, { 'Content-Type': 'application/hl7-v2; charset=utf-8' });
  }
  if (/^\/v1\/t\/[^/]+\/fhir(\/|$)/.test(path)) {
    const outcome = operationOutcome([
      {
        severity: 'error',
        code: ISSUE_TYPE[appError.code],
        diagnostics: appError.message,
        ...(appError.details[0]?.path ? { expression: appError.details.map((d) => d.path ?? '') } : {}),
      },
    ]);
    return c.body(JSON.stringify(outcome), appError.status as 400, {
      'Content-Type': 'application/fhir+json; charset=utf-8',
    });
  }
  return c.json(errorBody(appError), appError.status as 400);
}

/** After a 413 the rest of the body is never read: the connection cannot carry another request. */
function closeIfUnread(c: Context<AppEnv>, error: AppError): void {
  if (error.code === 'payload_too_large') c.header('Connection', 'close');
}

function toAppError(error: Error, c: Context<AppEnv>): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof SearchParamError)
    return new AppError('invalid_request', error.message, [{ path: error.param, message: error.message }]);
  if (error instanceof HTTPException) {
    const code: ErrorCode =
      error.status === 413
        ? 'payload_too_large'
        : error.status === 401
          ? 'unauthorized'
          : error.status === 404
            ? 'not_found'
            : error.status >= 500
              ? 'internal'
              : 'invalid_request';
    return new AppError(code, error.message || 'the request could not be read');
  }
  c.get('services')?.logger.error(
    { err: error, requestId: c.get('requestId'), path: c.req.path },
    'unhandled error',
  );
  return new AppError('internal', `internal error; quote request id ${c.get('requestId')} when reporting it`);
}
