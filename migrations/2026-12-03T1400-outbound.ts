import { sql, type Kysely } from 'kysely';

/**
 * Outbound: results delivered to the destinations a tenant connected (FHIR server, HL7 over MLLP,
 * signed webhook), each delivery tracked until delivered or dead-lettered; connections gain their
 * own settings, a webhook signing secret (sealed under the master key) and a cursor for the pull
 * direction; SMART app launches keep their state and PKCE verifier for the few minutes a launch
 * takes.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('connections')
    .addColumn('settings', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('secret_encrypted', 'text')
    .addColumn('pull_cursor', 'text')
    .addColumn('last_polled_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('deliveries')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('report_id', 'uuid', (c) => c.notNull().references('reports.id'))
    .addColumn('connection_id', 'uuid', (c) => c.notNull().references('connections.id'))
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('critical', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('sends', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('workflow_id', 'text')
    .addColumn('payload', 'text')
    .addColumn('response', 'text')
    .addColumn('remote_reference', 'text')
    .addColumn('last_error', 'text')
    .addColumn('dead_letter_reason', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('dead_lettered_at', 'timestamptz')
    .addUniqueConstraint('deliveries_report_connection', ['report_id', 'connection_id'])
    .execute();
  await db.schema
    .createIndex('deliveries_tenant_status')
    .on('deliveries')
    .columns(['tenant_id', 'status'])
    .execute();

  await db.schema
    .createTable('smart_launches')
    .addColumn('state', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('connection_id', 'uuid', (c) => c.notNull().references('connections.id'))
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('launch', 'text')
    .addColumn('code_verifier', 'text', (c) => c.notNull())
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('token_endpoint', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();
}
