import type { Coding } from '../../domain/model.ts';
import type { ReleasedResult } from '../fhir/resources.ts';
import { hl7Timestamp } from './ack.ts';
import { escapeHl7 } from './message.ts';

/** Who a message is from and to, and its control id (MSH-10, the same on every retry). */
export interface OruHeader {
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication: string;
  receivingFacility: string;
  controlId: string;
  at: Date;
  /** MSH-11: P production, T training (a sandbox connection). */
  processingId?: 'P' | 'T';
}

/** HL7 table 0396 names of the coding systems a hospital knows by name (the inverse of our reader's). */
const CODING_SYSTEM_NAMES: Record<string, string> = {
  'http://loinc.org': 'LN',
  'http://snomed.info/sct': 'SCT',
  'urn:labrelay:local': 'L',
};
/**
 * FHIR report status to HL7 table 0123 (OBR-25). 0123 has no "posted in error": a report entered in
 * error goes as a correction whose results are W (table 0085), as v2 receivers expect a retraction.
 */
const REPORT_STATUS: Record<string, string> = {
  registered: 'I',
  partial: 'P',
  preliminary: 'P',
  final: 'F',
  amended: 'C',
  corrected: 'C',
  cancelled: 'X',
  'entered-in-error': 'C',
};
/** FHIR observation status to HL7 table 0085 (OBX-11). */
const OBSERVATION_STATUS: Record<string, string> = {
  registered: 'I',
  preliminary: 'P',
  final: 'F',
  amended: 'C',
  corrected: 'C',
  cancelled: 'X',
  'entered-in-error': 'W',
};
const SEX: Record<string, string> = { male: 'M', female: 'F', other: 'O', unknown: 'U' };
const PLAIN_DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/;

/** CE/CWE: code^text^coding system (a table 0396 name when there is one, else the system as sent). */
function codedElement(coding: Coding): string {
  const system = coding.system ? (CODING_SYSTEM_NAMES[coding.system] ?? coding.system) : '';
  return [escapeHl7(coding.code), escapeHl7(coding.display ?? ''), escapeHl7(system)]
    .join('^')
    .replace(/\^+$/, '');
}

/**
 * A number as HL7 NM writes it: the lab's own text when it is that number (6.80 keeps its
 * precision), else the number in plain decimals (NM has no exponent: 1e-7 is 0.0000001).
 */
function nm(value: number, original: string | null): string {
  const text = original?.trim() ?? '';
  if (PLAIN_DECIMAL.test(text) && Number(text) === value) return text;
  return value.toLocaleString('en-US', { useGrouping: false, maximumFractionDigits: 20 });
}

function dateOnly(iso: string | null): string {
  return iso ? iso.replace(/-/g, '').slice(0, 8) : '';
}

function ts(date: Date | null): string {
  return date ? hl7Timestamp(date) : '';
}

/**
 * A released report as an HL7 v2.5.1 ORU^R01 (chapter 7, "Unsolicited transmission of an
 * observation"): MSH, PID, ORC, OBR, report NTEs, and an OBX per result (NM for a number, SN for a
 * number with a comparator such as `<5`, ST otherwise), every value escaped. Segments end with CR.
 *
 * @example
 * toOruR01(result, { sendingApplication: 'LABRELAY', sendingFacility: 'LABRELAY', receivingApplication: 'EPIC',
 *   receivingFacility: 'GENHOSP', controlId: 'LR0001', at: new Date() }).split('\r')[0]
 * // 'MSH|^~\\&|LABRELAY|LABRELAY|EPIC|GENHOSP|20261203…||ORU^R01^ORU_R01|LR0001|P|2.5.1'
 */
export function toOruR01(result: ReleasedResult, header: OruHeader): string {
  const e = (value: string) => escapeHl7(value);
  const { report, patient } = result;
  const segments: string[] = [];
  segments.push(
    [
      'MSH',
      '^~\\&',
      e(header.sendingApplication),
      e(header.sendingFacility),
      e(header.receivingApplication),
      e(header.receivingFacility),
      hl7Timestamp(header.at),
      '',
      'ORU^R01^ORU_R01',
      e(header.controlId),
      header.processingId ?? 'P',
      '2.5.1',
    ].join('|'),
  );

  const pid3 = (patient?.identifiers ?? [])
    .map((i) => [e(i.value), '', '', e(i.system), e(i.type ?? '')].join('^').replace(/\^+$/, ''))
    .join('~');
  const name = patient
    ? [e(patient.familyName ?? ''), ...patient.givenNames.slice(0, 2).map(e)].join('^')
    : '';
  segments.push(
    [
      'PID',
      '1',
      '',
      pid3,
      '',
      name.replace(/\^+$/, ''),
      '',
      dateOnly(patient?.birthDate ?? null),
      patient?.sex ? (SEX[patient.sex] ?? 'U') : '',
    ].join('|'),
  );

  const placer = e(report.placerOrderNumber ?? '');
  const filler = e(report.fillerOrderNumber ?? report.id);
  segments.push(['ORC', 'RE', placer, filler].join('|'));
  const provider = report.orderingProvider
    ? [
        e(report.orderingProvider.id ?? ''),
        e(report.orderingProvider.familyName ?? ''),
        ...report.orderingProvider.givenNames.slice(0, 1).map(e),
      ]
        .join('^')
        .replace(/\^+$/, '')
    : '';
  const obr = ['OBR', '1', placer, filler, codedElement(report.code), '', '', ts(report.effectiveAt)];
  obr[16] = provider;
  obr[22] = ts(report.issuedAt);
  obr[25] = REPORT_STATUS[report.status] ?? 'F';
  segments.push(Array.from(obr, (f) => f ?? '').join('|'));
  result.notes.forEach((note, i) => segments.push(['NTE', String(i + 1), 'L', e(note)].join('|')));

  result.observations.forEach((o, i) => {
    let type = 'ST';
    let value = e(o.textValue ?? '');
    if (o.valueType === 'quantity' && o.numericValue !== null) {
      if (o.comparator) {
        type = 'SN';
        value = `${e(o.comparator)}^${nm(o.numericValue, null)}`;
      } else {
        type = 'NM';
        value = nm(o.numericValue, o.textValue);
      }
    }
    const range = o.referenceRange;
    const rangeText =
      range && range.low !== null && range.high !== null
        ? `${nm(range.low, null)}-${nm(range.high, null)}`
        : range?.high != null
          ? `<${nm(range.high, null)}`
          : range?.low != null
            ? `>${nm(range.low, null)}`
            : e(range?.text ?? '');
    const obx = [
      'OBX',
      String(i + 1),
      type,
      codedElement(o.code),
      '',
      value,
      o.unit ? `${e(o.unit)}^^UCUM` : '',
      rangeText,
      o.interpretation ?? '',
      '',
      '',
      OBSERVATION_STATUS[o.status] ?? 'F',
      '',
      '',
      ts(o.effectiveAt),
    ];
    segments.push(obx.join('|'));
  });
  return segments.join('\r');
}
