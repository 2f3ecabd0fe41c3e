import { monitoringFigures } from '../../../../../../db/monitoring.ts';
import { tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { PageServerLoad } from './$types';

/** The windows a person can choose, in hours. */
const WINDOWS = [
  { key: '24h', label: 'Last 24 hours', hours: 24 },
  { key: '7d', label: 'Last 7 days', hours: 24 * 7 },
  { key: '30d', label: 'Last 30 days', hours: 24 * 30 },
] as const;

/** Seed 004's continuous-monitoring figures of the tenant over the chosen window. */
export const load = (async ({ locals, params, url }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'read');
  const window = WINDOWS.find((w) => w.key === url.searchParams.get('window')) ?? WINDOWS[0];
  const to = new Date();
  const from = new Date(to.getTime() - window.hours * 3_600_000);
  const figures = await monitoringFigures(services().db, tenant.id, from, to);
  return {
    windows: WINDOWS.map((w) => ({ key: w.key, label: w.label })),
    window: window.key,
    windowLabel: window.label,
    figures: { ...figures, from: figures.from.toISOString(), to: figures.to.toISOString() },
  };
}) satisfies PageServerLoad;
