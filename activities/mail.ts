import { ApplicationFailure } from '@temporalio/activity';
import { markMailFailed, markMailSent, type OutboxMail } from '../db/mail.ts';
import type { ActivityDeps } from './deps.ts';

/**
 * Sends a mail already committed to the outbox, once: a mail marked sent is not sent again, and a
 * failure is recorded and thrown so Temporal retries the activity.
 */
export async function sendQueuedMail({ db, mailer, logger }: ActivityDeps, mail: OutboxMail): Promise<void> {
  if (mail.sent_at) return;
  try {
    await mailer.send({ to: mail.to, subject: mail.subject, text: mail.text }, mail.id);
  } catch (error) {
    await markMailFailed(db, mail.id, (error as Error).message);
    // A permanent SMTP refusal (5xx: no such mailbox, relaying denied) will not get better by retrying.
    const code = (error as { responseCode?: number }).responseCode;
    if (code !== undefined && code >= 500)
      throw ApplicationFailure.nonRetryable(
        `the mail server refused the mail: ${(error as Error).message}`,
        'MailRefused',
      );
    logger.warn(
      { mailId: mail.id, kind: mail.kind, err: error },
      'sending a mail failed; it will be retried',
    );
    throw error;
  }
  await markMailSent(db, mail.id, mailer.transport);
}
