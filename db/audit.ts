import { createHash } from 'node:crypto';
import { sql, type Selectable, type Transaction } from 'kysely';
import type { AuditEventsTable, Database } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

export interface AuditEntry {
  tenantId: string;
  /** Who did it: `system`, `credential:{id}`, `admin`, `workflow:{id}`, a user's e-mail. */
  actor: string;
  /** What happened, dotted: `message.received`, `report.flagged`, `credential.revoked`. */
  action: string;
  /** What it happened to: `message/{id}`, `report/{id}`, `credential/{id}`. */
  subject: string;
  details?: Record<string, unknown>;
  at?: Date;
}

const GENESIS = '0'.repeat(64);

/**
 * Appends an audit event to the tenant's hash chain: each event's hash covers the previous event's
 * hash, so an edited or deleted event breaks the chain. Takes a transaction: the tenant's chain is
 * locked until it commits, so concurrent appends never fork it.
 */
export async function appendAudit(trx: Transaction<Database>, entry: AuditEntry): Promise<void> {
  await appendAuditEvents(trx, [entry]);
}

/**
 * Appends events of one tenant to its chain in order, under one lock and one statement (a group
 * commit records many messages at once). Every event's hash covers the one before it.
 */
export async function appendAuditEvents(trx: Transaction<Database>, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const tenantId = entries[0]!.tenantId;
  if (entries.some((e) => e.tenantId !== tenantId)) throw new Error('audit events of one tenant at a time');
  await sql`select pg_advisory_xact_lock(hashtextextended(${tenantId}, 42))`.execute(trx);
  const last = await trx
    .selectFrom('audit_events')
    .select(['sequence', 'hash'])
    .where('tenant_id', '=', tenantId)
    .orderBy('sequence', 'desc')
    .limit(1)
    .executeTakeFirst();
  let sequence = last ? Number(last.sequence) : 0;
  let prevHash = last?.hash ?? GENESIS;
  const rows = entries.map((entry) => {
    sequence += 1;
    const at = entry.at ?? new Date();
    const details = entry.details ?? {};
    const hash = auditHash(prevHash, {
      tenantId,
      sequence,
      at: at.toISOString(),
      actor: entry.actor,
      action: entry.action,
      subject: entry.subject,
      details,
    });
    const row = {
      tenant_id: tenantId,
      sequence,
      at,
      actor: entry.actor,
      action: entry.action,
      subject: entry.subject,
      details: JSON.stringify(details),
      prev_hash: prevHash,
      hash,
    };
    prevHash = hash;
    return row;
  });
  for (let start = 0; start < rows.length; start += 1000) {
    await trx
      .insertInto('audit_events')
      .values(rows.slice(start, start + 1000))
      .execute();
  }
}

function auditHash(prevHash: string, event: Record<string, unknown>): string {
  return createHash('sha256').update(prevHash).update(canonicalJson(event)).digest('hex');
}

/** JSON with object keys sorted, so the same event always hashes the same. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Events read at once while verifying: a long chain is checked in batches, never held whole. */
const VERIFY_BATCH = 1000;

/** Re-computes a tenant's chain; returns the first sequence number that does not verify, or null. */
export async function verifyAuditChain(db: Db, tenantId: string): Promise<number | null> {
  let prev = GENESIS;
  let after: string | null = null;
  for (;;) {
    let query = tenantScope(db, tenantId).selectFrom('audit_events').selectAll();
    if (after !== null) query = query.where('sequence', '>', after);
    const events = await query.orderBy('sequence').limit(VERIFY_BATCH).execute();
    for (const e of events) {
      const expected = auditHash(prev, {
        tenantId,
        sequence: Number(e.sequence),
        at: new Date(e.at).toISOString(),
        actor: e.actor,
        action: e.action,
        subject: e.subject,
        details: e.details,
      });
      if (e.prev_hash !== prev || e.hash !== expected) return Number(e.sequence);
      prev = e.hash;
      after = String(e.sequence);
    }
    if (events.length < VERIFY_BATCH) return null;
  }
}

export type AuditEvent = Selectable<AuditEventsTable>;

export interface AuditFilter {
  /** Events whose action starts with this (`report.` for every report event). */
  actionPrefix?: string;
  /** Events about exactly this subject (`message/{id}`). */
  subject?: string;
  /** Events about any of these subjects (a message's timeline: the message, its reports, orders…). */
  subjects?: string[];
  limit: number;
  offset: number;
  /** Oldest first (a timeline) instead of newest first (the audit page). */
  oldestFirst?: boolean;
}

/**
 * A tenant's audit events matching a filter, with how many match before paging.
 *
 * @example
 * const { events, total } = await listAuditEvents(db, tenantId, { actionPrefix: 'report.', limit: 50, offset: 0 });
 */
export async function listAuditEvents(
  db: Db,
  tenantId: string,
  filter: AuditFilter,
): Promise<{ events: AuditEvent[]; total: number }> {
  let query = tenantScope(db, tenantId).selectFrom('audit_events');
  if (filter.actionPrefix) query = query.where('action', 'like', `${escapeLike(filter.actionPrefix)}%`);
  if (filter.subject) query = query.where('subject', '=', filter.subject);
  if (filter.subjects)
    query = query.where('subject', 'in', filter.subjects.length > 0 ? filter.subjects : ['-']);
  const [events, count] = await Promise.all([
    query
      .selectAll()
      .orderBy('sequence', filter.oldestFirst ? 'asc' : 'desc')
      .limit(filter.limit)
      .offset(filter.offset)
      .execute(),
    query.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { events, total: Number(count.n) };
}

/** `%` and `_` in a user's search are taken literally. */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
