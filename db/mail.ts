import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { MailOutboxTable } from './schema.ts';
import type { Db } from './tenant-scope.ts';

export type OutboxMail = Selectable<MailOutboxTable>;

/**
 * Puts a mail in the outbox once per dedupe key and returns the stored row: an activity run again
 * after a crash finds the mail it already queued (and whether it was sent).
 */
export async function enqueueMail(
  db: Db,
  mail: {
    tenantId: string | null;
    dedupeKey: string;
    kind: string;
    to: string;
    subject: string;
    text: string;
  },
): Promise<OutboxMail> {
  await db
    .insertInto('mail_outbox')
    .values({
      id: randomUUID(),
      tenant_id: mail.tenantId,
      dedupe_key: mail.dedupeKey,
      kind: mail.kind,
      to: mail.to,
      subject: mail.subject,
      text: mail.text,
      sent_at: null,
      transport: null,
      error: null,
    })
    .onConflict((oc) => oc.column('dedupe_key').doNothing())
    .execute();
  return db
    .selectFrom('mail_outbox')
    .selectAll()
    .where('dedupe_key', '=', mail.dedupeKey)
    .executeTakeFirstOrThrow();
}

export async function markMailSent(db: Db, id: string, transport: string): Promise<void> {
  await db
    .updateTable('mail_outbox')
    .set({ sent_at: new Date(), transport, error: null })
    .where('id', '=', id)
    .execute();
}

export async function markMailFailed(db: Db, id: string, error: string): Promise<void> {
  await db.updateTable('mail_outbox').set({ error }).where('id', '=', id).execute();
}

/** The newest mails of a tenant (the console's outbox; tests read captured mail here). */
export async function listMail(db: Db, tenantId: string, limit: number): Promise<OutboxMail[]> {
  return db
    .selectFrom('mail_outbox')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .limit(limit)
    .execute();
}

/** One mail of a tenant's outbox. */
export async function findMail(db: Db, tenantId: string, id: string): Promise<OutboxMail | undefined> {
  // mail_outbox allows a null tenant (platform mail), so the tenant condition is written here.
  return db
    .selectFrom('mail_outbox')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
}

/** Where a mail stands, in words: captured (no SMTP), sent, failed, or waiting to be sent. */
export function mailStatus(mail: Pick<OutboxMail, 'sent_at' | 'transport' | 'error'>): string {
  if (mail.sent_at) return mail.transport === 'captured' ? 'captured' : 'sent';
  return mail.error ? 'failed' : 'queued';
}
