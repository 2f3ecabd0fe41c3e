import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { ACK_CODE, COMMIT_CODE, type AckCode } from './ack.ts';
import { parseHl7, type Hl7Message } from './message.ts';

// MLLP framing (HL7 v2.5.1 Transport Specification: MLLP, release 2): 0x0B message 0x1C 0x0D.
const START_BLOCK = 0x0b;
const END = Buffer.from([0x1c, 0x0d]);

/** MSA-1, original and enhanced (commit) mode, as the application code the caller acts on. */
const ACK_CODES: Record<string, AckCode> = {
  [ACK_CODE.accept]: ACK_CODE.accept,
  [ACK_CODE.error]: ACK_CODE.error,
  [ACK_CODE.reject]: ACK_CODE.reject,
  [COMMIT_CODE.accept]: ACK_CODE.accept,
  [COMMIT_CODE.error]: ACK_CODE.error,
  [COMMIT_CODE.reject]: ACK_CODE.reject,
};

export interface MllpClientOptions {
  host: string;
  port: number;
  tls?: { ca?: string; rejectUnauthorized?: boolean };
  connectTimeoutMs?: number;
  ackTimeoutMs?: number;
  /** An unused connection is closed after this long (default 60 s); the next send opens a new one. */
  idleCloseMs?: number;
}

export interface MllpAck {
  /** The ACK as received. */
  ack: string;
  code: AckCode;
  /** MSA-3 (or ERR's text) when the receiver said why. */
  text: string | null;
}

/**
 * Sends HL7 messages over one persistent MLLP connection (HL7 v2 "Lower Layer Protocol": each
 * message framed 0x0B … 0x1C 0x0D) and waits for each ACK before the next message goes: one message
 * in flight, in order. The connection opens on the first send, is opened again after the peer
 * closes it or an error, and closes when idle. The ACK must acknowledge the message sent (MSA-2 =
 * MSH-10); commit ACKs (CA/CE/CR) count as AA/AE/AR. A send fails (rejects with an Error saying
 * why) when the connection cannot be made, dies before the ACK, or no ACK comes in time; the
 * connection is then dropped, and the next send opens a new one.
 *
 * @example
 * const client = new MllpClient({ host: 'mllp.genhosp.example', port: 2575, ackTimeoutMs: 30_000 });
 * const { code, text } = await client.send(oru); // code 'AA' | 'AE' | 'AR'
 * client.close();
 */
export class MllpClient {
  readonly options: Required<Omit<MllpClientOptions, 'tls'>> & Pick<MllpClientOptions, 'tls'>;
  #socket: Socket | null = null;
  #buffer = Buffer.alloc(0);
  #queue: Promise<unknown> = Promise.resolve();
  #waiting: { resolve(frame: string): void; reject(error: Error): void } | null = null;
  #idle: ReturnType<typeof setTimeout> | null = null;

  constructor(options: MllpClientOptions) {
    // `??`, not a spread of defaults: an option passed as undefined keeps its default.
    this.options = {
      ...options,
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      ackTimeoutMs: options.ackTimeoutMs ?? 30_000,
      idleCloseMs: options.idleCloseMs ?? 60_000,
    };
  }

  /**
   * Sends one message and resolves with its ACK; rejects when it cannot be sent or no ACK comes.
   * `signal` bounds the wait behind earlier messages: once aborted, a message not yet written is
   * never written (one already written still waits for its ACK, up to `ackTimeoutMs`).
   */
  send(message: string, options: { signal?: AbortSignal } = {}): Promise<MllpAck> {
    const { signal } = options;
    const result = this.#queue.then(() => {
      if (signal?.aborted)
        throw new Error(
          `the message was not sent to ${this.#where}: ${signal.reason instanceof Error && signal.reason.name === 'TimeoutError' ? 'earlier messages held the connection too long' : 'the send was cancelled'}`,
        );
      return this.#sendNow(message);
    });
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** Closes the connection (a send waiting for its ACK fails); a later send opens a new one. */
  close(): void {
    if (this.#idle) clearTimeout(this.#idle);
    this.#drop(new Error('the MLLP client was closed'));
  }

  get #where(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  async #sendNow(message: string): Promise<MllpAck> {
    if (this.#idle) clearTimeout(this.#idle);
    const controlId = parseHl7(message).segment('MSH')?.field(10).text ?? '';
    const socket = await this.#open();
    const frame = new Promise<string>((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
    const timer = setTimeout(() => {
      this.#drop(
        new Error(
          `no ACK from ${this.#where} within ${this.options.ackTimeoutMs < 1000 ? `${this.options.ackTimeoutMs} ms` : `${Math.round(this.options.ackTimeoutMs / 1000)} s`}`,
        ),
      );
    }, this.options.ackTimeoutMs);
    try {
      socket.write(Buffer.concat([Buffer.from([START_BLOCK]), Buffer.from(message, 'utf8'), END]));
      const ack = await frame;
      // An answer that is not an ACK to this message leaves us unsure where the peer is in the
      // conversation: the connection goes, and the next send starts on a fresh one.
      const refuse = (why: string) => {
        this.#drop(null);
        return new Error(`${this.#where} ${why}`);
      };
      let parsed: Hl7Message;
      try {
        parsed = parseHl7(ack);
      } catch (error) {
        throw refuse(`answered with something that is not an HL7 ACK: ${(error as Error).message}`);
      }
      const msa = parsed.segment('MSA');
      if (!msa) throw refuse('answered without an MSA segment');
      const acknowledged = msa.field(2).text;
      if (acknowledged !== controlId)
        throw refuse(`acknowledged message ${acknowledged || '(none)'}, not ${controlId}`);
      const raw = msa.field(1).text;
      const code = Object.hasOwn(ACK_CODES, raw) ? ACK_CODES[raw] : undefined;
      if (!code) throw refuse(`answered MSA-1 ${JSON.stringify(raw)}, which is not an acknowledgement code`);
      const text = msa.field(3).text || parsed.segment('ERR')?.field(8).text || null;
      return { ack, code, text };
    } finally {
      clearTimeout(timer);
      this.#waiting = null;
      if (this.#socket) {
        this.#idle = setTimeout(() => this.#drop(null), this.options.idleCloseMs);
        this.#idle.unref();
      }
    }
  }

  #open(): Promise<Socket> {
    if (this.#socket && !this.#socket.destroyed) return Promise.resolve(this.#socket);
    const { host, port, tls, connectTimeoutMs } = this.options;
    return new Promise((resolve, reject) => {
      const socket = tls
        ? connectTls({
            host,
            port,
            ...(tls.ca ? { ca: tls.ca } : {}),
            rejectUnauthorized: tls.rejectUnauthorized ?? true,
          })
        : connectTcp({ host, port });
      const ready = tls ? 'secureConnect' : 'connect';
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`could not connect to ${this.#where} within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          new Error(
            error.code === 'ECONNREFUSED'
              ? `connection refused by ${this.#where}`
              : `could not connect to ${this.#where}: ${error.message}`,
          ),
        );
      });
      socket.once(ready, () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        // An idle destination connection never keeps the process alive.
        socket.unref();
        this.#socket = socket;
        this.#buffer = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => this.#read(chunk));
        socket.on('error', (error) =>
          this.#drop(new Error(`the connection to ${this.#where} failed before the ACK: ${error.message}`)),
        );
        socket.on('close', () => {
          if (this.#socket === socket)
            this.#drop(new Error(`${this.#where} closed the connection before its ACK`));
        });
        resolve(socket);
      });
    });
  }

  #read(chunk: Buffer) {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const start = this.#buffer.indexOf(START_BLOCK);
      if (start < 0) {
        this.#buffer = Buffer.alloc(0);
        return;
      }
      const end = this.#buffer.indexOf(END, start + 1);
      if (end < 0) return;
      const frame = this.#buffer.subarray(start + 1, end).toString('utf8');
      this.#buffer = this.#buffer.subarray(end + END.length);
      this.#waiting?.resolve(frame);
      this.#waiting = null;
    }
  }

  /** Drops the connection; a send waiting for its ACK fails with `error`. */
  #drop(error: Error | null) {
    const socket = this.#socket;
    this.#socket = null;
    socket?.destroy();
    if (error) this.#waiting?.reject(error);
    this.#waiting = null;
  }
}

/** One client per destination (connection id); a changed endpoint gets a new client. */
export class MllpClientPool {
  #clients = new Map<string, { signature: string; client: MllpClient }>();

  get(key: string, options: MllpClientOptions): MllpClient {
    const signature = JSON.stringify(options);
    const existing = this.#clients.get(key);
    if (existing?.signature === signature) return existing.client;
    existing?.client.close();
    const client = new MllpClient(options);
    this.#clients.set(key, { signature, client });
    return client;
  }

  closeAll(): void {
    for (const { client } of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
