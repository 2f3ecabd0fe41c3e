import { sql, type Kysely } from 'kysely';

/**
 * Inbound: every format and transport. Orders are stored as they are placed (ORM/OML,
 * ServiceRequest) and their workflows started through their own inbox; documents (PDF uploads,
 * HL7 ED, FHIR presentedForm) are kept with their extracted text; a large upload keeps its raw
 * bytes in parts and its progress on the message; notes and unread segments are kept; credentials
 * gain client/location scope, a rate limit and a source-IP allowlist.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages').addColumn('progress', 'jsonb').execute();
  await db.schema
    .createTable('message_parts')
    .addColumn('message_id', 'uuid', (c) => c.notNull().references('messages.id'))
    .addColumn('part', 'integer', (c) => c.notNull())
    .addColumn('content', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('message_parts_pk', ['message_id', 'part'])
    .execute();

  await db.schema
    .alterTable('reports')
    .addColumn('notes', 'jsonb')
    .addColumn('extra_segments', 'jsonb')
    // Seed 003's access scope: which client (ordering organisation) and location a report belongs to.
    .addColumn('client_id', 'text')
    .addColumn('location_id', 'text')
    .execute();
  await db.schema.alterTable('observations').addColumn('notes', 'jsonb').execute();

  await db.schema
    .createTable('documents')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('message_id', 'uuid', (c) => c.notNull().references('messages.id'))
    .addColumn('report_id', 'uuid', (c) => c.references('reports.id'))
    .addColumn('content_type', 'text', (c) => c.notNull())
    .addColumn('filename', 'text')
    .addColumn('title', 'text')
    .addColumn('size', 'integer', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('data', 'bytea', (c) => c.notNull())
    // extracted | partial | unreadable | not_extracted
    .addColumn('extraction_status', 'text', (c) => c.notNull())
    .addColumn('extracted_text', 'text')
    .addColumn('extraction', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('documents_report').on('documents').column('report_id').execute();
  await db.schema.createIndex('documents_message').on('documents').column('message_id').execute();

  await db.schema
    .alterTable('orders')
    .addColumn('message_id', 'uuid', (c) => c.references('messages.id'))
    .addColumn('placer_order_number', 'text')
    .addColumn('filler_order_number', 'text')
    .addColumn('priority', 'text')
    .addColumn('ordering_provider', 'jsonb')
    .addColumn('patient', 'jsonb')
    .addColumn('specimen', 'jsonb')
    .addColumn('notes', 'jsonb')
    .addColumn('client_id', 'text')
    .addColumn('location_id', 'text')
    .execute();
  await db.schema
    .createTable('order_inbox')
    .addColumn('order_id', 'uuid', (c) => c.primaryKey().references('orders.id'))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('workflow_id', 'text', (c) => c.notNull())
    .addColumn('order_key', 'text', (c) => c.notNull())
    .addColumn('message_id', 'uuid', (c) => c.notNull().references('messages.id'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('next_attempt_at', 'timestamptz', (c) =>
      c.notNull().defaultTo(sql`now() + interval '30 seconds'`),
    )
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .execute();
  await db.schema
    .createIndex('order_inbox_pending')
    .on('order_inbox')
    .column('next_attempt_at')
    .where(sql.ref('started_at'), 'is', null)
    .execute();

  await db.schema
    .alterTable('credentials')
    .addColumn('client_ids', 'jsonb')
    .addColumn('location_ids', 'jsonb')
    .addColumn('rate_limit_per_minute', 'integer')
    .addColumn('allow_ips', 'jsonb')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('credentials')
    .dropColumn('client_ids')
    .dropColumn('location_ids')
    .dropColumn('rate_limit_per_minute')
    .dropColumn('allow_ips')
    .execute();
  await db.schema.dropTable('order_inbox').execute();
  await db.schema
    .alterTable('orders')
    .dropColumn('message_id')
    .dropColumn('placer_order_number')
    .dropColumn('filler_order_number')
    .dropColumn('priority')
    .dropColumn('ordering_provider')
    .dropColumn('patient')
    .dropColumn('specimen')
    .dropColumn('notes')
    .dropColumn('client_id')
    .dropColumn('location_id')
    .execute();
  await db.schema.dropTable('documents').execute();
  await db.schema.alterTable('observations').dropColumn('notes').execute();
  await db.schema
    .alterTable('reports')
    .dropColumn('notes')
    .dropColumn('extra_segments')
    .dropColumn('client_id')
    .dropColumn('location_id')
    .execute();
  await db.schema.dropTable('message_parts').execute();
  await db.schema.alterTable('messages').dropColumn('progress').execute();
}
