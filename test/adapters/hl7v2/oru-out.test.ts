import { describe, expect, test } from 'vitest';
import { parseHl7 } from '../../../adapters/hl7v2/message.ts';
import { oruToResultMessage } from '../../../adapters/hl7v2/oru.ts';
import { toOruR01 } from '../../../adapters/hl7v2/oru-out.ts';
import { releasedPanel } from '../../fixtures/released-result.ts';

const HEADER = {
  sendingApplication: 'LABRELAY',
  sendingFacility: 'LABRELAY',
  receivingApplication: 'EPIC',
  receivingFacility: 'GENHOSP',
  controlId: 'LR0001',
  at: new Date('2026-12-03T08:00:00Z'),
};

describe('toOruR01', () => {
  test('our own parser reads back what we wrote: patient, report, results, flags, notes', () => {
    const text = toOruR01(releasedPanel(), HEADER);
    const msg = parseHl7(text);
    expect(msg.segment('MSH')!.field(9).raw).toBe('ORU^R01^ORU_R01');
    expect(msg.segment('MSH')!.field(10).text).toBe('LR0001');
    expect(msg.segment('MSH')!.field(6).text).toBe('GENHOSP');
    const read = oruToResultMessage(msg);
    expect(read.patient.identifiers).toContainEqual({ system: 'GENHOSP', value: 'MRN123456', type: 'MR' });
    expect(read.patient).toMatchObject({ familyName: 'Doe', birthDate: '1980-01-15', sex: 'female' });
    const [report] = read.reports;
    expect(report).toMatchObject({
      placerOrderNumber: 'ORD-1001',
      fillerOrderNumber: 'FIL-2001',
      status: 'final',
    });
    expect(report!.code).toMatchObject({ system: 'http://loinc.org', code: '24321-2' });
    expect(report!.notes).toEqual(['Called to Dr Welby | read back ^ confirmed & noted']);
    expect(report!.observations.map((o) => [o.code.code, o.numericValue, o.unit, o.sourceFlags])).toEqual([
      ['2823-3', 6.8, 'mmol/L', ['HH']],
      ['2951-2', 140, 'mmol/L', ['N']],
    ]);
    expect(report!.observations[0]!.referenceRange).toMatchObject({ low: 3.5, high: 5.1 });
  });

  test('a value with a comparator is SN; a sandbox connection sends processing id T', () => {
    const result = releasedPanel();
    result.observations[0] = { ...result.observations[0]!, comparator: '<', numericValue: 0.01 };
    const text = toOruR01(result, { ...HEADER, processingId: 'T' });
    const obx = text.split('\r').find((s) => s.startsWith('OBX|1|'))!;
    expect(obx.split('|').slice(2, 6)).toEqual(['SN', '2823-3^Potassium^LN', '', '<^0.01']);
    expect(text.split('\r')[0]!.split('|')[10]).toBe('T');
    const read = oruToResultMessage(parseHl7(text)).reports[0]!.observations[0]!;
    expect(read).toMatchObject({ comparator: '<', numericValue: 0.01 });
  });
});
