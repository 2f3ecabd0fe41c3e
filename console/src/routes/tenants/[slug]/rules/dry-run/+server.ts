import { error, json } from '@sveltejs/kit';
import { AppError } from '../../../../../../../api/errors.ts';
import { DRY_RUN_MAX, dryRun } from '../../../../../../../api/routing-rules.ts';
import { tenantFor } from '../../../../../lib/server/access.ts';
import { services } from '../../../../../lib/server/services.ts';
import type { RequestHandler } from './$types';

/**
 * One page of a dry run, for the rules page's script, which pages through the last N results to
 * show progress: `{ rules, limit, offset, pageSize }` in, the admin API's dry-run outcome out.
 */
export const POST = (async ({ locals, params, request }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'configure');
  const body = (await request.json().catch(() => null)) as {
    rules?: unknown;
    limit?: unknown;
    offset?: unknown;
    pageSize?: unknown;
  } | null;
  const int = (value: unknown, min: number) =>
    typeof value === 'number' && Number.isInteger(value) && value >= min && value <= DRY_RUN_MAX
      ? value
      : null;
  const limit = int(body?.limit, 1);
  const offset = body?.offset === undefined ? 0 : int(body.offset, 0);
  const pageSize = body?.pageSize === undefined ? undefined : int(body.pageSize, 1);
  if (!body || limit === null || offset === null || pageSize === null)
    error(400, `send { rules, limit (1 to ${DRY_RUN_MAX}), offset, pageSize }`);
  try {
    return json(await dryRun(services().db, tenant.slug, { rules: body.rules, limit, offset, pageSize }));
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    return json({ error: { code: e.code, message: e.message, details: e.details } }, { status: e.status });
  }
}) satisfies RequestHandler;
