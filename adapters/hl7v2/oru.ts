import {
  OBSERVATION_VALUE_TYPE,
  RESULT_STATUS,
  type Coding,
  type Identifier,
  type LabReport,
  type ObservationResult,
  type PatientDemographics,
  type Practitioner,
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
function lookup<T>(table: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

const MAX_ORDER_NUMBER_LENGTH = 199;
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

/**
 * Maps an ORU^R01 (unsolicited observation result) to the canonical {@link ResultMessage}.
 * One report per OBR group, with the OBX segments that follow it.
 *
 * HL7 v2.5.1 chapter 7, section 7.3.1 (ORU^R01), 7.4.1 (OBR) and 7.4.2 (OBX).
 *
 * @throws {Hl7ContentError} listing every problem found, each with its location.
 */
export function oruToResultMessage(msg: Hl7Message): ResultMessage {
  const errors: AckError[] = [];
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
  if (code !== 'ORU') {
    throw new Hl7ContentError(
      [
        {
          code: HL7_ERROR.unsupportedMessageType,
          location: 'MSH-9',
          message: `message type ${msg.messageType} is not accepted here (ORU^R01 expected)`,
        },
      ],
      true,
    );
  }
  if (trigger !== 'R01') {
    throw new Hl7ContentError(
      [
        {
          code: HL7_ERROR.unsupportedEventCode,
          location: 'MSH-9',
          message: `trigger event ${trigger || '(none)'} is not supported (R01 expected)`,
        },
      ],
      true,
    );
  }

  // MSH-7, the time of the message, must be a timestamp when given (it is required from v2.4 on).
  readTimestamp(msg.header, 7, errors);
  const pid = msg.segment('PID');
  if (!pid) {
    throw new Hl7ContentError([
      { code: HL7_ERROR.requiredFieldMissing, location: 'PID', message: 'the PID segment is missing' },
    ]);
  }
  const patient = readPatient(pid, errors);

  const reports: LabReport[] = [];
  let orc: Hl7Segment | undefined;
  let current: { obr: Hl7Segment; orc: Hl7Segment | undefined; obx: Hl7Segment[] } | undefined;
  const groups: NonNullable<typeof current>[] = [];
  for (const seg of msg.segments) {
    if (seg.name === 'ORC') orc = seg;
    else if (seg.name === 'OBR') {
      current = { obr: seg, orc, obx: [] };
      groups.push(current);
      orc = undefined;
    } else if (seg.name === 'OBX') {
      if (!current) {
        errors.push({
          code: HL7_ERROR.segmentSequence,
          location: 'OBX',
          message: 'an OBX segment comes before any OBR',
        });
        continue;
      }
      current.obx.push(seg);
    }
  }
  if (groups.length === 0) {
    errors.push({
      code: HL7_ERROR.requiredFieldMissing,
      location: 'OBR',
      message: 'the message has no OBR segment',
    });
  }
  for (const [i, group] of groups.entries()) {
    reports.push(readReport(group.obr, group.orc, group.obx, i + 1, errors));
  }
  if (errors.length > 0) throw new Hl7ContentError(errors);
  return { patient, reports };
}

function readPatient(pid: Hl7Segment, errors: AckError[]): PatientDemographics {
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

function readReport(
  obr: Hl7Segment,
  orc: Hl7Segment | undefined,
  obxs: Hl7Segment[],
  groupNumber: number,
  errors: AckError[],
): LabReport {
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
    // EI.1 is at most 199 characters (v2.5.1); longer ones could not name a workflow either.
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
  const seen = new Set<number>();
  for (const [i, obx] of obxs.entries()) {
    const obs = readObservation(obx, i + 1, errors);
    if (!obs) continue;
    // A repeated OBX-1: keep both results, the later one under the next free number.
    while (seen.has(obs.sequence)) obs.sequence = Math.max(...seen) + 1;
    seen.add(obs.sequence);
    observations.push(obs);
  }
  return {
    placerOrderNumber: placer,
    fillerOrderNumber: filler,
    code: code ?? { system: null, code: '', display: null },
    status: status ?? RESULT_STATUS.final,
    orderingProvider: readPractitioner(obr.field(16)) ?? (orc ? readPractitioner(orc.field(12)) : null),
    effectiveAt,
    issuedAt,
    observations,
  };
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

function readObservation(obx: Hl7Segment, index: number, errors: AckError[]): ObservationResult | null {
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
  const valueType = obx.get(2).toUpperCase();
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
    referenceRange: rangeText ? parseReferenceRange(rangeText) : null,
    sourceFlags,
    status: status ?? RESULT_STATUS.final,
    effectiveAt: readTimestamp(obx, 14, errors),
  };
  const values = obx.repetitions(5);
  const first = values[0];
  if (valueType === 'NM' || valueType === 'SN') {
    const parsed = first ? readNumeric(first, valueType) : null;
    if (first && !parsed) {
      errors.push({
        code: HL7_ERROR.dataType,
        location: 'OBX-5',
        message: `${loc(5)} value ${JSON.stringify(first.raw)} is not a number (value type ${valueType})`,
      });
      return null;
    }
    return {
      ...base,
      valueType: OBSERVATION_VALUE_TYPE.quantity,
      numericValue: parsed?.value ?? null,
      comparator: parsed?.comparator ?? null,
      textValue: first ? first.components().join('') : null,
    };
  }
  if (valueType === 'CE' || valueType === 'CWE' || valueType === 'CNE') {
    const coded = first ? readCoding(first) : null;
    return {
      ...base,
      valueType: OBSERVATION_VALUE_TYPE.coded,
      numericValue: null,
      comparator: null,
      textValue: coded ? (coded.display ?? coded.code) : null,
    };
  }
  // ST, TX, FT and anything else: text, repetitions joined by line breaks.
  const text = values.map((v) => v.components().join(' ').trim()).join('\n');
  return {
    ...base,
    valueType: OBSERVATION_VALUE_TYPE.text,
    numericValue: null,
    comparator: null,
    textValue: text || null,
  };
}

function readNumeric(
  field: Hl7Field,
  valueType: string,
): { value: number; comparator: string | null } | null {
  let comparator: string | null;
  let number: string;
  if (valueType === 'SN') {
    // SN: comparator ^ num1 ^ separator/suffix ^ num2. Ratios and ranges keep num1 as the value.
    comparator = field.component(1) || null;
    number = field.component(2);
  } else {
    const m = /^\s*(<=|>=|<|>)?\s*(.*)$/.exec(field.text)!;
    comparator = m[1] ?? null;
    number = m[2]!;
  }
  if (comparator !== null && !['<', '>', '<=', '>=', '='].includes(comparator)) return null;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(number.trim())) return null;
  return { value: Number(number), comparator: comparator === '=' ? null : comparator };
}

function readCoding(field: Hl7Field): Coding | null {
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
    system: lookup(CODING_SYSTEMS, systemName) ?? (systemName || null),
    code: code || display!,
    display,
  };
}

function readPractitioner(field: Hl7Field): Practitioner | null {
  if (field.isEmpty) return null;
  const id = field.component(1) || null;
  const family = field.component(2) || null;
  if (!id && !family) return null;
  return { id, familyName: family, givenNames: [field.component(3)].filter((g) => g !== '') };
}

function readTimestamp(seg: Hl7Segment, n: number, errors: AckError[]): string | null {
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
