import { z } from 'zod';
import {
  OBSERVATION_VALUE_TYPE,
  RESULT_STATUS,
  type Coding,
  type Identifier,
  type ObservationResult,
  type Practitioner,
  type ResultMessage,
  type ResultStatus,
} from '../../domain/model.ts';
import { parseReferenceRange } from '../../domain/flags.ts';

/**
 * The simple JSON result format (`POST /v1/t/{slug}/results`): one patient, one report and its
 * results, for senders without HL7 or FHIR. The schema validates the body and feeds the OpenAPI
 * description, so every field says what it means.
 */

const LOINC = 'http://loinc.org';
/** `system` names read as LOINC, as in the CSV format. */
const LOINC_NAMES: ReadonlySet<string> = new Set(['ln', 'loinc', 'http://loinc.org']);

/** An object that refuses keys it does not know, naming them (a typo is not silently dropped). */
function strictObject<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}: not part of the simple result format`
        : undefined,
  });
}

const text = (max: number) => z.string().trim().min(1).max(max);
/** There is no year 0 (and Postgres refuses it), though the ISO patterns allow it. */
const notYearZero = (s: string) => !s.startsWith('0000');
/** ISO 8601 date-time with `Z` or an offset; read as an instant. */
const dateTime = () => z.iso.datetime({ offset: true }).refine(notYearZero, 'year 0000 is not a date');

const CodeSchema = strictObject({
  system: text(200)
    .optional()
    .describe('Code system URI, e.g. http://loinc.org (LN and LOINC are read as LOINC); absent: local code'),
  code: text(100).describe('The code, e.g. LOINC 2823-3'),
  display: text(200).optional().describe('Name as the lab writes it, e.g. Potassium'),
});

const NOTES = z
  .array(text(2000))
  .max(20)
  .optional()
  .describe('Comments, each up to 2000 characters (at most 20)');

const STATUSES = ['preliminary', 'final', 'corrected', 'cancelled'] as const;

const PatientSchema = strictObject({
  id: z.guid().optional().describe('Our Patient id (a UUID from LabRelay), when the sender knows it'),
  externalPatientId: text(199)
    .optional()
    .describe(
      "The sender's own patient id: a patient is found by it, never created twice for it (kept as the patient's external id)",
    ),
  identifiers: z
    .array(
      strictObject({
        system: text(200).describe(
          'Assigning authority, e.g. urn:oid:2.16.840.1.113883.3.1 or a facility code',
        ),
        value: text(199).describe('The identifier, e.g. an MRN'),
        type: text(10).optional().describe('Identifier type (HL7 table 0203), e.g. MR'),
      }),
    )
    .min(1)
    .max(20)
    .optional()
    .describe('Identifiers with their assigning authority (matched against existing patients)'),
  familyName: text(200).optional().describe('Family name'),
  givenNames: z.array(text(100)).max(5).optional().describe('Given names, first name first'),
  birthDate: z.iso
    .date()
    .refine(notYearZero, 'year 0000 is not a date')
    .optional()
    .describe('Date of birth, YYYY-MM-DD'),
  sex: z.enum(['male', 'female', 'other', 'unknown']).optional().describe('Administrative sex (FHIR gender)'),
  email: z.email().max(254).optional().describe('E-mail address: without one the patient is not notified'),
  phone: text(40).optional().describe('Phone number'),
})
  .refine((p) => p.id !== undefined || p.externalPatientId !== undefined || p.identifiers !== undefined, {
    message: 'say who the patient is: give at least one of id, externalPatientId or identifiers',
  })
  .describe('The patient the results are for');

const OrderSchema = strictObject({
  placerOrderNumber: text(199)
    .optional()
    .describe('The ordering system’s order number (links results to the order)'),
  placerSystem: text(200).optional().describe('Namespace of placerOrderNumber'),
  fillerOrderNumber: text(199).optional().describe('The lab’s own order / accession number'),
  clientId: text(200)
    .optional()
    .describe('The client (ordering organisation) the order belongs to; keys scoped to clients must give it'),
  locationId: text(200).optional().describe('The ordering location; keys scoped to locations must give it'),
  orderingProvider: strictObject({
    id: text(100).optional().describe('Provider id, e.g. NPI'),
    familyName: text(200).optional().describe('Family name'),
    givenNames: z.array(text(100)).max(5).optional().describe('Given names'),
  })
    .optional()
    .describe('Who ordered the tests'),
}).describe('The order the results answer');

const ReportSchema = strictObject({
  code: CodeSchema.describe('The report (panel) code, e.g. LOINC 24323-8 comprehensive metabolic panel'),
  status: z.enum(STATUSES).optional().describe('Report status (default final)'),
  effectiveAt: dateTime().optional().describe('Specimen collection time, ISO 8601 with Z or an offset'),
  issuedAt: dateTime().optional().describe('Time the report was released, ISO 8601 with Z or an offset'),
  notes: NOTES,
}).describe('The report (one panel or order)');

const ResultSchema = strictObject({
  code: CodeSchema.describe('What was measured, e.g. LOINC 2823-3 potassium'),
  value: z
    .union([z.number(), text(2000)])
    .describe('A number, or text; text that is a number ("6.8", "<0.01") is read as a number'),
  comparator: z
    .enum(['<', '<=', '>', '>='])
    .optional()
    .describe('For a bounded numeric value: "<" with value 0.01 means <0.01'),
  unit: text(50).optional().describe('Unit of a numeric value, UCUM preferred, e.g. mmol/L'),
  referenceRange: strictObject({
    low: z.number().optional().describe('Lower limit'),
    high: z.number().optional().describe('Upper limit'),
    text: text(100).optional().describe('The range as printed, e.g. 3.5-5.1 or <200'),
  })
    .refine((r) => r.low === undefined || r.high === undefined || r.low <= r.high, {
      message: 'low is above high',
    })
    .optional()
    .describe('Reference range'),
  flags: z
    .array(text(5))
    .max(5)
    .optional()
    .describe('Abnormal flags as the lab gives them (HL7 table 0078): H, L, HH, LL, A, AA, N'),
  status: z.enum(STATUSES).optional().describe("Result status (default: the report's status)"),
  effectiveAt: dateTime().optional().describe("Collection time of this result (default: the report's)"),
  notes: NOTES,
})
  .superRefine((r, ctx) => {
    if (r.comparator === undefined || typeof r.value === 'number') return;
    const parsed = numberOf(r.value);
    if (!parsed)
      ctx.addIssue({ code: 'custom', message: 'a comparator needs a numeric value', path: ['comparator'] });
    else if (parsed.comparator && parsed.comparator !== r.comparator)
      ctx.addIssue({
        code: 'custom',
        message: `the value says ${parsed.comparator} and the comparator ${r.comparator}: give it once`,
        path: ['comparator'],
      });
  })
  .describe('One result');

/**
 * The simple JSON result format. Unknown fields are refused with their place (`patient: unknown
 * field(s) "nickname"`), so a misspelt field is never silently dropped.
 */
export const SimpleResultsSchema = strictObject({
  patient: PatientSchema,
  order: OrderSchema.optional(),
  report: ReportSchema,
  results: z.array(ResultSchema).min(1).max(1000).describe('The results (1 to 1000)'),
}).describe('Results for one patient: one report and its results');

export type SimpleResults = z.infer<typeof SimpleResultsSchema>;

/** A realistic body for the documentation: a critical potassium from a comprehensive metabolic panel. */
export const SIMPLE_RESULTS_EXAMPLE = {
  patient: {
    externalPatientId: 'EHR-100234',
    identifiers: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: 'MRN123456', type: 'MR' }],
    familyName: 'Doe',
    givenNames: ['Jane'],
    birthDate: '1980-01-15',
    sex: 'female',
    email: 'jane.doe@example.org',
  },
  order: {
    placerOrderNumber: 'ORD-1001',
    placerSystem: 'urn:oid:2.16.840.1.113883.19.5.2',
    fillerOrderNumber: 'ACC-26-0012',
    orderingProvider: { id: '1234567893', familyName: 'Welby', givenNames: ['Marcus'] },
  },
  report: {
    code: { system: LOINC, code: '24323-8', display: 'Comprehensive metabolic panel' },
    status: 'final',
    effectiveAt: '2026-11-22T07:00:00-05:00',
    issuedAt: '2026-11-22T08:25:00-05:00',
  },
  results: [
    {
      code: { system: LOINC, code: '2823-3', display: 'Potassium' },
      value: 6.8,
      unit: 'mmol/L',
      referenceRange: { low: 3.5, high: 5.1, text: '3.5-5.1' },
      flags: ['HH'],
      notes: ['Specimen not hemolyzed.'],
    },
    {
      code: { system: LOINC, code: '2951-2', display: 'Sodium' },
      value: 139,
      unit: 'mmol/L',
      referenceRange: { low: 135, high: 145 },
    },
  ],
} satisfies SimpleResults;

/**
 * Maps a validated simple JSON result to the canonical {@link ResultMessage}: one message, one
 * report. `patient.externalPatientId` becomes the patient's `externalId` only (not also an
 * identifier: it has no assigning authority, and the external id is how that sender's patients are
 * found); `identifiers` are kept as given. Text values that are numbers become quantities, so a
 * critical value sent as `"6.8"` is still checked. Times are normalised to UTC instants.
 *
 * @example simpleResultsToResultMessage(SimpleResultsSchema.parse(SIMPLE_RESULTS_EXAMPLE)).reports[0].observations[0].numericValue // 6.8
 */
export function simpleResultsToResultMessage(body: SimpleResults): ResultMessage {
  const { patient, order, report } = body;
  const reportStatus: ResultStatus = report.status ?? RESULT_STATUS.final;
  const reportEffectiveAt = instant(report.effectiveAt);
  const identifiers: Identifier[] = (patient.identifiers ?? []).map((i) => ({
    system: i.system,
    value: i.value,
    type: i.type ?? null,
  }));
  const provider = order?.orderingProvider;
  const orderingProvider: Practitioner | null =
    provider && (provider.id || provider.familyName)
      ? {
          id: provider.id ?? null,
          familyName: provider.familyName ?? null,
          givenNames: provider.givenNames ?? [],
        }
      : null;
  const observations = body.results.map((r, i): ObservationResult => ({
    sequence: i + 1,
    code: coding(r.code),
    ...valueOf(r.value, r.comparator),
    unit: r.unit ?? null,
    referenceRange: r.referenceRange
      ? {
          low: r.referenceRange.low ?? null,
          high: r.referenceRange.high ?? null,
          text: r.referenceRange.text ?? null,
          // A range given only as text ("3.5-5.1") still gets its bounds.
          ...(r.referenceRange.low === undefined &&
          r.referenceRange.high === undefined &&
          r.referenceRange.text
            ? pickBounds(parseReferenceRange(r.referenceRange.text))
            : {}),
        }
      : null,
    sourceFlags: (r.flags ?? []).map((f) => f.toUpperCase()),
    status: r.status ?? reportStatus,
    effectiveAt: instant(r.effectiveAt) ?? reportEffectiveAt,
    ...(r.notes ? { notes: r.notes } : {}),
  }));
  return {
    patient: {
      identifiers,
      familyName: patient.familyName ?? null,
      givenNames: patient.givenNames ?? [],
      birthDate: patient.birthDate ?? null,
      sex: patient.sex ?? null,
      internalId: patient.id ?? null,
      externalId: patient.externalPatientId ?? null,
      email: patient.email ?? null,
      phone: patient.phone ?? null,
    },
    reports: [
      {
        placerOrderNumber: order?.placerOrderNumber ?? null,
        placerAuthority: order?.placerSystem ?? null,
        fillerOrderNumber: order?.fillerOrderNumber ?? null,
        ...(order?.clientId ? { clientId: order.clientId } : {}),
        ...(order?.locationId ? { locationId: order.locationId } : {}),
        code: coding(report.code),
        status: reportStatus,
        orderingProvider,
        effectiveAt: reportEffectiveAt,
        issuedAt: instant(report.issuedAt),
        observations,
        ...(report.notes ? { notes: report.notes } : {}),
      },
    ],
  };
}

function coding(code: { system?: string; code: string; display?: string }): Coding {
  const system = code.system ?? null;
  return {
    system: system && LOINC_NAMES.has(system.toLowerCase()) ? LOINC : system,
    code: code.code,
    display: code.display ?? null,
  };
}

function pickBounds(range: { low: number | null; high: number | null }) {
  return { low: range.low, high: range.high };
}

/** A number, optionally bounded (`<0.01`), or null. */
function numberOf(text: string): { value: number; comparator: string | null } | null {
  const m = /^(<=|>=|<|>)?\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$/.exec(text.trim());
  if (!m) return null;
  const value = Number(m[2]);
  return Number.isFinite(value) ? { value, comparator: m[1] ?? null } : null;
}

function valueOf(
  value: number | string,
  comparator: string | undefined,
): Pick<ObservationResult, 'valueType' | 'numericValue' | 'comparator' | 'textValue'> {
  const parsed = typeof value === 'number' ? { value, comparator: null } : numberOf(value);
  if (!parsed)
    return {
      valueType: OBSERVATION_VALUE_TYPE.text,
      numericValue: null,
      comparator: null,
      textValue: String(value),
    };
  const bound = parsed.comparator ?? comparator ?? null;
  return {
    valueType: OBSERVATION_VALUE_TYPE.quantity,
    numericValue: parsed.value,
    comparator: bound,
    textValue: parsed.comparator ? String(value) : `${bound ?? ''}${String(value)}`,
  };
}

function instant(text: string | undefined): string | null {
  if (!text) return null;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toISOString();
}
