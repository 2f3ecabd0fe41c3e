import { fail } from '@sveltejs/kit';
import { sendThroughTenantEndpoint } from '../../../../../../api/console-intake.ts';
import { CSV_COLUMNS } from '../../../../../../adapters/csv/results-csv.ts';
import { actorOf, tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { Actions, PageServerLoad } from './$types';

/** The CSV upload page: the documented columns, and the largest file taken. */
export const load = (async ({ locals, params }) => {
  await tenantFor(locals, params.slug, 'review');
  return {
    columns: CSV_COLUMNS.map((c) => ({ name: c.name, description: c.description })),
    maxBytes: services().app.config.maxUploadBytes,
  };
}) satisfies PageServerLoad;

export const actions = {
  /** Without JavaScript: the file comes as a form field and the answer when every row is read. */
  default: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'review');
    const file = (await request.formData()).get('file');
    if (!(file instanceof File) || file.size === 0)
      return fail(400, { message: 'Choose a CSV file to upload.' });
    const answer = await sendThroughTenantEndpoint(services().app, {
      selfUrl: services().endpoints().selfUrl,
      tenant,
      path: '/csv',
      contentType: 'text/csv',
      body: await file.text(),
      environment: 'production',
      purpose: `console upload by ${user.email}`,
      actor: actorOf(user),
    });
    const body = answer.contentType?.includes('json')
      ? JSON.parse(answer.text)
      : { error: { message: answer.text } };
    if (answer.status >= 400)
      return fail(answer.status, { message: body.error?.message ?? 'The upload was refused.' });
    return { answer: body, messageId: answer.messageId };
  },
} satisfies Actions;
