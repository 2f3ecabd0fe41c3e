import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '../env.ts';
import { acknowledgeCriticalResult, describeAckLink } from '../lifecycle.ts';
import { validationHook } from '../validation.ts';
import { ErrorOut, json } from './openapi-common.ts';

const Token = z.object({ token: z.string().min(1).max(200) });

/**
 * A provider's acknowledgement of a critical result, from the single-use signed link in the
 * notification e-mail (`/ack/{token}` in the console posts here). The token is the credential.
 */
export function ackRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{token}',
      summary: 'What an acknowledgement link is for (nothing that answers the read-back)',
      request: { params: Token },
      responses: {
        200: {
          description: 'The link',
          ...json(
            z.object({
              test: z.string().nullable(),
              identifiedAt: z.string(),
              recipient: z.string(),
              expiresAt: z.string(),
              acknowledged: z.boolean(),
              used: z.boolean(),
            }),
          ),
        },
        403: { description: 'Expired', ...json(ErrorOut) },
        404: { description: 'Not a valid link', ...json(ErrorOut) },
      },
    }),
    async (c) => c.json(await describeAckLink(c.get('services'), c.req.valid('param').token), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{token}',
      summary: 'Acknowledge a critical result with read-back of the value and the patient identifier',
      request: {
        params: Token,
        body: {
          required: true,
          ...json(
            z
              .object({
                value: z.string().trim().min(1).max(200).openapi({ example: '6.8' }),
                patientIdentifier: z
                  .string()
                  .trim()
                  .min(1)
                  .max(200)
                  .openapi({ description: "The patient's MRN (or birth date, YYYY-MM-DD)." }),
              })
              .strict(),
          ),
        },
      },
      responses: {
        200: {
          description: 'Acknowledged',
          ...json(z.object({ criticalResultId: z.string(), acknowledgedAt: z.string() })),
        },
        409: { description: 'Already used or already acknowledged', ...json(ErrorOut) },
        422: { description: 'The read-back did not match; the link stays usable', ...json(ErrorOut) },
      },
    }),
    async (c) =>
      c.json(
        await acknowledgeCriticalResult(c.get('services'), c.req.valid('param').token, c.req.valid('json')),
        200,
      ),
  );
  return app;
}
