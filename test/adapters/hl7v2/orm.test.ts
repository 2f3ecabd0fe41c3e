import { describe, expect, test } from 'vitest';
import { HL7_ERROR } from '../../../adapters/hl7v2/ack.ts';
import { parseHl7 } from '../../../adapters/hl7v2/message.ts';
import { hl7MessageKind, ormToOrderMessage } from '../../../adapters/hl7v2/orm.ts';
import { Hl7ContentError, oruToResultMessage } from '../../../adapters/hl7v2/oru.ts';
import type { LabOrder } from '../../../domain/model.ts';
import { epicOrders, hl7Segment as seg, labOrderWithSpecimens } from '../../fixtures/hl7.ts';

// ORM^O01 and OML^O21 as EHRs send them to a lab. Identifiers and people are invented.

/** One line per order, as a lab's order-entry screen lists them. */
function orderLine(o: LabOrder): string {
  return [
    o.action,
    `${o.placerOrderNumber}^${o.placerAuthority} / ${o.fillerOrderNumber}`,
    `${o.code.system}|${o.code.code}`,
    o.priority ?? '-',
    o.orderingProvider ? `${o.orderingProvider.id} ${o.orderingProvider.familyName}` : '-',
    o.orderedAt ?? '-',
  ].join('  ');
}

describe('ormToOrderMessage on vendor messages', () => {
  test('Epic ORM^O01: two new orders and a cancellation, each ORC with its OBR', () => {
    const message = ormToOrderMessage(parseHl7(epicOrders()));

    expect(message.orders.map(orderLine)).toEqual([
      'new  1200345^EPC / null  http://loinc.org|24321-2  routine  1111111111 CARE  2026-11-22T11:05:00.000Z',
      'new  1200346^EPC / null  http://loinc.org|10839-9  stat  1111111111 CARE  2026-11-22T11:05:00.000Z',
      'cancel  1200299^EPC / 26BK-327C0001  http://loinc.org|58410-2  -  1111111111 CARE  2026-11-22T11:05:00.000Z',
    ]);
    // No SPM: the specimen is OBR-7 (collected) and OBR-15 (source), when the OBR gives them.
    expect(message.orders.map((o) => o.specimen)).toEqual([
      {
        id: null,
        type: { system: 'HL70070', code: 'SER', display: 'Serum' },
        collectedAt: '2026-11-22T10:50:00.000Z',
      },
      null,
      null,
    ]);
    // The NTE after the OBR is the order's; the one after the ask-at-order-entry OBX is not.
    expect(message.orders.map((o) => o.notes)).toEqual([
      ['Patient fasting since midnight.'],
      undefined,
      undefined,
    ]);
  });

  test('Epic ORM^O01: the patient is read exactly as a result message reads it', () => {
    const orm = epicOrders();
    const asResult = [
      orm.split('\r')[0]!.replace('ORM^O01^ORM_O01', 'ORU^R01^ORU_R01'),
      orm.split('\r')[1]!,
      'OBR|1|1200345^EPC||24321-2^BMP^LN',
    ].join('\r');
    const patient = ormToOrderMessage(parseHl7(orm)).patient;

    expect(patient).toEqual(oruToResultMessage(parseHl7(asResult)).patient);
    expect(patient).toMatchObject({
      identifiers: [
        { value: 'E1234567', system: 'EPI', type: 'MR' },
        { value: '4567890123', system: '2.16.840.1.113883.19.5', type: 'PI' },
      ],
      familyName: 'TESTPATIENT',
      birthDate: '1955-12-31',
      email: 'alpha@example.org',
    });
  });

  test('OML^O21: TQ1 priority, SPM specimen ids, types and collection times', () => {
    const message = ormToOrderMessage(parseHl7(labOrderWithSpecimens()));

    expect(message.orders.map(orderLine)).toEqual([
      'new  9876600^HNAM_ORDERID / null  http://loinc.org|2524-7  asap  2222222222 HOUSE  2026-11-22T10:10:00.000Z',
      'update  9876601^HNAM_ORDERID / CH-26-004470  http://loinc.org|2345-7  routine  2222222222 HOUSE  2026-11-22T10:10:00.000Z',
    ]);
    expect(message.orders.map((o) => o.specimen)).toEqual([
      {
        id: 'SP-26-0001',
        type: { system: 'HL70487', code: 'BLDV', display: 'Blood venous' },
        collectedAt: '2026-11-22T10:05:00.000Z',
      },
      {
        // Only the filler (lab) assigned an id; SPM-17 is a range whose start is the collection.
        id: 'FL-26-0002',
        type: { system: 'HL70487', code: 'SER', display: 'Serum' },
        collectedAt: '2026-11-22T10:06:00.000Z',
      },
    ]);
    expect(message.orders[0]!.notes).toEqual(['Draw on ice, deliver within 15 minutes.']);
    expect(message.patient.identifiers).toEqual([{ value: 'CN100200', system: 'STMARYS', type: 'MRN' }]);
  });

  test.each([
    ['Epic ORM^O01', epicOrders()],
    ['OML^O21', labOrderWithSpecimens()],
  ])('%s: reads the same with LF line endings', (_what, raw) => {
    expect(ormToOrderMessage(parseHl7(raw.replaceAll('\r', '\n')))).toEqual(ormToOrderMessage(parseHl7(raw)));
  });
});

// A minimal order message around the segments a test cares about.
const MSH = (type = 'ORM^O01', version = '2.5.1') =>
  `MSH|^~\\&|EPIC|STMARYS|LABRELAY|ACME_LAB|20261122060000||${type}|ORM00001|P|${version}`;
const PID = 'PID|1||MRN123456^^^STMARYS^MR||DOE^JANE||19800115|F';
const ORC = (control = 'NW', placer = 'ORD-1') => `ORC|${control}|${placer}`;
const OBR = (placer = 'ORD-1') => `OBR|1|${placer}||2823-3^Potassium^LN`;
const orders = (...segments: string[]): LabOrder[] =>
  ormToOrderMessage(parseHl7([MSH(), PID, ...segments].join('\r'))).orders;
const firstOrder = (...segments: string[]): LabOrder => orders(...segments)[0]!;

function contentError(raw: string): Hl7ContentError {
  try {
    ormToOrderMessage(parseHl7(raw));
  } catch (error) {
    expect(error).toBeInstanceOf(Hl7ContentError);
    return error as Hl7ContentError;
  }
  throw new Error('expected ormToOrderMessage to throw');
}

describe('order control (ORC-1)', () => {
  test.each([
    ['NW', 'new'],
    ['XO', 'update'],
    ['SC', 'update'],
    ['CA', 'cancel'],
    ['OC', 'cancel'],
    ['DC', 'cancel'],
    ['nw', 'new'],
  ])('maps %s to %s', (control, action) => {
    expect(firstOrder(ORC(control), OBR()).action).toBe(action);
  });

  test.each([
    ['a code outside table 0119', 'ZZ', HL7_ERROR.tableValueNotFound],
    [
      'a table 0119 code LabRelay does not act on (RE, observations to follow)',
      'RE',
      HL7_ERROR.tableValueNotFound,
    ],
    ['an empty ORC-1', '', HL7_ERROR.requiredFieldMissing],
  ])('answers AE at ORC-1 for %s', (_what, control, code) => {
    const error = contentError([MSH(), PID, ORC(control), OBR()].join('\r'));

    expect(error.reject).toBe(false);
    expect(error.errors).toEqual([{ code, location: 'ORC-1', message: expect.stringContaining('ORC-1') }]);
  });
});

describe('order fields', () => {
  test.each([
    ['ORC-2 and ORC-3', 'ORC|NW|ORD-1^EPC|FIL-1^LAB', 'OBR|1|||2823-3^K^LN', ['ORD-1', 'FIL-1', 'EPC']],
    [
      'OBR-2 and OBR-3 when the ORC has none',
      'ORC|NW',
      'OBR|1|ORD-2^HNAM|FIL-2|2823-3^K^LN',
      ['ORD-2', 'FIL-2', 'HNAM'],
    ],
    ['ORC-2 over OBR-2', 'ORC|NW|ORD-1^EPC', 'OBR|1|ORD-X^OTHER||2823-3^K^LN', ['ORD-1', null, 'EPC']],
    [
      'OBR-2.2 when ORC-2 has no namespace',
      'ORC|NW|ORD-1',
      'OBR|1|ORD-1^EPC||2823-3^K^LN',
      ['ORD-1', null, 'EPC'],
    ],
    ['no namespace anywhere', 'ORC|NW|ORD-1', OBR(), ['ORD-1', null, null]],
  ])('reads order numbers and placer authority from %s', (_what, orc, obr, [placer, filler, authority]) => {
    const order = firstOrder(orc, obr);

    expect([order.placerOrderNumber, order.fillerOrderNumber, order.placerAuthority]).toEqual([
      placer,
      filler,
      authority,
    ]);
  });

  test.each([
    ['TQ1-9 S', [seg('TQ1', { 1: '1', 9: 'S^Stat^HL70485' }), OBR()], 'stat'],
    ['TQ1-9 A', [seg('TQ1', { 1: '1', 9: 'A' }), OBR()], 'asap'],
    ['TQ1-9 R', [seg('TQ1', { 1: '1', 9: 'R' }), OBR()], 'routine'],
    ['TQ1-9 P (pre-op), which FHIR has no word for', [seg('TQ1', { 1: '1', 9: 'P' }), OBR()], null],
    [
      'OBR-27.6 (v2.3 quantity/timing)',
      [seg('OBR', { 1: '1', 2: 'ORD-1', 4: '2823-3^K^LN', 27: '^^^^^S' })],
      'stat',
    ],
    ['ORC-7.6 when the OBR has none', [OBR()], 'asap', '^^^^^A'],
    [
      'TQ1-9 over OBR-27.6',
      [seg('TQ1', { 1: '1', 9: 'R' }), seg('OBR', { 1: '1', 2: 'ORD-1', 4: '2823-3^K^LN', 27: '^^^^^S' })],
      'routine',
    ],
    [
      'OBR-27.6 over ORC-7.6',
      [seg('OBR', { 1: '1', 2: 'ORD-1', 4: '2823-3^K^LN', 27: '^^^^^S' })],
      'stat',
      '^^^^^R',
    ],
    ['nothing', [OBR()], null],
  ])('reads priority from %s', (_what, segments, priority, orc7 = '') => {
    expect(firstOrder(seg('ORC', { 1: 'NW', 2: 'ORD-1', 7: orc7 }), ...segments).priority).toBe(priority);
  });

  test.each([
    ['ORC-12', '1234^Welby^Marcus', '', { id: '1234', familyName: 'Welby', givenNames: ['Marcus'] }],
    [
      'OBR-16 when ORC-12 is empty',
      '',
      '5678^Jones^Sarah',
      { id: '5678', familyName: 'Jones', givenNames: ['Sarah'] },
    ],
    [
      'ORC-12 over OBR-16',
      '1234^Welby^Marcus',
      '5678^Jones^Sarah',
      { id: '1234', familyName: 'Welby', givenNames: ['Marcus'] },
    ],
    ['neither', '', '', null],
  ])('reads the ordering provider from %s', (_what, orc12, obr16, provider) => {
    const order = firstOrder(
      seg('ORC', { 1: 'NW', 2: 'ORD-1', 12: orc12 }),
      seg('OBR', { 1: '1', 2: 'ORD-1', 4: '2823-3^K^LN', 16: obr16 }),
    );

    expect(order.orderingProvider).toEqual(provider);
  });

  test.each([
    ['ORC-9', '20261122060500-0500', '20261122050000', '2026-11-22T11:05:00.000Z'],
    ['OBR-6 when ORC-9 is empty', '', '20261122050000', '2026-11-22T05:00:00.000Z'],
    ['neither', '', '', null],
  ])('reads when the order was placed from %s', (_what, orc9, obr6, orderedAt) => {
    const order = firstOrder(
      seg('ORC', { 1: 'NW', 2: 'ORD-1', 9: orc9 }),
      seg('OBR', { 1: '1', 2: 'ORD-1', 4: '2823-3^K^LN', 6: obr6 }),
    );

    expect(order.orderedAt).toBe(orderedAt);
  });

  test.each([
    [
      'SPM over OBR-7 and OBR-15',
      [
        seg('OBR', { 1: '1', 2: 'ORD-1', 4: '2823-3^K^LN', 7: '20261122050000', 15: 'BLD' }),
        seg('SPM', { 1: '1', 2: 'S-1', 4: 'SER^Serum^HL70487', 17: '20261122051500' }),
      ],
      {
        id: 'S-1',
        type: { system: 'HL70487', code: 'SER', display: 'Serum' },
        collectedAt: '2026-11-22T05:15:00.000Z',
      },
    ],
    [
      'an SPM with only a type',
      [OBR(), seg('SPM', { 1: '1', 4: 'UR^Urine^HL70487' })],
      { id: null, type: { system: 'HL70487', code: 'UR', display: 'Urine' }, collectedAt: null },
    ],
    [
      'OBR-7 and a v2.3 OBR-15 code',
      [seg('OBR', { 1: '1', 2: 'ORD-1', 4: '2823-3^K^LN', 7: '20261122050000', 15: 'BLD' })],
      {
        id: null,
        type: { system: null, code: 'BLD', display: null },
        collectedAt: '2026-11-22T05:00:00.000Z',
      },
    ],
    [
      'an OBR-15 with only a text',
      [seg('OBR', { 1: '1', 2: 'ORD-1', 4: '2823-3^K^LN', 15: '&Left forearm swab' })],
      {
        id: null,
        type: { system: null, code: 'Left forearm swab', display: 'Left forearm swab' },
        collectedAt: null,
      },
    ],
    ['nothing', [OBR()], null],
  ])('reads the specimen from %s', (_what, segments, specimen) => {
    expect(firstOrder(ORC(), ...segments).specimen).toEqual(specimen);
  });

  test('files each NTE after an OBR under that order only', () => {
    const read = orders(
      ORC('NW', 'ORD-1'),
      OBR('ORD-1'),
      'NTE|1||First order, line one.~Line two.',
      'NTE|2||First order again.',
      seg('SPM', { 1: '1', 4: 'SER^Serum^HL70487' }),
      'NTE|1||After the specimen, out of structure.',
      ORC('NW', 'ORD-2'),
      'NTE|1||An ORC comment, not an order comment.',
      OBR('ORD-2'),
      'OBX|1|ST|AOE^Question^L||Answer',
      'NTE|1||A comment on the answer.',
    );

    expect(read.map((o) => o.notes)).toEqual([
      ['First order, line one.\nLine two.', 'First order again.'],
      undefined,
    ]);
  });
});

describe('order groups', () => {
  test('reads several OBRs under one ORC as orders sharing that ORC', () => {
    const read = orders(
      seg('ORC', { 1: 'NW', 9: '20261122060000', 12: '1234^Welby^Marcus' }),
      'OBR|1|ORD-1||2823-3^Potassium^LN',
      'OBR|2|ORD-2||2951-2^Sodium^LN',
    );

    expect(
      read.map((o) => [o.placerOrderNumber, o.code.code, o.action, o.orderedAt, o.orderingProvider?.id]),
    ).toEqual([
      ['ORD-1', '2823-3', 'new', '2026-11-22T06:00:00.000Z', '1234'],
      ['ORD-2', '2951-2', 'new', '2026-11-22T06:00:00.000Z', '1234'],
    ]);
  });

  test('accepts a cancellation sent as an ORC alone, naming the order by number', () => {
    const read = orders(ORC('CA', 'ORD-9^EPC'), ORC('NW', 'ORD-10'), OBR('ORD-10'));

    expect(read.map((o) => [o.action, o.placerOrderNumber, o.placerAuthority, o.code.code])).toEqual([
      ['cancel', 'ORD-9', 'EPC', ''],
      ['new', 'ORD-10', null, '2823-3'],
    ]);
  });

  test('ignores Z-segments between the segments of an order', () => {
    const order = firstOrder(ORC(), 'ZOR|1|x', OBR(), 'ZOB|1|y', 'NTE|1||Kept.');

    expect(order.code.code).toBe('2823-3');
    expect(order.notes).toEqual(['Kept.']);
  });
});

describe('order messages that cannot be accepted', () => {
  test.each([
    {
      what: 'HL7 version 2.2',
      segments: [MSH('ORM^O01', '2.2'), PID, ORC(), OBR()],
      code: HL7_ERROR.unsupportedVersionId,
      location: 'MSH-12',
    },
    {
      what: 'an ORU^R01',
      segments: [MSH('ORU^R01'), PID, OBR()],
      code: HL7_ERROR.unsupportedMessageType,
      location: 'MSH-9',
    },
    {
      what: 'an ADT^A01',
      segments: [MSH('ADT^A01'), PID],
      code: HL7_ERROR.unsupportedMessageType,
      location: 'MSH-9',
    },
    {
      what: 'an ORM^O02 (a response)',
      segments: [MSH('ORM^O02'), PID, ORC(), OBR()],
      code: HL7_ERROR.unsupportedEventCode,
      location: 'MSH-9',
    },
    {
      what: 'an OML^O33 (specimen-oriented)',
      segments: [MSH('OML^O33'), PID, ORC(), OBR()],
      code: HL7_ERROR.unsupportedEventCode,
      location: 'MSH-9',
    },
  ])('refuses $what with reject=true, code $code at $location', ({ segments, code, location }) => {
    const error = contentError(segments.join('\r'));

    expect(error.reject).toBe(true);
    expect(error.errors).toEqual([{ code, location, message: expect.any(String) }]);
  });

  test.each([
    {
      what: 'no PID segment',
      segments: [ORC(), OBR()],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'PID',
    },
    {
      what: 'an empty PID-3',
      segments: ['PID|1||||DOE^JANE', ORC(), OBR()],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'PID-3',
    },
    { what: 'no ORC segment', segments: [PID], code: HL7_ERROR.requiredFieldMissing, location: 'ORC' },
    {
      what: 'an OBR before any ORC',
      segments: [PID, OBR(), ORC(), OBR()],
      code: HL7_ERROR.segmentSequence,
      location: 'OBR',
    },
    {
      what: 'an empty OBR-4',
      segments: [PID, ORC(), 'OBR|1|ORD-1||'],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'OBR-4',
    },
    {
      what: 'an empty OBR-4 on the second order',
      segments: [PID, ORC(), OBR(), ORC('NW', 'ORD-2'), 'OBR|1|ORD-2||'],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'OBR-4 (order 2)',
    },
    {
      what: 'a new order with no OBR',
      segments: [PID, ORC('NW')],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'OBR-4',
    },
    {
      what: 'an order with neither placer nor filler number',
      segments: [PID, 'ORC|NW', 'OBR|1|||2823-3^K^LN'],
      code: HL7_ERROR.requiredFieldMissing,
      location: 'ORC-2',
    },
    {
      what: 'a placer number over 199 characters',
      segments: [PID, ORC('NW', 'X'.repeat(200)), OBR()],
      code: HL7_ERROR.dataType,
      location: 'ORC-2',
    },
    {
      what: 'an ORC-9 of 30 February',
      segments: [PID, seg('ORC', { 1: 'NW', 2: 'ORD-1', 9: '20260230' }), OBR()],
      code: HL7_ERROR.dataType,
      location: 'ORC-9',
    },
    {
      what: 'an SPM-17 at hour 25',
      segments: [PID, ORC(), OBR(), seg('SPM', { 1: '1', 17: '20261122250000' })],
      code: HL7_ERROR.dataType,
      location: 'SPM-17',
    },
    {
      what: 'an MSH-7 that is not a time',
      segments: [PID, ORC(), OBR()],
      code: HL7_ERROR.dataType,
      location: 'MSH-7',
      msh: MSH().replace('20261122060000', 'today'),
    },
  ])('answers $what with code $code at $location', ({ segments, code, location, msh }) => {
    const error = contentError([msh ?? MSH(), ...segments].join('\r'));

    expect(error.reject).toBe(false);
    expect(error.errors).toEqual([{ code, location, message: expect.any(String) }]);
  });

  test('lists every problem in one answer, each with its location', () => {
    const error = contentError(
      [MSH(), 'PID|1||||DOE^JANE||19801301', ORC('ZZ'), OBR(), ORC('NW', 'ORD-2'), 'OBR|1|ORD-2||'].join(
        '\r',
      ),
    );

    expect(error.errors.map((e) => [e.code, e.location])).toEqual([
      ['101', 'PID-3'],
      ['102', 'PID-7'],
      ['103', 'ORC-1'],
      ['101', 'OBR-4 (order 2)'],
    ]);
  });
});

describe('hl7MessageKind', () => {
  test.each([
    ['ORU^R01', 'results'],
    ['ORU^R01^ORU_R01', 'results'],
    ['ORM^O01', 'orders'],
    ['ORM^O01^ORM_O01', 'orders'],
    ['OML^O21^OML_O21', 'orders'],
    ['ORU^R30', null],
    ['ORM^O02', null],
    ['OML^O33', null],
    ['ADT^A01', null],
    ['ORU', null],
    ['ACK^R01^ACK', null],
  ])('reads MSH-9 %s as %j', (type, kind) => {
    expect(hl7MessageKind(parseHl7(`${MSH(type)}\r${PID}`))).toBe(kind);
  });
});
