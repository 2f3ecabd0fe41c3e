// Delivery benchmark: results received over HTTP, carried by their workflows, and delivered to a
// local FHIR endpoint and to a local MLLP receiver. Prints deliveries per second and the time from
// the ACK to the sender until the destination confirmed (p50/p99), against a real Postgres and a
// Temporal dev server on this machine. A benchmark, not a test: it prints figures and never fails.
// Run: npm run bench (or node bench/delivery.ts; BENCH_MESSAGES, BENCH_RATE).
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { pino } from 'pino';
import { startLabRelay } from '../api/runtime.ts';
import { readTemporalDevSettings, startTemporalDevServer } from '../api/temporal-dev.ts';
import { createTestDatabase, startTestPostgres } from '../test/support/postgres.ts';
import { basicMetabolicPanel } from '../test/fixtures/hl7.ts';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 200);
const RATE = Number(process.env.BENCH_RATE ?? 20);
const ADMIN = 'bench-admin-token-0123456789';

// A lean FHIR endpoint: answers every transaction entry 201 (the bench measures LabRelay, not it).
const fhir = createHttpServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const bundle = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
    entry: { request: { url: string } }[];
  };
  const entry = bundle.entry.map((e, i) => ({
    response: { status: '201 Created', location: `${e.request.url.split('?')[0]}/${i}/_history/1` },
  }));
  res.writeHead(200, { 'content-type': 'application/fhir+json' });
  res.end(JSON.stringify({ resourceType: 'Bundle', type: 'transaction-response', entry }));
});
await new Promise<void>((resolve) => fhir.listen(0, '127.0.0.1', resolve));
// A lean MLLP receiver: AA for every message.
const mllp = createTcpServer((socket) => {
  let buffer = '';
  socket.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    let end: number;
    while ((end = buffer.indexOf('\x1c\r')) >= 0) {
      const message = buffer.slice(buffer.indexOf('\x0b') + 1, end);
      buffer = buffer.slice(end + 2);
      const id = message.split('\r')[0]!.split('|')[9];
      socket.write(
        `\x0bMSH|^~\\&|HIS|HOSP|LABRELAY|LABRELAY|20261203||ACK|A${id}|P|2.5.1\rMSA|AA|${id}\x1c\r`,
      );
    }
  });
});
await new Promise<void>((resolve) => mllp.listen(0, '127.0.0.1', resolve));

const postgres = await startTestPostgres({ durable: process.env.BENCH_DURABLE !== 'off' });
const temporal = await startTemporalDevServer({ settings: readTemporalDevSettings(), dbFile: null });
const dataDir = mkdtempSync(path.join(tmpdir(), 'labrelay-bench-'));
const databaseUrl = process.env.BENCH_DATABASE_URL ?? (await createTestDatabase(postgres.adminUrl));
const labrelay = await startLabRelay({
  role: 'all',
  env: {
    PORT: '0',
    MLLP_PORT: '0',
    LABRELAY_DATA_DIR: dataDir,
    LABRELAY_ADMIN_TOKEN: ADMIN,
    LABRELAY_MASTER_KEY: 'b'.repeat(64),
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    LABRELAY_TASK_QUEUE: 'bench-delivery',
  },
  logger: pino({ level: process.env.BENCH_LOG ?? 'silent' }),
  console: false,
});
const base = `http://127.0.0.1:${labrelay.httpPort}`;
const adminCall = (method: string, url: string, body?: unknown) =>
  fetch(`${base}${url}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  }).then((r) => r.json() as Promise<any>);

async function tenantWith(slug: string, destination: object) {
  await adminCall('POST', '/v1/admin/tenants', { slug, name: slug });
  await adminCall('POST', `/v1/admin/tenants/${slug}/connections`, {
    name: 'destination',
    direction: 'outbound',
    environment: 'production',
    ...destination,
  });
  return adminCall('POST', `/v1/admin/tenants/${slug}/credentials`, {
    name: 'bench',
    scopes: ['results:write'],
    rateLimitPerMinute: 1_000_000,
  }) as Promise<{ apiKey: string; signingSecret: string }>;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function run(slug: string, destination: object) {
  const credential = await tenantWith(slug, destination);
  const started = Date.now();
  const sends: Promise<void>[] = [];
  for (let n = 0; n < MESSAGES; n++) {
    // A routine panel (no critical value): the bench measures delivery, not the critical loop.
    const body = basicMetabolicPanel({
      controlId: `${slug}-${n}`,
      placer: `${slug}-ORD-${n}`,
      filler: `${slug}-FIL-${n}`,
      mrn: `MRN-${n % 500}`,
      potassium: '4.2',
      glucose: '5.0',
    });
    const t = Math.floor(Date.now() / 1000);
    const signature = createHmac('sha256', credential.signingSecret).update(`${t}.${body}`).digest('hex');
    sends.push(
      fetch(`${base}/v1/t/${slug}/hl7`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${credential.apiKey}`,
          'content-type': 'application/hl7-v2',
          'labrelay-signature': `t=${t},v1=${signature}`,
        },
        body,
      }).then(async (r) => {
        await r.text();
        if (r.status !== 200) throw new Error(`intake answered ${r.status}`);
      }),
    );
    const due = started + ((n + 1) * 1000) / RATE;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
  }
  await Promise.all(sends);
  const db = labrelay.services!.db;
  for (;;) {
    const row = await db
      .selectFrom('deliveries')
      .innerJoin('tenants', 'tenants.id', 'deliveries.tenant_id')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('tenants.slug', '=', slug)
      .where('deliveries.status', '=', 'delivered')
      .executeTakeFirstOrThrow();
    if (Number(row.n) >= MESSAGES) break;
    if (Date.now() - started > 600_000)
      throw new Error(`only ${row.n} of ${MESSAGES} delivered after 10 minutes`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const rows = await db
    .selectFrom('deliveries')
    .innerJoin('reports', 'reports.id', 'deliveries.report_id')
    .innerJoin('messages', 'messages.id', 'reports.message_id')
    .innerJoin('tenants', 'tenants.id', 'deliveries.tenant_id')
    .select([
      sql<number>`extract(epoch from (deliveries.delivered_at - messages.received_at)) * 1000`.as('ms'),
      sql<Date>`deliveries.delivered_at`.as('delivered_at'),
    ])
    .where('tenants.slug', '=', slug)
    .execute();
  const latencies = rows.map((r) => Number(r.ms)).sort((a, b) => a - b);
  // Where the time goes: from the ACK to the release (the order workflow's steps) and on to delivery.
  const released = await db
    .selectFrom('audit_events')
    .innerJoin('tenants', 'tenants.id', 'audit_events.tenant_id')
    .innerJoin('reports', (j) => j.on(sql<boolean>`audit_events.subject = 'report/' || reports.id::text`))
    .innerJoin('messages', 'messages.id', 'reports.message_id')
    .select(sql<number>`extract(epoch from (audit_events.at - messages.received_at)) * 1000`.as('ms'))
    .where('tenants.slug', '=', slug)
    .where('audit_events.action', '=', 'report.released')
    .execute();
  const releaseLatencies = released.map((r) => Number(r.ms)).sort((a, b) => a - b);
  const last = Math.max(...rows.map((r) => new Date(r.delivered_at).getTime()));
  const seconds = (last - started) / 1000;
  return {
    delivered: rows.length,
    perSecond: rows.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    releasedP50: percentile(releaseLatencies, 50),
  };
}

try {
  const fhirUrl = `http://127.0.0.1:${(fhir.address() as AddressInfo).port}/fhir`;
  const fhirResult = await run('bench-fhir', { format: 'fhir', endpoint: { url: fhirUrl } });
  const mllpResult = await run('bench-mllp', {
    format: 'hl7v2',
    endpoint: { host: '127.0.0.1', port: (mllp.address() as AddressInfo).port },
  });
  const line = (name: string, r: typeof fhirResult) =>
    `${name.padEnd(16)} ${String(r.delivered).padStart(5)} delivered  ${r.perSecond.toFixed(1).padStart(7)}/s  ACK→delivered p50 ${Math.round(r.p50)} ms  p99 ${Math.round(r.p99)} ms  (ACK→released p50 ${Math.round(r.releasedP50)} ms)`;
  console.log(
    `Delivery, ${MESSAGES} ORU^R01 offered at ${RATE}/s over HTTP (Temporal dev server, durable Postgres):`,
  );
  console.log(line('FHIR endpoint', fhirResult));
  console.log(line('MLLP receiver', mllpResult));
  console.log(`memory: rss ${Math.round(process.memoryUsage().rss / 1024 / 1024)} MiB`);
} finally {
  await labrelay.stop();
  await temporal.stop();
  await postgres.stop();
  fhir.close();
  mllp.close();
  rmSync(dataDir, { recursive: true, force: true });
}
