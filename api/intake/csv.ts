import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import type { Context } from 'hono';
import { sql } from 'kysely';
import {
  CsvFormatError,
  CsvHeaderError,
  readCsvResults,
  type CsvBatch,
} from '../../adapters/csv/results-csv.ts';
import { appendAudit } from '../../db/audit.ts';
import {
  insertMessage,
  insertRejectedMessage,
  MESSAGE_STATUS,
  findDuplicateMessage,
} from '../../db/messages.ts';
import type { MessageProgress } from '../../db/schema.ts';
import { tenantScope } from '../../db/tenant-scope.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { idempotencyKeyOf } from '../routes/hl7.ts';
import { repeatOrRefuse, setMessageHeaders } from './receive.ts';
import { accessViolations, isUniqueViolation, startWorkflows, storeContent } from './store.ts';

const EMPTY_PATIENT = { identifiers: [], familyName: null, givenNames: [], birthDate: null, sex: null };

/** Rejected rows listed in the answer and on the message; beyond it only the count. */
const MAX_LISTED_REJECTIONS = 1000;
/** Rows per committed batch: memory stays bounded whatever the upload's size. */
const BATCH_ROWS = 500;
/** The raw upload is kept in parts of this many characters. */
const RAW_PART_CHARS = 1024 * 1024;
/** Uploads this process is receiving now: a retry of one of them waits its turn (409). */
const RECEIVING = new Set<string>();

export interface CsvAnswer {
  messageId: string;
  accepted: number;
  rejected: { row: number; message: string }[];
  rejectedCount: number;
  rowsRead: number;
  warnings: string[];
}

/**
 * `POST /v1/t/{slug}/csv`: the body is spooled to disk while its hash and signature are computed
 * (never held in memory), the signature is checked before anything is stored, then the rows are
 * parsed as a stream and committed in batches, each batch with its reports and inbox rows in one
 * transaction and the message's progress (rows read, accepted, rejected) updated with it, so
 * `GET /messages/{id}` shows a large upload advancing. Rejected rows are answered with their row
 * numbers and reasons; good rows are kept. A retry of the same upload gets the same answer.
 */
export async function receiveCsv(c: Context<AppEnv>): Promise<Response> {
  const services = c.get('services');
  const { db, config } = services;
  const tenant = c.get('tenant');
  const credential = c.get('credential');
  const idempotencyKey = idempotencyKeyOf(c.req.header('idempotency-key'));
  const body = c.req.raw.body;
  if (!body)
    throw new AppError('invalid_request', 'the request body is empty: send a CSV file with a header row');

  const dir = path.join(config.dataDir, 'uploads');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${randomUUID()}.csv`);
  let received: string | null = null;
  try {
    const hash = createHash('sha256');
    const signature = c.get('bodySignature');
    let size = 0;
    await pipeline(
      Readable.fromWeb(body as WebReadableStream<Uint8Array>),
      async function* (source: AsyncIterable<Uint8Array>) {
        for await (const chunk of source) {
          size += chunk.byteLength;
          if (size > config.maxUploadBytes)
            throw new AppError(
              'payload_too_large',
              `the upload is larger than ${config.maxUploadBytes} bytes`,
            );
          hash.update(chunk);
          signature?.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(file, { mode: 0o600 }),
    );
    if (signature) {
      const check = signature.verify();
      if (!check.ok) throw new AppError('unauthorized', `signature check failed: ${check.reason}`);
    }
    if (size === 0)
      throw new AppError('invalid_request', 'the request body is empty: send a CSV file with a header row');
    const contentHash = hash.digest('hex');
    const keys = { sender: 'csv', controlId: `sha256:${contentHash}`, idempotencyKey };
    let progress: MessageProgress = { rowsRead: 0, accepted: 0, rejected: 0, rejections: [], done: false };
    let messageId: string | null = null;
    const earlier = await findDuplicateMessage(db, tenant.id, keys);
    if (earlier) {
      const interrupted =
        earlier.content_hash === contentHash &&
        earlier.progress &&
        !earlier.progress.done &&
        !RECEIVING.has(earlier.id);
      if (!interrupted) return repeatOrRefuse(c, earlier, contentHash, idempotencyKey);
      // The same upload broke off before: carry on after the last committed batch, nothing twice.
      messageId = earlier.id;
      progress = earlier.progress!;
      RECEIVING.add(messageId);
      received = messageId;
    }
    const resumeAfterRow = progress.rowsRead;
    const warnings = new Set<string>();
    const access = { clientIds: credential.client_ids, locationIds: credential.location_ids };
    const batches = readCsvResults(createReadStream(file), {
      batchRows: BATCH_ROWS,
      // A row outside the key's client or location scope is refused with its row number.
      refuse: (report) =>
        accessViolations(access, {
          results: [{ patient: EMPTY_PATIENT, reports: [{ ...report, status: 'final', observations: [] }] }],
          orders: [],
        })[0] ?? null,
    });

    const note = (batch: CsvBatch) => {
      progress.rowsRead = batch.rowsRead;
      progress.accepted += batch.accepted;
      progress.rejected += batch.rejected.length;
      for (const r of batch.rejected)
        if (progress.rejections.length < MAX_LISTED_REJECTIONS) progress.rejections.push(r);
      for (const w of batch.warnings) warnings.add(w);
    };

    try {
      for await (const batch of batches) {
        if (batch.rowsRead <= resumeAfterRow && messageId !== null) continue;
        note(batch);
        // Nothing is stored until a row is accepted: an upload of only bad rows leaves no message.
        if (batch.results.length === 0 && messageId === null) continue;
        const stored = await db.transaction().execute(async (trx) => {
          if (messageId === null) {
            messageId = randomUUID();
            RECEIVING.add(messageId);
            received = messageId;
            await insertMessage(trx, {
              id: messageId,
              tenant_id: tenant.id,
              credential_id: credential.id,
              connection_id: null,
              transport: 'http',
              format: 'csv',
              message_type: 'text/csv',
              control_id: keys.controlId,
              sender: keys.sender,
              idempotency_key: idempotencyKey,
              content_hash: contentHash,
              raw: '',
              status: MESSAGE_STATUS.received,
              status_detail: null,
              response: '',
              response_status: 202,
              progress: JSON.stringify(progress),
            });
            await storeRawParts(trx, messageId, file);
          }
          const content = await storeContent(trx, { tenant, orderNamespace: tenant.slug }, messageId, {
            results: batch.results,
            orders: [],
          });
          await tenantScope(trx, tenant.id)
            .updateTable('messages')
            .set({ progress: JSON.stringify(progress), updated_at: new Date() })
            .where('id', '=', messageId)
            .execute();
          return content;
        });
        startWorkflows(services, stored);
      }
    } catch (error) {
      if (error instanceof CsvHeaderError || error instanceof CsvFormatError) {
        if (messageId === null) {
          await refuse(c, file, error.message);
          throw new AppError('invalid_request', error.message);
        }
        // Rows before the break are stored and processed; the message says where it stopped.
        await finish(
          c,
          messageId,
          progress,
          [...warnings],
          `the CSV could not be read further: ${error.message}`,
        );
        throw new AppError(
          'unprocessable',
          `${error.message}; the rows before it were accepted (message ${messageId})`,
        );
      }
      if (isUniqueViolation(error)) {
        const raced = await findDuplicateMessage(db, tenant.id, keys);
        if (raced) return repeatOrRefuse(c, raced, contentHash, idempotencyKey);
      }
      if (messageId !== null) await markInterrupted(c, messageId, progress).catch(() => undefined);
      throw error;
    }

    if (messageId === null) {
      const reason =
        progress.rowsRead === 0
          ? 'the CSV has a header row but no data rows'
          : `none of the ${progress.rowsRead} rows could be accepted`;
      await refuse(c, file, reason);
      throw new AppError(
        'unprocessable',
        reason,
        progress.rejections.slice(0, 100).map((r) => ({ path: `row ${r.row}`, message: r.message })),
      );
    }
    const answer = await finish(c, messageId, progress, [...warnings], null);
    services.metrics.inboundMessages.inc({ transport: 'http', format: 'csv', outcome: 'accepted' });
    setMessageHeaders(c, messageId);
    return c.json(answer, 202);
  } finally {
    await fs.rm(file, { force: true });
    if (received) RECEIVING.delete(received);
  }
}

/** Keeps the upload as sent, in parts, without reading it into memory at once. */
async function storeRawParts(trx: Parameters<typeof storeContent>[0], messageId: string, file: string) {
  let part = 0;
  let pending = '';
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: RAW_PART_CHARS })) {
    pending += chunk as string;
    while (pending.length >= RAW_PART_CHARS) {
      await trx
        .insertInto('message_parts')
        .values({
          message_id: messageId,
          part: part++,
          content: pending.slice(0, RAW_PART_CHARS).replaceAll('\u0000', ''),
        })
        .execute();
      pending = pending.slice(RAW_PART_CHARS);
    }
  }
  if (pending.length > 0 || part === 0)
    await trx
      .insertInto('message_parts')
      .values({ message_id: messageId, part, content: pending.replaceAll('\u0000', '') })
      .execute();
}

async function finish(
  c: Context<AppEnv>,
  messageId: string,
  progress: MessageProgress,
  warnings: string[],
  stoppedBecause: string | null,
): Promise<CsvAnswer> {
  const { db } = c.get('services');
  const tenant = c.get('tenant');
  progress.done = true;
  const answer: CsvAnswer = {
    messageId,
    accepted: progress.accepted,
    rejected: progress.rejections,
    rejectedCount: progress.rejected,
    rowsRead: progress.rowsRead,
    warnings,
  };
  await db.transaction().execute(async (trx) => {
    await tenantScope(trx, tenant.id)
      .updateTable('messages')
      .set({
        progress: JSON.stringify(progress),
        response: JSON.stringify(answer),
        response_status: 202,
        status_detail: stoppedBecause,
        updated_at: new Date(),
      })
      .where('id', '=', messageId)
      .execute();
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor: `credential/${c.get('credential').id}`,
      action: 'message.received',
      subject: `message/${messageId}`,
      details: {
        transport: 'http',
        format: 'csv',
        rows: progress.rowsRead,
        accepted: progress.accepted,
        rejected: progress.rejected,
      },
    });
  });
  return answer;
}

/** The upload broke off (the sender hung up): what was committed stays, and the message says so. */
async function markInterrupted(c: Context<AppEnv>, messageId: string, progress: MessageProgress) {
  const { db } = c.get('services');
  await tenantScope(db, c.get('tenant').id)
    .updateTable('messages')
    .set({
      status_detail: `the upload was interrupted after row ${progress.rowsRead + 1}; ${progress.accepted} rows were accepted`,
      progress: JSON.stringify(progress),
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', messageId)
    .execute();
}

async function refuse(c: Context<AppEnv>, file: string, reason: string) {
  const { db, metrics } = c.get('services');
  const stat = await fs.stat(file);
  // The rejected log keeps the start of the upload: enough to see what was sent.
  const head = await readHead(file, 64 * 1024);
  await insertRejectedMessage(db, {
    tenantId: c.get('tenant').id,
    transport: 'http',
    format: 'csv',
    remoteAddress: c.get('remoteAddress'),
    reason: stat.size > head.length ? `${reason} (first ${head.length} bytes kept)` : reason,
    raw: head,
  });
  metrics.inboundMessages.inc({ transport: 'http', format: 'csv', outcome: 'rejected' });
}

async function readHead(file: string, bytes: number): Promise<string> {
  const handle = await fs.open(file);
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead).toString('utf8').replaceAll('\u0000', '');
  } finally {
    await handle.close();
  }
}
