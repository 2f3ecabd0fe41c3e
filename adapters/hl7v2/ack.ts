import { randomUUID } from 'node:crypto';
import { DEFAULT_ENCODING, escapeHl7, type Hl7Message } from './message.ts';

/** MSA-1 acknowledgement codes (HL7 table 0008, original mode). */
export const ACK_CODE = { accept: 'AA', error: 'AE', reject: 'AR' } as const;
export type AckCode = (typeof ACK_CODE)[keyof typeof ACK_CODE];

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
  return {
    sendingApplication: h.field(3).raw,
    sendingFacility: h.field(4).raw,
    receivingApplication: h.field(5).raw,
    receivingFacility: h.field(6).raw,
    controlId: h.field(10).raw,
    triggerEvent: h.get(9, 2),
    processingId: h.get(11) || 'P',
    version: acceptableVersion(h.get(12)),
  };
}

/**
 * Reads what an ACK needs from bytes that did not parse, so a rejected sender still learns which
 * message was refused (MSA-2) whenever its header is legible.
 */
export function ackTargetFromRaw(raw: string): AckTarget {
  const firstLine = raw.replace(/^[\s\uFEFF]+/, '').split(/\r\n|\r|\n/)[0] ?? '';
  const sep = firstLine.startsWith('MSH') && firstLine.length > 3 ? firstLine[3]! : '|';
  const parts = firstLine.startsWith('MSH') ? ['MSH', sep, ...firstLine.slice(4).split(sep)] : [];
  const comp = (parts[2] ?? '^')[0] ?? '^';
  const at = (n: number) => (parts[n] ?? '').slice(0, 180);
  return {
    sendingApplication: at(3),
    sendingFacility: at(4),
    receivingApplication: at(5),
    receivingFacility: at(6),
    controlId: at(10),
    triggerEvent: at(9).split(comp)[1] ?? '',
    processingId: at(11).split(comp)[0] || 'P',
    version: acceptableVersion(at(12).split(comp)[0] ?? ''),
  };
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
 * MSA-3 and one ERR segment per error (HL7 v2.5.1 chapter 2, section 2.9 and 2.15.5 ERR).
 */
export function buildAck(
  target: AckTarget,
  code: AckCode,
  errors: AckError[] = [],
  now = new Date(),
): string {
  const e = (s: string) => escapeHl7(s, DEFAULT_ENCODING);
  const text = errors.map((x) => x.message).join('; ');
  const segments = [
    [
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
      target.processingId,
      target.version,
    ].join('|'),
    ['MSA', code, target.controlId, e(text.slice(0, 80))].join('|'),
  ];
  for (const err of errors) {
    const severity = code === ACK_CODE.accept ? 'W' : 'E';
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

function errorLocation(location: string | null): string {
  if (!location) return '';
  const m = /^([A-Z][A-Z0-9]{2})(?:-(\d+))?/.exec(location);
  if (!m) return '';
  return m[2] ? `${m[1]}^1^${m[2]}` : `${m[1]}^1`;
}

/** Reads MSA-1 from an ACK we built (used to derive the HTTP status that agrees with it). */
export function ackCodeOf(ack: string): AckCode {
  const msa = ack.split('\r').find((s) => s.startsWith('MSA|'));
  const code = msa?.split('|')[1];
  return code === 'AE' || code === 'AR' ? code : 'AA';
}
