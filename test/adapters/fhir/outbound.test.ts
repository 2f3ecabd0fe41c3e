import { describe, expect, test } from 'vitest';
import { deliveryOutcome, toDeliveryBundle } from '../../../adapters/fhir/outbound.ts';
import { releasedPanel } from '../../fixtures/released-result.ts';
import { r4Problems } from '../../support/fhir-server.ts';

describe('toDeliveryBundle', () => {
  test('a valid R4 transaction: the patient by conditional create on the hospital MRN, the report and results by conditional update on our identifiers', () => {
    const bundle = toDeliveryBundle(releasedPanel());
    // The validator is real: an Observation without status and code, with a text quantity, is refused.
    expect(r4Problems({ resourceType: 'Observation', valueQuantity: { value: 'high' } })).not.toEqual([]);
    expect(r4Problems(bundle)).toEqual([]);
    for (const entry of bundle.entry) expect(r4Problems(entry.resource as never)).toEqual([]);
    expect(bundle.entry.map((e) => e.request)).toEqual([
      { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=GENHOSP|MRN123456' },
      {
        method: 'PUT',
        url: 'DiagnosticReport?identifier=urn%3Alabrelay%3Agenhosp%2Freport|22222222-2222-4222-8222-222222222222',
      },
      {
        method: 'PUT',
        url: 'Observation?identifier=urn%3Alabrelay%3Agenhosp%2Fobservation|22222222-2222-4222-8222-222222222222%2F2823-3',
      },
      {
        method: 'PUT',
        url: 'Observation?identifier=urn%3Alabrelay%3Agenhosp%2Fobservation|22222222-2222-4222-8222-222222222222%2F2951-2',
      },
    ]);
    const report = bundle.entry[1]!.resource as any;
    expect(report.subject).toEqual({ reference: 'urn:uuid:11111111-1111-4111-8111-111111111111' });
    expect(report.result.map((r: any) => r.reference)).toEqual(bundle.entry.slice(2).map((e) => e.fullUrl));
    expect(report.conclusion).toBe('Called to Dr Welby | read back ^ confirmed & noted');
    expect(report).not.toHaveProperty('id');
  });

  test('a correction (a new report replacing the first) is written to the same conditional URLs', () => {
    const first = toDeliveryBundle(releasedPanel());
    const correction = releasedPanel();
    correction.report = {
      ...correction.report,
      id: '44444444-4444-4444-8444-444444444444',
      status: 'corrected',
    };
    correction.observations = correction.observations.map((o, i) => ({
      ...o,
      id: `5555555${i}-5555-4555-8555-555555555555`,
    }));
    expect(toDeliveryBundle(correction).entry.map((e) => e.request.url)).toEqual(
      first.entry.map((e) => e.request.url),
    );
  });

  test('a server answer with a failed entry is not a delivery', () => {
    expect(
      deliveryOutcome({
        resourceType: 'Bundle',
        type: 'transaction-response',
        entry: [
          { response: { status: '200 OK' } },
          { response: { status: '201 Created', location: 'DiagnosticReport/9/_history/1' } },
        ],
      }),
    ).toEqual({ reportLocation: 'DiagnosticReport/9/_history/1' });
    expect(() =>
      deliveryOutcome({
        resourceType: 'Bundle',
        type: 'transaction-response',
        entry: [{ response: { status: '422' } }],
      }),
    ).toThrow('entry 0 was not stored (status 422)');
    expect(() => deliveryOutcome({ resourceType: 'OperationOutcome' })).toThrow('not a transaction-response');
  });
});
