import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Message, NewMessage } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/** Where an inbound message is in its life, as the contract's `GET /messages/{id}` reports it. */
export const MESSAGE_STATUS = {
  received: 'received',
  processing: 'processing',
  needsReview: 'needs_review',
  delivered: 'delivered',
  failed: 'failed',
} as const;
export type MessageStatus = (typeof MESSAGE_STATUS)[keyof typeof MESSAGE_STATUS];

/** A message already stored under the same natural key (sender + control id) or Idempotency-Key. */
export async function findDuplicateMessage(
  db: Db,
  tenantId: string,
  keys: { sender: string | null; controlId: string | null; idempotencyKey: string | null },
): Promise<Message | undefined> {
  let query = tenantScope(db, tenantId).selectFrom('messages').selectAll();
  query = query.where((eb) => {
    const ors = [];
    if (keys.idempotencyKey) ors.push(eb('idempotency_key', '=', keys.idempotencyKey));
    if (keys.sender !== null && keys.controlId)
      ors.push(eb.and([eb('sender', '=', keys.sender), eb('control_id', '=', keys.controlId)]));
    return ors.length > 0 ? eb.or(ors) : eb.val(false);
  });
  return query.orderBy('received_at').executeTakeFirst();
}

export async function insertMessage(db: Db, message: NewMessage): Promise<void> {
  await db.insertInto('messages').values(message).execute();
}

export async function findMessage(db: Db, tenantId: string, id: string): Promise<Message | undefined> {
  return tenantScope(db, tenantId).selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function setMessageStatus(
  db: Db,
  tenantId: string,
  id: string,
  status: MessageStatus,
  detail: string | null = null,
): Promise<void> {
  await tenantScope(db, tenantId)
    .updateTable('messages')
    .set({ status, status_detail: detail, updated_at: new Date() })
    .where('id', '=', id)
    .execute();
}

export interface RecentMessage {
  id: string;
  tenant_slug: string;
  transport: string;
  format: string;
  message_type: string;
  control_id: string | null;
  sender: string | null;
  status: string;
  status_detail: string | null;
  received_at: Date;
}

/** The newest messages across all tenants (the platform admin's view), or of one tenant. */
export async function listRecentMessages(
  db: Db,
  options: { limit: number; tenantId?: string; tenantIds?: string[] },
): Promise<RecentMessage[]> {
  let query = db
    .selectFrom('messages')
    .innerJoin('tenants', 'tenants.id', 'messages.tenant_id')
    .select([
      'messages.id',
      'tenants.slug as tenant_slug',
      'messages.transport',
      'messages.format',
      'messages.message_type',
      'messages.control_id',
      'messages.sender',
      'messages.status',
      'messages.status_detail',
      'messages.received_at',
    ]);
  if (options.tenantId) query = query.where('messages.tenant_id', '=', options.tenantId);
  if (options.tenantIds)
    query = query.where(
      'messages.tenant_id',
      'in',
      options.tenantIds.length ? options.tenantIds : ['00000000-0000-0000-0000-000000000000'],
    );
  return query.orderBy('messages.received_at', 'desc').limit(options.limit).execute();
}

/** Keeps the bytes of a message we refused, apart from accepted data, so nothing is half-stored. */
export async function insertRejectedMessage(
  db: Db,
  input: {
    tenantId: string | null;
    transport: string;
    format: string;
    remoteAddress: string | null;
    reason: string;
    raw: string;
  },
): Promise<string> {
  const id = randomUUID();
  await db
    .insertInto('rejected_messages')
    .values({
      id,
      tenant_id: input.tenantId,
      transport: input.transport,
      format: input.format,
      remote_address: input.remoteAddress,
      reason: withoutNul(input.reason.slice(0, 2000)),
      // Postgres text cannot hold NUL; the refused bytes are kept with it marked as U+FFFD.
      raw: withoutNul(input.raw),
    })
    .execute();
  return id;
}

function withoutNul(text: string): string {
  return text.replaceAll('\u0000', '\uFFFD');
}

/**
 * The messages already stored under any of these natural keys or Idempotency-Keys (one query for a
 * whole group commit).
 */
export async function findDuplicateMessages(
  db: Db,
  tenantId: string,
  keys: { sender: string | null; controlId: string | null; idempotencyKey: string | null }[],
): Promise<Message[]> {
  const natural = keys.filter((k) => k.sender !== null && k.controlId);
  const idempotency = keys.map((k) => k.idempotencyKey).filter((k): k is string => Boolean(k));
  if (natural.length === 0 && idempotency.length === 0) return [];
  return tenantScope(db, tenantId)
    .selectFrom('messages')
    .selectAll()
    .where((eb) =>
      eb.or([
        ...(idempotency.length > 0 ? [eb('idempotency_key', 'in', idempotency)] : []),
        ...natural.map((k) => eb.and([eb('sender', '=', k.sender!), eb('control_id', '=', k.controlId!)])),
      ]),
    )
    .orderBy('received_at')
    .execute();
}

/** The status the message log gives a message refused at intake (kept in `rejected_messages`). */
export const REJECTED = 'rejected';

export interface MessageLogRow {
  id: string;
  /** False for a message refused at intake: only its bytes and the reason were kept. */
  accepted: boolean;
  transport: string;
  format: string;
  message_type: string | null;
  control_id: string | null;
  status: string;
  /** Why it failed or was refused. */
  problem: string | null;
  received_at: Date;
}

/**
 * A tenant's message log: accepted messages and those refused at intake, newest first, with the
 * total before paging. A refused HL7 message's type and control id are read from its MSH segment
 * as far as it goes (MSH-9, MSH-10), so a sender's control id finds it too.
 *
 * @example
 * const { rows, total } = await listMessageLog(db, tenantId, { status: 'rejected', limit: 50, offset: 0 });
 */
export async function listMessageLog(
  db: Db,
  tenantId: string,
  filter: { status?: string; controlId?: string; limit: number; offset: number },
): Promise<{ rows: MessageLogRow[]; total: number }> {
  const accepted = tenantScope(db, tenantId)
    .selectFrom('messages')
    .select([
      'id',
      sql<boolean>`true`.as('accepted'),
      'transport',
      'format',
      sql<string | null>`message_type`.as('message_type'),
      'control_id',
      'status',
      sql<string | null>`status_detail`.as('problem'),
      'received_at',
    ]);
  const mshField = (n: number) =>
    sql<
      string | null
    >`case when format = 'hl7v2' and raw like 'MSH%' then nullif(split_part(split_part(replace(raw, chr(10), chr(13)), chr(13), 1), substr(raw, 4, 1), ${n}), '') end`;
  // rejected_messages allows a null tenant (a message whose tenant was unknown), so it is outside
  // tenantScope's typed tables: the tenant condition is written here, first.
  const refused = db
    .selectFrom('rejected_messages')
    .where('tenant_id', '=', tenantId)
    .select([
      'id',
      sql<boolean>`false`.as('accepted'),
      'transport',
      'format',
      mshField(9).as('message_type'),
      mshField(10).as('control_id'),
      sql<string>`${REJECTED}`.as('status'),
      sql<string | null>`reason`.as('problem'),
      'received_at',
    ]);
  let log = db.selectFrom(accepted.unionAll(refused).as('log'));
  if (filter.status) log = log.where('log.status', '=', filter.status);
  if (filter.controlId) log = log.where('log.control_id', '=', filter.controlId);
  const [rows, count] = await Promise.all([
    log
      .selectAll()
      .orderBy('log.received_at', 'desc')
      .orderBy('log.id')
      .limit(filter.limit)
      .offset(filter.offset)
      .execute(),
    log.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(count.n) };
}

/** A message refused at intake, if it belongs to the tenant. */
export async function findRejectedMessage(db: Db, tenantId: string, id: string) {
  return db
    .selectFrom('rejected_messages')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
}

/**
 * A message's raw text as sent: the row's own, or its parts in order when a large upload was kept
 * in parts; at most `maxChars` characters, with the full length.
 */
export async function readMessageRaw(
  db: Db,
  message: Pick<Message, 'id' | 'raw'>,
  maxChars: number,
): Promise<{ text: string; length: number }> {
  const parts = await db
    .selectFrom('message_parts')
    .select([sql<string>`left(content, ${maxChars})`.as('head'), sql<number>`length(content)`.as('length')])
    .where('message_id', '=', message.id)
    .orderBy('part')
    .execute();
  if (parts.length === 0) return { text: message.raw.slice(0, maxChars), length: message.raw.length };
  const length = parts.reduce((n, p) => n + Number(p.length), 0);
  let text = '';
  for (const p of parts) {
    if (text.length >= maxChars) break;
    text += p.head;
  }
  return { text: text.slice(0, maxChars), length };
}
