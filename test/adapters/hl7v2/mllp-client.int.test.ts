import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { selfSignedCertificate } from '../../support/tls.ts';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { MllpClient } from '../../../adapters/hl7v2/mllp-client.ts';

const frame = (text: string) =>
  Buffer.concat([Buffer.from([0x0b]), Buffer.from(text), Buffer.from([0x1c, 0x0d])]);
const message = (id: string) =>
  `MSH|^~\\&|LABRELAY|LABRELAY|EPIC|GENHOSP|20261203080000||ORU^R01|${id}|P|2.5.1\rPID|1||MRN1`;
const ack = (code: string, id: string, text = '') =>
  `MSH|^~\\&|EPIC|GENHOSP|LABRELAY|LABRELAY|20261203080001||ACK|A${id}|P|2.5.1\rMSA|${code}|${id}${text ? `|${text}` : ''}`;

/** A receiver whose `reply` decides what each message gets (written in the chunks it returns). */
async function receiver(reply: (id: string, socket: Socket) => Buffer[] | null) {
  const connections: Socket[] = [];
  const server: Server = createServer((socket) => {
    connections.push(socket);
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      let end: number;
      while ((end = buffer.indexOf('\x1c\r')) >= 0) {
        const text = buffer.slice(buffer.indexOf('\x0b') + 1, end);
        buffer = buffer.slice(end + 2);
        const id = text.split('\r')[0]!.split('|')[9]!;
        for (const [i, part] of (reply(id, socket) ?? []).entries())
          setTimeout(() => socket.write(part), i * 20);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    connections,
    close: () => {
      for (const s of connections) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('MllpClient', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  test('many messages on one connection, in order; an ACK split across packets; AE and AR reported', async () => {
    const peer = await receiver((id) => {
      const whole = frame(
        ack(id === 'M2' ? 'AE' : id === 'M3' ? 'AR' : 'AA', id, id === 'M2' ? 'unknown test' : ''),
      );
      return [whole.subarray(0, 5), whole.subarray(5, 30), whole.subarray(30)];
    });
    const client = new MllpClient({ host: '127.0.0.1', port: peer.port });
    cleanups.push(
      () => client.close(),
      () => peer.close(),
    );
    const answers = await Promise.all(['M1', 'M2', 'M3', 'M4'].map((id) => client.send(message(id))));
    expect(answers.map((a) => a.code)).toEqual(['AA', 'AE', 'AR', 'AA']);
    expect(answers[1]!.text).toBe('unknown test');
    expect(peer.connections).toHaveLength(1);
  });

  test('the peer closing the connection: the next send connects again', async () => {
    const peer = await receiver((id, socket) => {
      setTimeout(() => socket.end(), 50);
      return [frame(ack('AA', id))];
    });
    const client = new MllpClient({ host: '127.0.0.1', port: peer.port });
    cleanups.push(
      () => client.close(),
      () => peer.close(),
    );
    expect((await client.send(message('R1'))).code).toBe('AA');
    await new Promise((r) => setTimeout(r, 150));
    expect((await client.send(message('R2'))).code).toBe('AA');
    expect(peer.connections).toHaveLength(2);
  });

  test('an ACK for another message, no ACK, a closed port: each a clear error', async () => {
    const peer = await receiver((id) => (id === 'SILENT' ? null : [frame(ack('AA', 'SOMEONE-ELSE'))]));
    const client = new MllpClient({ host: '127.0.0.1', port: peer.port, ackTimeoutMs: 300 });
    cleanups.push(
      () => client.close(),
      () => peer.close(),
    );
    await expect(client.send(message('W1'))).rejects.toThrow(`acknowledged message SOMEONE-ELSE, not W1`);
    await expect(client.send(message('SILENT'))).rejects.toThrow(
      `no ACK from 127.0.0.1:${peer.port} within 300 ms`,
    );
    const closed = new MllpClient({ host: '127.0.0.1', port: 9 });
    await expect(closed.send(message('X'))).rejects.toThrow('connection refused by 127.0.0.1:9');
  });

  test('MLLP over TLS: a receiver whose certificate is trusted gets the message; an untrusted one is refused', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'labrelay-mllp-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { cert, keyFile } = selfSignedCertificate(dir);
    const server = createTlsServer({ key: readFileSync(keyFile), cert }, (socket) => {
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
    const client = new MllpClient({ host: '127.0.0.1', port: peer.port, idleCloseMs: 100 });
    cleanups.push(
      () => client.close(),
      () => peer.close(),
    );
    await client.send(message('I1'));
    await new Promise((r) => setTimeout(r, 300));
    expect(peer.connections[0]!.destroyed || peer.connections[0]!.readableEnded).toBe(true);
    await client.send(message('I2'));
    expect(peer.connections).toHaveLength(2);
  });
});
