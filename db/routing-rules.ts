import type { RoutingRuleSet } from '../domain/routing-rules.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

export interface RoutingRulesVersion {
  version: number;
  rules: RoutingRuleSet;
  note: string | null;
  createdBy: string;
  createdAt: Date;
}

function toVersion(row: {
  version: number;
  rules: RoutingRuleSet;
  note: string | null;
  created_by: string;
  created_at: Date;
}): RoutingRulesVersion {
  return {
    version: row.version,
    rules: row.rules,
    note: row.note,
    createdBy: row.created_by,
    createdAt: row.created_at,
  };
}

/** The tenant's rules in force: the newest version (a rollback is saved as a new version). */
export async function findActiveRules(db: Db, tenantId: string): Promise<RoutingRulesVersion | null> {
  const row = await tenantScope(db, tenantId)
    .selectFrom('routing_rules')
    .selectAll()
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? toVersion(row) : null;
}

export async function findRulesVersion(
  db: Db,
  tenantId: string,
  version: number,
): Promise<RoutingRulesVersion | null> {
  const row = await tenantScope(db, tenantId)
    .selectFrom('routing_rules')
    .selectAll()
    .where('version', '=', version)
    .executeTakeFirst();
  return row ? toVersion(row) : null;
}

export async function listRulesVersions(db: Db, tenantId: string): Promise<RoutingRulesVersion[]> {
  const rows = await tenantScope(db, tenantId)
    .selectFrom('routing_rules')
    .selectAll()
    .orderBy('version', 'desc')
    .execute();
  return rows.map(toVersion);
}

/** Saves a new version (the next number); the primary key refuses a concurrent save of the same number. */
export async function insertRulesVersion(
  db: Db,
  tenantId: string,
  input: { rules: RoutingRuleSet; note: string | null; createdBy: string },
): Promise<RoutingRulesVersion> {
  const latest = await findActiveRules(db, tenantId);
  const row = await db
    .insertInto('routing_rules')
    .values({
      tenant_id: tenantId,
      version: (latest?.version ?? 0) + 1,
      rules: JSON.stringify(input.rules),
      note: input.note,
      created_by: input.createdBy,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toVersion(row);
}
