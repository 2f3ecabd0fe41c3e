import {
  ORDER_ACTION,
  type Coding,
  type LabOrder,
  type OrderAction,
  type OrderMessage,
} from '../../domain/model.ts';
import { HL7_ERROR, type AckError } from './ack.ts';
import type { Hl7Message, Hl7Segment } from './message.ts';
import {
  checkMessageHeader,
  codingSystem,
  entityNamespace,
  Hl7ContentError,
  isZSegment,
  lookup,
  MAX_ORDER_NUMBER_LENGTH,
  readCoding,
  readMessagePatient,
  readNote,
  readPractitioner,
  readTimestamp,
  type AcceptedMessageTypes,
  accessScopeOf,
} from './oru.ts';

/** What an inbound HL7 v2 message carries, which decides the mapping that reads it. */
export const HL7_MESSAGE_KIND = { results: 'results', orders: 'orders' } as const;
export type Hl7MessageKind = (typeof HL7_MESSAGE_KIND)[keyof typeof HL7_MESSAGE_KIND];

const MESSAGE_KINDS: Record<string, Hl7MessageKind> = {
  'ORU^R01': HL7_MESSAGE_KIND.results,
  'ORM^O01': HL7_MESSAGE_KIND.orders,
  'OML^O21': HL7_MESSAGE_KIND.orders,
};

/**
 * Which mapping reads a message, from MSH-9 (code ^ trigger event): ORU^R01 is results
 * ({@link oruToResultMessage}), ORM^O01 and OML^O21 are orders ({@link ormToOrderMessage}); null for
 * any other type (each mapping refuses those with AR at MSH-9).
 *
 * @example hl7MessageKind(parseHl7('MSH|^~\\&|EPIC||||20261122||ORM^O01|1|P|2.5.1')) // 'orders'
 */
export function hl7MessageKind(msg: Hl7Message): Hl7MessageKind | null {
  return lookup(MESSAGE_KINDS, `${msg.header.get(9, 1)}^${msg.header.get(9, 2)}`) ?? null;
}

const ORDER_MESSAGE_TYPES: AcceptedMessageTypes = { ORM: 'O01', OML: 'O21' };

/** HL7 table 0119 (order control, ORC-1): the codes LabRelay acts on. */
const ORDER_CONTROL: Record<string, OrderAction> = {
  NW: ORDER_ACTION.new,
  XO: ORDER_ACTION.update,
  SC: ORDER_ACTION.update,
  CA: ORDER_ACTION.cancel,
  OC: ORDER_ACTION.cancel,
  DC: ORDER_ACTION.cancel,
};

/** HL7 table 0485 (TQ1-9) / TQ-6 priority to FHIR request priority; the others have no FHIR match. */
const PRIORITY: Record<string, string> = { S: 'stat', A: 'asap', R: 'routine' };

/** One ORDER group: its ORC and what follows it up to the next ORC. */
interface OrderGroup {
  orc: Hl7Segment;
  tq1: Hl7Segment | undefined;
  obr: Hl7Segment | undefined;
  spm: Hl7Segment | undefined;
  notes: string[];
}

/**
 * Maps an ORM^O01 (general order) or OML^O21 (laboratory order) to the canonical
 * {@link OrderMessage}: one {@link LabOrder} per ORC, read with the TQ1, OBR, NTE and SPM that follow
 * it. A second OBR under one ORC (some senders group several tests under one order control) is an
 * order of its own sharing that ORC. An ORC with no OBR is accepted only as a cancellation, which the
 * order number identifies without a code. The patient is read exactly as for results.
 *
 * HL7 v2.5.1 chapter 4, sections 4.4.1 (ORM^O01), 4.4.6 (OML^O21), 4.5.1 (ORC), 4.5.3 (OBR),
 * 4.5.4 (TQ1); chapter 7, 7.4.3 (SPM).
 *
 * @throws {Hl7ContentError} listing every problem found, each with its location (AR for MSH-9 and
 *   MSH-12, AE for the rest).
 */
export function ormToOrderMessage(msg: Hl7Message): OrderMessage {
  checkMessageHeader(msg, ORDER_MESSAGE_TYPES);
  const errors: AckError[] = [];
  readTimestamp(msg.header, 7, errors);
  const patient = readMessagePatient(msg, errors);

  const groups: OrderGroup[] = [];
  let current: OrderGroup | undefined;
  let notesGoTo: string[] | null = null;
  for (const seg of msg.segments) {
    if (isZSegment(seg)) continue;
    switch (seg.name) {
      case 'ORC':
        current = { orc: seg, tq1: undefined, obr: undefined, spm: undefined, notes: [] };
        groups.push(current);
        notesGoTo = null;
        break;
      case 'TQ1':
        if (current && !current.tq1) current.tq1 = seg;
        notesGoTo = null;
        break;
      case 'OBR':
        if (!current) {
          errors.push({
            code: HL7_ERROR.segmentSequence,
            location: 'OBR',
            message: 'an OBR segment comes before any ORC',
          });
          notesGoTo = null;
          break;
        }
        if (current.obr) {
          current = { orc: current.orc, tq1: current.tq1, obr: seg, spm: undefined, notes: [] };
          groups.push(current);
        } else {
          current.obr = seg;
        }
        notesGoTo = current.notes;
        break;
      case 'SPM':
        if (current?.obr && !current.spm) current.spm = seg;
        notesGoTo = null;
        break;
      case 'NTE': {
        // Comments on the order follow its OBR; those after an OBX (an ask-at-order-entry answer) or
        // after the PID are not about the order and are not kept.
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
      location: 'ORC',
      message: 'the message has no ORC segment',
    });
  }
  const orders = groups.map((group, i) => ({
    ...readOrder(group, i + 1, errors),
    ...accessScopeOf(group.orc, msg.segment('PV1')),
  }));
  if (errors.length > 0) throw new Hl7ContentError(errors);
  return { patient, orders };
}

function readOrder(group: OrderGroup, orderNumber: number, errors: AckError[]): LabOrder {
  const { orc, tq1, obr, spm } = group;
  const at = (segment: string, field: number) =>
    `${segment}-${field}` + (orderNumber > 1 ? ` (order ${orderNumber})` : '');

  const control = orc.get(1).trim().toUpperCase();
  const action = control ? lookup(ORDER_CONTROL, control) : undefined;
  if (!control) {
    errors.push({
      code: HL7_ERROR.requiredFieldMissing,
      location: at('ORC', 1),
      message: `${at('ORC', 1)} (order control) is empty`,
    });
  } else if (!action) {
    errors.push({
      code: HL7_ERROR.tableValueNotFound,
      location: at('ORC', 1),
      message: `${at('ORC', 1)} order control ${JSON.stringify(orc.get(1).slice(0, 20))} is not one LabRelay acts on (NW, XO, SC, CA, OC, DC)`,
    });
  }

  const placer = orc.get(2) || obr?.get(2) || null;
  const filler = orc.get(3) || obr?.get(3) || null;
  if (!placer && !filler) {
    errors.push({
      code: HL7_ERROR.requiredFieldMissing,
      location: at('ORC', 2),
      message: `${at('ORC', 2)}/ORC-3: the order has neither a placer nor a filler order number`,
    });
  }
  for (const [field, value] of [
    [2, placer],
    [3, filler],
  ] as const) {
    if (value && value.length > MAX_ORDER_NUMBER_LENGTH) {
      errors.push({
        code: HL7_ERROR.dataType,
        location: at('ORC', field),
        message: `${at('ORC', field)} order number is longer than ${MAX_ORDER_NUMBER_LENGTH} characters`,
      });
    }
  }

  let code = obr ? readCoding(obr.field(4)) : null;
  if (!code && !(action === ORDER_ACTION.cancel && !obr)) {
    errors.push({
      code: HL7_ERROR.requiredFieldMissing,
      location: at('OBR', 4),
      message: obr
        ? `${at('OBR', 4)} (universal service identifier) is empty`
        : `${at('OBR', 4)}: order ${orderNumber} has no OBR, so nothing says what is ordered`,
    });
  }
  // A cancellation sent as an ORC alone names its order by number only.
  code ??= { system: null, code: '', display: null };

  const priorityCode = tq1?.get(9) || obr?.get(27, 6) || orc.get(7, 6);
  const order: LabOrder = {
    placerOrderNumber: placer,
    fillerOrderNumber: filler,
    placerAuthority: entityNamespace(orc.field(2)) ?? (obr ? entityNamespace(obr.field(2)) : null),
    code,
    action: action ?? ORDER_ACTION.new,
    priority: lookup(PRIORITY, priorityCode.trim().toUpperCase()) ?? null,
    orderingProvider: readPractitioner(orc.field(12)) ?? (obr ? readPractitioner(obr.field(16)) : null),
    orderedAt: readTimestamp(orc, 9, errors) ?? (obr ? readTimestamp(obr, 6, errors) : null),
    specimen: spm ? readSpecimen(spm, errors) : obr ? readObrSpecimen(obr, errors) : null,
  };
  if (group.notes.length > 0) order.notes = group.notes;
  return order;
}

/** SPM-2 (EIP: placer ^ filler specimen id, each an EI), SPM-4 (type, CWE), SPM-17.1 (collected). */
function readSpecimen(spm: Hl7Segment, errors: AckError[]): NonNullable<LabOrder['specimen']> {
  const id = spm.field(2);
  return {
    id: id.component(1, 1).trim() || id.component(2, 1).trim() || null,
    type: readCoding(spm.field(4)),
    collectedAt: readTimestamp(spm, 17, errors),
  };
}

/**
 * The specimen as an ORM without SPM gives it: OBR-7 (observation, i.e. collection, time) and OBR-15
 * (specimen source, SPS: its first component is a coded element written with subcomponents).
 */
function readObrSpecimen(obr: Hl7Segment, errors: AckError[]): LabOrder['specimen'] {
  const collectedAt = readTimestamp(obr, 7, errors);
  const source = obr.field(15);
  const sourceCode = source.component(1, 1).trim();
  const sourceText = source.component(1, 2).trim();
  const type: Coding | null =
    sourceCode || sourceText
      ? {
          system: codingSystem(source.component(1, 3).trim()),
          code: sourceCode || sourceText,
          display: sourceText || null,
        }
      : null;
  return collectedAt || type ? { id: null, type, collectedAt } : null;
}
