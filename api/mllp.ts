import { promises as fs } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { ipAllowed, normaliseIp } from './security/ip-allow.ts';
import { ackTargetFromRaw, ackTargetOf, buildAck, HL7_ERROR } from '../adapters/hl7v2/ack.ts';
import { Hl7ParseError, parseHl7, type Hl7Message } from '../adapters/hl7v2/message.ts';
import { findMllpConnections } from '../db/connections.ts';
import { insertRejectedMessage } from '../db/messages.ts';
import type { Connection, Tenant } from '../db/schema.ts';
import { findTenantById } from '../db/tenants.ts';
import { ConfigError, type MllpTlsFiles } from './config.ts';
import type { Services } from './env.ts';
import { receiveHl7 } from './intake/hl7.ts';

const START_BLOCK = 0x0b;
const END_BLOCK = 0x1c;
const CARRIAGE_RETURN = 0x0d;

export interface MllpOptions {
  port: number;
  host?: string;
  /** Largest message accepted, in bytes; a bigger frame closes the connection. */
  maxMessageBytes?: number;
  /** A connection with no traffic for this long is closed. */
  idleTimeoutMs?: number;
  maxConnections?: number;
  /** A frame begun but not finished within this long (a stalled or very slow sender) closes the connection. */
  frameTimeoutMs?: number;
  /** Serve MLLP over TLS with these certificate files. */
  tls?: MllpTlsFiles | null;
}

/**
 * The MLLP listener (HL7 v2 over TCP, framing `0x0B … 0x1C 0x0D`). Each connection's messages are
 * handled in order, one ACK per message, written only after the message is committed. The tenant is
 * chosen by MSH-4 (and MSH-6 when configured) among inbound hl7v2 connections, with their optional
 * source-IP allowlist.
 */
export async function startMllpListener(
  services: Services,
  options: MllpOptions,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const maxBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
  const sockets = new Map<Socket, () => Promise<void>>();
  const limits = {
    maxBytes,
    idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
    frameTimeoutMs: options.frameTimeoutMs ?? 120_000,
  };
  const onConnection = (socket: Socket) => {
    sockets.set(socket, handleConnection(services, socket, limits));
    socket.once('close', () => sockets.delete(socket));
  };
  let server: Server;
  if (options.tls) {
    const [cert, key, ca] = await Promise.all([
      fs.readFile(options.tls.certFile),
      fs.readFile(options.tls.keyFile),
      options.tls.caFile ? fs.readFile(options.tls.caFile) : null,
    ]).catch((error: NodeJS.ErrnoException) => {
      throw new ConfigError(`the MLLP TLS certificate files cannot be read: ${error.message}`);
    });
    server = createTlsServer(
      {
        cert,
        key,
        ...(ca ? { ca, requestCert: true, rejectUnauthorized: true } : {}),
        minVersion: 'TLSv1.2',
      },
      onConnection,
    );
    server.on('tlsClientError', (error) => services.logger.info({ err: error }, 'MLLP TLS handshake failed'));
  } else {
    server = createServer(onConnection);
  }
  server.maxConnections = options.maxConnections ?? 200;
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new ConfigError(`MLLP port ${options.port} is in use: set MLLP_PORT to a free one`)
          : error,
      );
    server.once('error', failed);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', failed);
      resolve();
    });
  });
  server.on('error', (error) => services.logger.error({ err: error }, 'MLLP listener error'));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    async close() {
      // Stop accepting, let each connection finish (and ACK) the messages already in hand, then close.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const drained = Promise.all([...sockets.values()].map((drain) => drain()));
      await Promise.race([drained, new Promise((r) => setTimeout(r, 5000).unref())]);
      for (const s of sockets.keys()) s.end();
      setTimeout(() => sockets.forEach((_, s) => s.destroy()), 2000).unref();
      await closed;
    },
  };
}

/** Handles one sender's connection; returns a function that waits for the messages in hand. */
function handleConnection(
  services: Services,
  socket: Socket,
  limits: { maxBytes: number; idleTimeoutMs: number; frameTimeoutMs: number },
): () => Promise<void> {
  const { maxBytes, idleTimeoutMs, frameTimeoutMs } = limits;
  const log = services.logger.child({ mllpPeer: `${socket.remoteAddress}:${socket.remotePort}` });
  let chunks: Buffer[] = [];
  let buffered = 0;
  let queue: Promise<void> = Promise.resolve();
  const routes: RouteCache = new Map();
  let failed = false;
  socket.setTimeout(idleTimeoutMs, () => {
    log.info('closing idle MLLP connection');
    socket.end();
  });
  socket.on('error', (error) => log.warn({ err: error }, 'MLLP connection error'));
  // A sender that starts a frame and never finishes it (or trickles it) is cut off: it would hold a
  // connection slot and its buffer indefinitely.
  let frameTimer: NodeJS.Timeout | null = null;
  const watchFrame = () => {
    if (buffered > 0 && !frameTimer) {
      frameTimer = setTimeout(() => {
        log.warn({ bytes: buffered }, 'MLLP frame not finished in time; closing');
        socket.destroy();
      }, frameTimeoutMs);
      frameTimer.unref();
    } else if (buffered === 0 && frameTimer) {
      clearTimeout(frameTimer);
      frameTimer = null;
    }
  };
  socket.once('close', () => {
    if (frameTimer) clearTimeout(frameTimer);
  });
  socket.on('data', (data) => {
    const previousEndedWithEndBlock = chunks.length > 0 && chunks.at(-1)!.at(-1) === END_BLOCK;
    chunks.push(data);
    buffered += data.length;
    // Most packets of a big message hold no frame end: keep them without copying.
    if (!previousEndedWithEndBlock && data.indexOf(END_BLOCK) === -1) {
      if (buffered > maxBytes) {
        log.warn({ bytes: buffered }, 'MLLP frame larger than the limit; closing');
        socket.destroy();
      }
      watchFrame();
      return;
    }
    let buffer = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    for (;;) {
      const start = buffer.indexOf(START_BLOCK);
      if (start === -1) {
        buffer = Buffer.alloc(0); // bytes outside a frame are noise
        break;
      }
      const end = findFrameEnd(buffer, start + 1);
      if (end === -1) {
        if (start > 0) buffer = buffer.subarray(start);
        break;
      }
      const payload = buffer.toString('utf8', start + 1, end);
      buffer = buffer.subarray(end + 2);
      queue = queue
        .then(() => (failed || socket.destroyed ? undefined : handleFrame(services, socket, payload, routes)))
        .catch((error: unknown) => {
          // Frames queued behind a failed one are dropped unacknowledged, so the sender resends them
          // in order after this one instead of seeing them overtake it.
          failed = true;
          log.error({ err: error }, 'MLLP message failed; closing the connection');
          socket.destroy();
        });
    }
    chunks = buffer.length > 0 ? [Buffer.from(buffer)] : [];
    buffered = buffer.length;
    // A finished frame shows the sender is alive: the next frame gets its own time.
    if (frameTimer) {
      clearTimeout(frameTimer);
      frameTimer = null;
    }
    watchFrame();
    if (buffered > maxBytes) {
      log.warn({ bytes: buffered }, 'MLLP frame larger than the limit; closing');
      socket.destroy();
    }
  });
  return () => queue;
}

function findFrameEnd(buffer: Buffer, from: number): number {
  let i = buffer.indexOf(END_BLOCK, from);
  while (i !== -1 && i + 1 < buffer.length && buffer[i + 1] !== CARRIAGE_RETURN)
    i = buffer.indexOf(END_BLOCK, i + 1);
  return i !== -1 && i + 1 < buffer.length ? i : -1;
}

function frame(text: string): Buffer {
  return Buffer.concat([
    Buffer.from([START_BLOCK]),
    Buffer.from(text, 'utf8'),
    Buffer.from([END_BLOCK, CARRIAGE_RETURN]),
  ]);
}

/**
 * How long a connection's routing (MSH-4/MSH-6 → inbound connection and tenant) is reused without
 * asking the database again: a sender streams many messages with the same header, and a disabled
 * or changed connection takes effect on its next message after this.
 */
const ROUTE_TTL_MS = 5_000;
type RouteCache = Map<string, { connection: Connection; tenant: Tenant; until: number }>;

async function handleFrame(
  services: Services,
  socket: Socket,
  raw: string,
  routes: RouteCache,
): Promise<void> {
  const remote = normaliseIp(socket.remoteAddress ?? '');
  const refuse = async (message: string) => {
    await insertRejectedMessage(services.db, {
      tenantId: null,
      transport: 'mllp',
      format: 'hl7v2',
      remoteAddress: remote,
      reason: message,
      raw,
    });
    services.metrics.inboundMessages.inc({ transport: 'mllp', format: 'hl7v2', outcome: 'rejected' });
    services.logger.info({ transport: 'mllp', remote }, 'MLLP message refused before a tenant was known');
    socket.write(
      frame(
        buildAck(ackTargetFromRaw(raw), 'AR', [{ code: HL7_ERROR.unknownKey, location: 'MSH-4', message }]),
      ),
    );
  };
  let header;
  let parsed: Hl7Message;
  try {
    parsed = parseHl7(raw);
    header = ackTargetOf(parsed);
  } catch (error) {
    if (!(error instanceof Hl7ParseError)) throw error;
    await insertRejectedMessage(services.db, {
      tenantId: null,
      transport: 'mllp',
      format: 'hl7v2',
      remoteAddress: remote,
      reason: error.message,
      raw,
    });
    services.metrics.inboundMessages.inc({ transport: 'mllp', format: 'hl7v2', outcome: 'rejected' });
    services.logger.info({ transport: 'mllp', remote }, 'MLLP message refused before a tenant was known');
    socket.write(
      frame(
        buildAck(ackTargetFromRaw(raw), 'AR', [
          { code: HL7_ERROR.segmentSequence, location: error.location, message: error.message },
        ]),
      ),
    );
    return;
  }
  const routeKey = `${header.sendingFacility}\u0000${header.receivingFacility}`;
  const cached = routes.get(routeKey);
  if (cached && cached.until > Date.now()) {
    const result = await receiveHl7(services, {
      tenant: cached.tenant,
      transport: 'mllp',
      raw,
      parsed,
      scopes: null,
      credentialId: null,
      connectionId: cached.connection.id,
      idempotencyKey: null,
      remoteAddress: remote,
    });
    for (const ack of result.acks) socket.write(frame(ack));
    return;
  }
  const facility = firstComponent(header.sendingFacility);
  const receiving = firstComponent(header.receivingFacility);
  const candidates = (await findMllpConnections(services.db, facility)).filter(
    (c) =>
      !c.mllp_receiving_facility ||
      c.mllp_receiving_facility === receiving ||
      c.mllp_receiving_facility === header.receivingFacility,
  );
  if (candidates.length === 0)
    return refuse(`no inbound MLLP connection is configured for sending facility ${facility || '(empty)'}`);
  const allowed = candidates.filter((c) => ipAllowed(c.mllp_allow_ips, remote));
  if (allowed.length === 0) return refuse(`address ${remote} is not allowed to send for ${facility}`);
  const tenants = new Set(allowed.map((c) => c.tenant_id));
  if (tenants.size > 1)
    return refuse(
      `sending facility ${facility} is configured for more than one tenant; set the receiving facility (MSH-6) on the connections`,
    );
  const connection = allowed[0]!;
  const tenant = await findTenantById(services.db, connection.tenant_id);
  if (!tenant) return refuse(`the connection's tenant no longer exists`);
  routes.set(routeKey, { connection, tenant, until: Date.now() + ROUTE_TTL_MS });
  const result = await receiveHl7(services, {
    tenant,
    transport: 'mllp',
    raw,
    parsed,
    scopes: null,
    credentialId: null,
    connectionId: connection.id,
    idempotencyKey: null,
    remoteAddress: remote,
  });
  for (const ack of result.acks) socket.write(frame(ack));
}

/** HD's namespace id (first component), else the whole field. */
function firstComponent(field: string): string {
  return field.split('^')[0] || field;
}
