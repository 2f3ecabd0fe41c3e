import { randomUUID } from 'node:crypto';
import {
  DEFAULT_ENCODING,
  escapeHl7,
  unescapeHl7,
  type EncodingCharacters,
  type Hl7Message,
} from './message.ts';

/** MSA-1 acknowledgement codes (HL7 table 0008, original mode). */
export const ACK_CODE = { accept: 'AA', error: 'AE', reject: 'AR' } as const;
export type AckCode = (typeof ACK_CODE)[keyof typeof ACK_CODE];

/** MSA-1 commit (accept) acknowledgement codes (HL7 table 0008, enhanced mode). */
export const COMMIT_CODE = { accept: 'CA', error: 'CE', reject: 'CR' } as const;
export type CommitCode = (typeof COMMIT_CODE)[keyof typeof COMMIT_CODE];

/** HL7 table 0155: when MSH-15 (accept) and MSH-16 (application) ask for an acknowledgement. */
export const ACK_CONDITION = { always: 'AL', never: 'NE', onError: 'ER', onSuccess: 'SU' } as const;
export type AckCondition = (typeof ACK_CONDITION)[keyof typeof ACK_CONDITION];

/** HL7 table 0357 message error condition codes used in ERR-3. */
export const HL7_ERROR = {
  segmentSequence: '100',
  requiredFieldMissing: '101',
  dataType: '102',
  tableValueNotFound: '103',
  unsupportedMessageType: '200',
  unsupportedEventCode: '201',
  unsupportedProcessingId: '202',
  unsupportedVersionId: '203',
  unknownKey: '204',
  duplicateKey: '205',
  internalError: '207',
} as const;
export type Hl7ErrorCode = (typeof HL7_ERROR)[keyof typeof HL7_ERROR];

/** The header fields an ACK answers to; read from a parsed message or, failing that, best effort. */
export interface AckTarget {
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication: string;
  receivingFacility: string;
  controlId: string;
  triggerEvent: string;
  processingId: string;
  version: string;
}

export interface AckError {
  code: Hl7ErrorCode;
  /** `MSH-9`, `OBX-5`, `PID-3`: turned into ERR-2 (segment^sequence^field). */
  location: string | null;
  message: string;
}

/** Reads what an ACK needs from a parsed message. */
export function ackTargetOf(msg: Hl7Message): AckTarget {
  const h = msg.header;
  // The ACK is written with the default encoding characters, whatever the sender used.
  const field = (n: number) => toDefaultEncoding(h.field(n).raw, msg.encoding);
  return {
    sendingApplication: field(3),
    sendingFacility: field(4),
    receivingApplication: field(5),
    receivingFacility: field(6),
    controlId: field(10),
    triggerEvent: h.get(9, 2),
    processingId: h.get(11) || 'P',
    version: acceptableVersion(h.get(12)),
  };
}

/**
 * The fields of a first line that looks like an MSH (MSH-1 at index 1), its component separator, and
 * its encoding characters when they are usable (else null: the fields are copied as they are).
 */
function rawHeader(
  raw: string,
): { fields: string[]; component: string; encoding: EncodingCharacters | null } | null {
  let start = 0;
  while (start < raw.length && /[\s\uFEFF]/.test(raw[start]!)) start++;
  if (!raw.startsWith('MSH', start) || raw.length < start + 4) return null;
  let end = start;
  while (end < raw.length && raw[end] !== '\r' && raw[end] !== '\n') end++;
  const line = raw.slice(start, end);
  const sep = line[3]!;
  const fields = ['MSH', sep, ...line.slice(4).split(sep)];
  const chars = fields[2] ?? '';
  const usable =
    chars.length >= 4 &&
    new Set([sep, ...chars.slice(0, 4)]).size === 5 &&
    !/[A-Za-z0-9\s]/.test(sep + chars.slice(0, 4));
  const encoding: EncodingCharacters | null = usable
    ? { field: sep, component: chars[0]!, repetition: chars[1]!, escape: chars[2]!, subcomponent: chars[3]! }
    : null;
  return { fields, component: chars[0] || '^', encoding };
}

/**
 * Reads what an ACK needs from bytes that did not parse, so a rejected sender still learns which
 * message was refused (MSA-2) whenever its header is legible.
 */
export function ackTargetFromRaw(raw: string): AckTarget {
  const header = rawHeader(raw);
  const parts = header?.fields ?? [];
  const comp = header?.component ?? '^';
  const at = (n: number) => (parts[n] ?? '').slice(0, 180);
  // Without usable encoding characters nothing is known of the sender's escapes: copy the text, escaped.
  const field = (n: number) =>
    header?.encoding ? toDefaultEncoding(at(n), header.encoding) : escapeHl7(at(n), DEFAULT_ENCODING);
  return {
    sendingApplication: field(3),
    sendingFacility: field(4),
    receivingApplication: field(5),
    receivingFacility: field(6),
    controlId: field(10),
    triggerEvent: at(9).split(comp)[1] ?? '',
    processingId: at(11).split(comp)[0] || 'P',
    version: acceptableVersion(at(12).split(comp)[0] ?? ''),
  };
}

/**
 * Rewrites a raw (escaped) field from the sender's encoding characters into the default ones, so
 * that `BEAKER$1.2.840` of a `MSH#$*@%` message is `BEAKER^1.2.840` in our ACK.
 */
function toDefaultEncoding(raw: string, from: EncodingCharacters): string {
  const d = DEFAULT_ENCODING;
  // All five count: a `|` inside a field of a `#`-separated message is text that ours must escape.
  if (
    from.field === d.field &&
    from.component === d.component &&
    from.repetition === d.repetition &&
    from.escape === d.escape &&
    from.subcomponent === d.subcomponent
  )
    return raw;
  return raw
    .split(from.repetition)
    .map((rep) =>
      rep
        .split(from.component)
        .map((component) =>
          component
            .split(from.subcomponent)
            .map((sub) => escapeHl7(unescapeHl7(sub, from), d))
            .join(d.subcomponent),
        )
        .join(d.component),
    )
    .join(d.repetition);
}

/** The sender's version for the ACK's MSH-12 when it is a real one, else 2.5.1. */
function acceptableVersion(version: string): string {
  return /^2\.\d(\.\d)?$/.test(version) ? version : '2.5.1';
}

/** HL7 DTM in UTC, e.g. 20261122143005+0000. */
export function hl7Timestamp(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}+0000`;
}

/**
 * Builds the ACK for a message: sender and receiver swapped, MSH-10 copied into MSA-2, the reason in
 * MSA-3 and one ERR segment per error (HL7 v2.5.1 chapter 2, section 2.9 and 2.15.5 ERR). This is the
 * original-mode acknowledgement; {@link acknowledgementsFor} answers both modes.
 */
export function buildAck(
  target: AckTarget,
  code: AckCode,
  errors: AckError[] = [],
  now = new Date(),
): string {
  return renderAck(target, code, errors, now, false);
}

function renderAck(
  target: AckTarget,
  code: AckCode | CommitCode,
  errors: AckError[],
  now: Date,
  enhanced: boolean,
): string {
  const e = (s: string) => escapeHl7(s, DEFAULT_ENCODING);
  const text = errors.map((x) => x.message).join('; ');
  const msh = [
    'MSH',
    '^~\\&',
    target.receivingApplication || 'LABRELAY',
    target.receivingFacility,
    target.sendingApplication,
    target.sendingFacility,
    hl7Timestamp(now),
    '',
    target.triggerEvent ? `ACK^${e(target.triggerEvent)}^ACK` : 'ACK',
    randomUUID().replaceAll('-', '').slice(0, 20),
    e(target.processingId),
    target.version,
  ];
  // An acknowledgement is never itself acknowledged: say so where the sender reads the mode.
  if (enhanced) msh.push('', '', ACK_CONDITION.never, ACK_CONDITION.never);
  const segments = [msh.join('|'), ['MSA', code, target.controlId, e(text.slice(0, 80))].join('|')];
  for (const err of errors) {
    const severity = code === ACK_CODE.accept || code === COMMIT_CODE.accept ? 'W' : 'E';
    segments.push(
      [
        'ERR',
        '',
        errorLocation(err.location),
        `${err.code}^^HL70357`,
        severity,
        '',
        '',
        '',
        e(err.message),
      ].join('|'),
    );
  }
  return segments.join('\r') + '\r';
}

/** What the sender asked for in MSH-15 (accept acknowledgement) and MSH-16 (application acknowledgement). */
export interface AckMode {
  accept: string;
  application: string;
}

/** MSH-15 and MSH-16 of a parsed message, as sent (trimmed, upper-cased). */
export function ackModeOf(msg: Hl7Message): AckMode {
  return {
    accept: msg.header.get(15).trim().toUpperCase(),
    application: msg.header.get(16).trim().toUpperCase(),
  };
}

/**
 * MSH-15 and MSH-16 read from bytes that did not parse; both empty (original mode) when the header
 * is not legible, so a refused sender still gets the one ACK original mode promises.
 */
export function ackModeFromRaw(raw: string): AckMode {
  const header = rawHeader(raw);
  const at = (n: number) => (header?.fields[n] ?? '').slice(0, 10).split(header?.component ?? '^')[0]!;
  return { accept: at(15).trim().toUpperCase(), application: at(16).trim().toUpperCase() };
}

/** Original mode (HL7 v2.5.1 2.9.2): MSH-15 and MSH-16 both empty. */
export function isOriginalMode(mode: AckMode): boolean {
  return mode.accept.trim() === '' && mode.application.trim() === '';
}

/**
 * The acknowledgements to send for a message, in the order to send them (HL7 v2.5.1 chapter 2,
 * section 2.9.2 and table 0155):
 *
 * - Original mode (MSH-15 and MSH-16 both empty): exactly one application ACK, MSA-1 AA/AE/AR, as
 *   {@link buildAck}.
 * - Enhanced mode (either one valued): a commit ACK (CA when accepted, CE on AE, CR on AR) when
 *   MSH-15 asks for one, then an application ACK (AA/AE/AR) when MSH-16 asks for one: AL always, NE
 *   never, ER on AE/AR only, SU on AA only. Both ACKs say MSH-15/16 NE: they are not to be acknowledged.
 *
 * The standard defines no default for one empty field in enhanced mode: it says only that both empty
 * means original mode and that each field is "required for enhanced acknowledgment mode". An empty
 * MSH-15 or MSH-16 beside a valued one is read as "not asked for" (as HAPI reads it), so `||AL` gets
 * one application ACK and `AL|` one commit ACK, never a second reply a one-reply sender would trip
 * over. A value outside table 0155 is read as AL: an unreadable request is answered, not ignored.
 * `NE|NE` gets no acknowledgement at all (an empty list).
 *
 * @example acknowledgementsFor(ackTargetOf(msg), { accept: 'AL', application: 'ER' }, { code: 'AA' })
 *   // [commit ACK with MSA|CA] — no application ACK, since nothing went wrong
 */
export function acknowledgementsFor(
  target: AckTarget,
  mode: AckMode,
  outcome: { code: AckCode; errors?: AckError[] },
  now = new Date(),
): string[] {
  const errors = outcome.errors ?? [];
  if (isOriginalMode(mode)) return [buildAck(target, outcome.code, errors, now)];
  const succeeded = outcome.code === ACK_CODE.accept;
  const acks: string[] = [];
  if (asksFor(mode.accept, succeeded)) {
    acks.push(renderAck(target, COMMIT_FOR[outcome.code], errors, now, true));
  }
  if (asksFor(mode.application, succeeded)) {
    acks.push(renderAck(target, outcome.code, errors, now, true));
  }
  return acks;
}

const COMMIT_FOR: Record<AckCode, CommitCode> = {
  AA: COMMIT_CODE.accept,
  AE: COMMIT_CODE.error,
  AR: COMMIT_CODE.reject,
};

/** Whether an enhanced-mode condition (table 0155) asks for an acknowledgement of this outcome. */
function asksFor(condition: string, succeeded: boolean): boolean {
  switch (condition.trim().toUpperCase()) {
    case '':
    case ACK_CONDITION.never:
      return false;
    case ACK_CONDITION.onError:
      return !succeeded;
    case ACK_CONDITION.onSuccess:
      return succeeded;
    default:
      return true; // AL, or a value outside table 0155
  }
}

function errorLocation(location: string | null): string {
  if (!location) return '';
  const m = /^([A-Z][A-Z0-9]{2})(?:-(\d+))?/.exec(location);
  if (!m) return '';
  return m[2] ? `${m[1]}^1^${m[2]}` : `${m[1]}^1`;
}

/**
 * Reads MSA-1 from an ACK we built (used to derive the HTTP status that agrees with it); a commit
 * ACK answers as its application code would (CE as AE, CR as AR).
 */
export function ackCodeOf(ack: string): AckCode {
  const msa = ack.split('\r').find((s) => s.startsWith('MSA|'));
  const code = msa?.split('|')[1];
  if (code === 'AE' || code === 'CE') return ACK_CODE.error;
  if (code === 'AR' || code === 'CR') return ACK_CODE.reject;
  return ACK_CODE.accept;
}
