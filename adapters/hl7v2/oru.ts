import {
  OBSERVATION_VALUE_TYPE,
  RESULT_STATUS,
  type Coding,
  type Identifier,
  type LabReport,
  type ObservationResult,
  type PatientDemographics,
  type Practitioner,
  type ReportDocument,
  type ResultMessage,
  type ResultStatus,
} from '../../domain/model.ts';
import { parseReferenceRange } from '../../domain/flags.ts';
import { HL7_ERROR, type AckError } from './ack.ts';
import type { Hl7Field, Hl7Message, Hl7Segment } from './message.ts';

/** A message that parsed but cannot be accepted as a result: answered `MSA|AE` (or AR) with these. */
export class Hl7ContentError extends Error {
  override readonly name = 'Hl7ContentError';
  readonly errors: AckError[];
  /** True when MSH-9/11/12 themselves are unacceptable (answered AR rather than AE). */
  readonly reject: boolean;
  constructor(errors: AckError[], reject = false) {
    super(errors.map((e) => e.message).join('; '));
    this.errors = errors;
    this.reject = reject;
  }
}

/** A table lookup that never answers with an inherited property (`constructor`, `toString`). */
export function lookup<T>(table: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

/** EI.1 is at most 199 characters (v2.5.1); longer ones could not name a workflow either. */
export const MAX_ORDER_NUMBER_LENGTH = 199;
/** OBX-1 is stored as a 32-bit integer; a set id beyond it is replaced by the result's position. */
const MAX_SET_ID = 1_000_000;

const SUPPORTED_VERSIONS = /^2\.(3|3\.1|4|5|5\.1|6|7|7\.1|8)$/;

/** Coding systems whose HL7 table 0396 names map to canonical FHIR system URIs. */
const CODING_SYSTEMS: Record<string, string> = {
  LN: 'http://loinc.org',
  SCT: 'http://snomed.info/sct',
  SNM: 'http://snomed.info/sct',
  UCUM: 'http://unitsofmeasure.org',
  L: 'urn:labrelay:local',
  '99LOC': 'urn:labrelay:local',
};

/** A coding system's canonical URI when HL7 table 0396 names one we know, else the name as sent. */
export function codingSystem(name: string): string | null {
  return lookup(CODING_SYSTEMS, name) ?? (name || null);
}

/**
 * The message types a mapping accepts, by message code (MSH-9.1) and trigger event (MSH-9.2), e.g.
 * `{ ORU: 'R01' }`.
 */
export type AcceptedMessageTypes = Readonly<Record<string, string>>;

const RESULT_MESSAGE_TYPES: AcceptedMessageTypes = { ORU: 'R01' };

/**
 * Refuses (AR, {@link Hl7ContentError} with `reject`) a message whose version (MSH-12) or type
 * (MSH-9) the mapping cannot read: the answer names MSH-12 or MSH-9 as HL7 v2.5.1 chapter 2,
 * section 2.9.2 asks (MSA-1 AR for MSH-9, MSH-11, MSH-12 problems).
 *
 * @example checkMessageHeader(msg, { ORM: 'O01', OML: 'O21' }); // throws on an ORU^R01
 */
export function checkMessageHeader(msg: Hl7Message, accepted: AcceptedMessageTypes): void {
  const version = msg.version;
  if (!SUPPORTED_VERSIONS.test(version)) {
    throw new Hl7ContentError(
      [
        {
          code: HL7_ERROR.unsupportedVersionId,
          location: 'MSH-12',
          message: `HL7 version ${version} is not supported (2.3 to 2.8)`,
        },
      ],
      true,
    );
  }
  const code = msg.header.get(9, 1);
  const trigger = msg.header.get(9, 2);
  const expected = Object.entries(accepted)
    .map(([c, t]) => `${c}^${t}`)
    .join(' or ');
  const expectedTrigger = lookup(accepted, code);
  if (expectedTrigger === undefined) {
    throw new Hl7ContentError(
      [
        {
          code: HL7_ERROR.unsupportedMessageType,
          location: 'MSH-9',
          message: `message type ${msg.messageType} is not accepted here (${expected} expected)`,
        },
      ],
      true,
    );
  }
  if (trigger !== expectedTrigger) {
    throw new Hl7ContentError(
      [
        {
          code: HL7_ERROR.unsupportedEventCode,
          location: 'MSH-9',
          message: `trigger event ${trigger || '(none)'} is not supported (${expectedTrigger} expected)`,
        },
      ],
      true,
    );
  }
}

/**
 * The patient of a message (its first PID), read as every HL7 v2 mapping reads it; refuses a message
 * without a PID at once, since nothing else can be filed without one.
 */
export function readMessagePatient(msg: Hl7Message, errors: AckError[]): PatientDemographics {
  const pid = msg.segment('PID');
  if (!pid) {
    throw new Hl7ContentError([
      { code: HL7_ERROR.requiredFieldMissing, location: 'PID', message: 'the PID segment is missing' },
    ]);
  }
  return readPatient(pid, errors);
}

/** One OBX as sent, with the NTE comments that follow it. */
interface ResultEntry {
  obx: Hl7Segment;
  notes: string[];
}

/** One ORDER_OBSERVATION group: its OBR, the ORC before it, its comments and its results. */
interface OrderGroup {
  obr: Hl7Segment;
  orc: Hl7Segment | undefined;
  notes: string[];
  results: ResultEntry[];
}

/**
 * Maps an ORU^R01 (unsolicited observation result) to the canonical {@link ResultMessage}.
 * One report per OBR group, with the OBX segments that follow it.
 *
 * - An NTE right after the OBR (or after its other NTEs) is a comment on the report (`notes`); an NTE
 *   after an OBX is a comment on that result. An NTE after the PID is a comment on the patient, which
 *   the canonical model has no place for: it is not filed under any report (filing it under one of
 *   several reports would say something the sender did not).
 * - An OBX of value type ED carries a document (a PDF report): it becomes one of the report's
 *   `documents`, not a result; NTEs after it go to the report's notes.
 * - Z-segments are kept as sent in `extraSegments`; they do not interrupt the NTE rules above.
 *
 * HL7 v2.5.1 chapter 7, section 7.3.1 (ORU^R01), 7.4.1 (OBR) and 7.4.2 (OBX); chapter 2, 2.15.10 (NTE).
 *
 * @throws {Hl7ContentError} listing every problem found, each with its location.
 */
export function oruToResultMessage(msg: Hl7Message): ResultMessage {
  checkMessageHeader(msg, RESULT_MESSAGE_TYPES);
  const errors: AckError[] = [];
  // MSH-7, the time of the message, must be a timestamp when given (it is required from v2.4 on).
  readTimestamp(msg.header, 7, errors);
  const patient = readMessagePatient(msg, errors);

  const groups: OrderGroup[] = [];
  const extraSegments: string[] = [];
  let orc: Hl7Segment | undefined;
  let current: OrderGroup | undefined;
  // Where the next NTE belongs: the current report, one of its results, or nowhere.
  let notesGoTo: string[] | null = null;
  for (const seg of msg.segments) {
    if (isZSegment(seg)) {
      extraSegments.push(seg.rawFields.join(seg.encoding.field));
      continue;
    }
    switch (seg.name) {
      case 'ORC':
        orc = seg;
        notesGoTo = null;
        break;
      case 'OBR':
        current = { obr: seg, orc, notes: [], results: [] };
        groups.push(current);
        orc = undefined;
        notesGoTo = current.notes;
        break;
      case 'OBX': {
        if (!current) {
          errors.push({
            code: HL7_ERROR.segmentSequence,
            location: 'OBX',
            message: 'an OBX segment comes before any OBR',
          });
          notesGoTo = null;
          break;
        }
        const entry: ResultEntry = { obx: seg, notes: [] };
        current.results.push(entry);
        notesGoTo = entry.notes;
        break;
      }
      case 'NTE': {
        const text = readNote(seg);
        if (text !== null) notesGoTo?.push(text);
        break;
      }
      default:
        notesGoTo = null;
    }
  }
  if (groups.length === 0) {
    errors.push({
      code: HL7_ERROR.requiredFieldMissing,
      location: 'OBR',
      message: 'the message has no OBR segment',
    });
  }
  const reports = groups.map((group, i) => ({
    ...readReport(group, i + 1, errors),
    ...accessScopeOf(group.orc, msg.segment('PV1')),
  }));
  if (errors.length > 0) throw new Hl7ContentError(errors);
  return extraSegments.length > 0 ? { patient, reports, extraSegments } : { patient, reports };
}

/** Z-segments are site-defined (HL7 v2.5.1 chapter 2, 2.8.2): kept, never read. */
export function isZSegment(seg: Hl7Segment): boolean {
  return seg.name.startsWith('Z');
}

/**
 * The text of an NTE (NTE-3, FT): repetitions are lines, formatting escapes such as `\.br\` are line
 * breaks. A blank NTE (senders use them as spacer lines) is no comment at all.
 */
export function readNote(nte: Hl7Segment): string | null {
  // Joining components back keeps a `^` the sender forgot to escape as the text it was.
  const text = nte
    .repetitions(3)
    .map((line) => line.components().join(nte.encoding.component))
    .join('\n');
  return text.trim() === '' ? null : text;
}

/**
 * Reads PID-3 (identifiers), PID-5 (name), PID-7 (birth date), PID-8 (sex) and PID-13 (contact),
 * adding a problem to `errors` for what cannot be read. Shared by every HL7 v2 mapping.
 */
export function readPatient(pid: Hl7Segment, errors: AckError[]): PatientDemographics {
  const identifiers: Identifier[] = [];
  for (const cx of pid.repetitions(3)) {
    const value = cx.component(1).trim();
    if (!value) continue;
    identifiers.push({
      value,
      system: cx.component(4, 1) || cx.component(4, 2) || '',
      type: cx.component(5) || null,
    });
  }
  if (identifiers.length === 0) {
    errors.push({
      code: HL7_ERROR.requiredFieldMissing,
      location: 'PID-3',
      message: 'PID-3 (patient identifier list) is empty',
    });
  }
  const name = pid.field(5);
  const birth = pid.get(7);
  let birthDate: string | null = null;
  if (birth) {
    birthDate = hl7DateOnly(birth);
    if (!birthDate)
      errors.push({
        code: HL7_ERROR.dataType,
        location: 'PID-7',
        message: `PID-7 date of birth ${birth} is not an HL7 date`,
      });
  }
  return {
    identifiers,
    familyName: name.component(1) || null,
    givenNames: [name.component(2), name.component(3)].filter((g) => g !== ''),
    birthDate,
    sex: lookup(SEX, pid.get(8).toUpperCase()) ?? null,
    ...readContact(pid),
  };
}

/**
 * PID-13 (home phone/e-mail, XTN): an e-mail is XTN-4 (use code NET, or any value with an @); a phone
 * is XTN-1 (2.3) or XTN-5/6/7 (country, area, local number).
 */
function readContact(pid: Hl7Segment): { email: string | null; phone: string | null } {
  let email: string | null = null;
  let phone: string | null = null;
  for (const xtn of pid.repetitions(13)) {
    const address = xtn.component(4).trim();
    if (!email && address.includes('@')) email = address;
    const number =
      [xtn.component(5), xtn.component(6), xtn.component(7)].filter(Boolean).join(' ') ||
      (xtn.component(1).includes('@') ? '' : xtn.component(1));
    if (!phone && number.trim() && xtn.component(2) !== 'NET') phone = number.trim();
  }
  return { email, phone };
}

const SEX: Record<string, string> = {
  M: 'male',
  F: 'female',
  O: 'other',
  A: 'other',
  U: 'unknown',
  N: 'unknown',
};

function readReport(group: OrderGroup, groupNumber: number, errors: AckError[]): LabReport {
  const { obr, orc } = group;
  const where = (field: number) => `OBR-${field}` + (groupNumber > 1 ? ` (order ${groupNumber})` : '');
  const placer = obr.get(2) || orc?.get(2) || null;
  const filler = obr.get(3) || orc?.get(3) || null;
  if (!placer && !filler) {
    errors.push({
      code: HL7_ERROR.requiredFieldMissing,
      location: where(2),
      message: `${where(2)}/OBR-3: the order has neither a placer nor a filler order number`,
    });
  }
  for (const [field, value] of [
    [2, placer],
    [3, filler],
  ] as const) {
    if (value && value.length > MAX_ORDER_NUMBER_LENGTH) {
      errors.push({
        code: HL7_ERROR.dataType,
        location: where(field),
        message: `${where(field)} order number is longer than ${MAX_ORDER_NUMBER_LENGTH} characters`,
      });
    }
  }
  const code = readCoding(obr.field(4));
  if (!code)
    errors.push({
      code: HL7_ERROR.requiredFieldMissing,
      location: where(4),
      message: `${where(4)} (universal service identifier) is empty`,
    });
  const effectiveAt = readTimestamp(obr, 7, errors);
  const issuedAt = readTimestamp(obr, 22, errors);
  const statusCode = obr.get(25);
  const status = statusCode ? lookup(OBR_STATUS, statusCode.toUpperCase()) : RESULT_STATUS.final;
  if (!status) {
    errors.push({
      code: HL7_ERROR.tableValueNotFound,
      location: where(25),
      message: `${where(25)} result status ${statusCode} is not in HL7 table 0123`,
    });
  }
  const observations: ObservationResult[] = [];
  const documents: ReportDocument[] = [];
  const notes = [...group.notes];
  const seen = new Set<number>();
  for (const [i, entry] of group.results.entries()) {
    const read = readObservation(entry.obx, i + 1, errors);
    if (!read) continue;
    if ('documents' in read) {
      documents.push(...read.documents);
      // A comment on a document is a comment on the report it presents.
      notes.push(...entry.notes);
      continue;
    }
    const obs = read.observation;
    // A repeated OBX-1: keep both results, the later one under the next free number.
    while (seen.has(obs.sequence)) obs.sequence = Math.max(...seen) + 1;
    seen.add(obs.sequence);
    if (entry.notes.length > 0) obs.notes = entry.notes;
    observations.push(obs);
  }
  const report: LabReport = {
    placerOrderNumber: placer,
    fillerOrderNumber: filler,
    placerAuthority: entityNamespace(obr.field(2)) ?? (orc ? entityNamespace(orc.field(2)) : null),
    code: code ?? { system: null, code: '', display: null },
    status: status ?? RESULT_STATUS.final,
    orderingProvider: readPractitioner(obr.field(16)) ?? (orc ? readPractitioner(orc.field(12)) : null),
    effectiveAt,
    issuedAt,
    observations,
  };
  if (notes.length > 0) report.notes = notes;
  if (documents.length > 0) report.documents = documents;
  return report;
}

/**
 * Seed 003's access scope of an order: the client is the ordering facility (ORC-21, XON: its
 * organisation identifier XON-10, else its name), the location the patient's point of care
 * (PV1-3.1). Only what the sender gave is set.
 */
export function accessScopeOf(
  orc: Hl7Segment | undefined,
  pv1: Hl7Segment | undefined,
): { clientId?: string; locationId?: string } {
  const facility = orc?.field(21);
  const clientId = (facility?.component(10).trim() || facility?.component(1).trim()) ?? '';
  const locationId = pv1?.get(3, 1).trim() ?? '';
  return { ...(clientId ? { clientId } : {}), ...(locationId ? { locationId } : {}) };
}

/**
 * The namespace of an entity identifier (EI-2, e.g. `EPC` in `1200345^EPC`), else its universal id
 * (EI-3, an OID), as PID-3 reads CX-4; null when the sender gave neither.
 */
export function entityNamespace(ei: Hl7Field): string | null {
  return ei.component(2).trim() || ei.component(3).trim() || null;
}

/** HL7 table 0123 (result status) to FHIR DiagnosticReport.status. */
const OBR_STATUS: Record<string, ResultStatus> = {
  O: RESULT_STATUS.registered,
  I: RESULT_STATUS.registered,
  S: RESULT_STATUS.registered,
  R: RESULT_STATUS.preliminary,
  P: RESULT_STATUS.preliminary,
  A: RESULT_STATUS.preliminary,
  F: RESULT_STATUS.final,
  C: RESULT_STATUS.corrected,
  M: RESULT_STATUS.amended,
  X: RESULT_STATUS.cancelled,
  Y: RESULT_STATUS.registered,
  Z: RESULT_STATUS.registered,
};

/** HL7 table 0085 (observation result status) to FHIR Observation.status. */
const OBX_STATUS: Record<string, ResultStatus> = {
  F: RESULT_STATUS.final,
  P: RESULT_STATUS.preliminary,
  R: RESULT_STATUS.preliminary,
  S: RESULT_STATUS.preliminary,
  I: RESULT_STATUS.registered,
  C: RESULT_STATUS.corrected,
  D: RESULT_STATUS.enteredInError,
  W: RESULT_STATUS.enteredInError,
  X: RESULT_STATUS.cancelled,
  U: RESULT_STATUS.final,
  O: RESULT_STATUS.registered,
  A: RESULT_STATUS.amended,
  N: RESULT_STATUS.cancelled,
};

/** How LabRelay reads each OBX-2 value type. */
const VALUE_KIND = {
  quantity: 'quantity',
  coded: 'coded',
  text: 'text',
  document: 'document',
} as const;
type ValueKind = (typeof VALUE_KIND)[keyof typeof VALUE_KIND];

/**
 * HL7 table 0125 (value type, v2.3 to v2.8). Types without a reading of their own (dates, names,
 * addresses, reference pointers...) are kept as their text, as sent; a type outside the table is refused.
 */
const VALUE_TYPES: Record<string, ValueKind> = {
  NM: VALUE_KIND.quantity,
  SN: VALUE_KIND.quantity,
  CE: VALUE_KIND.coded,
  CWE: VALUE_KIND.coded,
  CNE: VALUE_KIND.coded,
  ED: VALUE_KIND.document,
  ST: VALUE_KIND.text,
  TX: VALUE_KIND.text,
  FT: VALUE_KIND.text,
  DT: VALUE_KIND.text,
  DTM: VALUE_KIND.text,
  TS: VALUE_KIND.text,
  TM: VALUE_KIND.text,
  DR: VALUE_KIND.text,
  ID: VALUE_KIND.text,
  IS: VALUE_KIND.text,
  AD: VALUE_KIND.text,
  CF: VALUE_KIND.text,
  CK: VALUE_KIND.text,
  CN: VALUE_KIND.text,
  CP: VALUE_KIND.text,
  CX: VALUE_KIND.text,
  MA: VALUE_KIND.text,
  MO: VALUE_KIND.text,
  NA: VALUE_KIND.text,
  NR: VALUE_KIND.text,
  PN: VALUE_KIND.text,
  RP: VALUE_KIND.text,
  TN: VALUE_KIND.text,
  XAD: VALUE_KIND.text,
  XCN: VALUE_KIND.text,
  XON: VALUE_KIND.text,
  XPN: VALUE_KIND.text,
  XTN: VALUE_KIND.text,
};

/** OBX-7 is at most 60 characters (v2.5.1); a longer one is kept as text, never parsed. */
const MAX_REFERENCE_RANGE_LENGTH = 60;

type ObxContent = { observation: ObservationResult } | { documents: ReportDocument[] };

function readObservation(obx: Hl7Segment, index: number, errors: AckError[]): ObxContent | null {
  const loc = (f: number) => `OBX-${f}` + ` (result ${index})`;
  const code = readCoding(obx.field(3));
  if (!code) {
    errors.push({
      code: HL7_ERROR.requiredFieldMissing,
      location: `OBX-3`,
      message: `${loc(3)} (observation identifier) is empty`,
    });
    return null;
  }
  const valueType = obx.get(2).trim().toUpperCase();
  const values = obx.repetitions(5);
  const first = values[0];
  const kind: ValueKind | undefined = valueType ? lookup(VALUE_TYPES, valueType) : VALUE_KIND.text;
  if (!kind) {
    errors.push({
      code: HL7_ERROR.tableValueNotFound,
      location: 'OBX-2',
      message: `${loc(2)} value type ${JSON.stringify(obx.get(2))} is not in HL7 table 0125`,
    });
    return null;
  }
  if (!valueType && first) {
    // OBX-2 may be empty only while there is no value to read (HL7 v2.5.1 7.4.2.2).
    errors.push({
      code: HL7_ERROR.requiredFieldMissing,
      location: 'OBX-2',
      message: `${loc(2)} (value type) is empty but OBX-5 has a value`,
    });
    return null;
  }
  if (kind === VALUE_KIND.document) {
    const title = obx.get(3, 2).trim() || code.display || code.code;
    const documents: ReportDocument[] = [];
    for (const value of values) {
      const document = readEncapsulatedData(value, title, loc(5), errors);
      if (document) documents.push(document);
    }
    return { documents };
  }

  const statusCode = obx.get(11);
  const status = statusCode ? lookup(OBX_STATUS, statusCode.toUpperCase()) : RESULT_STATUS.final;
  if (!status) {
    errors.push({
      code: HL7_ERROR.tableValueNotFound,
      location: 'OBX-11',
      message: `${loc(11)} result status ${statusCode} is not in HL7 table 0085`,
    });
  }
  const unitField = obx.field(6);
  const unit = unitField.component(1) || unitField.component(2) || null;
  const rangeText = obx.get(7);
  const sourceFlags = obx
    .repetitions(8)
    .map((f) => f.component(1).trim().toUpperCase())
    .filter((f) => f !== '');
  const setId = Number.parseInt(obx.get(1), 10);
  const base = {
    sequence: Number.isInteger(setId) && setId > 0 && setId <= MAX_SET_ID ? setId : index,
    code,
    unit,
    referenceRange: !rangeText
      ? null
      : rangeText.length <= MAX_REFERENCE_RANGE_LENGTH
        ? parseReferenceRange(rangeText)
        : { low: null, high: null, text: rangeText },
    sourceFlags,
    status: status ?? RESULT_STATUS.final,
    effectiveAt: readTimestamp(obx, 14, errors),
  };
  if (kind === VALUE_KIND.quantity) {
    const parsed = first ? readNumeric(first, valueType) : null;
    if (first && !parsed) {
      errors.push({
        code: HL7_ERROR.dataType,
        location: 'OBX-5',
        message: `${loc(5)} value ${JSON.stringify(first.raw.slice(0, 40))} is not a number (value type ${valueType})`,
      });
      return null;
    }
    return {
      observation: {
        ...base,
        valueType: OBSERVATION_VALUE_TYPE.quantity,
        numericValue: parsed?.value ?? null,
        comparator: parsed?.comparator ?? null,
        textValue: first ? first.components().join('') : null,
      },
    };
  }
  if (kind === VALUE_KIND.coded) {
    const coded = first ? readCoding(first) : null;
    // CWE-9 (original text) is the answer as the clinician saw it when no code or display was sent.
    const textValue = coded ? (coded.display ?? coded.code) : first?.component(9).trim() || null;
    return {
      observation: {
        ...base,
        valueType: OBSERVATION_VALUE_TYPE.coded,
        numericValue: null,
        comparator: null,
        textValue,
      },
    };
  }
  // ST, TX, FT and the other text types: repetitions are lines, `\.br\` a line break.
  const text = values.map((v) => v.components().join(' ').trim()).join('\n');
  return {
    observation: {
      ...base,
      valueType: OBSERVATION_VALUE_TYPE.text,
      numericValue: null,
      comparator: null,
      textValue: text || null,
    },
  };
}

/** A number as HL7 NM writes it; no two parts can match the same digits, so no backtracking. */
const NM_NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const COMPARATORS = ['<=', '>=', '<', '>', '='];

function readNumeric(
  field: Hl7Field,
  valueType: string,
): { value: number; comparator: string | null } | null {
  let comparator: string | null;
  let number: string;
  if (valueType === 'SN') {
    // SN: comparator ^ num1 ^ separator/suffix ^ num2. Ratios and ranges keep num1 as the value.
    comparator = field.component(1) || null;
    number = field.component(2).trim();
  } else {
    const text = field.text.trim();
    comparator = COMPARATORS.slice(0, 4).find((c) => text.startsWith(c)) ?? null;
    number = text.slice(comparator?.length ?? 0).trim();
  }
  if (comparator !== null && !COMPARATORS.includes(comparator)) return null;
  if (!NM_NUMBER.test(number)) return null;
  return { value: Number(number), comparator: comparator === '=' ? null : comparator };
}

/**
 * Reads one ED value (OBX-5 of value type ED: source application ^ type of data ^ data subtype ^
 * encoding ^ data, HL7 v2.5.1 chapter 2A, 2.A.24) as a document. The data is decoded in one pass
 * and never matched by a backtracking pattern: ED payloads run to megabytes.
 */
function readEncapsulatedData(
  value: Hl7Field,
  title: string | null,
  where: string,
  errors: AckError[],
): ReportDocument | null {
  const [, type = '', subtype = '', encodingName = '', data = ''] = value.components();
  if (data === '') return null;
  const encoding = encodingName.trim().toUpperCase();
  let dataBase64: string | null;
  if (encoding === 'BASE64') dataBase64 = normalizeBase64(data);
  else if (encoding === 'HEX') dataBase64 = hexToBase64(data);
  else if (encoding === 'A') dataBase64 = Buffer.from(data, 'utf8').toString('base64');
  else {
    errors.push({
      code: HL7_ERROR.tableValueNotFound,
      location: 'OBX-5',
      message: `${where} encapsulated data encoding ${JSON.stringify(encodingName.slice(0, 20))} is not in HL7 table 0299 (A, Hex, Base64)`,
    });
    return null;
  }
  if (dataBase64 === null) {
    errors.push({
      code: HL7_ERROR.dataType,
      location: 'OBX-5',
      message: `${where} encapsulated data is not valid ${encoding === 'HEX' ? 'hexadecimal' : 'base64'}`,
    });
    return null;
  }
  return { contentType: encapsulatedContentType(type, subtype), dataBase64, title };
}

/** Removes the line breaks and spaces some senders wrap encoded data in (`\.br\` arrives as LF). */
function withoutWhitespace(text: string): string {
  // Single-character classes only: each is one linear scan, whatever the data.
  return /\s/.test(text) ? text.replace(/\s+/g, '') : text;
}

/** Canonical, padded base64 of `text`, or null when it is not base64 (RFC 4648 section 4). */
function normalizeBase64(text: string): string | null {
  const b64 = withoutWhitespace(text);
  let end = b64.length;
  let padding = 0;
  while (end > 0 && b64[end - 1] === '=' && padding < 2) {
    end--;
    padding++;
  }
  if (end === 0 || /[^A-Za-z0-9+/]/.test(b64.slice(0, end))) return null;
  // Padded data is a whole number of quads; unpadded data cannot leave a single character over.
  if (padding > 0 ? b64.length % 4 !== 0 : end % 4 === 1) return null;
  return Buffer.from(b64, 'base64').toString('base64');
}

function hexToBase64(text: string): string | null {
  const hex = withoutWhitespace(text);
  if (hex.length === 0 || hex.length % 2 !== 0 || /[^0-9A-Fa-f]/.test(hex)) return null;
  return Buffer.from(hex, 'hex').toString('base64');
}

/** ED-3 data subtypes (HL7 table 0291, and what senders write there) with a MIME type of their own. */
const DATA_SUBTYPES: Record<string, string> = {
  PDF: 'application/pdf',
  JPEG: 'image/jpeg',
  JPG: 'image/jpeg',
  PNG: 'image/png',
  GIF: 'image/gif',
  TIFF: 'image/tiff',
  TIF: 'image/tiff',
  HTML: 'text/html',
  XML: 'application/xml',
  RTF: 'application/rtf',
  POSTSCRIPT: 'application/postscript',
  'OCTET-STREAM': 'application/octet-stream',
  DICOM: 'application/dicom',
};

/** ED-2 types of data (HL7 table 0191, and the MIME top-level types v2.5+ allows) as MIME top-level types. */
const DATA_TYPES: Record<string, string> = {
  AP: 'application',
  APPLICATION: 'application',
  IM: 'image',
  IMAGE: 'image',
  SI: 'image',
  NS: 'image',
  SD: 'application',
  AU: 'audio',
  AUDIO: 'audio',
  VIDEO: 'video',
  TEXT: 'text',
  TX: 'text',
  FT: 'text',
  MULTIPART: 'multipart',
};

const MIME_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;
const MIME_PART = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;

/**
 * The MIME type of an ED value from its type of data (ED-2) and subtype (ED-3): `Application^PDF`,
 * `AP^PDF` and `^application/pdf` all give `application/pdf`. Anything unreadable is
 * `application/octet-stream`, so the stored type is always a well-formed MIME type.
 */
export function encapsulatedContentType(type: string, subtype: string): string {
  const t = type.trim().toLowerCase();
  const s = subtype.trim().toLowerCase();
  for (const candidate of [s, t]) {
    if (candidate.includes('/')) return MIME_TYPE.test(candidate) ? candidate : 'application/octet-stream';
  }
  const known = lookup(DATA_SUBTYPES, s.toUpperCase());
  if (known) return known;
  const top = lookup(DATA_TYPES, t.toUpperCase());
  if (top && MIME_PART.test(s)) return `${top}/${s}`;
  if (top === 'text') return 'text/plain';
  return 'application/octet-stream';
}

/**
 * Reads a coded element (CE, CWE, CNE: code ^ text ^ system ^ alternate code ^ text ^ system),
 * preferring the LOINC triplet wherever it is. Null when there is neither a code nor a text.
 */
export function readCoding(field: Hl7Field): Coding | null {
  const code = field.component(1).trim();
  const display = field.component(2).trim() || null;
  const systemName = field.component(3).trim();
  // Prefer the LOINC triplet when the alternate (components 4-6) carries it, even with an empty primary.
  const altSystem = field.component(6).trim();
  if (systemName !== 'LN' && altSystem === 'LN' && field.component(4).trim()) {
    return {
      system: CODING_SYSTEMS.LN!,
      code: field.component(4).trim(),
      display: field.component(5).trim() || display,
    };
  }
  if (!code && !display) return null;
  return {
    system: codingSystem(systemName),
    code: code || display!,
    display,
  };
}

/** Reads a person (XCN: id ^ family name ^ given name); null when there is neither an id nor a name. */
export function readPractitioner(field: Hl7Field): Practitioner | null {
  if (field.isEmpty) return null;
  const id = field.component(1) || null;
  const family = field.component(2) || null;
  if (!id && !family) return null;
  return { id, familyName: family, givenNames: [field.component(3)].filter((g) => g !== '') };
}

/**
 * Reads field n of a segment as a timestamp (TS/DTM, first component), adding a data type problem
 * at `SEG-n` when it is not one. Null when the field is empty.
 */
export function readTimestamp(seg: Hl7Segment, n: number, errors: AckError[]): string | null {
  const raw = seg.get(n);
  if (!raw) return null;
  const iso = hl7TimestampToIso(raw);
  if (!iso)
    errors.push({
      code: HL7_ERROR.dataType,
      location: `${seg.name}-${n}`,
      message: `${seg.name}-${n} ${raw} is not an HL7 timestamp`,
    });
  return iso;
}

/**
 * HL7 DTM (`YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]`) to an ISO 8601 instant. A time without an
 * offset is read as UTC. Returns null when the text is not a DTM.
 *
 * @example hl7TimestampToIso('202611221430-0500') // '2026-11-22T19:30:00.000Z'
 */
export function hl7TimestampToIso(raw: string): string | null {
  const m = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$/.exec(raw.trim());
  if (!m) return null;
  const [, y, mo = '01', d = '01', h = '00', mi = '00', s = '00', frac = '', tz = '+0000'] = m;
  if (Number(y) < 1) return null; // there is no year 0, and Postgres refuses it
  const iso = `${y}-${mo}-${d}T${h}:${mi}:${s}${frac.padEnd(frac ? 4 : 0, '0').slice(0, 4)}${tz!.slice(0, 3)}:${tz!.slice(3)}`;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return null;
  // Reject dates the Date constructor silently rolled over (e.g. month 13 is invalid, Feb 30 rolls).
  if (
    Number(mo) < 1 ||
    Number(mo) > 12 ||
    Number(d) < 1 ||
    Number(d) > daysInMonth(Number(y), Number(mo)) ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(s) > 59
  )
    return null;
  return date.toISOString();
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** HL7 DT/DTM to a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD), or null. */
export function hl7DateOnly(raw: string): string | null {
  const m = /^(\d{4})(\d{2})?(\d{2})?/.exec(raw.trim());
  if (!m || !hl7TimestampToIso(raw.trim())) return null;
  return [m[1], m[2], m[3]].filter(Boolean).join('-');
}
