import { error } from '@sveltejs/kit';
import { patientReports } from '../../../../../../../db/dashboard.ts';
import { findPatients } from '../../../../../../../db/patients.ts';
import type { Observation } from '../../../../../../../db/schema.ts';
import { compareWithPrevious, decimalsOf, formatDifference } from '../../../../../../../domain/trend.ts';
import { flagView, patientName } from '../../../../../lib/result-flags.ts';
import { tenantFor } from '../../../../../lib/server/access.ts';
import { services } from '../../../../../lib/server/services.ts';
import type { PageServerLoad } from './$types';

const LOINC = 'http://loinc.org';

/** One patient: their reports, and per analyte (LOINC code) the trend with its reference range and each value against the one before. */
export const load = (async ({ locals, params }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'read');
  const { db } = services();
  const [patient] = /^[0-9a-f-]{36}$/i.test(params.id) ? await findPatients(db, tenant.id, [params.id]) : [];
  if (!patient) error(404, 'There is no such patient in this tenant.');
  const history = await patientReports(db, tenant.id, patient.id);

  const byAnalyte = new Map<
    string,
    {
      code: string;
      system: string | null;
      name: string;
      rows: { o: Observation; at: string; reportId: string }[];
    }
  >();
  for (const { report, observations } of history) {
    for (const o of observations) {
      if (o.value_numeric === null) continue;
      const key = `${o.code.system ?? ''}|${o.code.code}`;
      let analyte = byAnalyte.get(key);
      if (!analyte) {
        analyte = { code: o.code.code, system: o.code.system, name: o.code.display ?? o.code.code, rows: [] };
        byAnalyte.set(key, analyte);
      }
      const at = new Date(o.effective_at ?? report.effective_at ?? report.created_at).toISOString();
      analyte.rows.push({ o, at, reportId: report.id });
    }
  }

  const analytes = [...byAnalyte.values()]
    .map((a) => {
      a.rows.sort((x, y) => x.at.localeCompare(y.at));
      const latest = a.rows[a.rows.length - 1]!.o;
      const range = latest.reference_range;
      const points = a.rows.map(({ o, at, reportId }) => ({
        id: o.id,
        reportId,
        at,
        value: o.value_numeric!,
        interpretation: o.interpretation,
        flag: flagView(o.interpretation, o.critical),
        unit: o.unit,
      }));
      const decimals = Math.max(0, ...points.map((p) => decimalsOf(p.value)));
      return {
        key: `${a.system ?? 'local'}-${a.code}`,
        code: a.code,
        loinc: a.system === LOINC,
        name: a.name,
        unit: latest.unit,
        range: range ? { low: range.low, high: range.high, text: range.text } : null,
        comparisons: compareWithPrevious(points).map((c) => ({
          ...c.point,
          previous: c.previous?.value ?? null,
          difference: c.difference === null ? null : formatDifference(c.difference, decimals),
          direction: c.direction,
        })),
      };
    })
    .sort((x, y) => x.name.localeCompare(y.name));

  return {
    patient: {
      id: patient.id,
      name: patientName(patient.family_name, patient.given_names),
      birthDate: patient.birth_date,
      sex: patient.sex,
      identifiers: patient.identifiers.map((i) => ({ system: i.system, value: i.value, type: i.type })),
      externalId: patient.external_id,
    },
    reports: history
      .map(({ report, observations }) => ({
        id: report.id,
        messageId: report.message_id,
        at: new Date(report.effective_at ?? report.created_at).toISOString(),
        test: report.code.display ?? report.code.code,
        stage: report.stage,
        interpretation: report.interpretation,
        values: observations.map((o) => ({
          id: o.id,
          name: o.code.display ?? o.code.code,
          value:
            o.value_numeric !== null ? `${o.value_comparator ?? ''}${o.value_numeric}` : (o.value_text ?? ''),
          unit: o.unit,
          flag: flagView(o.interpretation, o.critical),
        })),
      }))
      .reverse(),
    analytes,
  };
}) satisfies PageServerLoad;
