import { TokenProvider } from '../adapters/oauth/token-client.ts';
import { appendAudit } from '../db/audit.ts';
import type { Connection, Tenant } from '../db/schema.ts';
import { tenantScope } from '../db/tenant-scope.ts';
import type { OutboundAuth } from '../domain/outbound.ts';
import type { Services } from './env.ts';
import { AppError } from './errors.ts';
import { signBody } from '../adapters/crypto/signature.ts';
import { openConnectionAuth } from '../adapters/crypto/secret-box.ts';
import { sendThroughTenantEndpoint } from './console-intake.ts';

// The credential handoff and "test connection" of the console's onboarding (seed 002): copy-ready
// samples signed with the secret just issued, and a real test message through the sandbox whose
// progress is read back from what the pipeline recorded.

/** A realistic ORU^R01 a tenant can send as its first message (a normal potassium). */
export function sampleHl7(slug: string, controlId = 'MSG0001'): string {
  const facility = slug.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  return [
    `MSH|^~\\&|LIS|${facility}_LAB|LABRELAY|${facility}|20261122083000||ORU^R01|${controlId}|P|2.5.1`,
    `PID|1||TEST-0001^^^${facility}^MR||Sandbox^Test||19800115|F`,
    `OBR|1|${controlId}-ORD||24323-8^Metabolic panel^LN|||20261122070000||||||||||||||||||F`,
    'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F',
  ].join('\r');
}

/** A potassium like the HL7 sample's, as a FHIR R4 transaction Bundle; a report of its own order. */
export function sampleFhirBundle(slug: string, id = 'MSG0001'): Record<string, unknown> {
  const system = `urn:labrelay:${slug}:mrn`;
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    identifier: { system: `urn:labrelay:${slug}:bundle`, value: id },
    entry: [
      {
        fullUrl: 'urn:uuid:7d2c3a52-0000-4000-8000-000000000001',
        resource: {
          resourceType: 'Patient',
          identifier: [{ system, value: 'TEST-0001' }],
          name: [{ family: 'Sandbox', given: ['Test'] }],
          birthDate: '1980-01-15',
        },
        request: { method: 'POST', url: 'Patient' },
      },
      {
        fullUrl: 'urn:uuid:7d2c3a52-0000-4000-8000-000000000002',
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '2823-3', display: 'Potassium' }] },
          subject: { reference: 'urn:uuid:7d2c3a52-0000-4000-8000-000000000001' },
          effectiveDateTime: '2026-11-22T07:00:00Z',
          valueQuantity: { value: 4.1, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
          referenceRange: [{ low: { value: 3.5, unit: 'mmol/L' }, high: { value: 5.1, unit: 'mmol/L' } }],
        },
        request: { method: 'POST', url: 'Observation' },
      },
      {
        fullUrl: 'urn:uuid:7d2c3a52-0000-4000-8000-000000000003',
        resource: {
          resourceType: 'DiagnosticReport',
          status: 'final',
          identifier: [{ system: `urn:labrelay:${slug}:report`, value: `${id}-R` }],
          code: { coding: [{ system: 'http://loinc.org', code: '24323-8', display: 'Metabolic panel' }] },
          subject: { reference: 'urn:uuid:7d2c3a52-0000-4000-8000-000000000001' },
          result: [{ reference: 'urn:uuid:7d2c3a52-0000-4000-8000-000000000002' }],
        },
        request: { method: 'POST', url: 'DiagnosticReport' },
      },
    ],
  };
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * Copy-ready requests for a credential just issued: curl with the signature already computed (valid
 * for five minutes), and a script that signs any file with openssl for later use.
 */
export function handoffSamples(input: {
  baseUrl: string;
  slug: string;
  apiKey: string;
  signingSecret: string | null;
  now?: number;
}) {
  const t = Math.floor((input.now ?? Date.now()) / 1000);
  const hl7 = sampleHl7(input.slug);
  const fhir = JSON.stringify(sampleFhirBundle(input.slug));
  const curl = (path: string, contentType: string, body: string) =>
    [
      `curl -s -X POST ${input.baseUrl}${path} \\`,
      `  -H 'authorization: Bearer ${input.apiKey}' \\`,
      `  -H 'content-type: ${contentType}' \\`,
      ...(input.signingSecret
        ? [`  -H 'LabRelay-Signature: ${signBody(input.signingSecret, body, t)}' \\`]
        : []),
      `  --data-binary ${shellQuote(body).replaceAll('\r', '\\r')}`,
    ].join('\n');
  return {
    hl7: hl7.replaceAll('\r', '\n'),
    fhir: JSON.stringify(JSON.parse(fhir), null, 2),
    /** Signed now: sends as is within 300 seconds of `t`. */
    hl7Curl: input.signingSecret
      ? curl('/hl7', 'application/hl7-v2', hl7).replace(
          `--data-binary ${shellQuote(hl7).replaceAll('\r', '\\r')}`,
          `--data-binary "$(printf ${shellQuote(hl7.replaceAll('\r', '\\r'))})"`,
        )
      : curl('/hl7', 'application/hl7-v2', hl7),
    fhirCurl: curl('/fhir', 'application/fhir+json', fhir),
    signedAt: new Date(t * 1000).toISOString(),
    script: [
      `KEY=${shellQuote(input.apiKey)}`,
      ...(input.signingSecret ? [`SECRET=${shellQuote(input.signingSecret)}`] : []),
      `FILE=msg.hl7   # the body to send, byte for byte`,
      `T=$(date +%s)`,
      ...(input.signingSecret
        ? [
            `SIG=$( (printf '%s.' "$T"; cat "$FILE") | openssl dgst -sha256 -hmac "$SECRET" -hex | sed 's/.* //')`,
          ]
        : []),
      `curl -s -X POST ${input.baseUrl}/hl7 -H "authorization: Bearer $KEY" -H 'content-type: application/hl7-v2' \\`,
      `  ${input.signingSecret ? `-H "LabRelay-Signature: t=$T,v1=$SIG" ` : ''}--data-binary @"$FILE"`,
    ].join('\n'),
  };
}

export type TestStepState = 'passed' | 'waiting' | 'failed' | 'skipped';
export interface TestStep {
  label: string;
  state: TestStepState;
  detail: string | null;
}

/** What a connection test started: the test message, or (pull) the finished steps. */
export type ConnectionTestStart = { messageId: string } | { steps: TestStep[] };

/**
 * Tests a connection through the sandbox. Inbound and outbound: a sample result is sent to this
 * LabRelay's own HTTP endpoint with a sandbox key made for the test (revoked once answered), so it
 * passes every real step (authentication, parsing, storage, ACK, workflow, reconciliation,
 * flagging, release and, for a sandbox destination, delivery). Pull: the hospital's FHIR server
 * is asked for its CapabilityStatement with the connection's credentials. Audited.
 */
export async function startConnectionTest(
  services: Pick<Services, 'db' | 'config'>,
  selfUrl: string,
  tenant: Tenant,
  connectionId: string,
  actor: string,
): Promise<ConnectionTestStart> {
  const connection = await tenantScope(services.db, tenant.id)
    .selectFrom('connections')
    .selectAll()
    .where('id', '=', connectionId)
    .where('disabled_at', 'is', null)
    .executeTakeFirst();
  if (!connection)
    throw new AppError('not_found', `tenant ${tenant.slug} has no live connection ${connectionId}`);
  if (connection.direction === 'pull') {
    const steps = await checkFhirServer(services, connection);
    await audit(services, tenant, connection, actor, {
      direction: 'pull',
      passed: steps.every((s) => s.state === 'passed'),
    });
    return { steps };
  }
  if (connection.direction === 'outbound' && connection.environment !== 'sandbox')
    throw new AppError(
      'conflict',
      `${connection.name} is a production destination: test results only reach sandbox destinations, so test before promoting`,
    );
  const controlId = `TEST${Date.now().toString(36).toUpperCase()}`;
  const fhir = connection.direction === 'inbound' && connection.format === 'fhir';
  const answer = await sendThroughTenantEndpoint(services, {
    selfUrl,
    tenant,
    path: fhir ? '/fhir' : '/hl7',
    contentType: fhir ? 'application/fhir+json' : 'application/hl7-v2',
    body: fhir ? JSON.stringify(sampleFhirBundle(tenant.slug, controlId)) : sampleHl7(tenant.slug, controlId),
    environment: 'sandbox',
    purpose: `connection test of ${connection.name}`,
    actor,
    timeoutMs: 30_000,
  });
  if (!answer.messageId)
    throw new AppError(
      'unprocessable',
      `the test message was refused (${answer.status}): ${answer.text.slice(0, 300)}`,
    );
  await audit(services, tenant, connection, actor, { messageId: answer.messageId, status: answer.status });
  return { messageId: answer.messageId };
}

async function audit(
  services: Pick<Services, 'db'>,
  tenant: Tenant,
  connection: Connection,
  actor: string,
  details: Record<string, unknown>,
) {
  await services.db.transaction().execute((trx) =>
    appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'connection.tested',
      subject: `connection/${connection.id}`,
      details: { name: connection.name, ...details },
    }),
  );
}

/** A pull connection's FHIR server: token (when it has credentials), CapabilityStatement, FHIR R4. */
async function checkFhirServer(
  services: Pick<Services, 'config'>,
  connection: Connection,
): Promise<TestStep[]> {
  const steps: TestStep[] = [];
  const base = String((connection.endpoint as { url?: string } | null)?.url ?? '').replace(/\/+$/, '');
  const auth: OutboundAuth = openConnectionAuth(services.config.masterKey, connection) ?? { type: 'none' };
  let authorization: string | null = null;
  if (auth.type === 'smart_launch') {
    steps.push({
      label: 'Credentials',
      state: 'skipped',
      detail: 'a SMART launch signs in when a clinician launches from the EHR',
    });
  } else if (auth.type !== 'none') {
    try {
      authorization = await new TokenProvider().authorization(`test/${connection.id}`, auth);
      steps.push({ label: 'Token obtained', state: 'passed', detail: auth.type });
    } catch (error) {
      steps.push({ label: 'Token obtained', state: 'failed', detail: (error as Error).message });
      return steps;
    }
  }
  let body = null as { resourceType?: string; fhirVersion?: string } | null;
  try {
    const response = await fetch(`${base}/metadata`, {
      headers: { accept: 'application/fhir+json', ...(authorization ? { authorization } : {}) },
      signal: AbortSignal.timeout(15_000),
      redirect: 'manual',
    });
    body = response.ok ? ((await response.json()) as typeof body) : null;
    steps.push({
      label: 'FHIR server answered',
      state: response.ok ? 'passed' : 'failed',
      detail: `${new URL(base).origin} answered ${response.status}`,
    });
  } catch (error) {
    const cause =
      (error as Error).cause instanceof Error
        ? ((error as Error).cause as Error).message
        : (error as Error).message;
    steps.push({ label: 'FHIR server answered', state: 'failed', detail: cause });
    return steps;
  }
  if (!body) return steps;
  const r4 = body.resourceType === 'CapabilityStatement' && /^4\.0\./.test(body.fhirVersion ?? '');
  steps.push({
    label: 'Speaks FHIR R4',
    state: r4 ? 'passed' : 'failed',
    detail:
      body.resourceType === 'CapabilityStatement'
        ? `fhirVersion ${body.fhirVersion ?? 'not given'}`
        : 'no CapabilityStatement',
  });
  return steps;
}

/**
 * The steps a test message has passed so far, read from what the pipeline recorded: accepted and
 * acknowledged, workflow, patient, flags and routing, release (or a person's review), and the
 * delivery to the tested destination.
 */
export async function connectionTestSteps(
  services: Pick<Services, 'db'>,
  tenant: Tenant,
  messageId: string,
  connectionId: string | null,
): Promise<{ steps: TestStep[]; finished: boolean }> {
  const scope = tenantScope(services.db, tenant.id);
  const message = await scope
    .selectFrom('messages')
    .select(['id', 'status', 'status_detail', 'message_type', 'response_status'])
    .where('id', '=', messageId)
    .executeTakeFirst();
  if (!message) throw new AppError('not_found', `tenant ${tenant.slug} has no message ${messageId}`);
  const reports = await scope
    .selectFrom('reports')
    .select(['id', 'stage', 'patient_id', 'routing'])
    .where('message_id', '=', messageId)
    .execute();
  // Result workflows start from the inbox (one row per report), order workflows from the order inbox.
  const reportIds = reports.length ? reports.map((r) => r.id) : ['00000000-0000-0000-0000-000000000000'];
  const started = [
    ...(await scope
      .selectFrom('inbox')
      .select(['workflow_id', 'started_at'])
      .where('report_id', 'in', reportIds)
      .execute()),
    ...(await scope
      .selectFrom('order_inbox')
      .select(['workflow_id', 'started_at'])
      .where('message_id', '=', messageId)
      .execute()),
  ];
  const connection = connectionId
    ? await scope
        .selectFrom('connections')
        .select(['id', 'name', 'direction'])
        .where('id', '=', connectionId)
        .executeTakeFirst()
    : undefined;
  const failed = message.status === 'failed';
  const step = (
    label: string,
    passed: boolean,
    detail: string | null = null,
    waitingDetail: string | null = null,
  ): TestStep => ({
    label,
    state: passed ? 'passed' : failed ? 'failed' : 'waiting',
    detail: passed ? detail : failed ? (message.status_detail ?? 'failed') : waitingDetail,
  });
  const steps: TestStep[] = [
    step('Credential accepted, message parsed and stored', true, message.message_type),
    step('Acknowledged to the sender', true, `HTTP ${message.response_status} after the commit`),
    step(
      'Workflow started',
      started.length > 0 && started.every((s) => s.started_at !== null),
      started.map((s) => s.workflow_id).join(', '),
    ),
    step('Patient reconciled', reports.length > 0 && reports.every((r) => r.patient_id !== null)),
    step('Flagged and routed', reports.length > 0 && reports.every((r) => r.routing !== null)),
  ];
  const released = reports.length > 0 && reports.every((r) => r.stage === 'released');
  const inReview = reports.some((r) => r.stage === 'needs_review');
  steps.push(
    inReview
      ? {
          label: 'Released',
          state: 'waiting',
          detail: 'a routing rule sent it to the review queue: a person decides',
        }
      : step('Released', released),
  );
  let finished = failed || released || inReview;
  if (connection?.direction === 'outbound') {
    const delivery = await scope
      .selectFrom('deliveries')
      .select(['status', 'last_error', 'dead_letter_reason'])
      .where('connection_id', '=', connection.id)
      .where(
        'report_id',
        'in',
        reports.length ? reports.map((r) => r.id) : ['00000000-0000-0000-0000-000000000000'],
      )
      .executeTakeFirst();
    const delivered = delivery?.status === 'delivered';
    const dead = delivery?.status === 'dead_letter';
    steps.push({
      label: `Delivered to ${connection.name}`,
      state: delivered ? 'passed' : dead ? 'failed' : failed ? 'failed' : 'waiting',
      detail: delivered ? null : dead ? delivery!.dead_letter_reason : (delivery?.last_error ?? null),
    });
    finished = failed || delivered || dead || inReview;
  }
  return { steps, finished };
}
