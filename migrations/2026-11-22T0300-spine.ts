import { sql, type Kysely } from 'kysely';

/**
 * The spine: tenants and their credentials and connections, inbound messages (accepted and
 * rejected), the canonical records a result message becomes (patients, reports, observations),
 * the inbox the relay uses to start workflows, and the per-tenant hash-chained audit log.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('tenants')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('slug', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('settings', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('credentials')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('scopes', 'jsonb', (c) => c.notNull())
    .addColumn('key_prefix', 'text', (c) => c.notNull())
    .addColumn('key_hash', 'text', (c) => c.notNull().unique())
    .addColumn('signing_salts', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('credentials_tenant').on('credentials').column('tenant_id').execute();

  await db.schema
    .createTable('connections')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('direction', 'text', (c) => c.notNull())
    .addColumn('format', 'text', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('endpoint', 'jsonb')
    .addColumn('mllp_sending_facility', 'text')
    .addColumn('mllp_receiving_facility', 'text')
    .addColumn('mllp_allow_ips', 'jsonb')
    .addColumn('auth_encrypted', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('disabled_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('connections_tenant').on('connections').column('tenant_id').execute();
  await db.schema
    .createIndex('connections_mllp_facility')
    .on('connections')
    .column('mllp_sending_facility')
    .execute();

  await db.schema
    .createTable('messages')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('credential_id', 'uuid', (c) => c.references('credentials.id'))
    .addColumn('connection_id', 'uuid', (c) => c.references('connections.id'))
    .addColumn('transport', 'text', (c) => c.notNull())
    .addColumn('format', 'text', (c) => c.notNull())
    .addColumn('message_type', 'text', (c) => c.notNull())
    .addColumn('control_id', 'text')
    .addColumn('sender', 'text')
    .addColumn('idempotency_key', 'text')
    .addColumn('content_hash', 'text', (c) => c.notNull())
    .addColumn('raw', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('status_detail', 'text')
    .addColumn('response', 'text', (c) => c.notNull())
    .addColumn('response_status', 'integer', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('messages_sender_control_id')
    .unique()
    .on('messages')
    .columns(['tenant_id', 'sender', 'control_id'])
    .execute();
  await db.schema
    .createIndex('messages_idempotency_key')
    .unique()
    .on('messages')
    .columns(['tenant_id', 'idempotency_key'])
    .execute();
  await db.schema
    .createIndex('messages_tenant_received')
    .on('messages')
    .columns(['tenant_id', 'received_at'])
    .execute();

  await db.schema
    .createTable('rejected_messages')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.references('tenants.id'))
    .addColumn('transport', 'text', (c) => c.notNull())
    .addColumn('format', 'text', (c) => c.notNull())
    .addColumn('remote_address', 'text')
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('raw', 'text', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('patients')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('family_name', 'text')
    .addColumn('given_names', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('birth_date', 'text')
    .addColumn('sex', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable('patient_identifiers')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('patient_id', 'uuid', (c) => c.notNull().references('patients.id'))
    .addColumn('system', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('type', 'text')
    .addPrimaryKeyConstraint('patient_identifiers_pk', ['tenant_id', 'system', 'value'])
    .execute();
  await db.schema
    .createIndex('patient_identifiers_value')
    .on('patient_identifiers')
    .columns(['tenant_id', 'value'])
    .execute();

  await db.schema
    .createTable('reports')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('message_id', 'uuid', (c) => c.notNull().references('messages.id'))
    .addColumn('patient_id', 'uuid', (c) => c.references('patients.id'))
    .addColumn('patient', 'jsonb', (c) => c.notNull())
    .addColumn('order_key', 'text', (c) => c.notNull())
    .addColumn('placer_order_number', 'text')
    .addColumn('filler_order_number', 'text')
    .addColumn('code', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('ordering_provider', 'jsonb')
    .addColumn('effective_at', 'timestamptz')
    .addColumn('issued_at', 'timestamptz')
    .addColumn('workflow_id', 'text', (c) => c.notNull())
    .addColumn('stage', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('reports_message').on('reports').column('message_id').execute();
  await db.schema.createIndex('reports_patient').on('reports').columns(['tenant_id', 'patient_id']).execute();

  await db.schema
    .createTable('observations')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('report_id', 'uuid', (c) => c.notNull().references('reports.id'))
    .addColumn('sequence', 'integer', (c) => c.notNull())
    .addColumn('code', 'jsonb', (c) => c.notNull())
    .addColumn('value_type', 'text', (c) => c.notNull())
    .addColumn('value_numeric', 'double precision')
    .addColumn('value_comparator', 'text')
    .addColumn('value_text', 'text')
    .addColumn('unit', 'text')
    .addColumn('reference_range', 'jsonb')
    .addColumn('source_flags', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('effective_at', 'timestamptz')
    .addColumn('interpretation', 'text')
    .addColumn('critical', 'boolean')
    .addColumn('flag_reasons', 'jsonb')
    .addColumn('flagged_at', 'timestamptz')
    .addUniqueConstraint('observations_report_sequence', ['report_id', 'sequence'])
    .execute();

  await db.schema
    .createTable('inbox')
    .addColumn('report_id', 'uuid', (c) => c.primaryKey().references('reports.id'))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('workflow_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    // The relay claims a row by moving this forward, so two relays (or a relay and intake) never
    // start the same row at once; failed rows back off.
    .addColumn('next_attempt_at', 'timestamptz', (c) =>
      c.notNull().defaultTo(sql`now() + interval '30 seconds'`),
    )
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .execute();
  await db.schema
    .createIndex('inbox_pending')
    .on('inbox')
    .column('next_attempt_at')
    .where(sql.ref('started_at'), 'is', null)
    .execute();

  await db.schema
    .createTable('audit_events')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('sequence', 'bigint', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('details', 'jsonb', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addUniqueConstraint('audit_events_tenant_sequence', ['tenant_id', 'sequence'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'audit_events',
    'inbox',
    'observations',
    'reports',
    'patient_identifiers',
    'patients',
    'rejected_messages',
    'messages',
    'connections',
    'credentials',
    'tenants',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}
