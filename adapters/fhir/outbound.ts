import {
  toDiagnosticReport,
  toObservation,
  toPatient,
  type FhirResource,
  type ReleasedResult,
} from './resources.ts';

/**
 * A released report as a FHIR R4 transaction Bundle for a hospital's FHIR server
 * (https://hl7.org/fhir/R4/http.html#transaction). Every resource carries LabRelay's own
 * identifier, and is written conditionally on it: the Patient by conditional create (`ifNoneExist`
 * on the hospital's identifier, so the hospital's own patient record is found, never overwritten),
 * the DiagnosticReport and each Observation by conditional update (`PUT Type?identifier=…`), so a
 * retried or re-sent delivery never duplicates and a correction updates what was sent before.
 * References inside the Bundle point at `urn:uuid:` full URLs, which the server resolves.
 *
 * @example
 * toDeliveryBundle(result).entry[1].request // { method: 'PUT', url: 'DiagnosticReport?identifier=urn%3Alabrelay%3Ademo%2Freport|<first report id>' }
 */
export function toDeliveryBundle(result: ReleasedResult): FhirResource & { entry: BundleEntry[] } {
  const system = result.identifierSystem;
  const ours = (kind: string, id: string) => ({ system: `${system}/${kind}`, value: id });
  const conditional = (kind: string, id: string) =>
    `identifier=${encodeURIComponent(`${system}/${kind}`)}|${encodeURIComponent(id)}`;
  const entries: BundleEntry[] = [];

  let patientUrl: string | null = null;
  if (result.patient) {
    const patient = withoutServerFields(toPatient(result.patient));
    const identifiers = [
      ...((patient.identifier as Identifier[] | undefined) ?? []),
      ours('patient', result.patient.id),
    ];
    const match = identifiers.find((i) => i.system) ?? ours('patient', result.patient.id);
    patientUrl = `urn:uuid:${result.patient.id}`;
    entries.push({
      fullUrl: patientUrl,
      resource: { ...patient, identifier: identifiers },
      request: {
        method: 'POST',
        url: 'Patient',
        ifNoneExist: `identifier=${encodeURIComponent(match.system!)}|${encodeURIComponent(match.value)}`,
      },
    });
  }

  const observationUrls = result.observations.map((o) => `urn:uuid:${o.id}`);
  // `subject` is rebuilt: our Patient/{id} means nothing on the hospital's server.
  const report = withoutServerFields(toDiagnosticReport(result.report), 'subject');
  entries.push({
    fullUrl: `urn:uuid:${result.report.id}`,
    resource: {
      ...report,
      identifier: [
        ...((report.identifier as Identifier[] | undefined) ?? []),
        ours('report', result.reportKey),
      ],
      ...(patientUrl ? { subject: { reference: patientUrl } } : {}),
      result: observationUrls.map((reference) => ({ reference })),
      ...(result.notes.length > 0 ? { conclusion: result.notes.join('\n') } : {}),
    },
    request: { method: 'PUT', url: `DiagnosticReport?${conditional('report', result.reportKey)}` },
  });

  // A result is known by its report line and its test (the n-th result of the same test, when repeated).
  const seen = new Map<string, number>();
  for (const o of result.observations) {
    const test = o.code.code;
    const n = (seen.get(test) ?? 0) + 1;
    seen.set(test, n);
    const key = `${result.reportKey}/${test}${n > 1 ? `/${n}` : ''}`;
    const observation = withoutServerFields(toObservation(o), 'subject');
    entries.push({
      fullUrl: `urn:uuid:${o.id}`,
      resource: {
        ...observation,
        identifier: [ours('observation', key)],
        ...(patientUrl ? { subject: { reference: patientUrl } } : {}),
      },
      request: { method: 'PUT', url: `Observation?${conditional('observation', key)}` },
    });
  }
  return { resourceType: 'Bundle', type: 'transaction', entry: entries };
}

/** The server assigns its own ids and versions: ours travel as identifiers. */
function withoutServerFields(resource: FhirResource, ...alsoDrop: string[]): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...resource };
  for (const key of ['id', 'meta', ...alsoDrop]) delete copy[key];
  return copy;
}

interface Identifier {
  system?: string;
  value: string;
}

interface TransactionResponse {
  status?: unknown;
  location?: unknown;
  outcome?: { issue?: { diagnostics?: string; details?: { text?: string } }[] };
}

export interface BundleEntry {
  fullUrl: string;
  resource: Record<string, unknown>;
  request: { method: 'POST' | 'PUT'; url: string; ifNoneExist?: string };
}

/**
 * Reads a server's answer to a delivery Bundle (a `transaction-response`): every entry must have
 * succeeded (2xx). Returns where the DiagnosticReport now lives on that server.
 *
 * @throws Error naming the entry that failed, or saying the answer is not a transaction-response.
 */
export function deliveryOutcome(response: unknown): { reportLocation: string | null } {
  const bundle = response as { resourceType?: unknown; type?: unknown; entry?: unknown };
  if (
    bundle?.resourceType !== 'Bundle' ||
    bundle.type !== 'transaction-response' ||
    !Array.isArray(bundle.entry)
  )
    throw new Error('the answer is not a transaction-response Bundle');
  let reportLocation: string | null = null;
  for (const [index, entry] of (bundle.entry as { response?: TransactionResponse }[]).entries()) {
    const status = String(entry.response?.status ?? '');
    if (!/^2\d\d(\s|$)/.test(status)) {
      const said = (entry.response?.outcome?.issue ?? [])
        .map((i) => i.diagnostics ?? i.details?.text)
        .filter(Boolean)
        .join('; ');
      throw new Error(
        `entry ${index} was not stored (status ${status || 'missing'})${said ? `: ${said}` : ''}`,
      );
    }
    const location = entry.response?.location;
    if (typeof location === 'string' && /(^|\/)DiagnosticReport\//.test(location) && !reportLocation)
      reportLocation = location.slice(location.indexOf('DiagnosticReport/'));
  }
  return { reportLocation };
}
