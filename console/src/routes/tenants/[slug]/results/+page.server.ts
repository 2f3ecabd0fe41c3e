import { dashboardCounts, recentReports } from '../../../../../../db/dashboard.ts';
import type { Observation } from '../../../../../../db/schema.ts';
import type { PatientDemographics } from '../../../../../../domain/model.ts';
import { flagView, patientName } from '../../../../lib/result-flags.ts';
import { tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { PageServerLoad } from './$types';

/** The result dashboard (seed 000): what waits for review, open criticals, and the latest reports with their values. */
export const load = (async ({ locals, params, url }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'read');
  const { db } = services();
  const patient = (url.searchParams.get('patient') ?? '').trim().slice(0, 200);
  const outOfRangeOnly = url.searchParams.get('outOfRange') === '1';
  const startOfToday = new Date();
  startOfToday.setHours(0, 0, 0, 0);
  const [counts, reports] = await Promise.all([
    dashboardCounts(db, tenant.id, startOfToday),
    recentReports(db, tenant.id, { patient, outOfRangeOnly, limit: 100 }),
  ]);
  return {
    filter: { patient, outOfRangeOnly },
    counts,
    reports: reports.map(({ report, patientName: name, observations }) => {
      const sent = report.patient as PatientDemographics;
      return {
        id: report.id,
        messageId: report.message_id,
        receivedAt: new Date(report.created_at).toISOString(),
        patient: {
          id: report.patient_id,
          name: name ? patientName(name.family, name.given) : patientName(sent.familyName, sent.givenNames),
          identifier: sent.identifiers[0]?.value ?? sent.externalId ?? null,
        },
        test: report.code.display ?? report.code.code,
        stage: report.stage,
        status: report.status,
        interpretation: report.interpretation,
        values: observations.map(valueView),
      };
    }),
  };
}) satisfies PageServerLoad;

function valueView(o: Observation) {
  const range = o.reference_range;
  const rangeText =
    range?.text ??
    (range && (range.low !== null || range.high !== null) ? `${range.low ?? ''}–${range.high ?? ''}` : null);
  return {
    id: o.id,
    name: o.code.display ?? o.code.code,
    value: o.value_numeric !== null ? `${o.value_comparator ?? ''}${o.value_numeric}` : (o.value_text ?? ''),
    unit: o.unit,
    range: rangeText,
    flag: flagView(o.interpretation, o.critical),
  };
}
