import type { Kysely } from 'kysely';

/**
 * Whether a console user still signs in with a password someone else set (the one-time password
 * `npm start` printed, a first password from an admin, a reset): the console asks them to change it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('users')
    .addColumn('password_given', 'boolean', (c) => c.notNull().defaultTo(true))
    .execute();
}
