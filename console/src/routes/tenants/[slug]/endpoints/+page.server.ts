import { CSV_COLUMNS } from '../../../../../../adapters/csv/results-csv.ts';
import { SIMPLE_RESULTS_EXAMPLE } from '../../../../../../adapters/json/results-json.ts';
import { listConnections } from '../../../../../../db/connections.ts';
import { tenantScope } from '../../../../../../db/tenant-scope.ts';
import { tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { PageServerLoad } from './$types';

/** A realistic ORU^R01 a tenant can send as its first message. */
function sampleHl7(slug: string): string {
  return [
    `MSH|^~\\&|LIS|${slug.toUpperCase()}_LAB|LABRELAY|${slug.toUpperCase()}|20261122083000||ORU^R01|MSG0001|P|2.5.1`,
    `PID|1||MRN1^^^${slug.toUpperCase()}^MR||Doe^Jane||19800115|F`,
    'OBR|1|ORD-1||24323-8^Metabolic panel^LN|||20261122070000||||||||||||||||||F',
    'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F',
  ].join('\r');
}

/** The tenant's own endpoints, credentials (never their secrets) and copy-ready sample requests. */
export const load = (async ({ locals, params }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'configure');
  const { db, endpoints } = services();
  const { publicUrl, mllpPort, mllpTls } = endpoints();
  const base = `${publicUrl}/v1/t/${tenant.slug}`;
  const [connections, credentials] = await Promise.all([
    listConnections(db, tenant.id),
    tenantScope(db, tenant.id)
      .selectFrom('credentials')
      .select(['id', 'name', 'key_prefix', 'scopes', 'created_at', 'revoked_at'])
      .orderBy('created_at')
      .execute(),
  ]);
  const hl7 = sampleHl7(tenant.slug);
  const signedCurl = (path: string, contentType: string, file: string) =>
    [
      `KEY=lr_live_...   # the API key shown once when the credential was created`,
      `SECRET=whsec_...  # its signing secret`,
      `T=$(date +%s)`,
      `SIG=$( (printf '%s.' "$T"; cat ${file}) | openssl dgst -sha256 -hmac "$SECRET" -hex | sed 's/.* //')`,
      `curl -s -X POST ${base}${path} -H "authorization: Bearer $KEY" \\`,
      `  -H 'content-type: ${contentType}' -H "LabRelay-Signature: t=$T,v1=$SIG" --data-binary @${file}`,
    ].join('\n');
  const csvHeader =
    'patient_id,patient_id_system,family_name,given_name,birth_date,order_number,test_code,test_system,value,unit,reference_range';
  return {
    tenant: { slug: tenant.slug, name: tenant.name },
    endpoints: [
      {
        name: 'HL7 v2 over HTTP (ORU^R01, ORM^O01, OML^O21)',
        method: 'POST',
        url: `${base}/hl7`,
        scope: 'results:write / orders:write',
      },
      {
        name: 'FHIR R4 (Bundle or resource)',
        method: 'POST',
        url: `${base}/fhir`,
        scope: 'results:write / orders:write / patients:write',
      },
      { name: 'Simple JSON results', method: 'POST', url: `${base}/results`, scope: 'results:write' },
      { name: 'CSV upload', method: 'POST', url: `${base}/csv`, scope: 'results:write' },
      { name: 'PDF upload (multipart)', method: 'POST', url: `${base}/documents`, scope: 'results:write' },
      { name: 'Message status', method: 'GET', url: `${base}/messages/{id}`, scope: 'any' },
      {
        name: 'FHIR R4 result API',
        method: 'GET',
        url: `${base}/fhir/DiagnosticReport?patient.identifier=...`,
        scope: 'results:read',
      },
    ],
    mllp: {
      address: mllpPort ? `${new URL(publicUrl).hostname}:${mllpPort}` : null,
      tls: mllpTls,
      connections: connections
        .filter((c) => c.direction === 'inbound' && c.mllp_sending_facility)
        .map((c) => ({
          name: c.name,
          environment: c.environment,
          sendingFacility: c.mllp_sending_facility!,
          receivingFacility: c.mllp_receiving_facility,
          allowIps: c.mllp_allow_ips ?? [],
        })),
    },
    credentials: credentials.map((c) => ({
      id: c.id,
      name: c.name,
      keyPrefix: c.key_prefix,
      scopes: c.scopes,
      createdAt: new Date(c.created_at).toISOString(),
      revoked: c.revoked_at !== null,
    })),
    samples: {
      hl7: hl7.replaceAll('\r', '\n'),
      hl7Curl: [
        `printf '${hl7.replaceAll('\\', '\\\\').replaceAll('\r', '\\r')}' > msg.hl7`,
        signedCurl('/hl7', 'application/hl7-v2', 'msg.hl7'),
      ].join('\n'),
      json: JSON.stringify(SIMPLE_RESULTS_EXAMPLE, null, 2),
      jsonCurl: signedCurl('/results', 'application/json', 'result.json'),
      csv: `${csvHeader}\nMRN1,${tenant.slug.toUpperCase()},Doe,Jane,1980-01-15,ORD-1,2823-3,LN,4.1,mmol/L,3.5-5.1`,
      csvColumns: CSV_COLUMNS.map((c) => ({ name: c.name, description: c.description })),
    },
  };
}) satisfies PageServerLoad;
