import { fail } from '@sveltejs/kit';
import { AppError } from '../../../../../../api/errors.ts';
import { addProvider, removeProvider } from '../../../../../../api/providers.ts';
import { updateTenantSettings } from '../../../../../../api/tenant-settings.ts';
import { listProviders } from '../../../../../../db/providers.ts';
import type { TenantSettings } from '../../../../../../db/schema.ts';
import { DEFAULT_CRITICAL_TABLE } from '../../../../../../domain/critical-values.ts';
import { DEFAULT_ESCALATION_POLICY, ESCALATION_ROLE } from '../../../../../../domain/escalation.ts';
import { actorOf, tenantFor } from '../../../../lib/server/access.ts';
import { services } from '../../../../lib/server/services.ts';
import type { Actions, PageServerLoad } from './$types';

/** A critical-table row as the form holds it: text, as typed. */
interface LimitRow {
  loinc: string;
  name: string;
  low: string;
  high: string;
  unit: string;
  mw: string;
  charge: string;
  remove: boolean;
}
interface StepRow {
  role: string;
  minutes: string;
  remove: boolean;
}

const ROLES = Object.values(ESCALATION_ROLE);
const num = (n: number | null | undefined) => (n === null || n === undefined ? '' : String(n));

/** The tenant's critical table, escalation chain and providers (the defaults when it has none). */
export const load = (async ({ locals, params }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'configure');
  const settings = tenant.settings as TenantSettings;
  const table = settings.criticalTable ?? DEFAULT_CRITICAL_TABLE;
  const policy = settings.escalation ?? DEFAULT_ESCALATION_POLICY;
  const providers = await listProviders(services().db, tenant.id);
  return {
    roles: ROLES,
    defaultTable: !settings.criticalTable,
    defaultEscalation: !settings.escalation,
    rows: table.map((l): LimitRow => ({
      loinc: l.loinc,
      name: l.name,
      low: num(l.low),
      high: num(l.high),
      unit: l.unit,
      mw: num(l.molecularWeight),
      charge: num(l.charge),
      remove: false,
    })),
    steps: policy.steps.map((s): StepRow => ({
      role: s.role,
      minutes: String(s.timeoutMinutes),
      remove: false,
    })),
    patientContactAttempts: String(policy.patientContactAttempts),
    ackLinkHours: String(policy.ackLinkHours),
    providers: providers.map((p) => ({
      id: p.id,
      name: p.name,
      email: p.email,
      externalId: p.external_id,
      roles: p.roles,
    })),
  };
}) satisfies PageServerLoad;

const text = (form: FormData, name: string) => String(form.get(name) ?? '').trim();
const count = (form: FormData, name: string) => Math.min(600, Math.max(0, Number(form.get(name)) || 0));

/** A number as typed ("6,0" is 6.0), null when empty, NaN when it is not a number. */
function parseNumber(raw: string): number | null {
  if (raw === '') return null;
  return /^[+-]?(\d+([.,]\d*)?|[.,]\d+)$/.test(raw) ? Number(raw.replace(',', '.')) : NaN;
}

/** Where a detail of the shared settings check belongs on this form (e.g. `table.3.unit`). */
function fieldOf(path: string, tableIndex: number[], stepIndex: number[]): string {
  const parts = path.replace(/^settings\./, '').split('.');
  if (parts[0] === 'criticalTable') {
    if (parts[1] === undefined) return 'table';
    const field = parts[2] === 'molecularWeight' ? 'mw' : (parts[2] ?? 'low');
    return `table.${tableIndex[Number(parts[1])]}.${field}`;
  }
  if (parts[0] === 'escalation') {
    if (parts[1] === 'steps') {
      if (parts[2] === undefined) return 'steps';
      return `step.${stepIndex[Number(parts[2])]}.${parts[3] === 'role' ? 'role' : 'minutes'}`;
    }
    if (parts[1] === 'patientContactAttempts' || parts[1] === 'ackLinkHours') return parts[1];
  }
  return 'form';
}

export const actions = {
  /**
   * Saves the critical table and the escalation chain together through the admin API's own
   * function: either both are saved or, when anything is wrong, nothing is.
   */
  save: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const rows: LimitRow[] = [];
    for (let i = 0; i < count(form, 'tableRows'); i++)
      rows.push({
        loinc: text(form, `table.${i}.loinc`),
        name: text(form, `table.${i}.name`),
        low: text(form, `table.${i}.low`),
        high: text(form, `table.${i}.high`),
        unit: text(form, `table.${i}.unit`),
        mw: text(form, `table.${i}.mw`),
        charge: text(form, `table.${i}.charge`),
        remove: form.get(`table.${i}.remove`) === 'on',
      });
    const steps: StepRow[] = [];
    for (let i = 0; i < count(form, 'stepRows'); i++)
      steps.push({
        role: text(form, `step.${i}.role`),
        minutes: text(form, `step.${i}.minutes`),
        remove: form.get(`step.${i}.remove`) === 'on',
      });
    const patientContactAttempts = text(form, 'patientContactAttempts');
    const ackLinkHours = text(form, 'ackLinkHours');

    const errors: Record<string, string> = {};
    const notANumber = (key: string, value: number | null) => {
      if (Number.isNaN(value)) errors[key] = 'Enter a number.';
      return Number.isNaN(value) ? null : value;
    };
    const tableIndex: number[] = [];
    const criticalTable = rows.flatMap((r, i) => {
      const blank = !r.loinc && !r.name && !r.low && !r.high && !r.unit;
      if (r.remove || blank) return [];
      tableIndex.push(i);
      const mw = notANumber(`table.${i}.mw`, parseNumber(r.mw));
      const charge = notANumber(`table.${i}.charge`, parseNumber(r.charge));
      return [
        {
          loinc: r.loinc,
          name: r.name,
          low: notANumber(`table.${i}.low`, parseNumber(r.low)),
          high: notANumber(`table.${i}.high`, parseNumber(r.high)),
          unit: r.unit,
          ...(mw !== null ? { molecularWeight: mw } : {}),
          ...(charge !== null ? { charge } : {}),
        },
      ];
    });
    const stepIndex: number[] = [];
    const chain = steps.flatMap((s, i) => {
      if (s.remove || !s.role) return [];
      stepIndex.push(i);
      return [{ role: s.role, timeoutMinutes: notANumber(`step.${i}.minutes`, parseNumber(s.minutes)) }];
    });
    const attempts = notANumber('patientContactAttempts', parseNumber(patientContactAttempts));
    const linkHours = notANumber('ackLinkHours', parseNumber(ackLinkHours));
    const echo = { rows, steps, patientContactAttempts, ackLinkHours };
    if (Object.keys(errors).length > 0)
      return fail(400, {
        save: { ...echo, errors, message: 'Some values are not numbers; nothing was saved.' },
      });
    try {
      await updateTenantSettings(
        services().db,
        tenant.slug,
        {
          settings: {
            criticalTable,
            escalation: {
              steps: chain,
              patientContactAttempts: attempts,
              ackLinkHours: linkHours,
            },
          },
        },
        actorOf(user),
      );
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      for (const d of e.details) {
        const key = fieldOf(d.path ?? '', tableIndex, stepIndex);
        errors[key] = errors[key] ? `${errors[key]}; ${d.message}` : d.message;
      }
      return fail(e.status, {
        save: { ...echo, errors, message: 'Nothing was saved: correct the values marked below.' },
      });
    }
    return { saved: true };
  },

  addProvider: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const form = await request.formData();
    const values = {
      name: text(form, 'name'),
      email: text(form, 'email'),
      externalId: text(form, 'externalId'),
      roles: form.getAll('roles').map(String),
    };
    try {
      await addProvider(
        services().db,
        tenant.slug,
        {
          name: values.name,
          email: values.email || null,
          externalId: values.externalId || null,
          roles: values.roles,
        },
        actorOf(user),
      );
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      const errors: Record<string, string> = {};
      for (const d of e.details) {
        const key = d.path?.split('.')[0] || 'form';
        errors[key] = d.message;
      }
      return fail(e.status, { provider: { values, errors, message: 'The provider was not added.' } });
    }
    return { providerAdded: values.name };
  },

  removeProvider: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'configure');
    const id = text(await request.formData(), 'id');
    if (!/^[0-9a-f-]{36}$/i.test(id)) return fail(400, { removeMessage: 'No provider was named.' });
    try {
      await removeProvider(services().db, tenant.slug, id, actorOf(user));
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      return fail(e.status, { removeMessage: e.message });
    }
    return { providerRemoved: id };
  },
} satisfies Actions;
