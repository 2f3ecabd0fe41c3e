import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { appendAudit } from '../../db/audit.ts';
import { listMail } from '../../db/mail.ts';
import { listProviders } from '../../db/providers.ts';
import {
  findRulesVersion,
  insertRulesVersion,
  listRulesVersions,
  type RoutingRulesVersion,
} from '../../db/routing-rules.ts';
import type { Provider } from '../../db/schema.ts';
import {
  DEFAULT_ROUTING_DECISION,
  evaluateRouting,
  RoutingRuleError,
  validateRuleSet,
  type RoutingFacts,
} from '../../domain/routing-rules.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { adminAuth } from '../middleware/admin-auth.ts';
import { addProvider, ProviderSchema as ProviderBody, removeProvider } from '../providers.ts';
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

/** A typical flagged report, for the dry run of rules being saved. */
const SAMPLE_FACTS: RoutingFacts = {
  tenant: 'sample',
  source: { format: 'hl7v2', transport: 'http', connection: null },
  test: { code: '24323-8', system: 'http://loinc.org', display: 'Comprehensive metabolic panel' },
  report: { status: 'final', critical: false, abnormal: true, needsReview: false },
  results: [
    {
      code: '2823-3',
      system: 'http://loinc.org',
      value: 5.4,
      text: null,
      unit: 'mmol/L',
      interpretation: 'H',
      critical: false,
      low: 3.5,
      high: 5.1,
    },
  ],
  patient: { ageYears: 54, sex: 'female', notifiable: true },
  orderingLocation: null,
  orderingProvider: '1234',
};

function invalidRules(errors: { path: string; message: string }[]): AppError {
  return new AppError(
    'invalid_request',
    `the routing rules are not valid: ${errors.map((e) => `${e.path || '(rules)'}: ${e.message}`).join('; ')}`,
    errors,
  );
}

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
      const { db } = c.get('services');
      const tenant = await requireTenant(db, c.req.valid('param').slug);
      return c.json({ versions: (await listRulesVersions(db, tenant.id)).map(rulesOut) }, 200);
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
      const { db } = c.get('services');
      const body = c.req.valid('json');
      const checked = validateRuleSet(body.rules);
      if (!checked.ok) throw invalidRules(checked.errors);
      // A dry run on a sample report catches a rule that can never give a usable decision
      // ("priority": "asap", a negative delay) before it is in force.
      try {
        evaluateRouting(checked.rules, SAMPLE_FACTS, DEFAULT_ROUTING_DECISION);
      } catch (error) {
        if (!(error instanceof RoutingRuleError)) throw error;
        throw invalidRules([{ path: error.rule ?? '', message: error.message }]);
      }
      const saved = await db
        .transaction()
        .execute(async (trx) => {
          const tenant = await requireTenant(trx, c.req.valid('param').slug);
          const version = await insertRulesVersion(trx, tenant.id, {
            rules: checked.rules,
            note: body.note ?? null,
            createdBy: 'admin',
          });
          await appendAudit(trx, {
            tenantId: tenant.id,
            actor: 'admin',
            action: 'routing_rules.saved',
            subject: `routing-rules/${version.version}`,
            details: { note: body.note ?? null },
          });
          return version;
        })
        .catch((error: unknown) => {
          // Two saves at once: the version number is the primary key; the second is told to retry.
          if ((error as { code?: unknown }).code === '23505')
            throw new AppError(
              'conflict',
              'the routing rules were changed at the same moment; load them and save again',
            );
          throw error;
        });
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
      const { db } = c.get('services');
      const { version } = c.req.valid('json');
      const saved = await db.transaction().execute(async (trx) => {
        const tenant = await requireTenant(trx, c.req.valid('param').slug);
        const earlier = await findRulesVersion(trx, tenant.id, version);
        if (!earlier)
          throw new AppError('not_found', `tenant ${tenant.slug} has no routing rules version ${version}`);
        const restored = await insertRulesVersion(trx, tenant.id, {
          rules: earlier.rules,
          note: `rollback to version ${version}`,
          createdBy: 'admin',
        });
        await appendAudit(trx, {
          tenantId: tenant.id,
          actor: 'admin',
          action: 'routing_rules.rolled_back',
          subject: `routing-rules/${restored.version}`,
          details: { to: version },
        });
        return restored;
      });
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
      const { db } = c.get('services');
      const body = c.req.valid('json');
      const tenant = await requireTenant(db, c.req.valid('param').slug);
      const rules = body.rules ?? (await listRulesVersions(db, tenant.id))[0]?.rules ?? {};
      try {
        const decision = evaluateRouting(
          rules,
          body.facts as unknown as RoutingFacts,
          DEFAULT_ROUTING_DECISION,
        );
        return c.json({ decision, error: null }, 200);
      } catch (error) {
        if (error instanceof RoutingRuleError) return c.json({ decision: null, error: error.message }, 200);
        throw error;
      }
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
