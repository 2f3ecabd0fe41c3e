import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { listMail } from '../../db/mail.ts';
import { listProviders } from '../../db/providers.ts';
import type { RoutingRulesVersion } from '../../db/routing-rules.ts';
import type { Provider } from '../../db/schema.ts';
import type { AppEnv } from '../env.ts';
import { adminAuth } from '../middleware/admin-auth.ts';
import { addProvider, ProviderSchema as ProviderBody, removeProvider } from '../providers.ts';
import {
  dryRun,
  DRY_RUN_MAX,
  listRuleVersions,
  rollbackRules,
  saveRuleVersion,
  tryRule,
} from '../routing-rules.ts';
import { validationHook } from '../validation.ts';
import { ErrorOut, json, requireTenant } from './openapi-common.ts';

const errors = {
  400: { description: 'Invalid request', ...json(ErrorOut) },
  401: { description: 'Missing or wrong admin token', ...json(ErrorOut) },
  404: { description: 'No such tenant', ...json(ErrorOut) },
};
const SlugParam = z.object({ slug: z.string() });

const ProviderOut = z
  .object({
    id: z.string(),
    name: z.string(),
    externalId: z.string().nullable(),
    email: z.string().nullable(),
    roles: z.array(z.string()),
    createdAt: z.string(),
  })
  .openapi('Provider');

const RulesOut = z
  .object({
    version: z.number(),
    rules: z.record(z.string(), z.unknown()),
    note: z.string().nullable(),
    createdBy: z.string(),
    createdAt: z.string(),
  })
  .openapi('RoutingRules');
const RulesBody = z
  .object({
    rules: z.record(z.string(), z.unknown()).openapi({
      description:
        'JSON-logic per decision: reviewRequired, destinations, notifyPatient, releaseDelaySeconds, priority.',
      example: { reviewRequired: { some: [{ var: 'results' }, { var: 'critical' }] } },
    }),
    note: z.string().trim().max(500).nullable().optional(),
  })
  .strict()
  .openapi('NewRoutingRules');

const RoutingDecisionOut = z.object({
  reviewRequired: z.boolean(),
  destinations: z.array(z.string()),
  notifyPatient: z.boolean(),
  releaseDelaySeconds: z.number(),
  priority: z.string(),
  error: z.string().optional(),
});

/** Admin API for the lifecycle: providers (escalation chain), versioned routing rules, the mail outbox. */
export function adminLifecycleRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', adminAuth());

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/providers',
      summary: 'Add a provider (ordering, covering, on-call, lab director) with an e-mail address',
      request: { params: SlugParam, body: { required: true, ...json(ProviderBody) } },
      responses: {
        201: { description: 'Added', ...json(ProviderOut) },
        409: { description: 'External id taken', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const provider = await addProvider(
        c.get('services').db,
        c.req.valid('param').slug,
        c.req.valid('json'),
        'admin',
      );
      return c.json(providerOut(provider), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tenants/{slug}/providers',
      summary: "List a tenant's providers",
      request: { params: SlugParam },
      responses: {
        200: { description: 'Providers', ...json(z.object({ providers: z.array(ProviderOut) })) },
        ...errors,
      },
    }),
    async (c) => {
      const { db } = c.get('services');
      const tenant = await requireTenant(db, c.req.valid('param').slug);
      return c.json({ providers: (await listProviders(db, tenant.id)).map(providerOut) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/tenants/{slug}/providers/{id}',
      summary: 'Remove a provider from the escalation chain',
      request: { params: z.object({ slug: z.string(), id: z.string().uuid() }) },
      responses: { 204: { description: 'Removed' }, ...errors },
    }),
    async (c) => {
      const { slug, id } = c.req.valid('param');
      await removeProvider(c.get('services').db, slug, id, 'admin');
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tenants/{slug}/routing-rules',
      summary: 'Every version of the routing rules, newest (in force) first',
      request: { params: SlugParam },
      responses: {
        200: { description: 'Versions', ...json(z.object({ versions: z.array(RulesOut) })) },
        ...errors,
      },
    }),
    async (c) => {
      const versions = await listRuleVersions(c.get('services').db, c.req.valid('param').slug);
      return c.json({ versions: versions.map(rulesOut) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/routing-rules',
      summary: 'Save a new version of the routing rules (checked against the operation whitelist)',
      request: { params: SlugParam, body: { required: true, ...json(RulesBody) } },
      responses: { 201: { description: 'Saved', ...json(RulesOut) }, ...errors },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const saved = await saveRuleVersion(
        c.get('services').db,
        c.req.valid('param').slug,
        { rules: body.rules, note: body.note ?? null },
        'admin',
      );
      return c.json(rulesOut(saved), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/routing-rules/rollback',
      summary: 'Put an earlier version back in force (saved as a new version)',
      request: {
        params: SlugParam,
        body: { required: true, ...json(z.object({ version: z.number().int().min(1) }).strict()) },
      },
      responses: { 201: { description: 'Rolled back', ...json(RulesOut) }, ...errors },
    }),
    async (c) => {
      const { version } = c.req.valid('json');
      const saved = await rollbackRules(c.get('services').db, c.req.valid('param').slug, version, 'admin');
      return c.json(rulesOut(saved), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/routing-rules/try',
      summary: 'Evaluate rules (given, or the version in force) against sample facts, storing nothing',
      request: {
        params: SlugParam,
        body: {
          required: true,
          ...json(
            z
              .object({
                rules: z.record(z.string(), z.unknown()).optional(),
                facts: z.record(z.string(), z.unknown()).openapi({ description: 'A RoutingFacts sample.' }),
              })
              .strict(),
          ),
        },
      },
      responses: {
        200: {
          description: 'The decision, or the error that would open a review task',
          ...json(z.object({ decision: z.any().nullable(), error: z.string().nullable() })),
        },
        ...errors,
      },
    }),
    async (c) => {
      const tried = await tryRule(c.get('services').db, c.req.valid('param').slug, c.req.valid('json'));
      return c.json(tried, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tenants/{slug}/routing-rules/dry-run',
      summary:
        "Evaluate draft rules over the tenant's last results and list those it would route differently, storing nothing",
      request: {
        params: SlugParam,
        body: {
          required: true,
          ...json(
            z
              .object({
                rules: z.record(z.string(), z.unknown()).openapi({
                  description: 'The draft, as it would be saved (checked against the operation whitelist).',
                  example: {
                    reviewRequired: {
                      some: [
                        { var: 'results' },
                        { and: [{ '==': [{ var: 'code' }, '2823-3'] }, { '>': [{ var: 'value' }, 4] }] },
                      ],
                    },
                  },
                }),
                limit: z
                  .number()
                  .int()
                  .min(1)
                  .max(DRY_RUN_MAX)
                  .default(100)
                  .openapi({
                    description: `How many of the most recent routed results to evaluate (at most ${DRY_RUN_MAX}).`,
                  }),
                offset: z.number().int().min(0).max(DRY_RUN_MAX).optional().openapi({
                  description:
                    'Where this page starts within the last `limit` results (for paging a large run).',
                }),
                pageSize: z.number().int().min(1).max(DRY_RUN_MAX).optional().openapi({
                  description: 'How many results to evaluate in this request; all `limit` when absent.',
                }),
              })
              .strict()
              .openapi('RoutingRulesDryRun'),
          ),
        },
      },
      responses: {
        200: {
          description: 'The results whose routing decision would change, with both decisions',
          ...json(
            z
              .object({
                evaluated: z.number().int(),
                nextOffset: z.number().int().nullable(),
                changes: z.array(
                  z.object({
                    reportId: z.string(),
                    test: z.string(),
                    receivedAt: z.string(),
                    recorded: RoutingDecisionOut.extend({ ruleVersion: z.number().int() }),
                    draft: RoutingDecisionOut,
                    differences: z.array(z.string()),
                  }),
                ),
              })
              .openapi('RoutingRulesDryRunOutcome'),
          ),
        },
        ...errors,
      },
    }),
    async (c) => {
      const outcome = await dryRun(c.get('services').db, c.req.valid('param').slug, c.req.valid('json'));
      return c.json(outcome, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tenants/{slug}/mail',
      summary: "The tenant's outgoing e-mail, newest first (captured when no SMTP_URL is set)",
      request: {
        params: SlugParam,
        query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }),
      },
      responses: {
        200: {
          description: 'Mail',
          ...json(
            z.object({
              mail: z.array(
                z.object({
                  id: z.string(),
                  kind: z.string(),
                  to: z.string(),
                  subject: z.string(),
                  text: z.string(),
                  createdAt: z.string(),
                  sentAt: z.string().nullable(),
                  transport: z.string().nullable(),
                  error: z.string().nullable(),
                }),
              ),
            }),
          ),
        },
        ...errors,
      },
    }),
    async (c) => {
      const { db } = c.get('services');
      const tenant = await requireTenant(db, c.req.valid('param').slug);
      const mail = await listMail(db, tenant.id, c.req.valid('query').limit);
      return c.json(
        {
          mail: mail.map((m) => ({
            id: m.id,
            kind: m.kind,
            to: m.to,
            subject: m.subject,
            text: m.text,
            createdAt: m.created_at.toISOString(),
            sentAt: m.sent_at?.toISOString() ?? null,
            transport: m.transport,
            error: m.error,
          })),
        },
        200,
      );
    },
  );

  return app;
}

function providerOut(p: Provider) {
  return {
    id: p.id,
    name: p.name,
    externalId: p.external_id,
    email: p.email,
    roles: p.roles,
    createdAt: p.created_at.toISOString(),
  };
}

function rulesOut(v: RoutingRulesVersion) {
  return {
    version: v.version,
    rules: v.rules as Record<string, unknown>,
    note: v.note,
    createdBy: v.createdBy,
    createdAt: v.createdAt.toISOString(),
  };
}
