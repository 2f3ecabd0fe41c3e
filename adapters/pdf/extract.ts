import { extractText, getDocumentProxy } from 'unpdf';
import { parseReferenceRange } from '../../domain/flags.ts';
import {
  OBSERVATION_VALUE_TYPE,
  RESULT_STATUS,
  type ObservationResult,
  type ResultStatus,
} from '../../domain/model.ts';

/**
 * Text extraction from an uploaded PDF report (seed 004): whatever can be read, with a measure of
 * how far to trust it. The caller stores the PDF whatever the outcome and a person reviews it; this
 * module only reads, and never throws on a bad file.
 */

/** How far the text of a PDF could be read. */
export const PDF_EXTRACTION_STATUS = {
  /** Every page had text and every line that looked like a result was read. */
  extracted: 'extracted',
  /** Some pages or result lines could not be read; what could is returned. */
  partial: 'partial',
  /** Nothing could be read: not a PDF, encrypted, corrupt, too large, or no text (a scan). */
  unreadable: 'unreadable',
} as const;
export type PdfExtractionStatus = (typeof PDF_EXTRACTION_STATUS)[keyof typeof PDF_EXTRACTION_STATUS];

export interface PdfPatientHints {
  /** As `Family, Given` (the document's `Patient: Doe, Jane` or `Patient Name: Jane Doe`). */
  name: string | null;
  /** YYYY-MM-DD. */
  birthDate: string | null;
  /** The MRN or patient id printed on the report, without its assigning authority. */
  identifier: string | null;
}

export interface PdfExtraction {
  status: PdfExtractionStatus;
  /** Pages in the document (0 when it could not be opened). */
  pages: number;
  /** The text of the pages read, pages separated by a blank line. */
  text: string;
  observations: ObservationResult[];
  /**
   * 0..1: the share of lines that looked like results and were read fully (a value, a unit and an
   * analyte with a LOINC code), lowered by 0.1 for each missing patient hint and in proportion to
   * pages that could not be read. 0 when no result line was found.
   */
  confidence: number;
  patientHints: PdfPatientHints;
  /** Why the status is not `extracted`, in words a reviewer reads. */
  problems: string[];
}

export interface PdfExtractOptions {
  /** Larger files are not opened (default 50 MB). */
  maxBytes?: number;
  /** Pages read at most; the rest are noted as not read (default 200). */
  maxPages?: number;
  /** Time allowed for opening and reading (default 30 s). */
  timeoutMs?: number;
}

const MB = 1024 * 1024;
const DEFAULT_MAX_BYTES = 50 * MB;
const DEFAULT_MAX_PAGES = 200;
const DEFAULT_TIMEOUT_MS = 30_000;
/** Unread result lines listed in `problems`; beyond it a count. */
const MAX_LISTED_LINES = 20;

const LOINC = 'http://loinc.org';
/** The code system of an analyte name that is not in {@link PDF_ANALYTES}: the name itself, normalised. */
export const PDF_TEXT_CODE_SYSTEM = 'urn:labrelay:pdf-text';

/**
 * Analytes recognised by name (lower case, as {@link normaliseAnalyte} leaves them), with their
 * LOINC code. `unitless` ones (INR) are read fully without a unit.
 */
export const PDF_ANALYTES: readonly {
  loinc: string;
  display: string;
  names: string[];
  unitless?: boolean;
}[] = [
  { loinc: '2823-3', display: 'Potassium', names: ['potassium', 'k'] },
  { loinc: '2951-2', display: 'Sodium', names: ['sodium', 'na'] },
  { loinc: '2345-7', display: 'Glucose', names: ['glucose'] },
  { loinc: '17861-6', display: 'Calcium', names: ['calcium', 'ca'] },
  { loinc: '718-7', display: 'Hemoglobin', names: ['hemoglobin', 'haemoglobin', 'hgb', 'hb'] },
  { loinc: '777-3', display: 'Platelets', names: ['platelets', 'platelet count', 'platelet', 'plt'] },
  {
    loinc: '6690-2',
    display: 'Leukocytes',
    names: ['wbc', 'white blood cells', 'white blood cell count', 'white cell count', 'leukocytes'],
  },
  { loinc: '2160-0', display: 'Creatinine', names: ['creatinine', 'creat'] },
  { loinc: '6301-6', display: 'INR', names: ['inr', 'pt inr'], unitless: true },
  { loinc: '2524-7', display: 'Lactate', names: ['lactate', 'lactic acid'] },
  { loinc: '19123-9', display: 'Magnesium', names: ['magnesium', 'mg'] },
  { loinc: '2075-0', display: 'Chloride', names: ['chloride', 'cl'] },
  { loinc: '3094-0', display: 'Urea nitrogen', names: ['bun', 'urea nitrogen', 'blood urea nitrogen'] },
];

const ANALYTE_BY_NAME = new Map(PDF_ANALYTES.flatMap((a) => a.names.map((n) => [n, a] as const)));

/**
 * Reads a PDF lab report: its text per page (unpdf / PDF.js), the lab lines in it, and hints of
 * whose report it is. Never throws: a file that is not a PDF, encrypted, corrupt, larger than
 * `maxBytes` or without a text layer (a scan) is `unreadable` with the reason in `problems`.
 *
 * The lab-line grammar (one line, spaces collapsed):
 *
 *     line   := name [":"] value [flag] [unit] [flag] [range] [flag]
 *     name   := words starting with a letter or digit and holding a letter ("Potassium", "Hemoglobin A1c")
 *     value  := [< | <= | > | >= | ≤ | ≥] number          (a separate token: "6.8", "<0.01")
 *     flag   := H | L | HH | LL | A | AA | N, optionally "(H)", "*H" or "H*"
 *     unit   := a token starting with a letter, µ or % ("mmol/L", "g/dL", "%"), or a power of ten
 *               ("10^9/L", "x10^3/uL")
 *     range  := low "-" high | "<" high | ">" low ..., optionally in ( ) or [ ]
 *
 * e.g. `Potassium 6.8 mmol/L 3.5-5.1 HH`, `Glucose: 95 mg/dL (70-99)`, `Hemoglobin 10.2 L g/dL
 * 12.0-16.0`, `Sodium 140 mmol/L`. A lone `L` after the value is a flag, not litres. A line "looks
 * like a result" when a name is followed by a number token and the name is not a label (Page, Age,
 * Phone, DOB...); those that do not fit the grammar, or name an unknown analyte without a unit, are
 * listed in `problems`. Names in {@link PDF_ANALYTES} get their LOINC code; others the system
 * {@link PDF_TEXT_CODE_SYSTEM} and the normalised name as code. Results are `final`, or
 * `preliminary` / `corrected` when the document says so.
 *
 * The input is copied before PDF.js sees it (PDF.js takes over the buffer it is given), so the
 * caller's bytes stay usable for storing the document.
 *
 * @example
 * const extraction = await extractPdfReport(bytes);
 * // { status: 'extracted', pages: 1, observations: [{ code: { system: 'http://loinc.org', code: '2823-3', ... }, numericValue: 6.8, ... }], confidence: 1, ... }
 */
export async function extractPdfReport(
  bytes: Uint8Array,
  options: PdfExtractOptions = {},
): Promise<PdfExtraction> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxPages = options.maxPages ?? DEFAULT_MAX_PAGES;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline: Deadline = { at: Date.now() + timeoutMs, ms: timeoutMs };

  if (bytes.byteLength === 0) return unreadable(0, ['the file is empty']);
  if (bytes.byteLength > maxBytes)
    return unreadable(0, [
      `the file is larger than ${maxBytes % MB === 0 ? `${maxBytes / MB} MB` : `${maxBytes} bytes`} and was not opened`,
    ]);
  if (!hasPdfHeader(bytes))
    return unreadable(0, ['not a PDF: there is no %PDF- header at the start of the file']);

  let pdf: Awaited<ReturnType<typeof getDocumentProxy>>;
  try {
    pdf = await withDeadline(getDocumentProxy(bytes.slice(), { verbosity: 0 }), deadline);
  } catch (error) {
    return unreadable(0, [openProblem(error)]);
  }
  try {
    const pages = pdf.numPages;
    const problems: string[] = [];
    const pageTexts = await readPages(pdf, Math.min(pages, maxPages), deadline, problems);
    if (pages > maxPages) problems.push(`only the first ${maxPages} of ${pages} pages were read`);
    const readable = pageTexts.filter((t): t is string => t !== null);
    if (readable.length === 0) {
      const other = problems.filter((p) => !/has no text/.test(p));
      if (other.length > 0) return unreadable(pages, other);
      return unreadable(pages, [
        pages === 0
          ? 'the PDF has no pages'
          : 'no page has extractable text: it is probably a scanned image, a person must read it',
      ]);
    }
    const text = readable.join('\n\n');
    const patientHints = findPatientHints(text);
    const { observations, candidates, full, unread } = readResultLines(readable, documentStatus(text));
    for (const line of unread.slice(0, MAX_LISTED_LINES)) problems.push(`not read as a result: "${line}"`);
    if (unread.length > MAX_LISTED_LINES)
      problems.push(`${unread.length - MAX_LISTED_LINES} more lines that look like results were not read`);
    if (candidates === 0) problems.push('no result lines were found in the text');
    const missingHints = Object.values(patientHints).filter((h) => h === null).length;
    const pageShare = readable.length / pages;
    const confidence =
      candidates === 0 ? 0 : round2((full / candidates) * (1 - 0.1 * missingHints) * Math.min(1, pageShare));
    const partial = readable.length < pages || unread.length > 0;
    return {
      status: partial ? PDF_EXTRACTION_STATUS.partial : PDF_EXTRACTION_STATUS.extracted,
      pages,
      text,
      observations,
      confidence,
      patientHints,
      problems,
    };
  } catch (error) {
    // Anything PDF.js throws past opening: keep the file, say why.
    return unreadable(0, [openProblem(error)]);
  } finally {
    await pdf.destroy().catch(() => undefined);
  }
}

function unreadable(pages: number, problems: string[]): PdfExtraction {
  return {
    status: PDF_EXTRACTION_STATUS.unreadable,
    pages,
    text: '',
    observations: [],
    confidence: 0,
    patientHints: { name: null, birthDate: null, identifier: null },
    problems,
  };
}

/** `%PDF-` within the first 1024 bytes, where readers look for it (some producers put junk before it). */
function hasPdfHeader(bytes: Uint8Array): boolean {
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, 1024));
  return head.includes('%PDF-');
}

function openProblem(error: unknown): string {
  const name = error instanceof Error ? error.name : '';
  const message = error instanceof Error ? error.message : String(error);
  if (name === 'PasswordException') return 'the PDF is encrypted with a password and cannot be read';
  if (name === 'InvalidPDFException') return 'the PDF is corrupt or truncated (its structure cannot be read)';
  if (name === 'DeadlineError') return message;
  return `the PDF could not be read: ${message.slice(0, 200)}`;
}

class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
}

/** When reading must be over (epoch ms), and the time it was given. */
interface Deadline {
  at: number;
  ms: number;
}

/** Waits for `promise` until the deadline. PDF.js's work is abandoned by destroying the document. */
async function withDeadline<T>(promise: Promise<T>, deadline: Deadline): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const allowed = deadline.ms < 1000 ? `${deadline.ms} ms` : `${Math.round(deadline.ms / 1000)} s`;
  if (Date.now() >= deadline.at) {
    // Past the deadline already: give up now rather than race a timer against fast work.
    promise.catch(() => undefined);
    throw new DeadlineError(`reading the PDF took longer than ${allowed}`);
  }
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new DeadlineError(`reading the PDF took longer than ${allowed}`)),
          Math.max(0, deadline.at - Date.now()),
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    // A late rejection of the abandoned promise must not become an unhandled rejection.
    promise.catch(() => undefined);
  }
}

type PdfDocument = Awaited<ReturnType<typeof getDocumentProxy>>;

/**
 * The text of each page, or null for a page that could not be read (the reason is in `problems`).
 * All pages at once through unpdf first; when that fails, page by page, so one bad page does not
 * lose the others.
 */
async function readPages(
  pdf: PdfDocument,
  count: number,
  deadline: Deadline,
  problems: string[],
): Promise<(string | null)[]> {
  let raw: (string | null)[];
  if (count === pdf.numPages) {
    try {
      raw = (await withDeadline(extractText(pdf, { mergePages: false }), deadline)).text;
    } catch (error) {
      if (error instanceof DeadlineError) {
        problems.push(error.message);
        return new Array<string | null>(count).fill(null);
      }
      raw = await readPageByPage(pdf, count, deadline, problems);
    }
  } else {
    raw = await readPageByPage(pdf, count, deadline, problems);
  }
  return raw.map((text, i) => {
    if (text === null) return null;
    const clean = text.replaceAll('\u0000', '');
    if (clean.trim() === '') {
      problems.push(`page ${i + 1} has no text (a scanned image?)`);
      return null;
    }
    if (garbled(clean)) {
      problems.push(`the text of page ${i + 1} is not readable (a font without a character map?)`);
      return null;
    }
    return clean;
  });
}

async function readPageByPage(
  pdf: PdfDocument,
  count: number,
  deadline: Deadline,
  problems: string[],
): Promise<(string | null)[]> {
  const texts: (string | null)[] = [];
  for (let n = 1; n <= count; n++) {
    try {
      const page = await withDeadline(pdf.getPage(n), deadline);
      const content = await withDeadline(page.getTextContent(), deadline);
      // As unpdf joins a page's text items.
      texts.push(
        content.items.map((item) => ('str' in item ? item.str + (item.hasEOL ? '\n' : '') : '')).join(''),
      );
    } catch (error) {
      if (error instanceof DeadlineError) {
        problems.push(`${error.message}: pages ${n} to ${count} were not read`);
        while (texts.length < count) texts.push(null);
        return texts;
      }
      problems.push(
        `page ${n} could not be read: ${(error as Error).message?.slice(0, 200) ?? 'unknown error'}`,
      );
      texts.push(null);
    }
  }
  return texts;
}

/** Mostly replacement, private-use or control characters: glyphs without a Unicode mapping. */
function garbled(text: string): boolean {
  const visible = text.replace(/\s/g, '');
  if (visible.length === 0) return false;
  // eslint-disable-next-line no-control-regex
  const bad = visible.match(/[\uFFFD\uE000-\uF8FF\u0001-\u001F\u007F]/g)?.length ?? 0;
  return bad / visible.length > 0.3;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/** The report's own word on its status; final unless it says preliminary or corrected. */
function documentStatus(text: string): ResultStatus {
  if (/\bpreliminary\b/i.test(text)) return RESULT_STATUS.preliminary;
  if (/\b(?:corrected|amended) report\b/i.test(text)) return RESULT_STATUS.corrected;
  return RESULT_STATUS.final;
}

// --- Patient hints -------------------------------------------------------------------------------

/** Labels that end a name on a line holding several (`Patient: Doe, Jane DOB: 01/15/1980`). */
const NEXT_LABEL = String.raw`(?:DOB|D\.O\.B\.?|Date of Birth|Birth ?Date|MRN|Sex|Gender|Age|Patient ID|ID|Acct|Account|Phone)\b`;
const NAME_HINT = new RegExp(
  String.raw`(?<!(?:provider|physician|doctor|ordering|facility|lab|test|panel|specimen)\s)\b(?:patient(?:\s+name)?|name)\s*:\s*(.+?)(?=\s+${NEXT_LABEL}|\s{2,}|$)`,
  'i',
);
const DOB_HINT =
  /\b(?:DOB|D\.O\.B\.?|Date of Birth|Birth ?Date)\s*:?\s*(\d{4}-\d{2}-\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{4})\b/i;
const ID_HINT =
  /\b(?:MRN|Medical Record (?:Number|No\.?|#)|Patient ID|Patient #)\s*[:#]?\s*([A-Za-z0-9][A-Za-z0-9-]{0,39})\b/i;

/**
 * Whose report it is, as printed: `Patient: Doe, Jane` / `Patient Name: Jane Doe` (a name without
 * a comma is read as given names then family name), `DOB: 1980-01-15` / `01/15/1980` (slashes and
 * hyphens month first, unless the first number is over 12; dots day first), `MRN: 12345`.
 */
export function findPatientHints(text: string): PdfPatientHints {
  const hints: PdfPatientHints = { name: null, birthDate: null, identifier: null };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+/g, ' ').trim();
    if (!hints.name) {
      const m = NAME_HINT.exec(line);
      if (m) hints.name = personName(m[1]!);
    }
    if (!hints.birthDate) {
      const m = DOB_HINT.exec(line);
      if (m) hints.birthDate = hintDate(m[1]!);
    }
    if (!hints.identifier) {
      const m = ID_HINT.exec(line);
      if (m && /\d/.test(m[1]!)) hints.identifier = m[1]!;
    }
  }
  return hints;
}

function personName(text: string): string | null {
  const name = text.replace(/\s+/g, ' ').trim();
  if (!/^[\p{L}][\p{L}' .,-]{0,99}$/u.test(name)) return null;
  const comma = name.indexOf(',');
  if (comma >= 0) {
    const family = name.slice(0, comma).trim();
    const given = name.slice(comma + 1).trim();
    return family ? (given ? `${family}, ${given}` : family) : null;
  }
  const words = name.split(' ');
  const family = words.pop()!;
  return words.length > 0 ? `${family}, ${words.join(' ')}` : family;
}

function hintDate(text: string): string | null {
  let y: number, m: number, d: number;
  const iso = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (iso) [y, m, d] = [Number(iso[1]), Number(iso[2]), Number(iso[3])];
  else {
    const parts = /^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})$/.exec(text);
    if (!parts) return null;
    const [a, b] = [Number(parts[1]), Number(parts[3])];
    const dayFirst = parts[2] === '.' || a > 12;
    [d, m, y] = dayFirst ? [a, b, Number(parts[4])] : [b, a, Number(parts[4])];
  }
  if (y < 1 || m < 1 || m > 12 || d < 1 || d > new Date(Date.UTC(y, m, 0)).getUTCDate()) return null;
  return `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

// --- Result lines --------------------------------------------------------------------------------

const NUMBER = String.raw`[+-]?(?:\d+(?:\.\d+)?|\.\d+)`;
const COMPARATOR = '<=|>=|<|>|≤|≥';
/** name, then a value token: what makes a line look like a result. */
const RESULT_HEAD = new RegExp(
  String.raw`^(?<name>[\p{L}\d][\p{L}\d ,'()/%#.+*-]*?)(?:\s*:\s*|\s+)(?<cmp>${COMPARATOR})?\s*(?<value>${NUMBER})(?=\s|$)(?<rest>.*)$`,
  'u',
);
const FLAG = String.raw`\(?\*?(?:HH|LL|AA|H|L|A|N)\*?\)?`;
const UNIT = String.raw`(?:x\s?)?10(?:\^|\*|E)?\d+\/[\p{L}µμ]+|[\p{L}µμ%][\p{L}\dµμ%/^*.\[\]{}-]*`;
const RANGE = String.raw`[(\[]?\s*(?:${NUMBER}\s*(?:-|–|to)\s*${NUMBER}|(?:${COMPARATOR})\s*${NUMBER})\s*[)\]]?`;
/** What may follow the value. Flags are tried before units, so a lone `L` is a flag. */
const RESULT_REST = new RegExp(
  String.raw`^(?:\s+(?<flag1>${FLAG}))?(?:\s+(?<unit>${UNIT}))?(?:\s+(?<flag2>${FLAG}))?(?:\s+(?<range>${RANGE}))?(?:\s+(?<flag3>${FLAG}))?\s*$`,
  'u',
);
/** First words of lines that carry a number but are not results. */
const LABELS: ReadonlySet<string> = new Set([
  'page',
  'age',
  'phone',
  'tel',
  'telephone',
  'fax',
  'room',
  'bed',
  'suite',
  'apt',
  'zip',
  'ext',
  'account',
  'acct',
  'order',
  'accession',
  'specimen',
  'collected',
  'received',
  'reported',
  'printed',
  'date',
  'time',
  'dob',
  'mrn',
  'id',
  'npi',
  'clia',
  'version',
  'report',
  'patient',
  'name',
  'sex',
  'gender',
  'po',
  'p.o.',
  'box',
]);

/** Lower case, parenthesised parts and punctuation removed, spaces collapsed. */
export function normaliseAnalyte(name: string): string {
  return name
    .toLowerCase()
    .replace(/\([^)]*\)/g, ' ')
    .replace(/[^\p{L}\d]+/gu, ' ')
    .trim();
}

function analyteOf(name: string) {
  const full = normaliseAnalyte(name);
  return ANALYTE_BY_NAME.get(full) ?? ANALYTE_BY_NAME.get(normaliseAnalyte(name.split(',')[0]!));
}

/** One line of a report, read by the lab-line grammar of {@link extractPdfReport}. */
export type LabLine =
  /** A result; `complete` when it has a value, a unit (unless unitless) and a known analyte. */
  | { kind: 'result'; observation: Omit<ObservationResult, 'sequence' | 'status'>; complete: boolean }
  /** Looked like a result (a name, then a number) but did not fit the grammar. */
  | { kind: 'unread' }
  /** Not a result line: text, a heading, a label with a number (Page 1 of 2). */
  | { kind: 'other' };

/**
 * Reads one line by the lab-line grammar (see {@link extractPdfReport}).
 *
 * @example parseLabLine('Potassium 6.8 mmol/L 3.5-5.1 HH') // { kind: 'result', complete: true, observation: { code: { code: '2823-3', ... }, numericValue: 6.8, ... } }
 */
export function parseLabLine(text: string): LabLine {
  const line = text.replace(/\s+/g, ' ').trim();
  const head = RESULT_HEAD.exec(line);
  if (!head?.groups) return { kind: 'other' };
  const name = head.groups.name!.trim();
  const firstWord = name.toLowerCase().split(/[\s:]/)[0]!;
  if (!/\p{L}/u.test(name) || LABELS.has(firstWord) || NAME_HINT.test(line) || DOB_HINT.test(line))
    return { kind: 'other' };
  const rest = RESULT_REST.exec(head.groups.rest!);
  const analyte = analyteOf(name);
  const unit = rest?.groups?.unit ?? null;
  if (!rest?.groups || (!analyte && !unit)) return { kind: 'unread' };
  const comparator = comparatorOf(head.groups.cmp);
  const value = head.groups.value!;
  const rangeText = rest.groups.range
    ?.replace(/^[([]\s*|\s*[)\]]$/g, '')
    .replace('≤', '<=')
    .replace('≥', '>=');
  const flags = [rest.groups.flag1, rest.groups.flag2, rest.groups.flag3]
    .filter((f): f is string => f !== undefined)
    .map((f) => f.replace(/[()*]/g, ''));
  return {
    kind: 'result',
    complete: analyte !== undefined && (unit !== null || analyte.unitless === true),
    observation: {
      code: analyte
        ? { system: LOINC, code: analyte.loinc, display: name }
        : { system: PDF_TEXT_CODE_SYSTEM, code: normaliseAnalyte(name).replace(/ /g, '-'), display: name },
      valueType: OBSERVATION_VALUE_TYPE.quantity,
      numericValue: Number(value),
      comparator,
      textValue: `${comparator ?? ''}${value}`,
      unit,
      referenceRange: rangeText ? parseReferenceRange(rangeText) : null,
      sourceFlags: [...new Set(flags)],
      effectiveAt: null,
    },
  };
}

function readResultLines(
  pages: string[],
  status: ResultStatus,
): { observations: ObservationResult[]; candidates: number; full: number; unread: string[] } {
  const observations: ObservationResult[] = [];
  const unread: string[] = [];
  let candidates = 0;
  let full = 0;
  for (const page of pages) {
    for (const raw of page.split('\n')) {
      const read = parseLabLine(raw);
      if (read.kind === 'other') continue;
      candidates++;
      if (read.kind === 'unread') {
        const line = raw.replace(/\s+/g, ' ').trim();
        unread.push(line.length > 80 ? `${line.slice(0, 80)}…` : line);
        continue;
      }
      if (read.complete) full++;
      observations.push({ sequence: observations.length + 1, ...read.observation, status });
    }
  }
  return { observations, candidates, full, unread };
}

function comparatorOf(symbol: string | undefined): string | null {
  if (!symbol) return null;
  return symbol === '≤' ? '<=' : symbol === '≥' ? '>=' : symbol;
}
