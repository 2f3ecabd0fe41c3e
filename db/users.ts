import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { ConsoleRole } from '../domain/console-access.ts';
import type { User } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/** A person's role in one tenant, with the tenant's slug for links. */
export interface UserRoleView {
  tenantId: string;
  tenantSlug: string;
  tenantName: string;
  role: ConsoleRole;
  providerId: string | null;
}

/**
 * Adds a console user. The e-mail address must already be normalised and the password hashed.
 *
 * @example
 * const user = await insertUser(db, { email: 'rev@genhosp.example', name: 'Rita Reviewer', passwordHash });
 */
export async function insertUser(
  db: Db,
  input: { email: string; name: string; passwordHash: string; platformAdmin?: boolean },
): Promise<User> {
  return db
    .insertInto('users')
    .values({
      id: randomUUID(),
      email: input.email,
      name: input.name,
      password_hash: input.passwordHash,
      platform_admin: input.platformAdmin ?? false,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findUserByEmail(db: Db, email: string): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
}

export async function findUser(db: Db, id: string): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function countUsers(db: Db): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select(sql<number>`count(*)::int`.as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Every role a person holds, tenant by tenant. */
export async function rolesOfUser(db: Db, userId: string): Promise<UserRoleView[]> {
  const rows = await db
    .selectFrom('user_roles')
    .innerJoin('tenants', 'tenants.id', 'user_roles.tenant_id')
    .select([
      'user_roles.tenant_id',
      'tenants.slug',
      'tenants.name',
      'user_roles.role',
      'user_roles.provider_id',
    ])
    .where('user_roles.user_id', '=', userId)
    .orderBy('tenants.slug')
    .orderBy('user_roles.role')
    .execute();
  return rows.map((r) => ({
    tenantId: r.tenant_id,
    tenantSlug: r.slug,
    tenantName: r.name,
    role: r.role as ConsoleRole,
    providerId: r.provider_id,
  }));
}

/** The people with a role in a tenant (the tenant's users page). */
export async function usersOfTenant(
  db: Db,
  tenantId: string,
): Promise<
  {
    id: string;
    email: string;
    name: string;
    role: ConsoleRole;
    providerId: string | null;
    disabled: boolean;
  }[]
> {
  const rows = await tenantScope(db, tenantId)
    .selectFrom('user_roles')
    .innerJoin('users', 'users.id', 'user_roles.user_id')
    .select([
      'users.id',
      'users.email',
      'users.name',
      'users.disabled_at',
      'user_roles.role',
      'user_roles.provider_id',
    ])
    .orderBy('users.email')
    .orderBy('user_roles.role')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    email: r.email,
    name: r.name,
    role: r.role as ConsoleRole,
    providerId: r.provider_id,
    disabled: r.disabled_at !== null,
  }));
}

/** Gives a person a role in a tenant (again: nothing changes but the provider link). */
export async function grantRole(
  db: Db,
  input: { userId: string; tenantId: string; role: ConsoleRole; providerId?: string | null },
): Promise<void> {
  await db
    .insertInto('user_roles')
    .values({
      user_id: input.userId,
      tenant_id: input.tenantId,
      role: input.role,
      provider_id: input.providerId ?? null,
    })
    .onConflict((oc) =>
      oc.columns(['user_id', 'tenant_id', 'role']).doUpdateSet({ provider_id: input.providerId ?? null }),
    )
    .execute();
}

/** Takes a role away; true when the person had it. */
export async function revokeRole(
  db: Db,
  input: { userId: string; tenantId: string; role: ConsoleRole },
): Promise<boolean> {
  const [result] = await db
    .deleteFrom('user_roles')
    .where('user_id', '=', input.userId)
    .where('tenant_id', '=', input.tenantId)
    .where('role', '=', input.role)
    .execute();
  return Number(result?.numDeletedRows ?? 0) > 0;
}

export interface SessionRow {
  userId: string;
  csrfToken: string;
  expiresAt: Date;
}

export async function insertSession(
  db: Db,
  input: { tokenHash: string; userId: string; csrfToken: string; expiresAt: Date },
): Promise<void> {
  await db
    .insertInto('console_sessions')
    .values({
      token_hash: input.tokenHash,
      user_id: input.userId,
      csrf_token: input.csrfToken,
      expires_at: input.expiresAt,
    })
    .execute();
}

/**
 * The live session behind a token hash: not expired, not idle longer than `idleMs`, its user not
 * disabled and the password unchanged since it began. Touches `last_seen_at`.
 */
export async function findLiveSession(
  db: Db,
  tokenHash: string,
  now: Date,
  idleMs: number,
): Promise<{ user: User; csrfToken: string } | undefined> {
  const row = await db
    .selectFrom('console_sessions')
    .innerJoin('users', 'users.id', 'console_sessions.user_id')
    .selectAll('users')
    .select([
      'console_sessions.csrf_token',
      'console_sessions.created_at as session_created_at',
      'console_sessions.last_seen_at',
    ])
    .where('console_sessions.token_hash', '=', tokenHash)
    .where('console_sessions.expires_at', '>', now)
    .where('console_sessions.last_seen_at', '>', new Date(now.getTime() - idleMs))
    .where('users.disabled_at', 'is', null)
    .executeTakeFirst();
  if (!row) return undefined;
  if (new Date(row.password_changed_at).getTime() > new Date(row.session_created_at).getTime())
    return undefined;
  // Touch at most once a minute: most page loads read without writing.
  if (now.getTime() - new Date(row.last_seen_at).getTime() > 60_000)
    await db
      .updateTable('console_sessions')
      .set({ last_seen_at: now })
      .where('token_hash', '=', tokenHash)
      .execute();
  return { user: (await findUser(db, row.id))!, csrfToken: row.csrf_token };
}

export async function deleteSession(db: Db, tokenHash: string): Promise<void> {
  await db.deleteFrom('console_sessions').where('token_hash', '=', tokenHash).execute();
}

/** Sessions that ended: removed as new ones begin. */
export async function deleteEndedSessions(db: Db, now: Date): Promise<void> {
  await db.deleteFrom('console_sessions').where('expires_at', '<', now).execute();
}

/**
 * A new password ends every session of the person (findLiveSession compares the times). `given`:
 * someone else set it (a reset), so the person is asked to change it.
 */
export async function setPassword(
  db: Db,
  userId: string,
  passwordHash: string,
  given: boolean,
): Promise<void> {
  await db
    .updateTable('users')
    // The database's clock, as for the sessions it is compared with.
    .set({ password_hash: passwordHash, password_changed_at: sql<Date>`now()`, password_given: given })
    .where('id', '=', userId)
    .execute();
  await db.deleteFrom('console_sessions').where('user_id', '=', userId).execute();
}

/** Disables or enables an account; disabling ends every session of the person at once. */
export async function setUserDisabled(db: Db, userId: string, disabled: boolean): Promise<boolean> {
  const updated = await db
    .updateTable('users')
    .set({ disabled_at: disabled ? new Date() : null })
    .where('id', '=', userId)
    .executeTakeFirst();
  if (disabled) await db.deleteFrom('console_sessions').where('user_id', '=', userId).execute();
  return updated.numUpdatedRows > 0n;
}
