import { error, json } from '@sveltejs/kit';
import { sendThroughTenantEndpoint } from '../../../../../../../api/console-intake.ts';
import { actorOf, tenantFor } from '../../../../../lib/server/access.ts';
import { services } from '../../../../../lib/server/services.ts';
import type { RequestHandler } from './$types';

/**
 * A CSV upload from the console page's script: the body streams through to the tenant's CSV
 * endpoint (spooled to disk there, never held here); `x-upload-key` is its Idempotency-Key, which
 * the page polls for progress. Answers what the CSV endpoint answered.
 */
export const POST = (async ({ locals, params, request }) => {
  const { tenant, user } = await tenantFor(locals, params.slug, 'review');
  const key = request.headers.get('x-upload-key') ?? '';
  if (!/^[0-9a-f-]{36}$/i.test(key)) error(400, 'x-upload-key must be a UUID');
  if (!request.body) error(400, 'the upload is empty');
  const answer = await sendThroughTenantEndpoint(services().app, {
    selfUrl: services().endpoints().selfUrl,
    tenant,
    path: '/csv',
    contentType: 'text/csv',
    body: request.body,
    environment: 'production',
    purpose: `console upload by ${user.email}`,
    actor: actorOf(user),
    idempotencyKey: key,
  });
  const body = answer.contentType?.includes('json')
    ? JSON.parse(answer.text)
    : { error: { message: answer.text } };
  return json({ status: answer.status, messageId: answer.messageId, answer: body }, { status: 200 });
}) satisfies RequestHandler;
