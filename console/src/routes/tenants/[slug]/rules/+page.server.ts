import { fail } from '@sveltejs/kit';
import { AppError } from '../../../../../../api/errors.ts';
import {
  DRY_RUN_MAX,
  dryRun,
  factsOfResult,
  listRuleVersions,
  recentRoutedResults,
  rollbackRules,
  SAMPLE_FACTS,
  saveRuleVersion,
  tryRule,
} from '../../../../../../api/routing-rules.ts';
import type { RuleSetError } from '../../../../../../domain/routing-rules.ts';
import { actorOf, tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { Actions, PageServerLoad } from './$types';

/** The rules page: versions, the tenant's recent routed results to try a draft on, a sample. */
export const load = (async ({ locals, params }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'configure');
  const { db } = services();
  const versions = await listRuleVersions(db, tenant.slug);
  const recent = await recentRoutedResults(db, tenant.slug, 50);
  return {
    versions: versions.map((v) => ({
      version: v.version,
      rules: JSON.stringify(v.rules, null, 2),
      note: v.note,
      createdBy: v.createdBy,
      createdAt: v.createdAt.toISOString(),
    })),
    recent: recent.map((r) => ({
      reportId: r.reportId,
      test: r.test,
      receivedAt: r.receivedAt,
      reviewRequired: r.recorded.reviewRequired,
      ruleVersion: r.recorded.ruleVersion,
    })),
    sampleFacts: JSON.stringify({ ...SAMPLE_FACTS, tenant: tenant.slug }, null, 2),
    dryRunMax: DRY_RUN_MAX,
  };
}) satisfies PageServerLoad;

/** The draft as typed: parsed JSON, or the error to show beside the editor. */
function parseJson(
  text: string,
  what: string,
): { ok: true; value: unknown } | { ok: false; errors: RuleSetError[] } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, errors: [{ path: '', message: `${what} is not JSON: ${(e as Error).message}` }] };
  }
}

/** An AppError as the page shows it; anything else is not ours to explain and is thrown on. */
function failed(e: unknown, draft: string) {
  if (!(e instanceof AppError)) throw e;
  const errors =
    (e.details as RuleSetError[] | undefined)?.filter((d) => typeof d?.message === 'string') ?? [];
  return fail(e.status, { message: e.message, errors, draft });
}

export const actions = {
  /** Saves the draft as the next version (the same function as the admin API), audited as this person. */
  save: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const draft = String(form.get('rules') ?? '');
    const note =
      String(form.get('note') ?? '')
        .trim()
        .slice(0, 500) || null;
    const parsed = parseJson(draft, 'The draft');
    if (!parsed.ok) return fail(400, { message: parsed.errors[0]!.message, errors: parsed.errors, draft });
    try {
      const saved = await saveRuleVersion(
        services().db,
        tenant.slug,
        { rules: parsed.value, note },
        actorOf(user),
      );
      return { saved: saved.version };
    } catch (e) {
      return failed(e, draft);
    }
  },

  /** Puts an earlier version back in force as a new version, audited as this person. */
  rollback: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const version = Number((await request.formData()).get('version'));
    if (!Number.isInteger(version) || version < 1) return fail(400, { message: 'No version was named.' });
    try {
      const restored = await rollbackRules(services().db, tenant.slug, version, actorOf(user));
      return { rolledBack: { to: version, version: restored.version } };
    } catch (e) {
      return failed(e, '');
    }
  },

  /** Evaluates the draft on the sample facts or on one of the tenant's results; stores nothing. */
  try: async ({ locals, params, request }) => {
    const { tenant } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const draft = String(form.get('rules') ?? '');
    const on = String(form.get('tryOn') ?? 'sample');
    const parsed = parseJson(draft, 'The draft');
    if (!parsed.ok) return fail(400, { message: parsed.errors[0]!.message, errors: parsed.errors, draft });
    try {
      let facts: unknown;
      if (on === 'sample') {
        const sample = parseJson(String(form.get('facts') ?? ''), 'The sample');
        if (!sample.ok) return fail(400, { message: sample.errors[0]!.message, draft });
        facts = sample.value;
      } else facts = await factsOfResult(services().db, tenant.slug, on);
      const tried = await tryRule(services().db, tenant.slug, { rules: parsed.value, facts });
      return { tried: { ...tried, on, facts: JSON.stringify(facts, null, 2) }, draft };
    } catch (e) {
      return failed(e, draft);
    }
  },

  /** The dry run without JavaScript: the whole run in one request (the page's script pages it). */
  dryRun: async ({ locals, params, request }) => {
    const { tenant } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const draft = String(form.get('rules') ?? '');
    const limit = Number(form.get('limit'));
    if (!Number.isInteger(limit) || limit < 1 || limit > DRY_RUN_MAX)
      return fail(400, { message: `Choose how many results to look at: 1 to ${DRY_RUN_MAX}.`, draft });
    const parsed = parseJson(draft, 'The draft');
    if (!parsed.ok) return fail(400, { message: parsed.errors[0]!.message, errors: parsed.errors, draft });
    try {
      const outcome = await dryRun(services().db, tenant.slug, { rules: parsed.value, limit });
      return { dryRun: { evaluated: outcome.evaluated, changes: outcome.changes }, draft };
    } catch (e) {
      return failed(e, draft);
    }
  },
} satisfies Actions;
