import { error } from '@sveltejs/kit';
import { findMail, mailStatus } from '../../../../../../../db/mail.ts';
import { tenantFor } from '../../../../../lib/server/access.ts';
import { services } from '../../../../../lib/server/services.ts';
import type { PageServerLoad } from './$types';

/** One mail as it was written: its plain-text body (LabRelay sends no HTML mail). */
export const load = (async ({ locals, params }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'configure');
  const mail = /^[0-9a-f-]{36}$/i.test(params.id)
    ? await findMail(services().db, tenant.id, params.id)
    : undefined;
  if (!mail) error(404, 'there is no such mail');
  return {
    mail: {
      id: mail.id,
      kind: mail.kind,
      to: mail.to,
      subject: mail.subject,
      text: mail.text,
      status: mailStatus(mail),
      error: mail.error,
      createdAt: mail.created_at.toISOString(),
      sentAt: mail.sent_at?.toISOString() ?? null,
    },
  };
}) satisfies PageServerLoad;
