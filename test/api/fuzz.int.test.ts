import { createHmac } from 'node:crypto';
import { connect } from 'node:net';
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ackModeFromRaw, isOriginalMode } from '../../adapters/hl7v2/ack.ts';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import { fhirTransaction, mutate, ormMessage, SAMPLE_CSV, SAMPLE_JSON } from '../adapters/fuzz-samples.ts';
import {
  admin,
  createTenantWithCredential,
  eventually,
  startTestLabRelay,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

/**
 * Mutated bodies sent to the live endpoints over real HTTP and MLLP sockets: never a 5xx, never a
 * crash, and nothing half-stored — every stored message carries what it was accepted for.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);

describe('live endpoints under mutated input', () => {
  let lr: TestLabRelay;
  let cred: TenantCredential;
  const accepted = new Set<string>();

  beforeAll(async () => {
    lr = await startTestLabRelay('pglite');
    cred = await createTenantWithCredential(lr.baseUrl, 'fuzz', [
      'results:write',
      'results:read',
      'orders:write',
      'patients:write',
      'patients:read',
    ]);
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/fuzz/connections', {
      name: 'fuzzing LIS',
      direction: 'inbound',
      format: 'hl7v2',
      environment: 'production',
      mllp: { sendingFacility: 'ACME_LAB' },
    });
  });
  afterAll(() => lr?.stop());

  async function send(route: string, body: Uint8Array, contentType: string): Promise<number> {
    const t = Math.floor(Date.now() / 1000);
    const v1 = createHmac('sha256', cred.signingSecret!).update(`${t}.`).update(body).digest('hex');
    const response = await fetch(`${lr.baseUrl}/v1/t/fuzz${route}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${cred.apiKey}`,
        'content-type': contentType,
        'labrelay-signature': `t=${t},v1=${v1}`,
      },
      body,
    });
    await response.arrayBuffer();
    const id = response.headers.get('labrelay-message-id');
    if (response.status < 300) {
      expect(id).toBeTruthy();
      accepted.add(id!);
    } else expect(id).toBeNull();
    return response.status;
  }

  const bodies: [string, string, fc.Arbitrary<Uint8Array>][] = [
    [
      '/hl7',
      'application/hl7-v2',
      fc
        .tuple(
          fc.constantFrom(basicMetabolicPanel(), ormMessage()),
          fc.array(mutate.hl7, { maxLength: 6 }),
          fc.nat(),
        )
        .map(([m, edits, n]) =>
          Buffer.from(
            edits.reduce((t, e) => e(t), m.replace('MSG00001', `FZ-${n}`).replace('ORM-FUZZ', `FZO-${n}`)),
          ),
        ),
    ],
    [
      '/fhir',
      'application/fhir+json',
      fc
        .array(mutate.json, { minLength: 1, maxLength: 5 })
        .map((edits) =>
          Buffer.from(JSON.stringify(edits.reduce((b, e) => e(b), fhirTransaction() as unknown)) ?? 'null'),
        ),
    ],
    [
      '/results',
      'application/json',
      fc
        .array(mutate.json, { minLength: 1, maxLength: 5 })
        .map((edits) =>
          Buffer.from(JSON.stringify(edits.reduce((b, e) => e(b), SAMPLE_JSON() as unknown)) ?? 'null'),
        ),
    ],
    [
      '/csv',
      'text/csv',
      fc
        .array(mutate.text, { maxLength: 6 })
        .map((edits) => Buffer.from(edits.reduce((t, e) => e(t), SAMPLE_CSV))),
    ],
    [
      '/documents',
      'multipart/form-data; boundary=XyZ',
      fc
        .tuple(fc.uint8Array({ maxLength: 300 }), fc.array(mutate.text, { maxLength: 4 }))
        .map(([bytes, edits]) => {
          const head = edits.reduce(
            (t, e) => e(t),
            '--XyZ\r\nContent-Disposition: form-data; name="mrn"\r\n\r\nF-1\r\n--XyZ\r\nContent-Disposition: form-data; name="mrnSystem"\r\n\r\nurn:fuzz\r\n--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\nContent-Type: application/pdf\r\n\r\n',
          );
          return Buffer.concat([
            Buffer.from(head),
            Buffer.from('%PDF-1.4\n'),
            bytes,
            Buffer.from('\r\n--XyZ--\r\n'),
          ]);
        }),
    ],
  ];

  test.each(bodies)('POST %s: never a 5xx', async (route, contentType, body) => {
    await fc.assert(
      fc.asyncProperty(body, async (bytes) => {
        const status = await send(route, bytes, contentType);
        expect(status).toBeLessThan(500);
      }),
      { numRuns: RUNS },
    );
  });

  test('MLLP: every mutated frame is answered with an ACK, and the listener keeps serving', async () => {
    const socket = connect({ host: '127.0.0.1', port: lr.mllpPort });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('utf8')));
    const frames = fc.sample(
      fc
        .tuple(fc.array(mutate.hl7, { maxLength: 6 }), fc.nat())
        .map(([edits, n]) => edits.reduce((t, e) => e(t), basicMetabolicPanel({ controlId: `MZ-${n}` }))),
      RUNS,
    );
    const sent = frames.map((f) => f.replaceAll('\x0b', '').replaceAll('\x1c', ''));
    // A frame with our own framing bytes inside is a different frame; the sender would escape them.
    for (const frame of sent) socket.write(`\x0b${frame}\x1c\r`);
    socket.write(`\x0b${basicMetabolicPanel({ controlId: 'MZ-AFTER' })}\x1c\r`);
    // Frames are handled in order: the last one's ACK means every earlier one was answered.
    await eventually(
      async () => (received.includes('MSA|AA|MZ-AFTER') ? true : undefined),
      60_000,
      'the ACK of the good frame sent last',
    );
    const acks = received.split('\x1c\r').filter((a) => a.length > 0);
    for (const ack of acks) {
      expect(ack.startsWith('\x0bMSH')).toBe(true);
      expect(ack).toMatch(/\rMSA.(AA|AE|AR|CA|CE|CR)./);
    }
    // Every frame in original mode (MSH-15/16 empty) gets exactly one ACK; enhanced mode as it asks.
    const original = sent.filter((f) => isOriginalMode(ackModeFromRaw(f))).length;
    expect(acks.length - 1).toBeGreaterThanOrEqual(original);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
  }, 120_000);

  test('nothing is half-stored: every stored message carries the reports, orders or documents it was accepted for', async () => {
    const db = lr.labrelay.services!.db;
    const rows = await sql<{ id: string; format: string; raw: string; parts: number }>`
      select m.id, m.format, m.raw,
        (select count(*) from reports r where r.message_id = m.id)
        + (select count(*) from orders o where o.message_id = m.id or o.history @> jsonb_build_array(jsonb_build_object('messageId', m.id::text)))
        + (select count(*) from documents d where d.message_id = m.id) as parts
      from messages m join tenants t on t.id = m.tenant_id where t.slug = 'fuzz'`.execute(db);
    for (const id of accepted) expect(rows.rows.map((r) => r.id)).toContain(id);
    for (const row of rows.rows) {
      // A FHIR message of Patients only stores patients, not parts.
      if (row.format !== 'fhir')
        expect({ id: row.id, raw: row.raw, parts: Number(row.parts) > 0 }).toEqual({
          id: row.id,
          raw: row.raw,
          parts: true,
        });
    }
    const orphans = await sql<{ n: number }>`
      select count(*)::int as n from reports r join messages m on m.id = r.message_id
      where m.format <> 'fhir'
        and not exists (select 1 from observations o where o.report_id = r.id)
        and not exists (select 1 from documents d where d.report_id = r.id)`.execute(db);
    expect(orphans.rows[0]!.n).toBe(0);
  });
});
