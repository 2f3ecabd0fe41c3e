import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import { html, raw } from 'hono/html';
import { CSV_COLUMNS } from '../adapters/csv/results-csv.ts';
import { SimpleResultsSchema } from '../adapters/json/results-json.ts';
import type { AppEnv } from './env.ts';

export const OPENAPI_INFO = {
  openapi: '3.1.0',
  info: {
    title: 'LabRelay API',
    version: '0.1.0',
    description:
      'Multi-tenant lab-results integration hub. Platform admin calls use `Authorization: Bearer $LABRELAY_ADMIN_TOKEN`; ' +
      'tenant calls use `Authorization: Bearer {apiKey}` and, when the credential has a signing secret, ' +
      '`LabRelay-Signature: t={unix seconds},v1={hex HMAC-SHA256(secret, "{t}.{raw body}")}` on every request with a body.',
  },
} as const;

const slug = z.string().openapi({ param: { name: 'slug', in: 'path' }, example: 'stmarys' });
const id = z
  .string()
  .uuid()
  .openapi({ param: { name: 'id', in: 'path' } });
const hl7Body = {
  'application/hl7-v2': {
    schema: z.string().openapi({ description: 'One ER7 message; segments end with CR.' }),
  },
};
const fhirJson = {
  'application/fhir+json': { schema: z.object({ resourceType: z.string() }).passthrough() },
};

/**
 * Adds the tenant routes whose bodies are not JSON (HL7, FHIR) to the OpenAPI document: their
 * handlers answer ACKs and OperationOutcomes rather than JSON schemas.
 */
export function registerTenantRoutes(app: OpenAPIHono<AppEnv>): void {
  const r = app.openAPIRegistry;
  r.registerComponent('securitySchemes', 'adminToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'LABRELAY_ADMIN_TOKEN, for /v1/admin routes',
  });
  r.registerComponent('securitySchemes', 'tenantApiKey', {
    type: 'http',
    scheme: 'bearer',
    description: 'A tenant credential API key (lr_live_/lr_test_), for /v1/t routes',
  });
  r.registerPath({
    method: 'post',
    path: '/v1/t/{slug}/hl7',
    summary: 'Send one HL7 v2 message (ORU^R01 results; ORM^O01 or OML^O21 orders)',
    description:
      'Answers an HL7 ACK after the message is committed: 200 `MSA|AA`, 422 `MSA|AE`, 400 `MSA|AR`; 401/403/413/415 also answer an ACK with AR. ' +
      'Optional `Idempotency-Key`. Accepted messages carry `Location` and `LabRelay-Message-Id`.',
    request: { params: z.object({ slug }), body: { content: hl7Body } },
    responses: {
      200: { description: 'MSA|AA', content: hl7Body },
      422: { description: 'MSA|AE', content: hl7Body },
      400: { description: 'MSA|AR', content: hl7Body },
    },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/t/{slug}/messages',
    summary: "The tenant's inbound messages, newest first",
    description: 'Query: `controlId` (MSH-10), `status`, `limit` (1-500, default 50).',
    request: { params: z.object({ slug }) },
    responses: {
      200: {
        description: 'Messages',
        content: {
          'application/json': {
            schema: z.object({
              messages: z.array(
                z.object({ id: z.string(), status: z.string(), href: z.string() }).passthrough(),
              ),
            }),
          },
        },
      },
    },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/t/{slug}/messages/{id}',
    summary:
      "An inbound message's status (received, processing, needs_review, delivered, failed) and workflow id",
    request: { params: z.object({ slug, id }) },
    responses: {
      200: {
        description: 'Status',
        content: {
          'application/json': {
            schema: z
              .object({ id: z.string(), status: z.string(), workflowId: z.string().nullable() })
              .passthrough(),
          },
        },
      },
    },
  });
  const jsonBody = (schema: z.ZodType) => ({ 'application/json': { schema } });
  const accepted = z
    .object({ messageId: z.string().uuid(), status: z.string() })
    .passthrough()
    .openapi('Accepted');
  r.registerPath({
    method: 'post',
    path: '/v1/t/{slug}/fhir',
    summary: 'Send FHIR R4: a Bundle (transaction, batch, collection, message) or one resource',
    description:
      'ServiceRequest (orders, scope `orders:write`), DiagnosticReport with its Observations or a standalone Observation (results, `results:write`), Patient (`patients:write`), Specimen. ' +
      '`urn:uuid:` and relative references are resolved inside the Bundle. Answers 202 with a transaction-response/batch-response Bundle, or an OperationOutcome; ' +
      'structural problems answer 400/422 with an OperationOutcome whose issues name each failing element (`expression`). ' +
      'A `fhirVersion` other than 4.0 in the Content-Type, or a resource of another FHIR version, is refused. A repeated `Bundle.identifier` or body gets the stored answer.',
    request: { params: z.object({ slug }), body: { content: fhirJson } },
    responses: {
      202: { description: 'transaction-response Bundle or OperationOutcome', content: fhirJson },
      400: { description: 'OperationOutcome', content: fhirJson },
      422: { description: 'OperationOutcome', content: fhirJson },
    },
  });
  r.registerPath({
    method: 'post',
    path: '/v1/t/{slug}/results',
    summary: 'Send results in the simple JSON format (scope results:write)',
    description:
      'One patient, one report and its results. `patient.externalPatientId` (seed 003) never makes a second patient. Answers 202 with the message id; a repeated body or Idempotency-Key gets the same answer.',
    request: { params: z.object({ slug }), body: { content: jsonBody(SimpleResultsSchema), required: true } },
    responses: { 202: { description: 'Accepted', content: jsonBody(accepted) } },
  });
  r.registerPath({
    method: 'post',
    path: '/v1/t/{slug}/csv',
    summary: 'Upload results as CSV with a header row (scope results:write)',
    description:
      'Columns: ' +
      CSV_COLUMNS.map((c) => `\`${c.name}\` (${c.description})`).join(', ') +
      '. Streamed: any size up to LABRELAY_MAX_UPLOAD_BYTES, committed in batches; `GET /messages/{id}` shows `progress` while it runs. ' +
      'Good rows are accepted, bad rows are answered with their row number (the header is row 1) and reason. BOM, CRLF and quoted fields are read.',
    request: {
      params: z.object({ slug }),
      body: {
        content: {
          'text/csv': {
            schema: z.string().openapi({
              example:
                'patient_id,patient_id_system,family_name,given_name,birth_date,order_number,test_code,test_system,test_name,value,unit,reference_range,collected_at\r\n' +
                'MRN-1,urn:oid:1.2.3,Doe,Jane,1980-01-15,ORD-1,2823-3,LN,Potassium,4.1,mmol/L,3.5-5.1,2026-11-22T07:00:00Z\r\n',
            }),
          },
        },
        required: true,
      },
    },
    responses: {
      202: {
        description: 'Accepted rows and rejected rows',
        content: jsonBody(
          z
            .object({
              messageId: z.string().uuid(),
              accepted: z.number().int(),
              rowsRead: z.number().int(),
              rejected: z.array(z.object({ row: z.number().int(), message: z.string() })),
              rejectedCount: z.number().int(),
              warnings: z
                .array(z.string())
                .openapi({ description: 'About the file as a whole, e.g. a column missing or unknown' }),
            })
            .openapi('CsvAnswer'),
        ),
      },
    },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/t/{slug}/csv/columns',
    summary: 'The CSV columns LabRelay reads, with what each means',
    request: { params: z.object({ slug }) },
    responses: {
      200: {
        description: 'Columns',
        content: jsonBody(
          z.object({
            columns: z.array(z.object({ name: z.string(), description: z.string() }).passthrough()),
          }),
        ),
      },
    },
  });
  r.registerPath({
    method: 'post',
    path: '/v1/t/{slug}/documents',
    summary: 'Upload a PDF report with patient and order hints (multipart, scope results:write)',
    description:
      'Fields: `file` (the PDF), and hints `patientId`, `externalPatientId`, `mrn` + `mrnSystem`, `familyName`, `givenName`, `birthDate`, `orderNumber`, `orderNumberSystem`, `category` (e.g. blood-work, urinalysis, pathology), `title`. ' +
      'The PDF is stored, its text extracted and a review task opened; one that cannot be read is kept as an attachment and flagged for manual processing.',
    request: {
      params: z.object({ slug }),
      body: {
        content: {
          'multipart/form-data': {
            schema: z.object({ file: z.string().openapi({ format: 'binary' }) }).passthrough(),
          },
        },
        required: true,
      },
    },
    responses: { 202: { description: 'Accepted', content: jsonBody(accepted) } },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/t/{slug}/orders',
    summary: "The tenant's orders with their status history (scope results:read)",
    description: 'Query: `status`, `placerOrderNumber`, `limit` (1-500, default 50).',
    request: { params: z.object({ slug }) },
    responses: { 200: { description: 'Orders', content: jsonBody(z.object({ orders: z.array(z.any()) })) } },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/t/{slug}/orders/{id}',
    summary: 'One order with its status history',
    request: { params: z.object({ slug, id }) },
    responses: {
      200: { description: 'Order', content: jsonBody(z.object({ id: z.string() }).passthrough()) },
    },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/t/{slug}/fhir/metadata',
    summary: 'The FHIR CapabilityStatement of the result API',
    request: { params: z.object({ slug }) },
    responses: { 200: { description: 'CapabilityStatement', content: fhirJson } },
  });
  for (const [type, params] of [
    [
      'DiagnosticReport',
      'patient, patient.identifier, code, date, status, _lastUpdated, _count, _offset, _include=DiagnosticReport:result|DiagnosticReport:subject',
    ],
    ['Observation', 'patient, patient.identifier, code, _count, _offset'],
    ['Patient', 'identifier, _id, _count, _offset'],
  ] as const) {
    r.registerPath({
      method: 'get',
      path: `/v1/t/{slug}/fhir/${type}`,
      summary: `Search ${type} (FHIR R4 searchset Bundle)`,
      description: `Search parameters: ${params}. Only released results are visible. Unknown parameters answer 400 unless the request says \`Prefer: handling=lenient\`. Errors are OperationOutcomes.`,
      request: { params: z.object({ slug }) },
      responses: { 200: { description: 'searchset Bundle', content: fhirJson } },
    });
    r.registerPath({
      method: 'get',
      path: `/v1/t/{slug}/fhir/${type}/{id}`,
      summary: `Read a ${type}`,
      request: { params: z.object({ slug, id }) },
      responses: {
        200: { description: type, content: fhirJson },
        404: { description: 'OperationOutcome', content: fhirJson },
      },
    });
  }
}

interface Operation {
  summary?: string;
  description?: string;
}

/** The API reference page at /docs: every operation of the OpenAPI document, readable without JavaScript. */
export function renderApiReference(document: { paths?: object }) {
  const paths = (document.paths ?? {}) as Record<string, Record<string, Operation>>;
  const rows = Object.entries(paths).flatMap(([path, operations]) =>
    Object.entries(operations).map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
  );
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>LabRelay API reference</title>
        <style>
          body {
            font-family: system-ui, sans-serif;
            max-width: 70rem;
            margin: 2rem auto;
            padding: 0 1rem;
            color: #1b1f24;
          }
          code {
            background: #eef1f4;
            padding: 0 0.25rem;
          }
          section {
            border-top: 1px solid #dde1e6;
            padding: 0.5rem 0;
          }
          .method {
            display: inline-block;
            min-width: 4.5rem;
            font-weight: 700;
          }
        </style>
      </head>
      <body>
        <h1>${OPENAPI_INFO.info.title} ${OPENAPI_INFO.info.version}</h1>
        <p>${withCode(OPENAPI_INFO.info.description)}</p>
        <p>Machine-readable: <a href="/v1/openapi.json">/v1/openapi.json</a> (OpenAPI 3.1).</p>
        ${rows.map(
          ({ method, path, op }) =>
            html`<section>
              <h2><span class="method">${method}</span> <code>${path}</code></h2>
              ${op.summary ? html`<p>${op.summary}</p>` : ''}
              ${op.description ? html`<p>${op.description}</p>` : raw('')}
            </section>`,
        )}
      </body>
    </html>`;
}

/** Escapes text for HTML and shows its `backticked` parts as code. */
function withCode(text: string) {
  const escaped = text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
  return raw(escaped.replace(/`([^`]+)`/g, '<code>$1</code>'));
}
