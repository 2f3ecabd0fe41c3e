import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CsvFormatError, CsvHeaderError, readCsvResults } from '../../adapters/csv/results-csv.ts';
import { FhirIntakeError, parseFhirIntake } from '../../adapters/fhir/intake.ts';
import { Hl7ParseError, parseHl7 } from '../../adapters/hl7v2/message.ts';
import { ormToOrderMessage } from '../../adapters/hl7v2/orm.ts';
import { Hl7ContentError, oruToResultMessage } from '../../adapters/hl7v2/oru.ts';
import { SimpleResultsSchema, simpleResultsToResultMessage } from '../../adapters/json/results-json.ts';
import { basicMetabolicPanel } from '../fixtures/hl7.ts';
import { fhirTransaction, mutate, ormMessage, SAMPLE_CSV, SAMPLE_JSON } from './fuzz-samples.ts';

/**
 * Property-based tests: mutated HL7, FHIR, CSV and JSON bodies fed to the parsers. Whatever the
 * input, a parser either maps it or throws its own error type with a message; it never crashes
 * with anything else (a TypeError would be a 500 at the endpoint).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 400);

function onlyExpected(run: () => unknown, expected: (new (...args: never[]) => Error)[]) {
  try {
    run();
  } catch (error) {
    if (!expected.some((type) => error instanceof type)) throw error;
    expect((error as Error).message.length).toBeGreaterThan(0);
  }
}

describe('parsers under mutated input', () => {
  test('HL7 v2: ORU and ORM parse and map, or refuse with an HL7 error', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(basicMetabolicPanel(), ormMessage()),
        fc.array(mutate.hl7, { maxLength: 8 }),
        (sample, edits) => {
          const text = edits.reduce((t, edit) => edit(t), sample);
          onlyExpected(() => {
            const message = parseHl7(text);
            if (message.header.get(9, 1) === 'ORU') oruToResultMessage(message);
            else ormToOrderMessage(message);
          }, [Hl7ParseError, Hl7ContentError]);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('HL7 v2: arbitrary text after MSH never crashes the parser', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (tail) => {
        onlyExpected(
          () => oruToResultMessage(parseHl7(`MSH|^~\\&|${tail}`)),
          [Hl7ParseError, Hl7ContentError],
        );
      }),
      { numRuns: RUNS },
    );
  });

  test('FHIR: mutated transaction Bundles are mapped or answered with an OperationOutcome', () => {
    fc.assert(
      fc.property(fc.array(mutate.json, { minLength: 1, maxLength: 6 }), (edits) => {
        const body = edits.reduce((b, edit) => edit(b), fhirTransaction() as unknown);
        try {
          parseFhirIntake(body);
        } catch (error) {
          if (!(error instanceof FhirIntakeError)) throw error;
          expect(error.outcome.resourceType).toBe('OperationOutcome');
          expect(error.outcome.issue.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('FHIR: any JSON value is refused or mapped, never a crash', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        onlyExpected(() => parseFhirIntake(value), [FhirIntakeError]);
      }),
      { numRuns: RUNS },
    );
  });

  test('JSON results: mutated bodies are validated by the schema, and what passes maps', () => {
    fc.assert(
      fc.property(fc.array(mutate.json, { minLength: 1, maxLength: 6 }), (edits) => {
        const body = edits.reduce((b, edit) => edit(b), SAMPLE_JSON() as unknown);
        const parsed = SimpleResultsSchema.safeParse(body);
        if (parsed.success) expect(simpleResultsToResultMessage(parsed.data).reports).toHaveLength(1);
      }),
      { numRuns: RUNS },
    );
  });

  test('CSV: mutated uploads are read row by row, refused rows named, never a crash', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutate.text, { maxLength: 8 }), async (edits) => {
        const text = edits.reduce((t, edit) => edit(t), SAMPLE_CSV);
        try {
          let rows = 0;
          for await (const batch of readCsvResults([Buffer.from(text)])) {
            for (const r of batch.rejected) expect(r.row).toBeGreaterThanOrEqual(2);
            rows = batch.rowsRead;
          }
          expect(rows).toBeGreaterThanOrEqual(0);
        } catch (error) {
          if (!(error instanceof CsvHeaderError || error instanceof CsvFormatError)) throw error;
        }
      }),
      { numRuns: RUNS },
    );
  });
});
