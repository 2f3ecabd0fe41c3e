import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { appendAudit } from '../db/audit.ts';
import { insertConnection } from '../db/connections.ts';
import { insertProvider } from '../db/providers.ts';
import type { Database } from '../db/schema.ts';
import { findTenantBySlug, insertTenant } from '../db/tenants.ts';
import { DEFAULT_ESCALATION_POLICY } from '../domain/escalation.ts';
import { issueCredential } from './security/credentials.ts';
import { SCOPES } from './security/keys.ts';

export interface DemoSeed {
  slug: string;
  /** Present only on the start that created the tenant: secrets are shown once. */
  apiKey: string | null;
  signingSecret: string | null;
  mllpSendingFacility: string;
}

export const DEMO_SLUG = 'demo';
export const DEMO_SENDING_FACILITY = 'DEMO_LAB';

/** Demo providers: the ordering provider of the README's sample message, then the escalation chain. */
const DEMO_PROVIDERS = [
  { name: 'Dr Marcus Welby', externalId: '1234', email: 'welby@demo-hospital.example', roles: ['ordering'] },
  { name: 'Dr Casey Cover', externalId: null, email: 'cover@demo-hospital.example', roles: ['covering'] },
  { name: 'Dr Oni Call', externalId: null, email: 'oncall@demo-hospital.example', roles: ['on_call'] },
  { name: 'Dr Dana Director', externalId: null, email: 'director@demo-lab.example', roles: ['lab_director'] },
];

/**
 * The embedded default's demo tenant: slug `demo`, an inbound HL7 connection for MLLP messages from
 * sending facility DEMO_LAB, the default escalation chain with demo providers (mail is captured in
 * the outbox unless SMTP_URL is set), and one credential with every scope (printed once, at creation).
 */
export async function seedDemoTenant(db: Kysely<Database>, masterKey: Buffer): Promise<DemoSeed> {
  return db.transaction().execute(async (trx) => {
    if (await findTenantBySlug(trx, DEMO_SLUG))
      return {
        slug: DEMO_SLUG,
        apiKey: null,
        signingSecret: null,
        mllpSendingFacility: DEMO_SENDING_FACILITY,
      };
    const tenant = await insertTenant(trx, { slug: DEMO_SLUG, name: 'Demo Hospital' });
    // The default critical table applies (no override); the escalation chain is the default one,
    // written out so an admin sees it and edits it, with demo providers that have e-mail addresses.
    await trx
      .updateTable('tenants')
      .set({ settings: JSON.stringify({ escalation: DEFAULT_ESCALATION_POLICY }) })
      .where('id', '=', tenant.id)
      .execute();
    for (const provider of DEMO_PROVIDERS) await insertProvider(trx, tenant.id, provider);
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor: 'system',
      action: 'tenant.created',
      subject: `tenant/${tenant.id}`,
      details: { slug: DEMO_SLUG, demo: true },
    });
    await insertConnection(trx, {
      id: randomUUID(),
      tenant_id: tenant.id,
      name: 'Demo lab (MLLP)',
      direction: 'inbound',
      format: 'hl7v2',
      environment: 'sandbox',
      endpoint: null,
      auth_encrypted: null,
      mllp_sending_facility: DEMO_SENDING_FACILITY,
      mllp_receiving_facility: null,
      mllp_allow_ips: null,
    });
    const issued = await issueCredential(trx, masterKey, {
      tenantId: tenant.id,
      name: 'Demo credential',
      scopes: [...SCOPES],
      environment: 'sandbox',
      signed: true,
      actor: 'system',
    });
    return {
      slug: DEMO_SLUG,
      apiKey: issued.apiKey,
      signingSecret: issued.signingSecret,
      mllpSendingFacility: DEMO_SENDING_FACILITY,
    };
  });
}
