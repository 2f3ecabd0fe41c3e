import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import {
  admin,
  createTenantWithCredential,
  eventually,
  getJson,
  startTestLabRelay,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

const VT = '\x0b';
const FS_CR = '\x1c\r';

/** A sending LIS: one TCP connection, reads ACK frames as they come. */
async function mllpClient(port: number) {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffer = '';
  const acks: string[] = [];
  const waiters: (() => void)[] = [];
  socket.on('data', (d: Buffer) => {
    buffer += d.toString('utf8');
    for (;;) {
      const start = buffer.indexOf(VT);
      const end = buffer.indexOf(FS_CR);
      if (start === -1 || end === -1) break;
      acks.push(buffer.slice(start + 1, end));
      buffer = buffer.slice(end + 2);
      waiters.splice(0).forEach((w) => w());
    }
  });
  return {
    socket,
    write: (bytes: string) => new Promise<void>((r) => socket.write(bytes, () => r())),
    async nextAcks(n: number): Promise<string[]> {
      await eventually(async () => (acks.length >= n ? true : undefined), 20_000, `${n} ACKs`);
      return acks.splice(0, n);
    },
    close: () => socket.end(),
  };
}

describe('MLLP listener', () => {
  let lr: TestLabRelay;
  let cred: TenantCredential;
  beforeAll(async () => {
    lr = await startTestLabRelay('pglite');
    cred = await createTenantWithCredential(lr.baseUrl, 'mllplab', ['results:read', 'patients:read']);
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/mllplab/connections', {
      name: 'ACME LIS over MLLP',
      direction: 'inbound',
      format: 'hl7v2',
      environment: 'production',
      mllp: { sendingFacility: 'ACME_MLLP', allowIps: ['127.0.0.0/8', '::1'] },
    });
    await admin(lr.baseUrl, 'POST', '/v1/admin/tenants/mllplab/connections', {
      name: 'Lab only allowed from elsewhere',
      direction: 'inbound',
      format: 'hl7v2',
      environment: 'production',
      mllp: { sendingFacility: 'FAR_LAB', allowIps: ['10.1.2.0/24'] },
    });
  });
  afterAll(() => lr?.stop());

  test('many messages on one connection, frames split across packets, one ACK each after the commit', async () => {
    const client = await mllpClient(lr.mllpPort);
    const one = basicMetabolicPanel({
      controlId: 'MLLP-1',
      sendingFacility: 'ACME_MLLP',
      placer: 'MORD-1',
      mrn: 'MRN-MLLP',
    });
    const two = basicMetabolicPanel({
      controlId: 'MLLP-2',
      sendingFacility: 'ACME_MLLP',
      placer: 'MORD-2',
      mrn: 'MRN-MLLP',
    });
    const stream = `${VT}${one}${FS_CR}${VT}${two}${FS_CR}`;
    // Byte by byte for the first frame's end, then the rest in odd-sized pieces.
    const cut = stream.indexOf(FS_CR) - 3;
    await client.write(stream.slice(0, cut));
    for (const ch of stream.slice(cut, cut + 6)) await client.write(ch);
    for (let i = cut + 6; i < stream.length; i += 97) await client.write(stream.slice(i, i + 97));
    const acks = await client.nextAcks(2);
    expect(acks[0]).toMatch(/\rMSA\|AA\|MLLP-1\|/);
    expect(acks[1]).toMatch(/\rMSA\|AA\|MLLP-2\|/);
    expect(acks[0]!.split('|').slice(2, 6)).toEqual(['LABRELAY', 'STMARYS', 'ACME_LIS', 'ACME_MLLP']);

    const stored = await lr.labrelay
      .services!.db.selectFrom('messages')
      .select(['control_id', 'transport'])
      .where('sender', '=', 'ACME_LIS|ACME_MLLP')
      .orderBy('control_id')
      .execute();
    expect(stored).toEqual([
      { control_id: 'MLLP-1', transport: 'mllp' },
      { control_id: 'MLLP-2', transport: 'mllp' },
    ]);
    const reports = await eventually(
      async () => {
        const { body } = await getJson(
          lr.baseUrl,
          cred,
          '/v1/t/mllplab/fhir/DiagnosticReport?patient.identifier=MRN-MLLP',
        );
        return body.total === 2 ? body : undefined;
      },
      30_000,
      'both MLLP reports in the result API',
    );
    expect(reports.entry.filter((e: any) => e.resource.resourceType === 'DiagnosticReport')).toHaveLength(2);

    // A resend of the same message is answered with the same ACK and stored once.
    await client.write(`${VT}${one}${FS_CR}`);
    const [again] = await client.nextAcks(1);
    expect(again).toBe(acks[0]);
    client.close();
  });

  test('unknown sending facilities, disallowed addresses and garbage are refused with AR and logged', async () => {
    const client = await mllpClient(lr.mllpPort);
    await client.write(
      `${VT}${basicMetabolicPanel({ controlId: 'MLLP-UNKNOWN', sendingFacility: 'NOBODY' })}${FS_CR}`,
    );
    await client.write(
      `${VT}${basicMetabolicPanel({ controlId: 'MLLP-FAR', sendingFacility: 'FAR_LAB' })}${FS_CR}`,
    );
    await client.write(`${VT}not an hl7 message${FS_CR}`);
    const [unknown, far, garbage] = await client.nextAcks(3);
    expect(unknown).toMatch(
      /\rMSA\|AR\|MLLP-UNKNOWN\|no inbound MLLP connection is configured for sending facility NOBODY/,
    );
    expect(far).toMatch(/\rMSA\|AR\|MLLP-FAR\|address 127\.0\.0\.1 is not allowed/);
    expect(garbage).toMatch(/\rMSA\|AR\|\|the message does not start with an MSH segment/);
    const rejected = await lr.labrelay
      .services!.db.selectFrom('rejected_messages')
      .select(['raw', 'transport'])
      .where('transport', '=', 'mllp')
      .execute();
    expect(rejected.map((r) => r.raw)).toContain('not an hl7 message');
    const accepted = await lr.labrelay
      .services!.db.selectFrom('messages')
      .select('id')
      .where('control_id', 'in', ['MLLP-UNKNOWN', 'MLLP-FAR'])
      .execute();
    expect(accepted).toHaveLength(0);
    client.close();
  });
});
