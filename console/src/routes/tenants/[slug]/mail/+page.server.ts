import { listMail, mailStatus } from '../../../../../../db/mail.ts';
import { tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { PageServerLoad } from './$types';

/** The tenant's outgoing e-mail, newest first (captured here when no SMTP_URL is set). */
export const load = (async ({ locals, params }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'configure');
  const mail = await listMail(services().db, tenant.id, 200);
  return {
    mail: mail.map((m) => ({
      id: m.id,
      kind: m.kind,
      to: m.to,
      subject: m.subject,
      status: mailStatus(m),
      error: m.error,
      createdAt: m.created_at.toISOString(),
    })),
  };
}) satisfies PageServerLoad;
