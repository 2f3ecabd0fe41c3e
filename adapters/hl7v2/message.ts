/**
 * A parsed HL7 v2 message (ER7 encoding), with 1-based accessors that read like the spec:
 * `msg.segment('PID')?.field(3)` is PID-3. Values come back unescaped.
 *
 * HL7 v2.5.1 chapter 2, section 2.5 (message construction rules) and 2.7 (escape sequences).
 */

export interface EncodingCharacters {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
}

/** Thrown when bytes cannot be read as an HL7 v2 message at all; the answer is `MSA|AR`. */
export class Hl7ParseError extends Error {
  override readonly name = 'Hl7ParseError';
  /** Where the problem is, e.g. `MSH-9` or `segment 3`, for ERR-2. */
  readonly location: string | null;
  constructor(message: string, location: string | null = null) {
    super(message);
    this.location = location;
  }
}

export class Hl7Segment {
  readonly name: string;
  /** Raw field strings; index 0 is the segment name (for MSH, index 1 is MSH-1 itself). */
  readonly rawFields: readonly string[];
  readonly encoding: EncodingCharacters;

  constructor(name: string, rawFields: string[], encoding: EncodingCharacters) {
    this.name = name;
    this.rawFields = rawFields;
    this.encoding = encoding;
  }

  /** The raw (still escaped) text of field n, all repetitions. */
  rawField(n: number): string {
    return this.rawFields[n] ?? '';
  }

  /** Repetitions of field n, each split into components and subcomponents, unescaped. */
  repetitions(n: number): Hl7Field[] {
    const raw = this.rawField(n);
    if (raw === '') return [];
    // MSH-2 holds the encoding characters themselves and is never split.
    if (this.name === 'MSH' && (n === 1 || n === 2)) return [new Hl7Field(raw, this.encoding, true)];
    return raw.split(this.encoding.repetition).map((r) => new Hl7Field(r, this.encoding, false));
  }

  /** First repetition of field n (an empty field when absent). */
  field(n: number): Hl7Field {
    return this.repetitions(n)[0] ?? new Hl7Field('', this.encoding, false);
  }

  /** Shorthand for `field(n).component(c)`, i.e. PID-5.1 is `get(5, 1)`. */
  get(n: number, component = 1, subcomponent = 1): string {
    return this.field(n).component(component, subcomponent);
  }
}

export class Hl7Field {
  readonly raw: string;
  readonly #encoding: EncodingCharacters;
  readonly #literal: boolean;

  constructor(raw: string, encoding: EncodingCharacters, literal: boolean) {
    this.raw = raw;
    this.#encoding = encoding;
    this.#literal = literal;
  }

  /** Component c (1-based), subcomponent s, unescaped. */
  component(c = 1, s = 1): string {
    if (this.#literal) return c === 1 && s === 1 ? this.raw : '';
    const component = this.raw.split(this.#encoding.component)[c - 1] ?? '';
    const sub = component.split(this.#encoding.subcomponent)[s - 1] ?? '';
    return unescapeHl7(sub, this.#encoding);
  }

  /** The whole first component unescaped, or the whole field if it has a single component. */
  get text(): string {
    return this.component(1);
  }

  /** All components unescaped (subcomponents joined back with the subcomponent separator). */
  components(): string[] {
    if (this.#literal) return [this.raw];
    return this.raw.split(this.#encoding.component).map((c) =>
      c
        .split(this.#encoding.subcomponent)
        .map((s) => unescapeHl7(s, this.#encoding))
        .join(this.#encoding.subcomponent),
    );
  }

  get isEmpty(): boolean {
    return this.raw === '';
  }
}

export class Hl7Message {
  readonly segments: readonly Hl7Segment[];
  readonly encoding: EncodingCharacters;

  constructor(segments: Hl7Segment[], encoding: EncodingCharacters) {
    this.segments = segments;
    this.encoding = encoding;
  }

  get header(): Hl7Segment {
    return this.segments[0]!;
  }

  segment(name: string): Hl7Segment | undefined {
    return this.segments.find((s) => s.name === name);
  }

  segmentsNamed(name: string): Hl7Segment[] {
    return this.segments.filter((s) => s.name === name);
  }

  /** MSH-9 as `ORU^R01` (message code ^ trigger event). */
  get messageType(): string {
    const msh9 = this.header.field(9);
    const code = msh9.component(1);
    const trigger = msh9.component(2);
    return trigger ? `${code}^${trigger}` : code;
  }

  get controlId(): string {
    return this.header.get(10);
  }

  get version(): string {
    return this.header.get(12);
  }
}

const DEFAULT_ENCODING: EncodingCharacters = {
  field: '|',
  component: '^',
  repetition: '~',
  escape: '\\',
  subcomponent: '&',
};

/**
 * Parses one ER7-encoded message. Segments may end with CR, LF or CRLF; the encoding characters
 * are read from MSH-1 and MSH-2. Throws {@link Hl7ParseError} for anything that is not a message.
 *
 * @example
 * const msg = parseHl7('MSH|^~\\&|LAB|ACME|||20261122||ORU^R01|42|P|2.5.1\rPID|1||123^^^ACME^MR');
 * msg.segment('PID')?.get(3, 1); // '123'
 */
export function parseHl7(text: string): Hl7Message {
  if (text.includes('\u0000'))
    throw new Hl7ParseError('the message contains a NUL byte, which HL7 text never does', null);
  const trimmed = trimMessage(text);
  if (!trimmed.startsWith('MSH')) {
    throw new Hl7ParseError('the message does not start with an MSH segment', 'MSH');
  }
  if (trimmed.length < 8) throw new Hl7ParseError('the MSH segment is too short', 'MSH-2');
  const fieldSep = trimmed[3]!;
  if (/[A-Za-z0-9\r\n]/.test(fieldSep)) {
    throw new Hl7ParseError(`MSH-1 field separator ${JSON.stringify(fieldSep)} is not allowed`, 'MSH-1');
  }
  const msh2End = trimmed.indexOf(fieldSep, 4);
  const msh2 = trimmed.slice(4, msh2End === -1 ? undefined : msh2End);
  if (msh2.length < 4 || msh2.length > 5) {
    throw new Hl7ParseError(
      `MSH-2 encoding characters ${JSON.stringify(msh2)} must be 4 characters (5 from v2.7)`,
      'MSH-2',
    );
  }
  const encoding: EncodingCharacters = {
    field: fieldSep,
    component: msh2[0]!,
    repetition: msh2[1]!,
    escape: msh2[2]!,
    subcomponent: msh2[3]!,
  };
  // From v2.7 a fifth character, the truncation character, may follow; it must be distinct as well.
  const distinct = new Set([fieldSep, ...msh2]);
  if (distinct.size !== msh2.length + 1 || [...distinct].some((ch) => /[A-Za-z0-9\r\n]/.test(ch))) {
    throw new Hl7ParseError(
      `MSH-2 encoding characters ${JSON.stringify(msh2)} are not distinct separators`,
      'MSH-2',
    );
  }

  const segments: Hl7Segment[] = [];
  const lines = trimmed.split(/\r\n|\r|\n/);
  for (const line of lines) {
    if (line === '') continue;
    const name = line.slice(0, 3);
    if (!/^[A-Z][A-Z0-9]{2}$/.test(name) || (line.length > 3 && line[3] !== fieldSep)) {
      // Count segments, not lines: blank lines between segments are skipped above.
      const position = segments.length + 1;
      throw new Hl7ParseError(
        `segment ${position} does not start with a segment name followed by ${JSON.stringify(fieldSep)}`,
        `segment ${position}`,
      );
    }
    let fields: string[];
    if (name === 'MSH') {
      // MSH-1 is the field separator itself, so MSH's fields are shifted by one.
      const rest = line.slice(4).split(fieldSep);
      fields = ['MSH', fieldSep, ...rest];
    } else {
      fields = line.split(fieldSep);
    }
    segments.push(new Hl7Segment(name, fields, encoding));
  }
  const msh = segments[0]!;
  if (msh.name !== 'MSH') throw new Hl7ParseError('the first segment is not MSH', 'MSH');
  if (msh.field(9).isEmpty) throw new Hl7ParseError('MSH-9 (message type) is empty', 'MSH-9');
  if (msh.field(10).isEmpty) throw new Hl7ParseError('MSH-10 (message control id) is empty', 'MSH-10');
  if (msh.field(12).isEmpty) throw new Hl7ParseError('MSH-12 (version id) is empty', 'MSH-12');
  return new Hl7Message(segments, encoding);
}

/**
 * Drops leading whitespace and byte-order marks and trailing line ends, by hand: a regex such as
 * `/[\r\n]+$/` takes quadratic time on a message of many blank lines.
 */
function trimMessage(text: string): string {
  let start = 0;
  while (start < text.length && /[\s\uFEFF]/.test(text[start]!)) start++;
  let end = text.length;
  while (end > start && (text[end - 1] === '\r' || text[end - 1] === '\n')) end--;
  return text.slice(start, end);
}

/**
 * Replaces HL7 escape sequences (`\F\ \S\ \T\ \R\ \E\`, `\Xhh..\`, `\.br\`) with the characters
 * they stand for. `\.sp\` becomes a line break too; other formatting commands (`\H\`, `\.in\`...)
 * are dropped; an unknown or unterminated sequence is kept as written. Linear in the length of the
 * value, which matters for encapsulated documents of several megabytes.
 */
export function unescapeHl7(value: string, enc: EncodingCharacters = DEFAULT_ENCODING): string {
  const esc = enc.escape;
  let start = value.indexOf(esc);
  if (start === -1) return value;
  const parts: string[] = [];
  let copied = 0;
  while (start !== -1) {
    const end = value.indexOf(esc, start + 1);
    if (end === -1) break;
    const decoded = decodeEscape(value.slice(start + 1, end), enc);
    // An unknown sequence stays as written, both escape characters included.
    if (decoded !== null) {
      parts.push(value.slice(copied, start), decoded);
      copied = end + 1;
    }
    start = value.indexOf(esc, end + 1);
  }
  parts.push(value.slice(copied));
  return parts.join('');
}

function decodeEscape(seq: string, enc: EncodingCharacters): string | null {
  switch (seq) {
    case 'F':
      return enc.field;
    case 'S':
      return enc.component;
    case 'T':
      return enc.subcomponent;
    case 'R':
      return enc.repetition;
    case 'E':
      return enc.escape;
    case '.br':
      return '\n';
  }
  if (/^X(?:[0-9A-Fa-f]{2})+$/.test(seq)) return decodeHexBytes(seq.slice(1));
  // `.sp n` ends the line (and skips lines): a line break is what survives of it in plain text.
  if (/^\.sp(?:\s*[+-]?\d+)?$/.test(seq)) return '\n';
  if (/^\.(sp|in|ti|sk|ce|fi|nf)/.test(seq) || /^[HN]$/.test(seq)) return '';
  return null;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * `\Xhh..\` bytes as text: UTF-8 when they are valid UTF-8 (what MSH-18 UNICODE UTF-8 senders and
 * most others mean), else one character per byte (ISO 8859-1), so a lone `\XB0\` still reads °.
 */
function decodeHexBytes(hex: string): string {
  const bytes = Buffer.from(hex, 'hex');
  try {
    return UTF8.decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** Escapes text for use inside an HL7 field (the inverse of {@link unescapeHl7}). */
export function escapeHl7(value: string, enc: EncodingCharacters = DEFAULT_ENCODING): string {
  let out = '';
  // CRLF is one line break, not two.
  for (const ch of value.replace(/\r\n/g, '\n')) {
    if (ch === enc.escape) out += `${enc.escape}E${enc.escape}`;
    else if (ch === enc.field) out += `${enc.escape}F${enc.escape}`;
    else if (ch === enc.component) out += `${enc.escape}S${enc.escape}`;
    else if (ch === enc.subcomponent) out += `${enc.escape}T${enc.escape}`;
    else if (ch === enc.repetition) out += `${enc.escape}R${enc.escape}`;
    else if (ch === '\r' || ch === '\n') out += `${enc.escape}.br${enc.escape}`;
    else out += ch;
  }
  return out;
}

export { DEFAULT_ENCODING };
