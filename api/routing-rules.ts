import type { Kysely } from 'kysely';
import { appendAudit } from '../db/audit.ts';
import { routingFactsOfReports } from '../db/routing-facts.ts';
import {
  findRulesVersion,
  insertRulesVersion,
  listRulesVersions,
  type RoutingRulesVersion,
} from '../db/routing-rules.ts';
import type { Database, RecordedRoutingDecision, Report } from '../db/schema.ts';
import { findTenantBySlug } from '../db/tenants.ts';
import { tenantScope, type Db } from '../db/tenant-scope.ts';
import {
  DEFAULT_ROUTING_DECISION,
  evaluateRouting,
  routeReport,
  routingDefaults,
  routingDifferences,
  RoutingRuleError,
  validateRuleSet,
  type RoutingDecision,
  type RoutingFacts,
  type RoutingRuleKey,
  type RoutingRuleSet,
  type RuleSetError,
} from '../domain/routing-rules.ts';
import { AppError } from './errors.ts';

// A tenant's versioned routing rules — saved, rolled back, tried and dry-run by the same functions
// from the admin API (api/routes/admin-lifecycle.ts) and the console's rules page.

/** The most results a dry run looks at in one request. */
export const DRY_RUN_MAX = 1000;

/** A typical flagged report (a high potassium), for trying rules and for checking rules being saved. */
export const SAMPLE_FACTS: RoutingFacts = {
  tenant: 'sample',
  source: { format: 'hl7v2', transport: 'http', connection: null },
  test: { code: '24323-8', system: 'http://loinc.org', display: 'Comprehensive metabolic panel' },
  report: { status: 'final', critical: false, abnormal: true, needsReview: false },
  results: [
    {
      code: '2823-3',
      system: 'http://loinc.org',
      value: 5.4,
      text: null,
      unit: 'mmol/L',
      interpretation: 'H',
      critical: false,
      low: 3.5,
      high: 5.1,
    },
  ],
  patient: { ageYears: 54, sex: 'female', notifiable: true },
  orderingLocation: null,
  orderingProvider: '1234',
};

async function tenantOf(db: Db, slug: string) {
  const tenant = await findTenantBySlug(db, slug);
  if (!tenant) throw new AppError('not_found', `there is no tenant ${slug}`);
  return tenant;
}

/** The contract's 400 for rules that fail the whitelist, one detail per failing path. */
export function invalidRules(errors: RuleSetError[]): AppError {
  return new AppError(
    'invalid_request',
    `the routing rules are not valid: ${errors.map((e) => `${e.path || '(rules)'}: ${e.message}`).join('; ')}`,
    errors,
  );
}

/**
 * Checks rules as they would be saved: the whitelist, then an evaluation on {@link SAMPLE_FACTS},
 * which catches a rule that can never give a usable decision ("priority": "asap", a negative delay)
 * before it is in force. Throws the contract's 400 with the failing paths.
 */
export function checkRulesForSaving(input: unknown): RoutingRuleSet {
  const checked = validateRuleSet(input);
  if (!checked.ok) throw invalidRules(checked.errors);
  try {
    evaluateRouting(checked.rules, SAMPLE_FACTS, DEFAULT_ROUTING_DECISION);
  } catch (error) {
    if (!(error instanceof RoutingRuleError)) throw error;
    throw invalidRules([{ path: error.rule ?? '', message: error.message }]);
  }
  return checked.rules;
}

/** Every version of the tenant's rules, newest (in force) first. */
export async function listRuleVersions(db: Db, slug: string): Promise<RoutingRulesVersion[]> {
  const tenant = await tenantOf(db, slug);
  return listRulesVersions(db, tenant.id);
}

/**
 * Saves a new version of the tenant's routing rules, audited as `routing_rules.saved` by `actor`.
 * Refuses invalid rules (400 with the failing paths) and a save racing another (409).
 *
 * @example
 * await saveRuleVersion(db, 'demo', { rules: { reviewRequired: { var: 'report.critical' } }, note: null }, 'admin')
 * // { version: 2, rules: {...}, note: null, createdBy: 'admin', createdAt: ... }
 */
export async function saveRuleVersion(
  db: Kysely<Database>,
  slug: string,
  input: { rules: unknown; note: string | null },
  actor: string,
): Promise<RoutingRulesVersion> {
  const rules = checkRulesForSaving(input.rules);
  return db
    .transaction()
    .execute(async (trx) => {
      const tenant = await tenantOf(trx, slug);
      const version = await insertRulesVersion(trx, tenant.id, {
        rules,
        note: input.note,
        createdBy: actor,
      });
      await appendAudit(trx, {
        tenantId: tenant.id,
        actor,
        action: 'routing_rules.saved',
        subject: `routing-rules/${version.version}`,
        details: { note: input.note },
      });
      return version;
    })
    .catch((error: unknown) => {
      // Two saves at once: the version number is the primary key; the second is told to retry.
      if ((error as { code?: unknown }).code === '23505')
        throw new AppError(
          'conflict',
          'the routing rules were changed at the same moment; load them and save again',
        );
      throw error;
    });
}

/**
 * Puts an earlier version back in force by saving it again as a new version (history is never
 * rewritten), audited as `routing_rules.rolled_back`. 404 when the tenant has no such version.
 */
export async function rollbackRules(
  db: Kysely<Database>,
  slug: string,
  version: number,
  actor: string,
): Promise<RoutingRulesVersion> {
  return db.transaction().execute(async (trx) => {
    const tenant = await tenantOf(trx, slug);
    const earlier = await findRulesVersion(trx, tenant.id, version);
    if (!earlier)
      throw new AppError('not_found', `tenant ${tenant.slug} has no routing rules version ${version}`);
    const restored = await insertRulesVersion(trx, tenant.id, {
      rules: earlier.rules,
      note: `rollback to version ${version}`,
      createdBy: actor,
    });
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'routing_rules.rolled_back',
      subject: `routing-rules/${restored.version}`,
      details: { to: version },
    });
    return restored;
  });
}

/**
 * Evaluates rules (given, or the version in force) against facts, storing nothing. A rule that
 * fails answers the error that would send a real result to review, not an exception.
 */
export async function tryRule(
  db: Db,
  slug: string,
  input: { rules?: unknown; facts: unknown },
): Promise<{ decision: RoutingDecision | null; error: string | null }> {
  const tenant = await tenantOf(db, slug);
  const rules = input.rules ?? (await listRulesVersions(db, tenant.id))[0]?.rules ?? {};
  try {
    const decision = evaluateRouting(
      rules as RoutingRuleSet,
      input.facts as RoutingFacts,
      routingDefaults(tenant.settings),
    );
    return { decision, error: null };
  } catch (error) {
    if (error instanceof RoutingRuleError) return { decision: null, error: error.message };
    throw error;
  }
}

/** A routed result as the rules page lists it. */
export interface RoutedResult {
  reportId: string;
  test: string;
  receivedAt: string;
  recorded: RecordedRoutingDecision;
}

/** The tenant's results that were routed, newest first (`offset` pages back through them). */
async function routedReports(db: Db, tenantId: string, limit: number, offset = 0): Promise<Report[]> {
  return tenantScope(db, tenantId)
    .selectFrom('reports')
    .selectAll()
    .where('routing', 'is not', null)
    .where('duplicate_of', 'is', null)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .offset(offset)
    .execute();
}

function routedResult(report: Report): RoutedResult {
  return {
    reportId: report.id,
    test: report.code.display ?? report.code.code,
    receivedAt: new Date(report.created_at).toISOString(),
    recorded: report.routing!,
  };
}

/** The tenant's most recently routed results, to try a draft on one of them. */
export async function recentRoutedResults(db: Db, slug: string, limit = 50): Promise<RoutedResult[]> {
  const tenant = await tenantOf(db, slug);
  return (await routedReports(db, tenant.id, limit)).map(routedResult);
}

/** What a rule sees of one of the tenant's results (404 when it is not theirs or was never routed). */
export async function factsOfResult(db: Db, slug: string, reportId: string): Promise<RoutingFacts> {
  const tenant = await tenantOf(db, slug);
  const report = /^[0-9a-f-]{36}$/i.test(reportId)
    ? await tenantScope(db, tenant.id)
        .selectFrom('reports')
        .selectAll()
        .where('id', '=', reportId)
        .executeTakeFirst()
    : undefined;
  if (!report) throw new AppError('not_found', `tenant ${tenant.slug} has no result ${reportId}`);
  const [facts] = await routingFactsOfReports(db, tenant.slug, [report]);
  return facts!;
}

/** One result a draft would route differently from the decision recorded when it arrived. */
export interface DryRunChange extends RoutedResult {
  draft: RoutingDecision & { error?: string };
  differences: Array<RoutingRuleKey | 'error'>;
}

export interface DryRunOutcome {
  /** How many results were evaluated in this page. */
  evaluated: number;
  /** Where the next page starts, or null when no results are left within `limit`. */
  nextOffset: number | null;
  changes: DryRunChange[];
}

/**
 * Evaluates draft rules over the tenant's last `limit` routed results (newest first) and answers
 * those the draft would decide differently from the decision recorded with them. Refuses rules that
 * fail the whitelist (400). A draft that fails on a result sends it to review there, as it would in
 * force. `offset`/`pageSize` let a caller page through a large run and show progress.
 *
 * The facts are read as the result is now: `report.needsReview` reflects the current stage, so a
 * rule reading it may differ from what it saw when the result arrived.
 *
 * @example
 * await dryRun(db, 'demo', { rules: { reviewRequired: true }, limit: 10 })
 * // { evaluated: 10, nextOffset: null, changes: [{ reportId, differences: ['reviewRequired'], ... }] }
 */
export async function dryRun(
  db: Db,
  slug: string,
  input: { rules: unknown; limit: number; offset?: number; pageSize?: number },
): Promise<DryRunOutcome> {
  const checked = validateRuleSet(input.rules);
  if (!checked.ok) throw invalidRules(checked.errors);
  const limit = Math.min(Math.max(1, Math.trunc(input.limit)), DRY_RUN_MAX);
  const offset = Math.max(0, Math.trunc(input.offset ?? 0));
  const pageSize = Math.min(Math.max(1, Math.trunc(input.pageSize ?? limit)), DRY_RUN_MAX);
  const take = Math.max(0, Math.min(pageSize, limit - offset));
  const tenant = await tenantOf(db, slug);
  const reports = take === 0 ? [] : await routedReports(db, tenant.id, take, offset);
  const facts = await routingFactsOfReports(db, tenant.slug, reports);
  const defaults = routingDefaults(tenant.settings);
  const changes: DryRunChange[] = [];
  reports.forEach((report, i) => {
    const recorded = report.routing!;
    // The draft has no version yet; what matters is the decision it would make.
    const routed: Partial<RecordedRoutingDecision> = routeReport(
      { version: 0, rules: checked.rules },
      facts[i]!,
      defaults,
    );
    delete routed.ruleVersion;
    const draft = routed as RoutingDecision & { error?: string };
    const differences = routingDifferences(recorded, draft);
    if (differences.length > 0) changes.push({ ...routedResult(report), draft, differences });
  });
  const next = offset + reports.length;
  return {
    evaluated: reports.length,
    nextOffset: reports.length === take && take > 0 && next < limit ? next : null,
    changes,
  };
}
