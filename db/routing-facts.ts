import type { RoutingFacts } from '../domain/routing-rules.ts';
import { findObservationsOfReports, REPORT_STAGE } from './results.ts';
import type { Report } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/**
 * What a routing rule can see of each report: codes, values, flags, the patient's age and sex, the
 * source and the ordering location. Read in three queries whatever the number of reports, so a dry
 * run over a thousand recent results costs no more than a few. The routing activity and the rules
 * console (try it on a real result, dry run) read the facts here, so they see the same thing.
 *
 * @example
 * const [facts] = await routingFactsOfReports(db, 'demo', [report]);
 * facts.results[0] // { code: '2823-3', value: 5.6, interpretation: 'H', low: 3.5, high: 5.1, ... }
 */
export async function routingFactsOfReports(
  db: Db,
  tenantSlug: string,
  reports: readonly Report[],
): Promise<RoutingFacts[]> {
  if (reports.length === 0) return [];
  const tenantId = reports[0]!.tenant_id;
  const observations = await findObservationsOfReports(
    db,
    tenantId,
    reports.map((r) => r.id),
  );
  const messageIds = [...new Set(reports.map((r) => r.message_id))];
  const messages = await tenantScope(db, tenantId)
    .selectFrom('messages')
    .leftJoin('connections', 'connections.id', 'messages.connection_id')
    .select(['messages.id', 'messages.format', 'messages.transport', 'connections.name as connection'])
    .where('messages.id', 'in', messageIds)
    .execute();
  const patientIds = [...new Set(reports.flatMap((r) => (r.patient_id ? [r.patient_id] : [])))];
  const patients =
    patientIds.length === 0
      ? []
      : await tenantScope(db, tenantId)
          .selectFrom('patients')
          .select(['id', 'birth_date', 'sex', 'email'])
          .where('id', 'in', patientIds)
          .execute();
  const messageById = new Map(messages.map((m) => [m.id, m]));
  const patientById = new Map(patients.map((p) => [p.id, p]));
  return reports.map((report) => {
    const own = observations.filter((o) => o.report_id === report.id);
    const message = messageById.get(report.message_id);
    if (!message) throw new Error(`report ${report.id} has no message ${report.message_id}`);
    const patient = report.patient_id ? patientById.get(report.patient_id) : undefined;
    const at = report.effective_at ?? new Date();
    return {
      tenant: tenantSlug,
      source: {
        format: message.format,
        transport: message.transport,
        connection: message.connection ?? null,
      },
      test: { code: report.code.code, system: report.code.system, display: report.code.display },
      report: {
        status: report.status,
        critical: own.some((o) => o.critical === true),
        abnormal: own.some((o) => o.interpretation !== null && o.interpretation !== 'N'),
        needsReview: report.stage === REPORT_STAGE.needsReview,
      },
      results: own.map((o) => ({
        code: o.code.code,
        system: o.code.system,
        value: o.value_numeric,
        text: o.value_text,
        unit: o.unit,
        interpretation: o.interpretation,
        critical: o.critical === true,
        low: o.reference_range?.low ?? null,
        high: o.reference_range?.high ?? null,
      })),
      patient: {
        ageYears: ageInYears(patient?.birth_date ?? null, at),
        sex: patient?.sex ?? null,
        notifiable: Boolean(patient?.email),
      },
      orderingLocation: report.location_id ?? null,
      orderingProvider: report.ordering_provider?.id ?? null,
    };
  });
}

function ageInYears(birthDate: string | null, at: Date): number | null {
  if (!birthDate || !/^\d{4}-\d{2}-\d{2}$/.test(birthDate)) return null;
  const [y, m, d] = birthDate.split('-').map(Number) as [number, number, number];
  let age = at.getUTCFullYear() - y;
  if (at.getUTCMonth() + 1 < m || (at.getUTCMonth() + 1 === m && at.getUTCDate() < d)) age -= 1;
  return age;
}
