import { sql, type Kysely } from 'kysely';

/**
 * Pull direction: the cursor is read with `_lastUpdated=ge…` so a ServiceRequest written in the
 * same instant as the last one taken is never missed; the ids already taken at the cursor's instant
 * are kept beside it so they are not taken twice. Failed polls in a row are counted, so a server
 * that is down is polled less and less often and audited once, not at every interval. A poller
 * holds a connection by a lease while it polls, so no second instance polls it at the same time.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('connections')
    .addColumn('pull_cursor_taken', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('pull_failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('pull_lease_until', 'timestamptz')
    .execute();
}
