import type { Tenant } from '../db/schema.ts';
import type { Services } from './env.ts';
import { issueTenantCredential, revokeTenantCredential } from './tenant-credentials.ts';

/**
 * Sends a body through one of the tenant's own intake endpoints on this LabRelay's HTTP port, as a
 * sender would, with a key made for this one request (named for who sent it, so the message's
 * credential says so) and revoked as soon as the answer is in. The console's uploads and
 * connection tests go through exactly the code that senders' messages go through.
 */
export async function sendThroughTenantEndpoint(
  services: Pick<Services, 'db' | 'config'>,
  input: {
    selfUrl: string;
    tenant: Tenant;
    /** e.g. `/csv`, `/hl7`, `/fhir` under `/v1/t/{slug}`. */
    path: string;
    contentType: string;
    body: string | ReadableStream<Uint8Array>;
    environment: 'sandbox' | 'production';
    purpose: string;
    actor: string;
    idempotencyKey?: string;
    timeoutMs?: number;
  },
): Promise<{ status: number; messageId: string | null; text: string; contentType: string | null }> {
  const credential = await issueTenantCredential(
    services,
    input.tenant,
    {
      name: input.purpose,
      scopes: ['results:write', 'orders:write', 'patients:write'],
      environment: input.environment,
      signed: false,
    },
    input.actor,
  );
  try {
    const response = await fetch(`${input.selfUrl}/v1/t/${input.tenant.slug}${input.path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${credential.apiKey}`,
        'content-type': input.contentType,
        ...(input.idempotencyKey ? { 'idempotency-key': input.idempotencyKey } : {}),
      },
      body: input.body,
      // A stream is sent as it arrives (the upload is never held in memory here).
      ...(typeof input.body === 'string' ? {} : { duplex: 'half' }),
      signal: AbortSignal.timeout(input.timeoutMs ?? 30 * 60_000),
    } as RequestInit);
    return {
      status: response.status,
      messageId: response.headers.get('labrelay-message-id'),
      text: await response.text(),
      contentType: response.headers.get('content-type'),
    };
  } finally {
    await revokeTenantCredential(services, input.tenant, credential.id, input.actor);
  }
}
