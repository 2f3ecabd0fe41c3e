import { ApplicationFailure } from '@temporalio/activity';
import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { Mailer } from '../adapters/mail/mailer.ts';
import { appendAudit } from '../db/audit.ts';
import { findReport } from '../db/results.ts';
import type { Database, TenantSettings } from '../db/schema.ts';
import { findTenantById } from '../db/tenants.ts';

export interface ActivityDeps {
  db: Kysely<Database>;
  logger: Logger;
  mailer: Mailer;
  /** Signs acknowledgement links. */
  masterKey: Buffer;
  /** Where links in e-mails point, e.g. `http://localhost:8080`. */
  publicUrl: string;
}

export interface ReportRef {
  tenantId: string;
  reportId: string;
}

export async function loadReport(db: Kysely<Database>, { tenantId, reportId }: ReportRef) {
  const report = await findReport(db, tenantId, reportId);
  if (!report) throw ApplicationFailure.nonRetryable(`report ${reportId} does not exist`, 'ReportNotFound');
  return report;
}

export async function loadTenant(db: Kysely<Database>, tenantId: string) {
  const tenant = await findTenantById(db, tenantId);
  if (!tenant) throw ApplicationFailure.nonRetryable(`tenant ${tenantId} does not exist`, 'TenantNotFound');
  return { ...tenant, settings: tenant.settings as TenantSettings };
}

/** What a workflow step did, in the tenant's audit trail (actor `workflow`), inside the step's transaction. */
export async function auditStep(
  trx: Transaction<Database>,
  tenantId: string,
  action: string,
  subject: string,
  details: Record<string, unknown> = {},
): Promise<void> {
  await appendAudit(trx, { tenantId, actor: 'workflow', action, subject, details });
}
