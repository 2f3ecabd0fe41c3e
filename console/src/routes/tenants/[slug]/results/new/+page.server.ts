import { randomUUID } from 'node:crypto';
import { fail, redirect } from '@sveltejs/kit';
import { AppError } from '../../../../../../../api/errors.ts';
import {
  documentIntake,
  MAX_INTERPRETATION,
  RESULT_CATEGORIES,
  RESULT_CATEGORY_SYSTEM,
  simpleResultsIntake,
} from '../../../../../../../api/intake/simple.ts';
import { storeIntake, type Intake } from '../../../../../../../api/intake/store.ts';
import { searchPatients } from '../../../../../../../db/dashboard.ts';
import { findPatients } from '../../../../../../../db/patients.ts';
import { patientName } from '../../../../../lib/result-flags.ts';
import { actorOf, tenantFor } from '../../../../../lib/server/access.ts';
import { services } from '../../../../../lib/server/services.ts';
import type { Actions, PageServerLoad } from './$types';

/** Rows of values the form offers. */
const ROWS = 4;
const LOINC = 'http://loinc.org';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Errors = Record<string, string>;

/** Manual entry and upload (seed 000 "Manual Upload"): pick or enter the patient, then values or a PDF. */
export const load = (async ({ locals, params, url }) => {
  const { tenant } = await tenantFor(locals, params.slug, 'review');
  const { db } = services();
  const query = (url.searchParams.get('q') ?? '').trim().slice(0, 200);
  const chosen = url.searchParams.get('patient');
  const found = query ? await searchPatients(db, tenant.id, query, 20) : [];
  const [preselected] = chosen && UUID.test(chosen) ? await findPatients(db, tenant.id, [chosen]) : [];
  const candidates = found.map((p) => ({
    id: p.id,
    name: patientName(p.family_name, p.given_names),
    birthDate: p.birth_date,
    identifiers: p.identifiers,
  }));
  if (preselected && !candidates.some((c) => c.id === preselected.id))
    candidates.unshift({
      id: preselected.id,
      name: patientName(preselected.family_name, preselected.given_names),
      birthDate: preselected.birth_date,
      identifiers: preselected.identifiers.map((i) => i.value),
    });
  return {
    query,
    candidates,
    preselected: preselected?.id ?? null,
    categories: RESULT_CATEGORIES,
    rows: ROWS,
    // One submission, one message: a second click or a reload of the POST is recognised as the same.
    nonce: randomUUID(),
    defaultSystem: `urn:labrelay:${tenant.slug}:mrn`,
  };
}) satisfies PageServerLoad;

export const actions = {
  /** Stores the entry or upload through the same intake as the API, one transaction, its workflow started. */
  add: async ({ locals, params, request }) => {
    const { tenant, user } = await tenantFor(locals, params.slug, 'review');
    const app = services().app;
    const form = await request.formData();
    const text = (name: string) => {
      const v = form.get(name);
      return typeof v === 'string' ? v.trim() : '';
    };
    const errors: Errors = {};
    const values = {
      mode: text('mode') === 'pdf' ? 'pdf' : 'values',
      patient: text('patient'),
      identifier: text('identifier'),
      identifierSystem: text('identifierSystem'),
      familyName: text('familyName'),
      givenName: text('givenName'),
      birthDate: text('birthDate'),
      category: text('category'),
      title: text('title'),
      takenAt: text('takenAt'),
      interpretation: text('interpretation'),
      rows: Array.from({ length: ROWS }, (_, i) => ({
        code: text(`code-${i}`),
        name: text(`name-${i}`),
        value: text(`value-${i}`),
        unit: text(`unit-${i}`),
        low: text(`low-${i}`),
        high: text(`high-${i}`),
      })),
    };
    const nonce = text('nonce');
    const answer = (status: number, message: string) =>
      fail(status, { message, errors, values: { ...values, nonce } });

    // The patient: one picked from the search, or a new one described in full.
    let patientId: string | null = null;
    if (values.patient === 'new') {
      if (!values.identifier) errors.identifier = 'Give the patient’s identifier (e.g. the MRN).';
      if (!values.familyName) errors.familyName = 'Give the family name.';
      if (!/^\d{4}-\d{2}-\d{2}$/.test(values.birthDate))
        errors.birthDate = 'Give the birth date as YYYY-MM-DD.';
    } else if (UUID.test(values.patient)) {
      const [patient] = await findPatients(app.db, tenant.id, [values.patient]);
      if (!patient) errors.patient = 'That patient is not in this tenant.';
      else patientId = patient.id;
    } else {
      errors.patient = 'Pick a patient from the search, or choose “New patient”.';
    }
    const category = RESULT_CATEGORIES.find((c) => c.code === values.category);
    if (!category) errors.category = 'Choose the type of result.';
    if (values.interpretation.length > MAX_INTERPRETATION)
      errors.interpretation = `At most ${MAX_INTERPRETATION} characters.`;
    const takenAt = values.takenAt ? new Date(values.takenAt) : new Date();
    if (Number.isNaN(takenAt.getTime())) errors.takenAt = 'Give the date and time the specimen was taken.';

    let intake: Intake;
    if (values.mode === 'values') {
      const used = values.rows
        .map((row, i) => ({ row, i }))
        .filter(({ row }) => Object.values(row).some((v) => v !== ''));
      if (used.length === 0) errors['code-0'] = 'Enter at least one result.';
      for (const { row, i } of used) {
        if (!row.code) errors[`code-${i}`] = 'Give the test code (LOINC, e.g. 2345-7).';
        if (!row.name) errors[`name-${i}`] = 'Give the test name.';
        if (!row.value) errors[`value-${i}`] = 'Give the value.';
        for (const bound of ['low', 'high'] as const)
          if (row[bound] && !Number.isFinite(Number(row[bound])))
            errors[`${bound}-${i}`] = 'A number, e.g. 3.5.';
      }
      if (Object.keys(errors).length > 0) return answer(400, 'Some fields need attention.');
      const body = {
        patient:
          patientId !== null
            ? { id: patientId }
            : {
                identifiers: [
                  {
                    system: values.identifierSystem || `urn:labrelay:${tenant.slug}:mrn`,
                    value: values.identifier,
                    type: 'MR',
                  },
                ],
                familyName: values.familyName,
                ...(values.givenName ? { givenNames: [values.givenName] } : {}),
                birthDate: values.birthDate,
              },
        report: {
          code: {
            system: RESULT_CATEGORY_SYSTEM,
            code: category!.code,
            display: values.title || category!.display,
          },
          status: 'final',
          effectiveAt: takenAt.toISOString(),
          issuedAt: new Date().toISOString(),
        },
        results: used.map(({ row }) => ({
          code: { system: LOINC, code: row.code, display: row.name },
          value: row.value,
          ...(row.unit ? { unit: row.unit } : {}),
          ...(row.low || row.high
            ? {
                referenceRange: {
                  ...(row.low ? { low: Number(row.low) } : {}),
                  ...(row.high ? { high: Number(row.high) } : {}),
                },
              }
            : {}),
        })),
      };
      const raw = JSON.stringify(body);
      try {
        intake = simpleResultsIntake(raw, raw, { interpretation: values.interpretation });
      } catch (e) {
        if (!(e instanceof AppError)) throw e;
        for (const d of e.details ?? []) {
          const field = fieldOf(String((d as { path?: unknown }).path ?? ''));
          errors[field] ??= String((d as { message?: unknown }).message ?? e.message);
        }
        return answer(e.status, Object.keys(errors).length > 0 ? 'Some fields need attention.' : e.message);
      }
    } else {
      const file = form.get('file');
      if (!(file instanceof File) || file.size === 0) errors.file = 'Choose the PDF to upload.';
      if (Object.keys(errors).length > 0) return answer(400, 'Some fields need attention.');
      // The same form the documents API reads, with the hints a person gave.
      const upload = new FormData();
      upload.set('file', file as File);
      upload.set('category', category!.code);
      if (values.title) upload.set('title', values.title);
      if (patientId) upload.set('patientId', patientId);
      else {
        upload.set('mrn', values.identifier);
        upload.set('mrnSystem', values.identifierSystem || `urn:labrelay:${tenant.slug}:mrn`);
        upload.set('familyName', values.familyName);
        if (values.givenName) upload.set('givenName', values.givenName);
        upload.set('birthDate', values.birthDate);
      }
      try {
        intake = await documentIntake(upload, { interpretation: values.interpretation });
      } catch (e) {
        if (!(e instanceof AppError)) throw e;
        for (const d of e.details ?? []) {
          const field = fieldOf(String((d as { path?: unknown }).path ?? ''));
          errors[field] ??= String((d as { message?: unknown }).message ?? e.message);
        }
        return answer(e.status, e.message);
      }
    }

    let messageId: string;
    try {
      const stored = await storeIntake(
        app,
        {
          tenant,
          transport: 'console',
          credentialId: null,
          actor: actorOf(user),
          idempotencyKey: UUID.test(nonce) ? `console:${nonce}` : null,
        },
        intake,
      );
      if (stored.kind === 'duplicate' && stored.message.content_hash !== stored.contentHash)
        return answer(
          409,
          `This form was already submitted with different content (message ${stored.message.id}). Reload the page to enter a new result.`,
        );
      messageId = stored.kind === 'duplicate' ? stored.message.id : stored.messageId;
    } catch (e) {
      if (e instanceof AppError) return answer(e.status, e.message);
      throw e;
    }
    redirect(303, `/tenants/${tenant.slug}/messages/${messageId}`);
  },
} satisfies Actions;

/** The form field a validation path of the intake names (`results.1.value` → `value-1`). */
function fieldOf(path: string): string {
  const result = /^results\.(\d+)\.(code|value|unit|referenceRange)/.exec(path);
  if (result) {
    const [, i, what] = result;
    return what === 'referenceRange' ? `low-${i}` : what === 'code' ? `code-${i}` : `${what}-${i}`;
  }
  const patient = /^patient\.(\w+)/.exec(path);
  if (patient) {
    const what = patient[1]!;
    if (what === 'identifiers') return 'identifier';
    if (what === 'givenNames') return 'givenName';
    if (what === 'familyName' || what === 'birthDate') return what;
    return 'patient';
  }
  if (path === 'mrn' || path === 'mrnSystem') return 'identifier';
  if (path === 'patientId' || path === 'patient') return 'patient';
  if (['file', 'birthDate', 'familyName', 'givenName', 'title', 'category', 'interpretation'].includes(path))
    return path;
  if (path.startsWith('report.')) return 'takenAt';
  return 'form';
}
