import type { ConsoleUser } from '../../../../api/console-auth.ts';
import {
  findCriticalResult,
  listCriticalAttempts,
  listCriticalResults,
} from '../../../../db/critical-results.ts';
import { findPatients } from '../../../../db/patients.ts';
import { findEscalationRecipient } from '../../../../db/providers.ts';
import { findObservationsOfReports, findReport } from '../../../../db/results.ts';
import type { CriticalAttempt, CriticalResult, Tenant, TenantSettings } from '../../../../db/schema.ts';
import { tenantScope, type Db } from '../../../../db/tenant-scope.ts';
import { CONSOLE_ROLE } from '../../../../domain/console-access.ts';
import { CRITICAL_STATUS, DEFAULT_ESCALATION_POLICY } from '../../../../domain/escalation.ts';
import { TASK_STATUS } from '../../../../domain/tasks.ts';
import { ROLE_LABEL } from '../critical-labels.ts';

// What the critical board and a critical result's page show: the row, its patient and value, every
// attempt, the escalation step it is on and who the chain reaches next. Read from the same tables
// the critical-result workflow writes.

const OPEN_STATUSES: string[] = [
  CRITICAL_STATUS.notifying,
  CRITICAL_STATUS.unacknowledged,
  CRITICAL_STATUS.acknowledged,
];

/**
 * The provider a person stands for in this tenant, when their only way in is a provider role: they
 * see the critical results addressed to the provider record their role names, and nothing while it
 * names none (an admin links it on the users page). Admins, reviewers and platform administrators
 * see the whole board (null).
 */
async function providerScope(db: Db, tenant: Tenant, user: ConsoleUser) {
  if (user.platformAdmin) return null;
  const roles = user.roles.filter((r) => r.tenantId === tenant.id);
  if (roles.some((r) => r.role !== CONSOLE_ROLE.provider)) return null;
  const providerId = roles.find((r) => r.providerId)?.providerId;
  if (!providerId) return { external_id: null, email: null };
  const provider = await tenantScope(db, tenant.id)
    .selectFrom('providers')
    .select(['external_id', 'email'])
    .where('id', '=', providerId)
    .where('disabled_at', 'is', null)
    .executeTakeFirst();
  // A link to a provider of another tenant, or one removed: nothing to show rather than everything.
  return provider ?? { external_id: null, email: null };
}

function concerns(
  provider: { external_id: string | null; email: string | null },
  orderingProviderId: string | null,
  row: CriticalResult,
  attempts: CriticalAttempt[],
): boolean {
  if (provider.external_id && orderingProviderId === provider.external_id) return true;
  const email = provider.email?.toLowerCase();
  if (!email) return false;
  const named = (who: string | null) => !!who && who.toLowerCase().includes(email);
  return named(row.recipient) || attempts.some((a) => a.target === 'provider' && named(a.recipient));
}

async function describe(db: Db, tenant: Tenant, row: CriticalResult, attempts: CriticalAttempt[]) {
  // A notification names the provider ("Name <address>"), an acknowledgement only the address:
  // the board shows one person one way.
  const named = new Map(
    attempts.flatMap((a) => {
      const m = /^(.*) <([^>]+)>$/.exec(a.recipient ?? '');
      return m ? [[m[2]!.toLowerCase(), a.recipient!] as const] : [];
    }),
  );
  const report = await findReport(db, tenant.id, row.report_id);
  const observation = (await findObservationsOfReports(db, tenant.id, [row.report_id])).find(
    (o) => o.id === row.observation_id,
  );
  const [patient] = row.patient_id ? await findPatients(db, tenant.id, [row.patient_id]) : [];
  const sent = report?.patient;
  const tasks = await tenantScope(db, tenant.id)
    .selectFrom('tasks')
    .select(['id', 'kind', 'status', 'priority', 'title', 'created_at'])
    .where('critical_result_id', '=', row.id)
    .where('status', 'in', [TASK_STATUS.open, TASK_STATUS.claimed])
    .orderBy('created_at')
    .execute();

  const policy = (tenant.settings as TenantSettings).escalation ?? DEFAULT_ESCALATION_POLICY;
  const open = row.status === CRITICAL_STATUS.notifying;
  const current = policy.steps[row.step];
  const sentNow = attempts.findLast(
    (a) => a.target === 'provider' && a.step === row.step && a.outcome === 'sent',
  );
  const nextStep = policy.steps[row.step + 1];
  const orderingProviderId = report?.ordering_provider?.id ?? null;
  const next =
    open && nextStep
      ? {
          step: row.step + 2,
          role: ROLE_LABEL[nextStep.role] ?? nextStep.role,
          who:
            (await findEscalationRecipient(db, tenant.id, nextStep.role, orderingProviderId))?.name ??
            'nobody with an e-mail address (skipped)',
          dueAt:
            sentNow && current
              ? new Date(sentNow.at.getTime() + current.timeoutMinutes * 60_000).toISOString()
              : null,
        }
      : null;
  const identifiers = (patient?.identifiers ?? sent?.identifiers ?? []).map((i) => i.value);
  const family = patient ? patient.family_name : (sent?.familyName ?? null);
  const given = ((patient ? patient.given_names : sent?.givenNames) ?? []).join(' ');
  const name = [family, given].filter(Boolean).join(', ');

  return {
    id: row.id,
    status: row.status,
    finding: row.finding,
    identifiedAt: row.identified_at.toISOString(),
    receivedAt: row.received_at?.toISOString() ?? null,
    closedAt: row.closed_at?.toISOString() ?? null,
    recipient: row.recipient,
    communicator: row.communicator,
    method: row.method,
    patientContact: row.patient_contact,
    test: report?.code.display ?? report?.code.code ?? null,
    orderingProvider: report?.ordering_provider
      ? [report.ordering_provider.familyName, ...report.ordering_provider.givenNames]
          .filter(Boolean)
          .join(', ') || report.ordering_provider.id
      : null,
    value: observation
      ? {
          analyte: observation.code.display ?? observation.code.code,
          value:
            observation.value_numeric !== null
              ? `${observation.value_comparator ?? ''}${observation.value_numeric}`
              : (observation.value_text ?? ''),
          unit: observation.unit,
          interpretation: observation.interpretation,
          range: observation.reference_range?.text ?? null,
        }
      : null,
    patient: {
      name: name || 'unknown patient',
      identifiers,
      birthDate: patient?.birth_date ?? sent?.birthDate ?? null,
      matched: !!patient,
    },
    step: {
      number: row.step + 1,
      of: policy.steps.length,
      role: current ? (ROLE_LABEL[current.role] ?? current.role) : null,
    },
    next,
    attempts: attempts.map((a) => ({
      target: a.target,
      step: a.step + (a.target === 'provider' ? 1 : 0),
      role: a.role ? (ROLE_LABEL[a.role] ?? a.role) : null,
      recipient: a.recipient ? (named.get(a.recipient.toLowerCase()) ?? a.recipient) : null,
      channel: a.channel,
      outcome: a.outcome,
      detail: a.detail,
      actor: a.actor,
      at: a.at.toISOString(),
    })),
    tasks: tasks.map((t) => ({
      id: t.id,
      kind: t.kind,
      status: t.status,
      stat: t.priority >= 2,
      title: t.title,
      createdAt: t.created_at.toISOString(),
    })),
    awaitsPatientContact: row.status === CRITICAL_STATUS.acknowledged,
    acknowledged: row.status === CRITICAL_STATUS.acknowledged || row.status === CRITICAL_STATUS.closed,
  };
}

export type CriticalView = Awaited<ReturnType<typeof describe>>;

/** The board: open critical results (oldest at the top waits longest) and the latest closed ones. */
export async function criticalBoard(db: Db, tenant: Tenant, user: ConsoleUser) {
  const scope = await providerScope(db, tenant, user);
  const rows = [
    ...(await listCriticalResults(db, tenant.id, { status: OPEN_STATUSES, limit: 200 })),
    ...(await listCriticalResults(db, tenant.id, { status: [CRITICAL_STATUS.closed], limit: 25 })),
  ];
  const views: CriticalView[] = [];
  for (const row of rows) {
    const attempts = await listCriticalAttempts(db, tenant.id, row.id);
    if (scope) {
      const report = await findReport(db, tenant.id, row.report_id);
      if (!concerns(scope, report?.ordering_provider?.id ?? null, row, attempts)) continue;
    }
    views.push(await describe(db, tenant, row, attempts));
  }
  return {
    providerView: scope !== null,
    /** A provider role that names no provider record (or one since removed) sees nothing: say why. */
    unlinked: scope !== null && scope.external_id === null && scope.email === null,
    open: views.filter((v) => v.status !== CRITICAL_STATUS.closed).reverse(),
    closed: views.filter((v) => v.status === CRITICAL_STATUS.closed),
  };
}

/** One critical result, or undefined when there is none the person may see. */
export async function criticalResultView(db: Db, tenant: Tenant, user: ConsoleUser, id: string) {
  if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
  const row = await findCriticalResult(db, tenant.id, id);
  if (!row) return undefined;
  const attempts = await listCriticalAttempts(db, tenant.id, row.id);
  const scope = await providerScope(db, tenant, user);
  if (scope) {
    const report = await findReport(db, tenant.id, row.report_id);
    if (!concerns(scope, report?.ordering_provider?.id ?? null, row, attempts)) return undefined;
  }
  return describe(db, tenant, row, attempts);
}
