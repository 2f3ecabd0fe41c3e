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

const LOINC = 'http://loinc.org';
const RESULT_STATUS: Record<string, string> = {
  registered: 'I',
  partial: 'P',
  preliminary: 'P',
  final: 'F',
  amended: 'C',
  corrected: 'C',
  cancelled: 'X',
  'entered-in-error': 'W',
};
const SEX: Record<string, string> = { male: 'M', female: 'F', other: 'O', unknown: 'U' };

/** CE/CWE: code^text^coding system (LN for LOINC; else the system as sent). */
function codedElement(coding: Coding): string {
  const system = coding.system === LOINC ? 'LN' : (coding.system ?? '');
  return [escapeHl7(coding.code), escapeHl7(coding.display ?? ''), escapeHl7(system)]
    .join('^')
    .replace(/\^+$/, '');
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
  obr[25] = RESULT_STATUS[report.status] ?? 'F';
  segments.push(Array.from(obr, (f) => f ?? '').join('|'));
  result.notes.forEach((note, i) => segments.push(['NTE', String(i + 1), 'L', e(note)].join('|')));

  result.observations.forEach((o, i) => {
    let type = 'ST';
    let value = e(o.textValue ?? '');
    if (o.valueType === 'quantity' && o.numericValue !== null) {
      if (o.comparator) {
        type = 'SN';
        value = `${e(o.comparator)}^${o.numericValue}`;
      } else {
        type = 'NM';
        value = String(o.numericValue);
      }
    }
    const range = o.referenceRange;
    const rangeText =
      range && range.low !== null && range.high !== null
        ? `${range.low}-${range.high}`
        : range?.high != null
          ? `<${range.high}`
          : range?.low != null
            ? `>${range.low}`
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
      RESULT_STATUS[o.status] ?? 'F',
      '',
      '',
      ts(o.effectiveAt),
    ];
    segments.push(obx.join('|'));
  });
  return segments.join('\r');
}
