// Intake benchmark: ORU^R01 messages durably ACKed over MLLP and over HTTP against a real Postgres
// (a throw-away server from Debian's binaries, or BENCH_DATABASE_URL), ACK latency at a fixed offered
// load, and memory. A benchmark, not a test: it prints figures and never fails. Run: npm run bench
//
// "Durably ACKed": every ACK is written after the message, its reports and its inbox rows are
// committed. Workflow starts happen after the ACK; a Temporal dev server runs beside, and intake
// leaves starts beyond its in-flight budget to the relay, so ACKs never wait on Temporal.
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { startLabRelay } from '../api/runtime.ts';
import { readTemporalDevSettings, startTemporalDevServer } from '../api/temporal-dev.ts';
import { createTestDatabase, startTestPostgres } from '../test/support/postgres.ts';
import { basicMetabolicPanel } from '../test/fixtures/hl7.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const ADMIN = 'bench-admin-token-0123456789';

const postgres = await startTestPostgres({ durable: true });
// BENCH_TEMPORAL=off measures intake alone: Temporal unreachable, every start left to the relay.
const withTemporal = process.env.BENCH_TEMPORAL !== 'off';
const temporal = withTemporal
  ? await startTemporalDevServer({ settings: readTemporalDevSettings(), dbFile: null })
  : { address: '127.0.0.1:1', namespace: 'default', stop: async () => {} };
const dataDir = mkdtempSync(path.join(tmpdir(), 'labrelay-bench-'));
const databaseUrl = process.env.BENCH_DATABASE_URL ?? (await createTestDatabase(postgres.adminUrl));
const labrelay = await startLabRelay({
  role: 'api',
  env: {
    PORT: '0',
    MLLP_PORT: '0',
    LABRELAY_DATA_DIR: dataDir,
    LABRELAY_ADMIN_TOKEN: ADMIN,
    LABRELAY_MASTER_KEY: 'b'.repeat(64),
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    LABRELAY_TASK_QUEUE: 'bench',
  },
  logger: pino({ level: 'silent' }),
  console: false,
});
const base = `http://127.0.0.1:${labrelay.httpPort}`;
const adminCall = (method: string, url: string, body: unknown) =>
  fetch(`${base}${url}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  }).then((r) => r.json() as Promise<any>);
await adminCall('POST', '/v1/admin/tenants', { slug: 'bench', name: 'Bench' });
await adminCall('POST', '/v1/admin/tenants/bench/connections', {
  name: 'bench LIS',
  direction: 'inbound',
  format: 'hl7v2',
  environment: 'production',
  mllp: { sendingFacility: 'BENCH_LAB' },
});
const credential = await adminCall('POST', '/v1/admin/tenants/bench/credentials', {
  name: 'bench',
  scopes: ['results:write'],
  rateLimitPerMinute: 1_000_000,
});

let sequence = 0;
const nextMessage = () => {
  const n = sequence++;
  return basicMetabolicPanel({
    controlId: `B-${n}`,
    placer: `ORD-${n}`,
    filler: `FIL-${n}`,
    mrn: `MRN-${n % 5000}`,
    sendingFacility: 'BENCH_LAB',
  });
};

/** One MLLP sender connection: send a frame, resolve with the ACK. */
async function mllpSender() {
  const socket: Socket = connect({ host: '127.0.0.1', port: labrelay.mllpPort! });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffer = '';
  const waiting: ((ack: string) => void)[] = [];
  socket.on('data', (d: Buffer) => {
    buffer += d.toString('utf8');
    for (let end = buffer.indexOf('\x1c\r'); end !== -1; end = buffer.indexOf('\x1c\r')) {
      const ack = buffer.slice(buffer.indexOf('\x0b') + 1, end);
      buffer = buffer.slice(end + 2);
      waiting.shift()?.(ack);
    }
  });
  return {
    send(message: string): Promise<string> {
      return new Promise((resolve) => {
        waiting.push(resolve);
        socket.write(`\x0b${message}\x1c\r`);
      });
    },
    close: () => socket.destroy(),
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

let peakRss = 0;
const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);

// 1. MLLP, closed loop: each connection sends its next message when the last is ACKed.
{
  const senders = await Promise.all(Array.from({ length: CONNECTIONS }, () => mllpSender()));
  for (const s of senders) await s.send(nextMessage()); // warm up
  let acked = 0;
  let failed = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    senders.map(async (s) => {
      while (performance.now() < deadline) {
        const ack = await s.send(nextMessage());
        if (ack.includes('MSA|AA|')) acked++;
        else failed++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  senders.forEach((s) => s.close());
  console.log(
    `MLLP: ${Math.round(acked / elapsed).toLocaleString()} ORU^R01/s durably ACKed (${CONNECTIONS} connections, ${SECONDS} s, ${acked} AA, ${failed} other)`,
  );
}

// 2. MLLP, open loop at a fixed offered load: ACK latency as a sender sees it.
for (const rate of [300]) {
  const senders = await Promise.all(Array.from({ length: CONNECTIONS }, () => mllpSender()));
  const latencies: number[] = [];
  const total = rate * SECONDS;
  const interval = 1000 / rate;
  const started = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const sender = senders[i % senders.length]!;
    const sentAt = performance.now();
    pending.push(sender.send(nextMessage()).then(() => void latencies.push(performance.now() - sentAt)));
  }
  await Promise.all(pending);
  senders.forEach((s) => s.close());
  latencies.sort((a, b) => a - b);
  console.log(
    `MLLP at ${rate} msg/s offered: ACK latency p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`,
  );
}

// 3. HTTP, closed loop, signed requests.
{
  const sign = (body: string) => {
    const t = Math.floor(Date.now() / 1000);
    return `t=${t},v1=${createHmac('sha256', credential.signingSecret).update(`${t}.${body}`).digest('hex')}`;
  };
  let acked = 0;
  let failed = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline) {
        const body = nextMessage();
        const response = await fetch(`${base}/v1/t/bench/hl7`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${credential.apiKey}`,
            'content-type': 'application/hl7-v2',
            'labrelay-signature': sign(body),
          },
          body,
        });
        await response.arrayBuffer();
        if (response.status === 200) acked++;
        else failed++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  console.log(
    `HTTP: ${Math.round(acked / elapsed).toLocaleString()} ORU^R01/s durably ACKed (${CONNECTIONS} concurrent requests, signed, ${acked} 200, ${failed} other)`,
  );
}

clearInterval(rssTimer);
console.log(
  `Memory: peak RSS ${(peakRss / 1e6).toFixed(0)} MB for LabRelay (API + MLLP) and the load generator in one process; Node ${process.version}`,
);

await labrelay.stop();
await temporal.stop();
await postgres.stop();
rmSync(dataDir, { recursive: true, force: true });
