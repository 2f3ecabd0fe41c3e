import { describe, expect, test } from 'vitest';
import type { ReleasedResult } from '../../../adapters/fhir/resources.ts';
import { parseHl7 } from '../../../adapters/hl7v2/message.ts';
import { oruToResultMessage } from '../../../adapters/hl7v2/oru.ts';
import { toOruR01, type OruHeader } from '../../../adapters/hl7v2/oru-out.ts';
import { correctedPanel, releasedPanel } from '../../fixtures/released-result.ts';

const HEADER: OruHeader = {
  sendingApplication: 'LABRELAY',
  sendingFacility: 'LABRELAY',
  receivingApplication: 'EPIC',
  receivingFacility: 'GENHOSP',
  controlId: 'LR0001',
  at: new Date('2026-12-03T08:00:00Z'),
};

const segments = (text: string) => text.split('\r');
/** The fields of the n-th segment called `name`: [k] is field k (for MSH, MSH-(k+1)). */
function fields(text: string, name: string, n = 0): string[] {
  const found = segments(text).filter((s) => s.startsWith(`${name}|`));
  return found[n]!.split('|');
}

describe('toOruR01', () => {
  test('an ORU^R01 v2.5.1 in segment order, segments ended by CR', () => {
    const text = toOruR01(releasedPanel(), HEADER);
    expect(text).not.toContain('\n');
    expect(segments(text).map((s) => s.slice(0, 3))).toEqual([
      'MSH',
      'PID',
      'ORC',
      'OBR',
      'NTE',
      'OBX',
      'OBX',
      'OBX',
    ]);
    expect(segments(text)[0]).toBe(
      'MSH|^~\\&|LABRELAY|LABRELAY|EPIC|GENHOSP|20261203080000+0000||ORU^R01^ORU_R01|LR0001|P|2.5.1',
    );
    expect(fields(text, 'PID').slice(3, 9)).toEqual([
      'MRN123456^^^GENHOSP^MR',
      '',
      'Doe^Jane^Q',
      '',
      '19800115',
      'F',
    ]);
    expect(fields(text, 'ORC')).toEqual(['ORC', 'RE', 'ORD-1001', 'FIL-2001']);
    const obr = fields(text, 'OBR');
    expect([obr[2], obr[3], obr[4], obr[7], obr[16], obr[22], obr[25]]).toEqual([
      'ORD-1001',
      'FIL-2001',
      '24321-2^Basic metabolic panel^LN',
      '20261203070000+0000',
      '1234^Welby^Marcus',
      '20261203070000+0000',
      'F',
    ]);
    expect(fields(text, 'OBX')).toEqual([
      'OBX',
      '1',
      'NM',
      '2823-3^Potassium^LN',
      '',
      '6.8',
      'mmol/L^^UCUM',
      '3.5-5.1',
      'HH',
      '',
      '',
      'F',
      '',
      '',
      '20261203070000+0000',
    ]);
  });

  test('our own parser reads back what we wrote: patient, report, results, flags, ranges, notes', () => {
    const msg = parseHl7(toOruR01(releasedPanel(), HEADER));
    expect(msg.segment('MSH')!.field(9).raw).toBe('ORU^R01^ORU_R01');
    expect(msg.segment('MSH')!.field(10).text).toBe('LR0001');
    const read = oruToResultMessage(msg);
    expect(read.patient).toMatchObject({
      identifiers: [{ system: 'GENHOSP', value: 'MRN123456', type: 'MR' }],
      familyName: 'Doe',
      givenNames: ['Jane', 'Q'],
      birthDate: '1980-01-15',
      sex: 'female',
    });
    expect(read.reports).toHaveLength(1);
    const [report] = read.reports;
    expect(report).toMatchObject({
      placerOrderNumber: 'ORD-1001',
      fillerOrderNumber: 'FIL-2001',
      status: 'final',
      code: { system: 'http://loinc.org', code: '24321-2', display: 'Basic metabolic panel' },
      effectiveAt: '2026-12-03T07:00:00.000Z',
      issuedAt: '2026-12-03T07:00:00.000Z',
      orderingProvider: { id: '1234', familyName: 'Welby', givenNames: ['Marcus'] },
      notes: ['Called to Dr Welby | read back ^ confirmed & noted'],
    });
    expect(
      report!.observations.map((o) => [
        o.sequence,
        o.code.code,
        o.valueType,
        o.numericValue,
        o.unit,
        o.referenceRange && [o.referenceRange.low, o.referenceRange.high],
        o.sourceFlags,
        o.status,
        o.effectiveAt,
      ]),
    ).toEqual([
      [1, '2823-3', 'quantity', 6.8, 'mmol/L', [3.5, 5.1], ['HH'], 'final', '2026-12-03T07:00:00.000Z'],
      [2, '2951-2', 'quantity', 140, 'mmol/L', [136, 145], ['N'], 'final', '2026-12-03T07:00:00.000Z'],
      [3, '2345-7', 'quantity', 3.2, 'mmol/L', [3.9, 5.5], ['L'], 'final', '2026-12-03T07:00:00.000Z'],
    ]);
  });

  const tricky = 'a|b^c&d~e\\f';
  test.each<[string, (r: ReleasedResult) => void, (read: ReturnType<typeof oruToResultMessage>) => unknown]>([
    ['a report note', (r) => (r.notes = [tricky]), (read) => read.reports[0]!.notes?.[0]],
    [
      'a text result',
      (r) =>
        (r.observations[1] = {
          ...r.observations[1]!,
          valueType: 'text',
          numericValue: null,
          textValue: tricky,
        }),
      (read) => read.reports[0]!.observations[1]!.textValue,
    ],
    [
      'the patient’s family name',
      (r) => (r.patient = { ...r.patient!, familyName: tricky }),
      (read) => read.patient.familyName,
    ],
    [
      'the MRN',
      (r) => (r.patient = { ...r.patient!, identifiers: [{ system: 'GENHOSP', value: tricky, type: 'MR' }] }),
      (read) => read.patient.identifiers[0]!.value,
    ],
    [
      'the placer order number',
      (r) => (r.report = { ...r.report, placerOrderNumber: tricky }),
      (read) => read.reports[0]!.placerOrderNumber,
    ],
    [
      'a test name',
      (r) =>
        (r.observations[0] = {
          ...r.observations[0]!,
          code: { ...r.observations[0]!.code, display: tricky },
        }),
      (read) => read.reports[0]!.observations[0]!.code.display,
    ],
  ])('HL7 delimiters |^&~\\ in %s are escaped and read back as written', (_where, change, readBack) => {
    const result = releasedPanel();
    change(result);
    const text = toOruR01(result, HEADER);
    // Escaped, the value splits no field, component or repetition: the segments keep their shape.
    expect(text).toContain('a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f');
    expect(segments(text)).toHaveLength(8);
    const read = oruToResultMessage(parseHl7(text));
    expect(readBack(read)).toBe(tricky);
  });

  test('a value with a comparator is SN; a sandbox connection sends processing id T', () => {
    const result = releasedPanel();
    result.observations[0] = {
      ...result.observations[0]!,
      comparator: '<',
      numericValue: 0.01,
      textValue: '<0.01',
    };
    const text = toOruR01(result, { ...HEADER, processingId: 'T' });
    expect(fields(text, 'OBX').slice(2, 6)).toEqual(['SN', '2823-3^Potassium^LN', '', '<^0.01']);
    expect(fields(text, 'MSH')[10]).toBe('T');
    const read = oruToResultMessage(parseHl7(text)).reports[0]!.observations[0]!;
    expect(read).toMatchObject({ valueType: 'quantity', comparator: '<', numericValue: 0.01 });
  });

  test('a number keeps the precision the lab wrote, never in exponent form; text is ST; a one-sided range', () => {
    const result = releasedPanel();
    const [potassium, sodium, glucose] = result.observations;
    result.observations = [
      { ...potassium!, numericValue: 6.8, textValue: '6.80' },
      {
        ...sodium!,
        numericValue: 0.0000001,
        textValue: null,
        referenceRange: { low: null, high: 0.5, text: null },
      },
      { ...glucose!, valueType: 'text', numericValue: null, textValue: 'Hemolysed, see comment', unit: null },
    ];
    const text = toOruR01(result, HEADER);
    expect(fields(text, 'OBX', 0)[5]).toBe('6.80');
    expect(fields(text, 'OBX', 1).slice(5, 8)).toEqual(['0.0000001', 'mmol/L^^UCUM', '<0.5']);
    expect(fields(text, 'OBX', 2).slice(2, 7)).toEqual([
      'ST',
      '2345-7^Glucose^LN',
      '',
      'Hemolysed, see comment',
      '',
    ]);
    const read = oruToResultMessage(parseHl7(text)).reports[0]!.observations;
    expect(read.map((o) => o.numericValue)).toEqual([6.8, 0.0000001, null]);
    expect(read[1]!.referenceRange).toMatchObject({ low: null, high: 0.5 });
    expect(read[2]).toMatchObject({ valueType: 'text', textValue: 'Hemolysed, see comment' });
  });

  test('a corrected report is OBR-25 C with its results C; a patient’s sex and a result status read back', () => {
    const result = correctedPanel();
    result.patient = { ...result.patient!, sex: 'other' };
    result.observations[2] = { ...result.observations[2]!, status: 'entered-in-error' };
    const text = toOruR01(result, HEADER);
    expect(fields(text, 'OBR')[25]).toBe('C');
    expect(
      segments(text)
        .filter((s) => s.startsWith('OBX|'))
        .map((s) => s.split('|')[11]),
    ).toEqual(['C', 'C', 'W']);
    const read = oruToResultMessage(parseHl7(text));
    expect(read.patient.sex).toBe('other');
    expect(read.reports[0]!.status).toBe('corrected');
    expect(read.reports[0]!.observations.map((o) => [o.status, o.numericValue])).toEqual([
      ['corrected', 5.9],
      ['corrected', 140],
      ['entered-in-error', 3.2],
    ]);
  });
});
