import { sql, type Kysely } from 'kysely';

/**
 * Lifecycles: orders as a projection of their workflows, human tasks, versioned routing rules,
 * the tenant's providers, critical results with every notification attempt and their single-use
 * acknowledgement links, patient notifications and the mail outbox; patients gain the keys that
 * reconciliation needs (external id, normalised name + birth date) and their e-mail address.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('patients')
    .addColumn('external_id', 'text')
    .addColumn('email', 'text')
    .addColumn('phone', 'text')
    .addColumn('demographic_key', 'text')
    .execute();
  await db.schema
    .createIndex('patients_external_id')
    .unique()
    .on('patients')
    .columns(['tenant_id', 'external_id'])
    .where(sql.ref('external_id'), 'is not', null)
    .execute();
  await db.schema
    .createIndex('patients_demographic_key')
    .on('patients')
    .columns(['tenant_id', 'demographic_key'])
    .execute();

  await db.schema
    .alterTable('reports')
    .addColumn('routing', 'jsonb')
    .addColumn('duplicate_of', 'uuid', (c) => c.references('reports.id'))
    .addColumn('replaces', 'uuid', (c) => c.references('reports.id'))
    .addColumn('interpretation', 'text')
    .addColumn('reviewed_at', 'timestamptz')
    .addColumn('reviewed_by', 'text')
    .execute();
  await db.schema
    .createIndex('reports_order_key')
    .on('reports')
    .columns(['tenant_id', 'order_key'])
    .execute();

  await db.schema
    .alterTable('observations')
    .addColumn('delta', 'jsonb')
    .addColumn('corrected_from', 'jsonb')
    .execute();

  await db.schema
    .createTable('orders')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('order_key', 'text', (c) => c.notNull())
    .addColumn('workflow_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('patient_id', 'uuid', (c) => c.references('patients.id'))
    .addColumn('code', 'jsonb')
    .addColumn('ordered_at', 'timestamptz')
    .addColumn('due_at', 'timestamptz')
    .addColumn('overdue_at', 'timestamptz')
    .addColumn('closed_at', 'timestamptz')
    .addColumn('history', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('orders_tenant_order_key', ['tenant_id', 'order_key'])
    .execute();

  await db.schema
    .createTable('tasks')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    // One task per reason and subject: an activity retried after a crash finds the task it opened.
    .addColumn('dedupe_key', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('priority', 'integer', (c) => c.notNull())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('report_id', 'uuid', (c) => c.references('reports.id'))
    .addColumn('critical_result_id', 'uuid')
    .addColumn('order_key', 'text')
    .addColumn('workflow_id', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('assignee', 'text')
    .addColumn('decision', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('claimed_at', 'timestamptz')
    .addColumn('completed_at', 'timestamptz')
    .addColumn('completed_by', 'text')
    .addUniqueConstraint('tasks_tenant_dedupe_key', ['tenant_id', 'dedupe_key'])
    .execute();
  await db.schema
    .createIndex('tasks_open')
    .on('tasks')
    .columns(['tenant_id', 'status', 'priority'])
    .execute();

  await db.schema
    .createTable('routing_rules')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('rules', 'jsonb', (c) => c.notNull())
    .addColumn('note', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('routing_rules_pk', ['tenant_id', 'version'])
    .execute();

  await db.schema
    .createTable('providers')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    // The id senders use for this provider (HL7 OBR-16 / ORC-12 XCN-1, FHIR Practitioner identifier).
    .addColumn('external_id', 'text')
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('email', 'text')
    .addColumn('roles', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('disabled_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('providers_external_id')
    .unique()
    .on('providers')
    .columns(['tenant_id', 'external_id'])
    .where(sql.ref('external_id'), 'is not', null)
    .execute();

  await db.schema
    .createTable('critical_results')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('report_id', 'uuid', (c) => c.notNull().references('reports.id'))
    .addColumn('observation_id', 'uuid', (c) => c.notNull().unique().references('observations.id'))
    .addColumn('patient_id', 'uuid', (c) => c.references('patients.id'))
    .addColumn('workflow_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('step', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('finding', 'text', (c) => c.notNull())
    .addColumn('identified_at', 'timestamptz', (c) => c.notNull())
    .addColumn('communicator', 'text')
    .addColumn('recipient', 'text')
    .addColumn('received_at', 'timestamptz')
    .addColumn('method', 'text')
    .addColumn('patient_contact', 'jsonb')
    .addColumn('closed_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('critical_results_open')
    .on('critical_results')
    .columns(['tenant_id', 'status'])
    .execute();

  await db.schema
    .createTable('critical_attempts')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('critical_result_id', 'uuid', (c) => c.notNull().references('critical_results.id'))
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('step', 'integer', (c) => c.notNull())
    .addColumn('role', 'text')
    .addColumn('recipient', 'text')
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('detail', 'text')
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('critical_attempts_result')
    .on('critical_attempts')
    .column('critical_result_id')
    .execute();

  await db.schema
    .createTable('ack_tokens')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('critical_result_id', 'uuid', (c) => c.notNull().references('critical_results.id'))
    .addColumn('step', 'integer', (c) => c.notNull())
    .addColumn('recipient', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('ack_tokens_result_step', ['critical_result_id', 'step'])
    .execute();

  await db.schema
    .createTable('mail_outbox')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.references('tenants.id'))
    // What the mail is about, so an activity run twice sends it once.
    .addColumn('dedupe_key', 'text', (c) => c.notNull().unique())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('to', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('sent_at', 'timestamptz')
    .addColumn('transport', 'text')
    .addColumn('error', 'text')
    .execute();
  await db.schema
    .createIndex('mail_outbox_tenant')
    .on('mail_outbox')
    .columns(['tenant_id', 'created_at'])
    .execute();

  await db.schema
    .createTable('patient_notifications')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
    .addColumn('patient_id', 'uuid', (c) => c.references('patients.id'))
    .addColumn('report_id', 'uuid', (c) => c.notNull().references('reports.id'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('mail_id', 'uuid', (c) => c.references('mail_outbox.id'))
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('patient_notifications_report_kind', ['report_id', 'kind'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'patient_notifications',
    'mail_outbox',
    'ack_tokens',
    'critical_attempts',
    'critical_results',
    'providers',
    'routing_rules',
    'tasks',
    'orders',
  ]) {
    await db.schema.dropTable(table).execute();
  }
  await db.schema.alterTable('observations').dropColumn('delta').dropColumn('corrected_from').execute();
  await db.schema.dropIndex('reports_order_key').execute();
  await db.schema
    .alterTable('reports')
    .dropColumn('routing')
    .dropColumn('duplicate_of')
    .dropColumn('replaces')
    .dropColumn('interpretation')
    .dropColumn('reviewed_at')
    .dropColumn('reviewed_by')
    .execute();
  await db.schema.dropIndex('patients_demographic_key').execute();
  await db.schema.dropIndex('patients_external_id').execute();
  await db.schema
    .alterTable('patients')
    .dropColumn('external_id')
    .dropColumn('email')
    .dropColumn('phone')
    .dropColumn('demographic_key')
    .execute();
}
