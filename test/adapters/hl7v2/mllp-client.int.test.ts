import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { MllpClient, MllpClientPool } from '../../../adapters/hl7v2/mllp-client.ts';
import { selfSignedCertificate } from '../../support/tls.ts';

const frame = (text: string) =>
  Buffer.concat([Buffer.from([0x0b]), Buffer.from(text), Buffer.from([0x1c, 0x0d])]);
const message = (id: string) =>
  `MSH|^~\\&|LABRELAY|LABRELAY|EPIC|GENHOSP|20261203080000||ORU^R01|${id}|P|2.5.1\rPID|1||MRN1`;
const ack = (code: string, id: string, text = '') =>
  `MSH|^~\\&|EPIC|GENHOSP|LABRELAY|LABRELAY|20261203080001||ACK|A${id}|P|2.5.1\rMSA|${code}|${id}${text ? `|${text}` : ''}`;
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A receiving system on a real socket: `reply` decides what each message gets, as the chunks to
 * write (20 ms apart, so a split ACK arrives in separate TCP packets), or null for no answer.
 * It records how many messages were ever waiting for their ACK at once.
 */
async function receiver(reply: (id: string, socket: Socket) => Buffer[] | null) {
  const connections: Socket[] = [];
  const received: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server: Server = createServer((socket) => {
    connections.push(socket);
    socket.on('error', () => undefined);
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      let end: number;
      while ((end = buffer.indexOf('\x1c\r')) >= 0) {
        const text = buffer.slice(buffer.indexOf('\x0b') + 1, end);
        buffer = buffer.slice(end + 2);
        const id = text.split('\r')[0]!.split('|')[9]!;
        received.push(id);
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        const parts = reply(id, socket) ?? [];
        parts.forEach((part, i) =>
          setTimeout(() => {
            if (i === parts.length - 1) inFlight--;
            if (!socket.destroyed) socket.write(part);
          }, i * 20),
        );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    connections,
    received,
    get maxInFlight() {
      return maxInFlight;
    },
    close: () => {
      for (const s of connections) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A port nothing listens on: taken from the system, then let go. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('MllpClient', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function clientOf(
    peer: { port: number; close(): unknown },
    options: Partial<ConstructorParameters<typeof MllpClient>[0]> = {},
  ) {
    const client = new MllpClient({ host: '127.0.0.1', port: peer.port, ...options });
    cleanups.push(
      () => peer.close(),
      () => client.close(),
    );
    return client;
  }

  test('many messages on one connection, one at a time and in order; each ACK split across packets', async () => {
    const peer = await receiver((id) => {
      const whole = frame(ack('AA', id));
      // Start block alone, the MSH cut mid-field, and the end block split between 0x1C and 0x0D.
      return [whole.subarray(0, 1), whole.subarray(1, 30), whole.subarray(30, -1), whole.subarray(-1)];
    });
    const client = await clientOf(peer);
    const ids = Array.from({ length: 8 }, (_, i) => `M${i + 1}`);
    const answers = await Promise.all(ids.map((id) => client.send(message(id))));
    expect(answers.map((a) => a.code)).toEqual(Array(8).fill('AA'));
    expect(answers.map((a) => a.ack.split('\r')[1])).toEqual(ids.map((id) => `MSA|AA|${id}`));
    expect(peer.received).toEqual(ids);
    expect(peer.maxInFlight).toBe(1);
    expect(peer.connections).toHaveLength(1);
  });

  test.each([
    ['AE', 'AE', 'unknown test code'],
    ['AR', 'AR', 'unknown receiving facility'],
    ['CA', 'AA', null],
    ['CE', 'AE', 'queue full'],
    ['CR', 'AR', 'not accepted'],
  ])('MSA-1 %s is reported as %s with its text', async (sent, code, text) => {
    const peer = await receiver((id) => [frame(ack(sent, id, text ?? ''))]);
    const client = await clientOf(peer);
    expect(await client.send(message('C1'))).toMatchObject({ code, text });
  });

  test('the peer closing the connection between messages: the next send connects again', async () => {
    const peer = await receiver((id, socket) => {
      setTimeout(() => socket.end(), 50);
      return [frame(ack('AA', id))];
    });
    const client = await clientOf(peer);
    expect((await client.send(message('R1'))).code).toBe('AA');
    await wait(150);
    expect((await client.send(message('R2'))).code).toBe('AA');
    expect(peer.connections).toHaveLength(2);
  });

  test('the connection dying before the ACK fails that send; the next one reconnects', async () => {
    const peer = await receiver((id, socket) => {
      if (id === 'D1') {
        socket.destroy();
        return null;
      }
      return [frame(ack('AA', id))];
    });
    const client = await clientOf(peer);
    await expect(client.send(message('D1'))).rejects.toThrow(
      `127.0.0.1:${peer.port} closed the connection before its ACK`,
    );
    expect((await client.send(message('D2'))).code).toBe('AA');
    expect(peer.connections).toHaveLength(2);
  });

  test('an ACK for another message is refused and the connection dropped', async () => {
    const peer = await receiver((id) => [frame(ack('AA', id === 'W1' ? 'SOMEONE-ELSE' : id))]);
    const client = await clientOf(peer);
    await expect(client.send(message('W1'))).rejects.toThrow(
      `127.0.0.1:${peer.port} acknowledged message SOMEONE-ELSE, not W1`,
    );
    expect((await client.send(message('W2'))).code).toBe('AA');
    expect(peer.connections).toHaveLength(2);
  });

  test.each([
    [
      'an unknown MSA-1',
      (id: string) => ack('OK', id),
      'answered MSA-1 "OK", which is not an acknowledgement code',
    ],
    ['no MSA', () => 'MSH|^~\\&|EPIC|GENHOSP|||20261203||ACK|9|P|2.5.1', 'answered without an MSA segment'],
    ['not HL7', () => 'HTTP/1.1 400 Bad Request', 'answered with something that is not an HL7 ACK'],
  ])('an answer with %s is refused', async (_what, answer, error) => {
    const peer = await receiver((id) => [frame(answer(id))]);
    const client = await clientOf(peer);
    await expect(client.send(message('U1'))).rejects.toThrow(`127.0.0.1:${peer.port} ${error}`);
  });

  test('no ACK in time: a timeout error, and the next send goes on a new connection', async () => {
    const peer = await receiver((id) => (id === 'SILENT' ? null : [frame(ack('AA', id))]));
    const client = await clientOf(peer, { ackTimeoutMs: 300 });
    const started = Date.now();
    await expect(client.send(message('SILENT'))).rejects.toThrow(
      `no ACK from 127.0.0.1:${peer.port} within 300 ms`,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect((await client.send(message('LOUD'))).code).toBe('AA');
    expect(peer.connections).toHaveLength(2);
    expect(new MllpClient({ host: 'h', port: 1 }).options.ackTimeoutMs).toBe(30_000);
  });

  test('a message waiting behind a slow one past its deadline is never written; the slow one keeps its own ACK timeout', async () => {
    const peer = await receiver((id) => (id === 'SLOW' ? null : [frame(ack('AA', id))]));
    const client = await clientOf(peer, { ackTimeoutMs: 400 });
    const slow = client.send(message('SLOW'));
    const waiting = client.send(message('WAITING'), { signal: AbortSignal.timeout(100) });
    await expect(waiting).rejects.toThrow('earlier messages held the connection too long');
    await expect(slow).rejects.toThrow('no ACK');
    expect(peer.received).toEqual(['SLOW']);
    const cancelled = new AbortController();
    cancelled.abort();
    await expect(client.send(message('CANCELLED'), { signal: cancelled.signal })).rejects.toThrow(
      'the send was cancelled',
    );
    expect((await client.send(message('NEXT'), { signal: AbortSignal.timeout(5_000) })).code).toBe('AA');
    expect(peer.received).toEqual(['SLOW', 'NEXT']);
  });

  test('nothing listening: connection refused; a peer that never completes the handshake: connect timeout', async () => {
    const port = await closedPort();
    const refused = new MllpClient({ host: '127.0.0.1', port });
    await expect(refused.send(message('X1'))).rejects.toThrow(`connection refused by 127.0.0.1:${port}`);

    // A TCP listener that never speaks TLS: the connection opens, the TLS handshake never ends.
    const mute = await receiver(() => null);
    const client = await clientOf(mute, { tls: {}, connectTimeoutMs: 200 });
    await expect(client.send(message('X2'))).rejects.toThrow(
      `could not connect to 127.0.0.1:${mute.port} within 200 ms`,
    );
  });

  test('MLLP over TLS: a receiver whose certificate is trusted gets the message; an untrusted one is refused', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'labrelay-mllp-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { cert, keyFile } = selfSignedCertificate(dir);
    const server = createTlsServer({ key: readFileSync(keyFile), cert }, (socket) => {
      socket.on('error', () => undefined);
      socket.on('data', (chunk) => {
        const id = chunk.toString('utf8').split('\r')[0]!.split('|')[9]!;
        socket.write(frame(ack('AA', id)));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const port = (server.address() as AddressInfo).port;
    const trusted = new MllpClient({ host: '127.0.0.1', port, tls: { ca: cert } });
    const untrusted = new MllpClient({ host: '127.0.0.1', port, tls: {} });
    cleanups.push(
      () => trusted.close(),
      () => untrusted.close(),
    );
    expect((await trusted.send(message('T1'))).code).toBe('AA');
    await expect(untrusted.send(message('T2'))).rejects.toThrow(
      /could not connect to 127\.0\.0\.1:\d+: self.signed certificate/,
    );
  });

  test('an idle connection is closed, and opened again when needed', async () => {
    const peer = await receiver((id) => [frame(ack('AA', id))]);
    const client = await clientOf(peer, { idleCloseMs: 100 });
    await client.send(message('I1'));
    await wait(50);
    expect(peer.connections[0]!.readableEnded).toBe(false);
    await wait(250);
    expect(peer.connections[0]!.destroyed || peer.connections[0]!.readableEnded).toBe(true);
    await client.send(message('I2'));
    expect(peer.connections).toHaveLength(2);
  });

  test('close() fails a send waiting for its ACK', async () => {
    const peer = await receiver(() => null);
    const client = await clientOf(peer);
    const pending = client.send(message('Z1'));
    await wait(100);
    client.close();
    await expect(pending).rejects.toThrow('the MLLP client was closed');
  });
});

describe('MllpClientPool', () => {
  test('one client per key, a new one when its options change; closeAll closes them', async () => {
    const peer = await receiver((id) => [frame(ack('AA', id))]);
    const pool = new MllpClientPool();
    try {
      const options = { host: '127.0.0.1', port: peer.port };
      const genhosp = pool.get('genhosp', options);
      expect(pool.get('genhosp', { ...options })).toBe(genhosp);
      expect(pool.get('stmarys', options)).not.toBe(genhosp);
      await genhosp.send(message('P1'));
      const changed = pool.get('genhosp', { ...options, ackTimeoutMs: 5_000 });
      expect(changed).not.toBe(genhosp);
      await wait(50);
      // The replaced client let its connection go.
      expect(peer.connections[0]!.readableEnded || peer.connections[0]!.destroyed).toBe(true);
      await changed.send(message('P2'));
      pool.closeAll();
      await wait(50);
      expect(peer.connections[1]!.readableEnded || peer.connections[1]!.destroyed).toBe(true);
      expect(pool.get('genhosp', { ...options, ackTimeoutMs: 5_000 })).not.toBe(changed);
    } finally {
      pool.closeAll();
      await peer.close();
    }
  });
});
