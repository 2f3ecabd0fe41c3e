import { pipeline, Readable } from 'node:stream';
import { parse, type CsvError, type Info } from 'csv-parse';
import { parseReferenceRange } from '../../domain/flags.ts';
import {
  OBSERVATION_VALUE_TYPE,
  RESULT_STATUS,
  type Coding,
  type Identifier,
  type LabReport,
  type ObservationResult,
  type PatientDemographics,
  type Practitioner,
  type ResultMessage,
  type ResultStatus,
} from '../../domain/model.ts';

/**
 * The CSV result upload: one result per row, a header row naming the columns. The route's
 * documentation prints this list, so each description is one line a lab's IT person can act on.
 */
export const CSV_COLUMNS = [
  {
    name: 'patient_id',
    description: "the sender's patient id, kept as the patient's external id and an identifier (this or mrn)",
  },
  {
    name: 'patient_id_system',
    description: 'assigning authority of patient_id, e.g. urn:oid:1.2.3 or ACME_LAB',
  },
  { name: 'mrn', description: 'medical record number (this or patient_id)' },
  {
    name: 'mrn_system',
    description: 'assigning authority of the mrn; without it an mrn never matches an existing patient',
  },
  { name: 'family_name', description: 'patient family name' },
  { name: 'given_name', description: 'patient given name(s), separated by spaces' },
  { name: 'birth_date', description: 'date of birth, YYYY-MM-DD' },
  { name: 'sex', description: 'M, F, O or U (or male, female, other, unknown)' },
  { name: 'email', description: 'patient e-mail address (makes the patient notifiable)' },
  { name: 'phone', description: 'patient phone number' },
  { name: 'order_number', description: 'placer order number; rows of one order and panel make one report' },
  { name: 'order_number_system', description: 'namespace of order_number (links the result to its order)' },
  { name: 'filler_order_number', description: "the lab's own order / accession number" },
  {
    name: 'client_id',
    description: 'the client (ordering organisation); keys scoped to clients must give it',
  },
  { name: 'location_id', description: 'the ordering location; keys scoped to locations must give it' },
  { name: 'test_code', description: 'result code, e.g. LOINC 2823-3 (required)' },
  {
    name: 'test_system',
    description:
      'code system of test_code: LN, LOINC or http://loinc.org mean LOINC, anything else is kept as given',
  },
  { name: 'test_name', description: 'result name as the lab writes it, e.g. Potassium' },
  { name: 'panel_code', description: 'report (panel) code, e.g. 24323-8; default: the test code' },
  { name: 'panel_name', description: 'report (panel) name, e.g. Basic metabolic panel' },
  { name: 'value', description: 'the result: a number (<0.01 and >1000 allowed) or text (required)' },
  { name: 'unit', description: 'unit of a numeric value, UCUM preferred, e.g. mmol/L' },
  { name: 'reference_range', description: 'reference range as printed, e.g. 3.5-5.1, <200, >=60' },
  { name: 'flag', description: 'abnormal flag: H, L, HH, LL, A, AA or N' },
  {
    name: 'status',
    description: 'F, P, C or X (or final, preliminary, corrected, cancelled); default final',
  },
  {
    name: 'collected_at',
    description:
      'specimen collection time, ISO 8601 (2026-11-22T07:00:00-05:00) or YYYY-MM-DD HH:MM; no offset = UTC',
  },
  { name: 'resulted_at', description: 'time the result was released, same formats as collected_at' },
  { name: 'ordering_provider_id', description: "ordering provider's id (e.g. NPI)" },
  { name: 'ordering_provider_name', description: 'ordering provider, "Family, Given" or "Given Family"' },
  { name: 'comment', description: 'a note on the result (the only column that may hold line breaks)' },
] as const satisfies readonly { name: string; description: string }[];

export type CsvColumnName = (typeof CSV_COLUMNS)[number]['name'];

/** One batch of rows, read and mapped: what a caller commits in one transaction. */
export interface CsvBatch {
  /** The batch's accepted rows, one message per patient, one report per order (or collection) and panel. */
  results: ResultMessage[];
  /** Rows of this batch that were accepted (each is one observation in `results`). */
  accepted: number;
  /** Rows of this batch that were refused, with the spreadsheet row number (the header is row 1). */
  rejected: { row: number; message: string }[];
  /** Data rows read so far, over all batches (accepted + rejected; blank rows are not counted). */
  rowsRead: number;
  /** Things the sender should know that refuse nothing: unknown columns (first batch), conflicting rows. */
  warnings: string[];
}

export interface CsvReadOptions {
  /** Data rows per batch (default 500). */
  batchRows?: number;
  /** Data rows read at most; one more ends the upload with a {@link CsvFormatError} (default 1,000,000). */
  maxRows?: number;
  /** Bytes (UTF-8) a field may hold; a longer one refuses its row (default 16 KiB). */
  maxFieldBytes?: number;
  /**
   * A last check of each mapped row's report (the sender's access scope): a reason refuses the
   * row with that reason, null lets it in.
   */
  refuse?: (report: Omit<LabReport, 'status' | 'observations'>) => string | null;
}

/** The header row cannot be used: nothing of the upload is read. */
export class CsvHeaderError extends Error {
  override readonly name = 'CsvHeaderError';
  /** Always 1 (or the first non-blank row): the header. */
  readonly row: number;
  constructor(message: string, row = 1) {
    super(message);
    this.row = row;
  }
}

export const CSV_FORMAT_ERROR = {
  /** A quote opens a value that is never closed: the rest of the file would be one field. */
  quoteNotClosed: 'quote_not_closed',
  /** A record longer than the parser's bound (almost always a quote left open). */
  recordTooLarge: 'record_too_large',
  /** More data rows than `maxRows`. */
  tooManyRows: 'too_many_rows',
  malformed: 'malformed',
} as const;
export type CsvFormatErrorCode = (typeof CSV_FORMAT_ERROR)[keyof typeof CSV_FORMAT_ERROR];

/**
 * The file cannot be read on from `row`: every row before it has already been handed out in a
 * batch (the batch that holds them is yielded before this is thrown), nothing from `row` on is.
 */
export class CsvFormatError extends Error {
  override readonly name = 'CsvFormatError';
  readonly row: number;
  readonly code: CsvFormatErrorCode;
  constructor(code: CsvFormatErrorCode, row: number, message: string) {
    super(`row ${row}: ${message}`);
    this.code = code;
    this.row = row;
  }
}

/** What the reader accepts: a Node stream (a file, a request body), an (async) iterable of chunks, or the whole text. */
export type CsvInput =
  | AsyncIterable<Uint8Array | string>
  | Iterable<Uint8Array | string>
  | NodeJS.ReadableStream
  | Uint8Array
  | string;

const DEFAULT_BATCH_ROWS = 500;
const DEFAULT_MAX_ROWS = 1_000_000;
const DEFAULT_MAX_FIELD_BYTES = 16 * 1024;
/** Identifiers, codes, systems and order numbers (EI.1 is at most 199 characters, as for HL7). */
const MAX_ID_LENGTH = 199;
/** Warnings of one kind listed per batch; beyond it a count. */
const MAX_LISTED_WARNINGS = 20;

const LOINC = 'http://loinc.org';

/**
 * Column names as senders write them map onto ours: case-insensitive, spaces and hyphens as
 * underscores, quotes around a padded name (` "Patient ID" `) dropped.
 */
function normaliseHeader(name: string): string {
  return name
    .trim()
    .replace(/^"(.*)"$/, '$1')
    .trim()
    .toLowerCase()
    .replace(/[\s-]+/g, '_');
}

const KNOWN_COLUMNS: ReadonlySet<string> = new Set(CSV_COLUMNS.map((c) => c.name));

/** A table lookup that never answers with an inherited property (`constructor`, `toString`). */
function lookup<T>(table: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

const SEX: Record<string, string> = {
  m: 'male',
  male: 'male',
  f: 'female',
  female: 'female',
  o: 'other',
  other: 'other',
  u: 'unknown',
  unknown: 'unknown',
};

const STATUS: Record<string, ResultStatus> = {
  f: RESULT_STATUS.final,
  final: RESULT_STATUS.final,
  p: RESULT_STATUS.preliminary,
  preliminary: RESULT_STATUS.preliminary,
  c: RESULT_STATUS.corrected,
  corrected: RESULT_STATUS.corrected,
  x: RESULT_STATUS.cancelled,
  cancelled: RESULT_STATUS.cancelled,
  canceled: RESULT_STATUS.cancelled,
};

const FLAGS: ReadonlySet<string> = new Set(['H', 'L', 'HH', 'LL', 'A', 'AA', 'N']);

const LOINC_NAMES: ReadonlySet<string> = new Set(['ln', 'loinc', 'http://loinc.org']);

type Row = Partial<Record<CsvColumnName, string>>;

/** A data row read and checked: its patient, the report it belongs to, and its observation. */
interface MappedRow {
  row: number;
  patient: PatientDemographics;
  /** Rows with the same key are one patient: same identifiers and same demographics. */
  patientKey: string;
  /** Identifiers alone, to notice two rows naming one patient with different demographics. */
  identifierKey: string;
  reportKey: string;
  report: Omit<LabReport, 'observations' | 'status'>;
  observation: Omit<ObservationResult, 'sequence'>;
}

interface Header {
  /** Our column name at each position, or null for a column we do not read. */
  columns: (CsvColumnName | null)[];
  warnings: string[];
}

/**
 * Reads a CSV result upload as a stream and hands it out in batches of `batchRows` data rows, each
 * mapped to canonical {@link ResultMessage}s. Only one batch is held at a time: the source is not
 * read on while the caller works on a batch (backpressure through the parser), so an upload of any
 * size runs in bounded memory. See {@link CSV_COLUMNS} for the columns.
 *
 * Row numbers are those a spreadsheet shows: the header is row 1, the first data row row 2. They
 * count records, not lines (csv-parse's `info.records`): a quoted value holding line breaks is one
 * row, and a blank line is a row (skipped, not counted in `rowsRead`), as in a spreadsheet.
 *
 * Within a batch, rows of one patient (same identifiers and same demographics) make one message;
 * rows of one patient, order number and panel make one report (without an order number: patient,
 * collection time and panel). Rows that give one identifier different demographics stay separate
 * patients (a warning says so), so a conflicting row is never filed under another row's name. A
 * bad row is refused with its row number and reasons; its neighbours are not affected.
 *
 * Quotes: a `"` inside an unquoted value is kept as part of it (as spreadsheets do). A quote that
 * opens a value and is never closed swallows the rest of the file; that cannot be refused row by
 * row, so the rows before it are yielded and a {@link CsvFormatError} names the row.
 *
 * @throws {CsvHeaderError} before any batch, when the header is missing a required column
 *   (`test_code`, `value`, and `patient_id` or `mrn`), names one twice, or the file is empty.
 * @throws {CsvFormatError} after yielding the rows before it: a quote never closed, a record over
 *   64 × `maxFieldBytes`, or more than `maxRows` data rows.
 *
 * @example
 * for await (const batch of readCsvResults(createReadStream('results.csv'))) {
 *   await store(batch.results); // batch.rejected: [{ row: 7, message: 'value is empty' }]
 * }
 */
export async function* readCsvResults(
  input: CsvInput,
  options: CsvReadOptions = {},
): AsyncGenerator<CsvBatch, void, undefined> {
  const batchRows = positiveInteger(options.batchRows, DEFAULT_BATCH_ROWS);
  const maxRows = positiveInteger(options.maxRows, DEFAULT_MAX_ROWS);
  const maxFieldBytes = positiveInteger(options.maxFieldBytes, DEFAULT_MAX_FIELD_BYTES);

  let fatal: CsvError | null = null;
  const parser = parse({
    bom: true,
    // Records come as arrays: the header is read (and checked) here, with row numbers from `info`.
    info: true,
    relax_column_count: true,
    relax_quotes: true,
    // Any of the three line endings, even mixed in one file (concatenated exports).
    record_delimiter: ['\r\n', '\n', '\r'],
    // Bounds the parser's buffer: an unclosed quote stops here instead of reading the whole file.
    max_record_size: maxFieldBytes * 64,
    // With relax_quotes the parser only fails on a quote never closed or a record too large. Its
    // error is pushed in line with the records so the rows before it are handed out first (a
    // stream error would drop records still buffered).
    skip_records_with_error: true,
    on_skip: (error) => {
      if (!fatal && error) {
        fatal = error;
        parser.push({ fatal: error });
      }
      return undefined;
    },
  });
  const source =
    typeof input === 'string' || input instanceof Uint8Array
      ? Readable.from([input])
      : input instanceof Readable
        ? input
        : Readable.from(input as AsyncIterable<Uint8Array | string>);
  // Errors of the source reach us through the parser's iterator.
  pipeline(source, parser, () => undefined);

  let header: Header | null = null;
  let lastRow = 0;
  let rowsRead = 0;
  let yielded = false;
  let batch = new BatchBuilder();
  const take = (): CsvBatch => {
    const out = batch.finish(rowsRead);
    if (!yielded) out.warnings.unshift(...(header?.warnings ?? []));
    yielded = true;
    batch = new BatchBuilder();
    return out;
  };

  try {
    for await (const item of parser as AsyncIterable<
      { record: string[]; info: Info } | { fatal: CsvError }
    >) {
      if ('fatal' in item) {
        if (header && batch.rows > 0) yield take();
        throw formatErrorOf(item.fatal, lastRow + 1, maxFieldBytes * 64);
      }
      const row = item.info.records;
      lastRow = row;
      const fields = item.record;
      if (fields.every((f) => f.trim() === '')) continue;
      if (!header) {
        header = readHeader(fields, row);
        continue;
      }
      if (rowsRead >= maxRows) {
        if (batch.rows > 0) yield take();
        throw new CsvFormatError(
          CSV_FORMAT_ERROR.tooManyRows,
          row,
          `the upload has more than ${maxRows} data rows; this row and those after it were not read`,
        );
      }
      rowsRead++;
      const mapped = mapRow(fields, header.columns, row, maxFieldBytes);
      const refused = typeof mapped === 'string' ? mapped : (options.refuse?.(mapped.report) ?? null);
      if (refused !== null) batch.reject(row, refused);
      else batch.add(mapped as MappedRow);
      if (batch.rows >= batchRows) yield take();
    }
  } finally {
    parser.destroy();
  }
  if (!header) throw new CsvHeaderError('the file is empty: the first row must be the header');
  if (batch.rows > 0 || !yielded) yield take();
}

function positiveInteger(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isInteger(value) && value > 0 ? value : fallback;
}

function formatErrorOf(error: CsvError, row: number, maxRecordBytes: number): CsvFormatError {
  if (error.code === 'CSV_QUOTE_NOT_CLOSED')
    return new CsvFormatError(
      CSV_FORMAT_ERROR.quoteNotClosed,
      row,
      'a quoted value is never closed (a " opens a value that runs to the end of the file)',
    );
  if (error.code === 'CSV_MAX_RECORD_SIZE')
    return new CsvFormatError(
      CSV_FORMAT_ERROR.recordTooLarge,
      row,
      `the row is longer than ${maxRecordBytes} bytes: is a quote left open?`,
    );
  return new CsvFormatError(CSV_FORMAT_ERROR.malformed, row, `the row cannot be read: ${error.message}`);
}

function readHeader(fields: string[], row: number): Header {
  const columns: (CsvColumnName | null)[] = [];
  const seen = new Set<string>();
  const unknown: string[] = [];
  const unnamed: number[] = [];
  const twice: string[] = [];
  for (const [i, raw] of fields.entries()) {
    const name = normaliseHeader(raw);
    if (name === '') {
      unnamed.push(i + 1);
      columns.push(null);
    } else if (KNOWN_COLUMNS.has(name)) {
      if (seen.has(name)) twice.push(name);
      seen.add(name);
      columns.push(name as CsvColumnName);
    } else {
      unknown.push(raw.trim());
      columns.push(null);
    }
  }
  const where = row === 1 ? 'the header (row 1)' : `the header (row ${row}, the first row that is not blank)`;
  if (twice.length > 0)
    throw new CsvHeaderError(
      `${where} names ${listOf(twice)} more than once: which one holds the data?`,
      row,
    );
  const missing: string[] = [];
  if (!seen.has('test_code')) missing.push('test_code');
  if (!seen.has('value')) missing.push('value');
  if (!seen.has('patient_id') && !seen.has('mrn')) missing.push('patient_id or mrn');
  if (missing.length > 0) {
    const only = fields.length === 1 ? fields[0]! : '';
    const separator = [';', '\t', '|'].find((s) => only.includes(s));
    const hint = separator
      ? ` The header seems to be separated by ${separator === '\t' ? 'tabs' : `"${separator}"`}: LabRelay reads comma-separated files.`
      : seen.size === 0
        ? ` None of its columns is known: is the first row the header? Columns: ${CSV_COLUMNS.map((c) => c.name).join(', ')}.`
        : '';
    throw new CsvHeaderError(`${where} lacks the required column(s) ${missing.join(', ')}.${hint}`, row);
  }
  const warnings: string[] = [];
  if (unknown.length > 0)
    warnings.push(
      `column(s) ${listOf(unknown.map((u) => u.slice(0, 60)))} are not LabRelay columns and were ignored`,
    );
  if (unnamed.length > 0) warnings.push(`column(s) ${unnamed.join(', ')} have no name and were ignored`);
  if (!seen.has('test_system'))
    warnings.push(
      'there is no test_system column: a test code in the form of LOINC with a valid check digit is read as LOINC; any other code is not checked against the critical limits',
    );
  if (seen.has('mrn') && !seen.has('mrn_system'))
    warnings.push(
      'there is no mrn_system column: an mrn without its assigning authority never matches a patient',
    );
  return { columns, warnings };
}

function listOf(names: string[]): string {
  const shown = names.slice(0, MAX_LISTED_WARNINGS).join(', ');
  return names.length > MAX_LISTED_WARNINGS
    ? `${shown} and ${names.length - MAX_LISTED_WARNINGS} more`
    : shown;
}

/** Maps one data row, or answers why it is refused (every problem of the row, joined). */
function mapRow(
  fields: string[],
  columns: (CsvColumnName | null)[],
  row: number,
  maxFieldBytes: number,
): MappedRow | string {
  const problems: string[] = [];
  const r: Row = {};
  for (const [i, raw] of fields.entries()) {
    const name = columns[i];
    if (i >= columns.length) {
      if (raw.trim() !== '') {
        problems.push(
          `the row has ${fields.length} fields but the header has ${columns.length}: is a comma inside an unquoted value?`,
        );
        break;
      }
      continue;
    }
    if (!name) continue;
    if (
      raw.length > maxFieldBytes ||
      (raw.length * 3 > maxFieldBytes && Buffer.byteLength(raw) > maxFieldBytes)
    ) {
      problems.push(`${name} is longer than ${maxFieldBytes} bytes`);
      continue;
    }
    const value = raw.trim();
    if (value === '') continue;
    // A line break anywhere but a comment is a quote gone wrong, not data.
    if (name !== 'comment' && /[\r\n]/.test(value)) {
      problems.push(`${name} holds a line break: is a quote left open on this row?`);
      continue;
    }
    r[name] = value;
  }
  for (const name of [
    'patient_id',
    'patient_id_system',
    'mrn',
    'mrn_system',
    'order_number',
    'order_number_system',
    'filler_order_number',
    'client_id',
    'location_id',
    'test_code',
    'test_system',
    'panel_code',
    'ordering_provider_id',
  ] as const) {
    const value = r[name];
    if (value !== undefined && value.length > MAX_ID_LENGTH) {
      problems.push(`${name} is longer than ${MAX_ID_LENGTH} characters`);
      delete r[name];
    }
  }

  const identifiers: Identifier[] = [];
  if (r.patient_id) identifiers.push({ system: r.patient_id_system ?? '', value: r.patient_id, type: 'PI' });
  if (r.mrn) identifiers.push({ system: r.mrn_system ?? '', value: r.mrn, type: 'MR' });
  if (identifiers.length === 0) problems.push('the row has no patient_id and no mrn');
  if (!r.test_code) problems.push('test_code is empty');
  if (r.value === undefined) problems.push('value is empty');

  let birthDate: string | null = null;
  if (r.birth_date) {
    birthDate = isoDate(r.birth_date);
    if (!birthDate) problems.push(`birth_date ${quote(r.birth_date)} is not a date (YYYY-MM-DD)`);
  }
  let sex: string | null = null;
  if (r.sex) {
    sex = lookup(SEX, r.sex.toLowerCase()) ?? null;
    if (!sex) problems.push(`sex ${quote(r.sex)} is not M, F, O or U`);
  }
  if (r.email && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(r.email))
    problems.push(`email ${quote(r.email)} is not an e-mail address`);
  if (r.phone && (!/\d/.test(r.phone) || r.phone.length > 40 || !/^[\d\s()+./x-]+$/i.test(r.phone)))
    problems.push(`phone ${quote(r.phone)} is not a phone number`);
  let status: ResultStatus = RESULT_STATUS.final;
  if (r.status) {
    const s = lookup(STATUS, r.status.toLowerCase());
    if (s) status = s;
    else problems.push(`status ${quote(r.status)} is not F, P, C or X`);
  }
  let flag: string | null = null;
  if (r.flag) {
    flag = r.flag.toUpperCase();
    if (!FLAGS.has(flag)) problems.push(`flag ${quote(r.flag)} is not H, L, HH, LL, A, AA or N`);
  }
  const collectedAt = r.collected_at ? csvDateTime(r.collected_at) : null;
  if (r.collected_at && !collectedAt)
    problems.push(`collected_at ${quote(r.collected_at)} is not a date-time (ISO 8601 or YYYY-MM-DD HH:MM)`);
  const resultedAt = r.resulted_at ? csvDateTime(r.resulted_at) : null;
  if (r.resulted_at && !resultedAt)
    problems.push(`resulted_at ${quote(r.resulted_at)} is not a date-time (ISO 8601 or YYYY-MM-DD HH:MM)`);

  if (problems.length > 0) return problems.join('; ');

  const patient: PatientDemographics = {
    identifiers,
    familyName: r.family_name ?? null,
    givenNames: r.given_name ? r.given_name.split(/\s+/) : [],
    birthDate,
    sex,
    externalId: r.patient_id ?? null,
    email: r.email ?? null,
    phone: r.phone ?? null,
  };
  const testSystem = r.test_system ? codeSystem(r.test_system) : null;
  const testCode: Coding = { system: testSystem, code: r.test_code!, display: r.test_name ?? null };
  const panel: Coding = r.panel_code
    ? { system: null, code: r.panel_code, display: r.panel_name ?? null }
    : r.panel_name
      ? { system: null, code: r.panel_name, display: r.panel_name }
      : testCode;
  const value = readValue(r.value!);
  const identifierKey = JSON.stringify(identifiers.map((i) => [i.system, i.value]));
  const patientKey = JSON.stringify([
    identifierKey,
    patient.familyName,
    patient.givenNames,
    birthDate,
    sex,
    patient.email,
    patient.phone,
  ]);
  const order = r.order_number
    ? ['placer', r.order_number_system ?? '', r.order_number]
    : r.filler_order_number
      ? ['filler', r.filler_order_number]
      : ['collected', collectedAt];
  return {
    row,
    patient,
    patientKey,
    identifierKey,
    reportKey: JSON.stringify([patientKey, order, panel.system, panel.code, r.client_id, r.location_id]),
    report: {
      placerOrderNumber: r.order_number ?? null,
      placerAuthority: r.order_number ? (r.order_number_system ?? null) : null,
      fillerOrderNumber: r.filler_order_number ?? null,
      clientId: r.client_id ?? null,
      locationId: r.location_id ?? null,
      code: panel,
      orderingProvider: practitioner(r.ordering_provider_id, r.ordering_provider_name),
      effectiveAt: collectedAt,
      issuedAt: resultedAt,
    },
    observation: {
      code: testCode,
      ...value,
      unit: r.unit ?? null,
      referenceRange: r.reference_range ? parseReferenceRange(r.reference_range) : null,
      sourceFlags: flag ? [flag] : [],
      status,
      effectiveAt: collectedAt,
      ...(r.comment ? { notes: [r.comment] } : {}),
    },
  };
}

function quote(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

function codeSystem(system: string): string {
  return LOINC_NAMES.has(system.toLowerCase()) ? LOINC : system;
}

/** A number (optionally bounded: `<0.01`, `>=60`) is a quantity; anything else is text. */
function readValue(
  text: string,
): Pick<ObservationResult, 'valueType' | 'numericValue' | 'comparator' | 'textValue'> {
  const m = /^(<=|>=|<|>)?\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$/.exec(text);
  const n = m ? Number(m[2]) : Number.NaN;
  if (m && Number.isFinite(n))
    return {
      valueType: OBSERVATION_VALUE_TYPE.quantity,
      numericValue: n,
      comparator: m[1] ?? null,
      textValue: text,
    };
  return { valueType: OBSERVATION_VALUE_TYPE.text, numericValue: null, comparator: null, textValue: text };
}

/** `Family, Given` or `Given Family`. */
function practitioner(id: string | undefined, name: string | undefined): Practitioner | null {
  if (!id && !name) return null;
  let familyName: string | null = null;
  let givenNames: string[] = [];
  if (name) {
    const comma = name.indexOf(',');
    if (comma >= 0) {
      familyName = name.slice(0, comma).trim() || null;
      givenNames = name
        .slice(comma + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean);
    } else {
      const words = name.split(/\s+/);
      familyName = words.pop() ?? null;
      givenNames = words;
    }
  }
  return { id: id ?? null, familyName, givenNames };
}

/** YYYY-MM-DD that is a real calendar date. */
function isoDate(text: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return null;
  return text;
}

/**
 * ISO 8601 date-time (`T` or a space between date and time, seconds and fraction optional, `Z` or
 * an offset) or a date alone (midnight). Without an offset the time is read as UTC, as the HL7
 * adapter reads an HL7 timestamp without one. Answers an ISO instant, or null.
 */
export function csvDateTime(text: string): string | null {
  const m =
    /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?\s*(Z|[+-]\d{2}:?\d{2})?)?$/i.exec(
      text.trim(),
    );
  if (!m) return null;
  const [, ys, mos, ds, hs = '00', mis = '00', ss = '00', frac = '', zone = 'Z'] = m;
  const [y, mo, d, h, mi, s] = [ys, mos, ds, hs, mis, ss].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 59)
    return null;
  const offset = zone.toUpperCase() === 'Z' ? 'Z' : `${zone.slice(0, 3)}:${zone.slice(-2)}`;
  if (offset !== 'Z' && (Number(offset.slice(1, 3)) > 14 || Number(offset.slice(4)) > 59)) return null;
  const date = new Date(`${ys}-${mos}-${ds}T${hs}:${mis}:${ss}${frac.slice(0, 4)}${offset}`);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Statuses from least to most settled: a report is as settled as its least settled result. */
function reportStatus(observations: { status: ResultStatus }[]): ResultStatus {
  const statuses = new Set(observations.map((o) => o.status));
  if (statuses.has(RESULT_STATUS.preliminary)) return RESULT_STATUS.preliminary;
  if (statuses.has(RESULT_STATUS.corrected)) return RESULT_STATUS.corrected;
  if (statuses.size === 1 && statuses.has(RESULT_STATUS.cancelled)) return RESULT_STATUS.cancelled;
  return RESULT_STATUS.final;
}

/** Groups one batch's rows into messages and reports, in the order they first appear. */
class BatchBuilder {
  rows = 0;
  private accepted = 0;
  private readonly rejected: { row: number; message: string }[] = [];
  private readonly messages = new Map<string, ResultMessage>();
  private readonly reports = new Map<string, LabReport>();
  /** First row and patient key seen for each identifier set, to warn about conflicting demographics. */
  private readonly firstOfIdentifiers = new Map<string, { row: number; patientKey: string }>();
  private readonly conflicts: string[] = [];

  reject(row: number, message: string): void {
    this.rows++;
    this.rejected.push({ row, message });
  }

  add(mapped: MappedRow): void {
    this.rows++;
    this.accepted++;
    const first = this.firstOfIdentifiers.get(mapped.identifierKey);
    if (!first)
      this.firstOfIdentifiers.set(mapped.identifierKey, { row: mapped.row, patientKey: mapped.patientKey });
    else if (first.patientKey !== mapped.patientKey && !this.messages.has(mapped.patientKey))
      this.conflicts.push(
        `rows ${first.row} and ${mapped.row} give the same patient identifier different demographics: they are kept as separate patients for review`,
      );
    let message = this.messages.get(mapped.patientKey);
    if (!message) {
      message = { patient: mapped.patient, reports: [] };
      this.messages.set(mapped.patientKey, message);
    }
    let report = this.reports.get(mapped.reportKey);
    if (!report) {
      report = { ...mapped.report, status: RESULT_STATUS.final, observations: [] };
      this.reports.set(mapped.reportKey, report);
      message.reports.push(report);
    } else {
      // Earliest collection, latest release; the first provider and filler number given.
      const r = mapped.report;
      if (r.effectiveAt && (!report.effectiveAt || r.effectiveAt < report.effectiveAt))
        report.effectiveAt = r.effectiveAt;
      if (r.issuedAt && (!report.issuedAt || r.issuedAt > report.issuedAt)) report.issuedAt = r.issuedAt;
      report.orderingProvider ??= r.orderingProvider;
      report.fillerOrderNumber ??= r.fillerOrderNumber;
    }
    report.observations.push({ sequence: report.observations.length + 1, ...mapped.observation });
  }

  finish(rowsRead: number): CsvBatch {
    for (const report of this.reports.values()) report.status = reportStatus(report.observations);
    const warnings = this.conflicts.slice(0, MAX_LISTED_WARNINGS);
    if (this.conflicts.length > MAX_LISTED_WARNINGS)
      warnings.push(
        `${this.conflicts.length - MAX_LISTED_WARNINGS} more rows give an identifier other demographics`,
      );
    return {
      results: [...this.messages.values()],
      accepted: this.accepted,
      rejected: this.rejected,
      rowsRead,
      warnings,
    };
  }
}
