import { randomUUID } from 'node:crypto';
import type { Identifier, PatientDemographics } from '../domain/model.ts';
import { demographicKey } from '../domain/reconciliation.ts';
import type { Patient } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/** The tenant's patients holding any of these identifiers (system + value), without duplicates. */
export async function findPatientsByIdentifiers(
  db: Db,
  tenantId: string,
  identifiers: Identifier[],
): Promise<string[]> {
  // An identifier without its assigning authority is only a number: two senders' bare "12345" are
  // not the same patient, so those never match.
  identifiers = identifiers.filter((i) => i.system !== '');
  if (identifiers.length === 0) return [];
  const rows = await tenantScope(db, tenantId)
    .selectFrom('patient_identifiers')
    .select('patient_id')
    .where((eb) =>
      eb.or(identifiers.map((i) => eb.and([eb('system', '=', i.system), eb('value', '=', i.value)]))),
    )
    .distinct()
    .execute();
  return rows.map((r) => r.patient_id);
}

/** Creates a patient with its identifiers; an identifier already held by the patient is kept once. */
export async function insertPatient(
  db: Db,
  tenantId: string,
  demographics: PatientDemographics,
): Promise<string> {
  const id = randomUUID();
  await db
    .insertInto('patients')
    .values({
      id,
      tenant_id: tenantId,
      family_name: demographics.familyName,
      given_names: JSON.stringify(demographics.givenNames),
      birth_date: demographics.birthDate,
      sex: demographics.sex,
      external_id: demographics.externalId ?? null,
      email: demographics.email ?? null,
      phone: demographics.phone ?? null,
      demographic_key: demographicKey(demographics),
    })
    .execute();
  await addPatientIdentifiers(db, tenantId, id, demographics.identifiers);
  return id;
}

export async function addPatientIdentifiers(
  db: Db,
  tenantId: string,
  patientId: string,
  identifiers: Identifier[],
): Promise<void> {
  if (identifiers.length === 0) return;
  await db
    .insertInto('patient_identifiers')
    .values(
      identifiers.map((i) => ({
        tenant_id: tenantId,
        patient_id: patientId,
        system: i.system,
        value: i.value,
        type: i.type,
      })),
    )
    .onConflict((oc) => oc.columns(['tenant_id', 'system', 'value']).doNothing())
    .execute();
}

export interface PatientWithIdentifiers extends Patient {
  identifiers: Identifier[];
}

export async function findPatients(
  db: Db,
  tenantId: string,
  ids: string[],
): Promise<PatientWithIdentifiers[]> {
  if (ids.length === 0) return [];
  const scope = tenantScope(db, tenantId);
  const patients = await scope.selectFrom('patients').selectAll().where('id', 'in', ids).execute();
  const identifiers = await scope
    .selectFrom('patient_identifiers')
    .selectAll()
    .where('patient_id', 'in', ids)
    .execute();
  return patients.map((p) => ({
    ...p,
    identifiers: identifiers
      .filter((i) => i.patient_id === p.id)
      .map((i) => ({ system: i.system, value: i.value, type: i.type })),
  }));
}

/**
 * Creates or updates a patient sent on its own (a FHIR Patient, seed 003 "create/update patients"):
 * found by our id, else the sender's external id (seed 003 `externalPatientID`: never a second
 * patient for it), else an identifier with its assigning authority; found → new identifiers and
 * contact details are added; not found → created. Identifiers that point at two patients are
 * refused (`ambiguous`), never merged.
 */
export async function upsertPatient(
  db: Db,
  tenantId: string,
  demographics: PatientDemographics,
): Promise<{ id: string; created: boolean } | { ambiguous: string[] } | { unknownId: string }> {
  const scope = tenantScope(db, tenantId);
  let id: string | undefined;
  if (demographics.internalId) {
    const row = await scope
      .selectFrom('patients')
      .select('id')
      .where('id', '=', demographics.internalId)
      .executeTakeFirst();
    if (!row) return { unknownId: demographics.internalId };
    id = row.id;
  }
  if (!id && demographics.externalId) {
    id = (
      await scope
        .selectFrom('patients')
        .select('id')
        .where('external_id', '=', demographics.externalId)
        .executeTakeFirst()
    )?.id;
  }
  if (!id) {
    const matches = await findPatientsByIdentifiers(db, tenantId, demographics.identifiers);
    if (matches.length > 1) return { ambiguous: matches };
    id = matches[0];
  }
  if (!id) return { id: await insertPatient(db, tenantId, demographics), created: true };
  await scope
    .updateTable('patients')
    .set({
      ...(demographics.email ? { email: demographics.email } : {}),
      ...(demographics.phone ? { phone: demographics.phone } : {}),
      ...(demographics.externalId ? { external_id: demographics.externalId } : {}),
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .execute();
  await addPatientIdentifiers(db, tenantId, id, demographics.identifiers);
  return { id, created: false };
}
