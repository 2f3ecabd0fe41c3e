import { error, fail } from '@sveltejs/kit';
import { AppError } from '../../../../../../../api/errors.ts';
import {
  acknowledgeCriticalResultDirectly,
  recordPatientContact,
} from '../../../../../../../api/lifecycle.ts';
import {
  PATIENT_CONTACT_OUTCOME,
  type PatientContactOutcome,
} from '../../../../../../../domain/escalation.ts';
import { actorOf, tenantFor } from '../../../../../lib/server/access.ts';
import { criticalResultView } from '../../../../../lib/server/critical.ts';
import { services } from '../../../../../lib/server/services.ts';
import type { Actions, PageServerLoad } from './$types';

const ACK_CHANNELS = ['phone', 'in_person', 'secure_message'] as const;
const CONTACT_METHODS = ['phone', 'email', 'sms', 'letter', 'in_person', 'portal'] as const;
const CONTACT_OUTCOMES = Object.values(PATIENT_CONTACT_OUTCOME);

/** The result the person may see, or 404 (another provider's result looks like none at all). */
async function visible(locals: App.Locals, slug: string, id: string) {
  const { tenant, user } = await tenantFor(locals, slug, 'acknowledge');
  const view = await criticalResultView(services().db, tenant, user, id);
  if (!view) error(404, `there is no critical result ${id} here`);
  return { tenant, user, view };
}

/** One critical result: its value and patient, every attempt, and the forms that move its loop on. */
export const load = (async ({ locals, params }) => {
  const { view } = await visible(locals, params.slug, params.id);
  return {
    critical: view,
    now: new Date().toISOString(),
    channels: ACK_CHANNELS,
    contactMethods: CONTACT_METHODS,
    contactOutcomes: CONTACT_OUTCOMES,
  };
}) satisfies PageServerLoad;

const text = (form: FormData, name: string) => String(form.get(name) ?? '').trim();

export const actions = {
  /**
   * A person at the lab recorded a provider's acknowledgement given by phone or in person, with the
   * provider's read-back: the same rule as POST /critical-results/{id}/acknowledge.
   */
  acknowledge: async ({ locals, params, request }) => {
    const { tenant, user } = await visible(locals, params.slug, params.id);
    const form = await request.formData();
    const values = {
      recipient: text(form, 'recipient'),
      channel: text(form, 'channel'),
      value: text(form, 'value'),
      patientIdentifier: text(form, 'patientIdentifier'),
    };
    const missing: Record<string, string> = {};
    if (!values.recipient) missing.recipient = 'Name the provider who received the result.';
    if (!ACK_CHANNELS.includes(values.channel as never))
      missing.channel = 'Choose how the provider was reached.';
    if (!values.value) missing.value = 'Enter the value as the provider read it back.';
    if (!values.patientIdentifier)
      missing.patientIdentifier = 'Enter the MRN or birth date as the provider read it back.';
    for (const [key, v] of Object.entries(values))
      if (v.length > 200) missing[key] = 'At most 200 characters.';
    if (Object.keys(missing).length > 0)
      return fail(400, { ack: { values, errors: missing, message: 'The acknowledgement is incomplete.' } });
    try {
      await acknowledgeCriticalResultDirectly(
        services().app,
        tenant,
        params.id,
        { ...values, channel: values.channel as (typeof ACK_CHANNELS)[number] },
        actorOf(user),
      );
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      const errors: Record<string, string> = {};
      for (const d of e.details)
        if (d.path === 'value') errors.value = 'The value read back does not match.';
        else if (d.path === 'patient') errors.patientIdentifier = 'The patient read back does not match.';
      return fail(e.status, { ack: { values, errors, message: e.message } });
    }
    return { acknowledged: true };
  },

  /** One attempt to reach the patient after acknowledgement (recordPatientContact, as the API). */
  contact: async ({ locals, params, request }) => {
    const { tenant, user } = await visible(locals, params.slug, params.id);
    const form = await request.formData();
    const values = { method: text(form, 'method'), outcome: text(form, 'outcome'), note: text(form, 'note') };
    const errors: Record<string, string> = {};
    if (!CONTACT_METHODS.includes(values.method as never))
      errors.method = 'Choose how the patient was contacted.';
    if (!CONTACT_OUTCOMES.includes(values.outcome as PatientContactOutcome))
      errors.outcome = 'Choose the outcome of the attempt.';
    if (values.note.length > 2000) errors.note = 'At most 2000 characters.';
    if (Object.keys(errors).length > 0)
      return fail(400, { contact: { values, errors, message: 'The attempt is incomplete.' } });
    try {
      await recordPatientContact(
        services().app,
        tenant,
        params.id,
        {
          method: values.method,
          outcome: values.outcome as PatientContactOutcome,
          note: values.note || null,
        },
        actorOf(user),
      );
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      return fail(e.status, { contact: { values, errors, message: e.message } });
    }
    return { contacted: true };
  },
} satisfies Actions;
