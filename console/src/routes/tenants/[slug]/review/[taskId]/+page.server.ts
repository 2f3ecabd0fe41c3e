import { error, fail, redirect } from '@sveltejs/kit';
import { AppError } from '../../../../../../../api/errors.ts';
import { claimTask, completeTask, type TaskDecision } from '../../../../../../../api/lifecycle.ts';
import { listDocumentsOfMessage } from '../../../../../../../db/documents.ts';
import { findMessage, readMessageRaw } from '../../../../../../../db/messages.ts';
import { findPatients } from '../../../../../../../db/patients.ts';
import { findObservationsOfReports, findReport } from '../../../../../../../db/results.ts';
import type { Observation } from '../../../../../../../db/schema.ts';
import { findTask } from '../../../../../../../db/tasks.ts';
import type { Identifier, PatientDemographics } from '../../../../../../../domain/model.ts';
import { TASK_KIND } from '../../../../../../../domain/tasks.ts';
import { layoutHl7 } from '../../../../../lib/hl7-layout.ts';
import { actorOf, tenantFor } from '../../../../../lib/server/access.ts';
import { assigneeOf, queueTasks, refusal } from '../../../../../lib/server/review.ts';
import { services } from '../../../../../lib/server/services.ts';
import type { Actions, PageServerLoad, RequestEvent } from './$types';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Characters of the original shown beside the data; a larger message is cut with a note. */
const RAW_SHOWN = 200_000;
const COMMENT_MAX = 2000;

/** The decisions each kind of task takes on this page (api/lifecycle.ts completeTask decides). */
const DECISIONS: Record<string, string[]> = {
  [TASK_KIND.reviewResult]: ['approve', 'correct', 'reject'],
  [TASK_KIND.matchPatient]: ['match', 'new', 'reject'],
  [TASK_KIND.orderOverdue]: ['acknowledge'],
  [TASK_KIND.deliveryFailed]: ['acknowledge'],
};

interface Candidate {
  id: string;
  familyName: string | null;
  givenNames: string[];
  birthDate: string | null;
  sex: string | null;
  identifiers: Identifier[];
}

function shownValue(o: Observation): string {
  if (o.value_numeric !== null) return `${o.value_comparator ?? ''}${o.value_numeric}`;
  return o.value_text ?? '';
}

/** The value a correction input starts from: the number alone (its comparator is shown beside it). */
function editableValue(o: Observation): string {
  return o.value_numeric !== null ? String(o.value_numeric) : (o.value_text ?? '');
}

/** One task with what the reviewer decides on: the original as received beside the parsed data. */
export const load = (async ({ locals, params }) => {
  const { tenant, user } = await tenantFor(locals, params.slug, 'review');
  const { db } = services();
  const task = UUID.test(params.taskId) ? await findTask(db, tenant.id, params.taskId) : undefined;
  if (!task) error(404, `there is no task ${params.taskId}`);
  const report = task.report_id ? await findReport(db, tenant.id, task.report_id) : undefined;
  const [observations, message, matched] = await Promise.all([
    report ? findObservationsOfReports(db, tenant.id, [report.id]) : [],
    report ? findMessage(db, tenant.id, report.message_id) : undefined,
    report?.patient_id ? findPatients(db, tenant.id, [report.patient_id]) : [],
  ]);
  const [raw, documents, queue] = await Promise.all([
    message ? readMessageRaw(db, message, RAW_SHOWN) : null,
    message ? listDocumentsOfMessage(db, tenant.id, message.id) : [],
    queueTasks(db, tenant.id, user, { kind: null, priority: null, status: null }),
  ]);
  // j/k move through the queue in its own order; a task no longer in it starts again at the top.
  const at = queue.findIndex((t) => t.id === task.id);
  const previous = at > 0 ? queue[at - 1]!.id : null;
  const next = at >= 0 ? (queue[at + 1]?.id ?? null) : (queue[0]?.id ?? null);
  const sent = report?.patient as PatientDemographics | undefined;
  const patient = matched[0];
  const payload = task.payload as { candidates?: Candidate[]; incoming?: PatientDemographics };

  return {
    me: assigneeOf(user),
    task: {
      id: task.id,
      kind: task.kind,
      status: task.status,
      priority: task.priority,
      title: task.title,
      reason: task.reason,
      assignee: task.assignee,
      createdAt: new Date(task.created_at).toISOString(),
      completedBy: task.completed_by,
      decision: (task.decision as { decision?: string } | null)?.decision ?? null,
      criticalResultId: task.critical_result_id,
    },
    decisions: DECISIONS[task.kind] ?? [],
    previous,
    next,
    original: message
      ? {
          messageId: message.id,
          format: message.format,
          type: message.message_type,
          controlId: message.control_id,
          receivedAt: new Date(message.received_at).toISOString(),
          hl7: message.format === 'hl7v2' && raw ? layoutHl7(raw.text) : null,
          text: message.format !== 'hl7v2' && message.format !== 'pdf' && raw ? raw.text : null,
          cut: raw ? raw.text.length < raw.length : false,
          documents: documents
            .filter((d) => d.report_id === null || d.report_id === report?.id)
            .map((d) => ({
              id: d.id,
              filename: d.filename,
              title: d.title,
              contentType: d.content_type,
              extraction: d.extraction_status,
            })),
        }
      : null,
    patient: patient
      ? {
          matched: true,
          name: { family: patient.family_name, given: patient.given_names },
          birthDate: patient.birth_date,
          sex: patient.sex,
          identifiers: patient.identifiers.map((i) => ({ system: i.system, value: i.value })),
        }
      : sent
        ? {
            matched: false,
            name: { family: sent.familyName, given: sent.givenNames },
            birthDate: sent.birthDate,
            sex: sent.sex,
            identifiers: sent.identifiers.map((i) => ({ system: i.system, value: i.value })),
          }
        : null,
    report: report
      ? {
          id: report.id,
          test: report.code.display ?? report.code.code,
          code: report.code.code,
          status: report.status,
          stage: report.stage,
          orderKey: report.order_key,
          effectiveAt: report.effective_at ? new Date(report.effective_at).toISOString() : null,
          observations: observations.map((o) => ({
            id: o.id,
            name: o.code.display ?? o.code.code,
            code: o.code.code,
            numeric: o.value_type === 'quantity',
            value: shownValue(o),
            comparator: o.value_comparator,
            editable: editableValue(o),
            unit: o.unit,
            range: o.reference_range?.text ?? null,
            interpretation: o.interpretation,
            critical: o.critical,
            correctedFrom: o.corrected_from
              ? {
                  value:
                    o.corrected_from.numeric !== null
                      ? String(o.corrected_from.numeric)
                      : (o.corrected_from.text ?? ''),
                  by: o.corrected_from.by,
                }
              : null,
          })),
        }
      : null,
    match:
      task.kind === TASK_KIND.matchPatient
        ? {
            incoming: payload.incoming
              ? {
                  name: { family: payload.incoming.familyName, given: payload.incoming.givenNames },
                  birthDate: payload.incoming.birthDate,
                  sex: payload.incoming.sex,
                  identifiers: payload.incoming.identifiers.map((i) => ({
                    system: i.system,
                    value: i.value,
                  })),
                }
              : null,
            candidates: (payload.candidates ?? []).map((c) => ({
              id: c.id,
              name: { family: c.familyName, given: c.givenNames },
              birthDate: c.birthDate,
              sex: c.sex,
              identifiers: c.identifiers.map((i) => ({ system: i.system, value: i.value })),
            })),
          }
        : null,
  };
}) satisfies PageServerLoad;

/**
 * Completes the task with `decision` through api/lifecycle.ts (the rule the tasks API uses), then
 * back to the queue; a refusal (claimed by someone else, a decision this task does not take) is
 * shown on the page.
 */
async function decide(
  event: RequestEvent,
  action: string,
  decision: TaskDecision,
  extra: Record<string, unknown> = {},
) {
  const { tenant, user } = await tenantFor(event.locals, event.params.slug, 'review');
  if (!UUID.test(event.params.taskId))
    return fail(404, { action, message: 'There is no such task.', ...extra });
  try {
    await completeTask(services().app, tenant, event.params.taskId, decision, actorOf(user));
  } catch (e) {
    return refusal(action, e, extra);
  }
  redirect(303, `/tenants/${event.params.slug}/review?done=${decision.decision}`);
}

function commentOf(form: FormData): string {
  return String(form.get('comment') ?? '').trim();
}

export const actions = {
  /** Claims the task for the signed-in reviewer; their role is checked again, whatever the page showed. */
  claim: async ({ locals, params }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'review');
    if (!UUID.test(params.taskId)) return fail(404, { action: 'claim', message: 'There is no such task.' });
    try {
      await claimTask(services().app, tenant, params.taskId, actorOf(user));
    } catch (e) {
      return refusal('claim', e);
    }
    return { action: 'claim', claimed: true };
  },

  approve: async (event) => decide(event, 'approve', { decision: 'approve' }),

  /** Only the values the reviewer changed are sent; the workflow flags each corrected value again. */
  correct: async (event) => {
    const { tenant, user } = await tenantFor(event.locals, event.params.slug, 'review');
    const form = await event.request.formData();
    const { db } = services();
    const task = UUID.test(event.params.taskId)
      ? await findTask(db, tenant.id, event.params.taskId)
      : undefined;
    if (!task) return fail(404, { action: 'correct', message: 'There is no such task.' });
    const observations = task.report_id
      ? await findObservationsOfReports(db, tenant.id, [task.report_id])
      : [];
    const values: Record<string, string> = {};
    const fieldErrors: Record<string, string> = {};
    const corrections: { observationId: string; value: number | string }[] = [];
    for (const o of observations) {
      const entered = form.get(`value-${o.id}`);
      if (entered === null) continue;
      const text = String(entered).trim();
      values[o.id] = text;
      if (text === editableValue(o)) continue;
      if (text === '') {
        fieldErrors[o.id] = 'Enter the corrected value, or put back the value received.';
        continue;
      }
      const number = Number(text);
      // A numeric result is corrected with a number; anything else goes as typed and the rule refuses it.
      corrections.push({
        observationId: o.id,
        value: o.value_type === 'quantity' && Number.isFinite(number) ? number : text.slice(0, 1000),
      });
    }
    if (Object.keys(fieldErrors).length > 0)
      return fail(400, { action: 'correct', message: 'A corrected value is missing.', values, fieldErrors });
    if (corrections.length === 0)
      return fail(400, {
        action: 'correct',
        message: 'No value was changed: change a value to correct it, or approve the report as received.',
        values,
      });
    try {
      await completeTask(
        services().app,
        tenant,
        task.id,
        { decision: 'correct', corrections },
        actorOf(user),
      );
    } catch (e) {
      // Point at the values the rule refused (e.g. text for a numeric result).
      if (e instanceof AppError)
        for (const d of e.details) {
          const index = /^corrections\.(\d+)\.value$/.exec(d.path ?? '')?.[1];
          const id = index !== undefined ? corrections[Number(index)]?.observationId : undefined;
          if (id) fieldErrors[id] = d.message === 'a number is required' ? 'Enter a number.' : d.message;
        }
      return refusal('correct', e, { values, fieldErrors });
    }
    redirect(303, `/tenants/${event.params.slug}/review?done=correct`);
  },

  /** A rejected report is never released; the reason is required and kept with the decision. */
  reject: async (event) => {
    await tenantFor(event.locals, event.params.slug, 'review');
    const comment = commentOf(await event.request.formData());
    if (!comment) return fail(400, { action: 'reject', message: 'Say why the report is rejected.', comment });
    if (comment.length > COMMENT_MAX)
      return fail(400, { action: 'reject', message: `At most ${COMMENT_MAX} characters.`, comment });
    return decide(event, 'reject', { decision: 'reject', comment }, { comment });
  },

  /** The reviewer picks one of the task's candidates (completeTask refuses any other patient). */
  match: async (event) => {
    await tenantFor(event.locals, event.params.slug, 'review');
    const patientId = String((await event.request.formData()).get('patientId') ?? '');
    if (!UUID.test(patientId)) return fail(400, { action: 'match', message: 'No patient was chosen.' });
    return decide(event, 'match', { decision: 'match', patientId });
  },

  new: async (event) => decide(event, 'new', { decision: 'new' }),

  acknowledge: async (event) => decide(event, 'acknowledge', { decision: 'acknowledge' }),
} satisfies Actions;
