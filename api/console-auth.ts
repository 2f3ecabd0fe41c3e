import { createHash, randomBytes } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import { appendAudit } from '../db/audit.ts';
import type { Database, User } from '../db/schema.ts';
import {
  countUsers,
  deleteEndedSessions,
  deleteSession,
  findLiveSession,
  findUser,
  findUserByEmail,
  grantRole,
  insertSession,
  insertUser,
  rolesOfUser,
  setPassword,
  setUserDisabled,
  type UserRoleView,
} from '../db/users.ts';
import { normaliseEmail, passwordProblem, roleProblem, type ConsoleRole } from '../domain/console-access.ts';
import { AppError } from './errors.ts';
import { hashPassword, verifyPassword } from './security/passwords.ts';

/** A session lasts a working day at most, and ends after two idle hours. */
export const SESSION_HOURS = 12;
const IDLE_MS = 2 * 60 * 60_000;
/** Failed sign-ins per address before it waits; the wait. */
const MAX_FAILURES = 10;
const LOCK_MS = 15 * 60_000;

/** Who is signed in: what every console page and form action checks. */
export interface ConsoleUser {
  id: string;
  email: string;
  name: string;
  platformAdmin: boolean;
  roles: UserRoleView[];
  /** Every form of this session carries it. */
  csrfToken: string;
  /** Still the password someone else set: the console asks them to change it. */
  passwordGiven: boolean;
}

function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * Console sign-in, sessions and users, shared by the console and the admin API. Sessions are random
 * tokens; only their hash is stored. Repeated failures for one address make it wait.
 */
export function createConsoleAuth(db: Kysely<Database>, logger: Logger) {
  const failures = new Map<string, { count: number; until: number }>();

  /**
   * Changes an account inside one transaction with its audit: in each tenant the person has a
   * role in (an account belongs to no one tenant's chain), `action` by `actor`.
   */
  async function changeAccount(
    user: User,
    actor: string,
    action: string,
    change: (trx: Transaction<Database>) => Promise<unknown>,
  ): Promise<void> {
    await db.transaction().execute(async (trx) => {
      await change(trx);
      const tenants = new Set((await rolesOfUser(trx, user.id)).map((r) => r.tenantId));
      for (const tenantId of tenants)
        await appendAudit(trx, {
          tenantId,
          actor,
          action,
          subject: `user/${user.id}`,
          details: { email: user.email },
        });
    });
    // Also logged: a platform administrator with no tenant role has no tenant chain to audit in.
    logger.info({ event: `console.${action}`, userId: user.id, actor }, 'console account changed');
  }

  async function openSession(userId: string): Promise<{ token: string; maxAgeSeconds: number }> {
    const now = Date.now();
    const token = randomBytes(32).toString('base64url');
    await deleteEndedSessions(db, new Date(now));
    await insertSession(db, {
      tokenHash: tokenHash(token),
      userId,
      csrfToken: randomBytes(24).toString('base64url'),
      expiresAt: new Date(now + SESSION_HOURS * 3600_000),
    });
    return { token, maxAgeSeconds: SESSION_HOURS * 3600 };
  }

  async function toConsoleUser(user: User, csrfToken: string): Promise<ConsoleUser> {
    return {
      id: user.id,
      email: user.email,
      name: user.name,
      platformAdmin: user.platform_admin,
      roles: await rolesOfUser(db, user.id),
      csrfToken,
      passwordGiven: user.password_given,
    };
  }

  return {
    /**
     * Checks an e-mail address and password and opens a session. Answers the same for an unknown
     * address and a wrong password.
     */
    async signIn(
      emailInput: string,
      password: string,
    ): Promise<{ ok: true; token: string; maxAgeSeconds: number } | { ok: false; message: string }> {
      const email = normaliseEmail(emailInput);
      const now = Date.now();
      const failed = failures.get(email);
      if (failed && failed.count >= MAX_FAILURES && failed.until > now)
        return {
          ok: false,
          message: `Too many failed sign-ins for this address; try again in ${Math.ceil((failed.until - now) / 60_000)} minutes.`,
        };
      const user = email ? await findUserByEmail(db, email) : undefined;
      const good = await verifyPassword(user?.password_hash ?? null, password.slice(0, 1024));
      if (!user || !good || user.disabled_at) {
        const count = (failed && failed.until > now ? failed.count : 0) + 1;
        failures.set(email, { count, until: now + LOCK_MS });
        logger.warn({ event: 'console.sign_in_failed', failures: count }, 'console sign-in failed');
        return { ok: false, message: 'That e-mail address and password do not match an active account.' };
      }
      failures.delete(email);
      const session = await openSession(user.id);
      logger.info({ event: 'console.signed_in', userId: user.id }, 'console sign-in');
      return { ok: true, ...session };
    },

    /**
     * A signed-in person changes their own password: the current one is checked (failures count
     * as failed sign-ins), the new one must pass the password rule. Every session of the person
     * ends, and a new one is opened for the browser that made the change.
     */
    async changePassword(
      user: { id: string; email: string },
      current: string,
      next: string,
    ): Promise<
      | { ok: true; token: string; maxAgeSeconds: number }
      | { ok: false; field: 'current' | 'next'; message: string }
    > {
      const now = Date.now();
      const failed = failures.get(user.email);
      if (failed && failed.count >= MAX_FAILURES && failed.until > now)
        return { ok: false, field: 'current', message: 'Too many wrong passwords; try again later.' };
      const stored = await findUser(db, user.id);
      if (!stored || !(await verifyPassword(stored.password_hash, current.slice(0, 1024)))) {
        const count = (failed && failed.until > now ? failed.count : 0) + 1;
        failures.set(user.email, { count, until: now + LOCK_MS });
        return { ok: false, field: 'current', message: 'That is not your current password.' };
      }
      const problem = passwordProblem(next, user.email);
      if (problem) return { ok: false, field: 'next', message: problem };
      if (next === current)
        return { ok: false, field: 'next', message: 'The new password must differ from the current one.' };
      const passwordHash = await hashPassword(next);
      await changeAccount(stored, `${stored.email} (console)`, 'user.password_changed', (trx) =>
        setPassword(trx, stored.id, passwordHash, false),
      );
      logger.info({ event: 'console.password_changed', userId: user.id }, 'console password changed');
      return { ok: true, ...(await openSession(user.id)) };
    },

    /**
     * A platform administrator gives a person a new password (they forgot theirs): every session
     * of the person ends. Refuses a weak password (400) or an unknown person (404).
     */
    async resetPassword(userId: string, password: string, actor = 'admin'): Promise<User> {
      const user = await findUser(db, userId);
      if (!user) throw new AppError('not_found', `there is no console user ${userId}`);
      const problem = passwordProblem(password, user.email);
      if (problem) throw new AppError('invalid_request', problem);
      const passwordHash = await hashPassword(password);
      await changeAccount(user, actor, 'user.password_reset', (trx) =>
        setPassword(trx, user.id, passwordHash, true),
      );
      failures.delete(user.email);
      return (await findUser(db, userId))!;
    },

    /** Disables (every session ends at once) or enables an account. */
    async setDisabled(userId: string, disabled: boolean, actor = 'admin'): Promise<User> {
      const user = await findUser(db, userId);
      if (!user) throw new AppError('not_found', `there is no console user ${userId}`);
      await changeAccount(user, actor, disabled ? 'user.disabled' : 'user.enabled', (trx) =>
        setUserDisabled(trx, userId, disabled),
      );
      return (await findUser(db, userId))!;
    },

    /** The person behind a session cookie, or null when it is missing, ended or unknown. */
    async session(token: string | undefined): Promise<ConsoleUser | null> {
      if (!token || token.length > 200) return null;
      const found = await findLiveSession(db, tokenHash(token), new Date(), IDLE_MS);
      return found ? toConsoleUser(found.user, found.csrfToken) : null;
    },

    async signOut(token: string | undefined): Promise<void> {
      if (token) await deleteSession(db, tokenHash(token));
    },

    /**
     * Adds a console user with roles. Refuses a taken address (409) or a weak password (400).
     *
     * @example
     * await auth.createUser({ email: 'rev@genhosp.example', name: 'Rita', password, roles: [{ tenantId, role: 'reviewer' }] });
     */
    async createUser(input: {
      email: string;
      name: string;
      password: string;
      platformAdmin?: boolean;
      roles: { tenantId: string; role: ConsoleRole; providerId?: string | null }[];
      /** Who adds the person: each tenant they get a role in audits `user.added` with the account. */
      actor?: string;
    }): Promise<User> {
      const email = normaliseEmail(input.email);
      if (!/^[^\s@]+@[^\s@]+$/.test(email))
        throw new AppError('invalid_request', `${JSON.stringify(input.email)} is not an e-mail address`);
      const problem = passwordProblem(input.password, email);
      if (problem) throw new AppError('invalid_request', problem);
      for (const [i, r] of input.roles.entries()) {
        const refused = roleProblem(r.role, r.providerId);
        if (refused)
          throw new AppError('invalid_request', refused, [
            { path: `roles.${i}.providerId`, message: refused },
          ]);
      }
      const passwordHash = await hashPassword(input.password);
      return db.transaction().execute(async (trx) => {
        if (await findUserByEmail(trx, email))
          throw new AppError('conflict', `there is already a user with the address ${email}`);
        const user = await insertUser(trx, {
          email,
          name: input.name.trim() || email,
          passwordHash,
          platformAdmin: input.platformAdmin ?? false,
        });
        for (const role of input.roles) await grantRole(trx, { userId: user.id, ...role });
        for (const tenantId of new Set(input.roles.map((r) => r.tenantId)))
          await appendAudit(trx, {
            tenantId,
            actor: input.actor ?? 'system',
            action: 'user.added',
            subject: `user/${user.id}`,
            details: {
              email,
              roles: input.roles
                .filter((r) => r.tenantId === tenantId)
                .map((r) => ({ role: r.role, providerId: r.providerId ?? null })),
            },
          });
        return user;
      });
    },

    /**
     * The first platform administrator, made when there is nobody yet: from LABRELAY_ADMIN_EMAIL and
     * LABRELAY_ADMIN_PASSWORD, else with a generated password that the caller prints this once.
     */
    async ensureFirstAdmin(
      env: NodeJS.ProcessEnv,
    ): Promise<{ email: string; password: string | null } | null> {
      if ((await countUsers(db)) > 0) return null;
      const email = normaliseEmail(env.LABRELAY_ADMIN_EMAIL || 'admin@labrelay.local');
      const password = env.LABRELAY_ADMIN_PASSWORD || randomBytes(15).toString('base64url');
      try {
        await this.createUser({ email, name: 'Administrator', password, platformAdmin: true, roles: [] });
      } catch (error) {
        // Another API process made the first administrator at the same moment.
        if (error instanceof AppError && error.code === 'conflict') return null;
        throw error;
      }
      return { email, password: env.LABRELAY_ADMIN_PASSWORD ? null : password };
    },
  };
}

export type ConsoleAuth = ReturnType<typeof createConsoleAuth>;
