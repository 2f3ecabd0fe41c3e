import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '../env.ts';
import { adminAuth } from '../middleware/admin-auth.ts';
import { reprocessMessage } from '../reprocess.ts';
import { validationHook } from '../validation.ts';
import { adminErrors as errors, ErrorOut, json, requireTenant, Slug } from './openapi-common.ts';

const IdParams = z.object({ slug: Slug, id: z.string().uuid() });

const ReprocessOut = z
  .object({
    messageId: z.string().uuid(),
    reportIds: z.array(z.string().uuid()),
    orderIds: z.array(z.string().uuid()),
    workflowIds: z.array(z.string()),
    started: z.boolean().openapi({
      description: 'Temporal took every start now; when false the relay starts them once Temporal answers.',
    }),
  })
  .openapi('Reprocess');

/** Inbound messages of a tenant, as the platform admin handles them. */
export function adminMessageRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', adminAuth());

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/messages/{id}/reprocess',
      summary: 'Process a stored message again',
      description:
        "The message's reports and orders go through their order workflows again (the same workflow ids; nothing is parsed or stored again, so no record is duplicated). Audited as message.reprocessed.",
      request: {
        params: IdParams,
        body: {
          required: false,
          ...json(z.object({ reason: z.string().trim().min(1).max(1000).optional() }).strict()),
        },
      },
      responses: {
        202: { description: 'Processing again', ...json(ReprocessOut) },
        404: { description: 'No such tenant or message', ...json(ErrorOut) },
        409: { description: 'The message stored nothing to process', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const services = c.get('services');
      const { slug, id } = c.req.valid('param');
      const reason = (c.req.valid('json') as { reason?: string } | undefined)?.reason ?? null;
      const tenant = await requireTenant(services.db, slug);
      return c.json(await reprocessMessage(services, tenant, id, 'admin', reason), 202);
    },
  );

  return app;
}
