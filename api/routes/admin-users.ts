import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { findUser, rolesOfUser } from '../../db/users.ts';
import { tenantScope } from '../../db/tenant-scope.ts';
import { CONSOLE_ROLES, PASSWORD_MAX, PASSWORD_MIN, type ConsoleRole } from '../../domain/console-access.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { adminAuth } from '../middleware/admin-auth.ts';
import { validationHook } from '../validation.ts';
import { adminErrors as errors, ErrorOut, json, requireTenant, Slug } from './openapi-common.ts';

const Role = z.enum(CONSOLE_ROLES as [string, ...string[]]);
const RoleIn = z
  .object({
    tenant: Slug,
    role: Role,
    providerId: z
      .uuid()
      .optional()
      .openapi({ description: "For a provider: the tenant's provider this person is" }),
  })
  .strict();
const UserBody = z
  .object({
    email: z.email().max(320),
    name: z.string().trim().min(1).max(200),
    password: z.string().min(PASSWORD_MIN).max(PASSWORD_MAX),
    platformAdmin: z.boolean().optional(),
    roles: z.array(RoleIn).max(100).default([]),
  })
  .strict()
  .openapi('NewConsoleUser');
const UserOut = z
  .object({
    id: z.string(),
    email: z.string(),
    name: z.string(),
    platformAdmin: z.boolean(),
    disabled: z.boolean().openapi({ description: 'A disabled person cannot sign in; their sessions ended' }),
    roles: z.array(z.object({ tenant: z.string(), role: z.string(), providerId: z.string().nullable() })),
  })
  .openapi('ConsoleUser');
const UserIdParam = z.object({ id: z.uuid() });
const NewPassword = z
  .object({ password: z.string().min(PASSWORD_MIN).max(PASSWORD_MAX) })
  .strict()
  .openapi('NewConsolePassword');

/** Console users and their roles per tenant (the console's users page does the same). */
export function adminUserRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', adminAuth());

  app.openapi(
    createRoute({
      method: 'post',
      path: '/users',
      summary: 'Add a console user with roles per tenant',
      description:
        'The password is stored as an argon2id hash. Roles: admin (configure the tenant), reviewer (work the review queue), provider (acknowledge critical results; give `providerId`).',
      request: { body: { required: true, ...json(UserBody) } },
      responses: {
        201: { description: 'Created', ...json(UserOut) },
        404: { description: 'No such tenant or provider', ...json(ErrorOut) },
        409: { description: 'The address is taken', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db, consoleAuth } = c.get('services');
      const body = c.req.valid('json');
      const roles: { tenantId: string; role: ConsoleRole; providerId: string | null }[] = [];
      for (const r of body.roles) {
        const tenant = await requireTenant(db, r.tenant);
        if (r.providerId) {
          const provider = await tenantScope(db, tenant.id)
            .selectFrom('providers')
            .select('id')
            .where('id', '=', r.providerId)
            .executeTakeFirst();
          if (!provider)
            throw new AppError('not_found', `tenant ${tenant.slug} has no provider ${r.providerId}`);
        }
        roles.push({
          tenantId: tenant.id,
          role: r.role as ConsoleRole,
          providerId: r.providerId ?? null,
        });
      }
      const user = await consoleAuth.createUser({ ...body, roles, actor: 'admin' });
      return c.json(await userOut(db, user.id), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/users',
      summary: 'List console users and their roles',
      responses: { 200: { description: 'Users', ...json(z.object({ users: z.array(UserOut) })) }, ...errors },
    }),
    async (c) => {
      const { db } = c.get('services');
      const ids = await db.selectFrom('users').select('id').orderBy('email').execute();
      return c.json({ users: await Promise.all(ids.map((u) => userOut(db, u.id))) }, 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/users/{id}/password',
      summary: 'Give a console user a new password (they forgot theirs); every session of theirs ends',
      request: { params: UserIdParam, body: { required: true, ...json(NewPassword) } },
      responses: {
        200: { description: 'Changed', ...json(UserOut) },
        404: { description: 'No such user', ...json(ErrorOut) },
        ...errors,
      },
    }),
    async (c) => {
      const { db, consoleAuth } = c.get('services');
      const user = await consoleAuth.resetPassword(c.req.valid('param').id, c.req.valid('json').password);
      return c.json(await userOut(db, user.id), 200);
    },
  );

  for (const [action, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const)
    app.openapi(
      createRoute({
        method: 'post',
        path: `/users/{id}/${action}`,
        summary: disabled
          ? 'Disable a console user: they cannot sign in, and their sessions end at once'
          : 'Enable a disabled console user again',
        request: { params: UserIdParam },
        responses: {
          200: { description: disabled ? 'Disabled' : 'Enabled', ...json(UserOut) },
          404: { description: 'No such user', ...json(ErrorOut) },
          ...errors,
        },
      }),
      async (c) => {
        const { db, consoleAuth } = c.get('services');
        const user = await consoleAuth.setDisabled(c.req.valid('param').id, disabled);
        return c.json(await userOut(db, user.id), 200);
      },
    );
  return app;
}

async function userOut(db: Parameters<typeof findUser>[0], id: string): Promise<z.infer<typeof UserOut>> {
  const user = (await findUser(db, id))!;
  const roles = await rolesOfUser(db, id);
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    platformAdmin: user.platform_admin,
    disabled: user.disabled_at !== null,
    roles: roles.map((r) => ({ tenant: r.tenantSlug, role: r.role, providerId: r.providerId })),
  };
}
