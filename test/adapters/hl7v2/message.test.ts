import { describe, expect, test } from 'vitest';
import {
  DEFAULT_ENCODING,
  escapeHl7,
  Hl7ParseError,
  parseHl7,
  unescapeHl7,
  type EncodingCharacters,
} from '../../../adapters/hl7v2/message.ts';

/** A Quest-style result, one segment per entry, to be joined with whichever line ending a test needs. */
const QUEST_SEGMENTS = [
  'MSH|^~\\&|LAB|QUEST DIAGNOSTICS-WOOD DALE^05D0642827^CLIA|LABRELAY|STMARYS|20261122083000-0600||ORU^R01|QD20261122083000123|P|2.3.1',
  'PID|1|WD123456A|987654321^^^STMARYS^MR~WD123456A^^^QUEST&2.16.840.1.113883.3.1&ISO^PI||SMITH^JOHN^A||19650312|M',
  'ORC|RE|ORD448811|WD123456A||CM',
  'OBR|1|ORD448811|WD123456A|7600^LIPID PANEL^99QDI^57698-3^Lipid panel^LN|||20261121093000-0600',
  'OBX|1|NM|2093-3^CHOLESTEROL, TOTAL^LN||245|mg/dL|<200|H|||F',
  'NTE|1|L|Fasting \\T\\ non-fasting ranges differ\\.br\\See www.questdiagnostics.com',
];

function parseError(text: string): Hl7ParseError {
  try {
    parseHl7(text);
  } catch (error) {
    expect(error).toBeInstanceOf(Hl7ParseError);
    return error as Hl7ParseError;
  }
  throw new Error('expected parseHl7 to throw');
}

describe('parseHl7', () => {
  test.each([
    ['CR', '\r'],
    ['LF', '\n'],
    ['CRLF', '\r\n'],
  ])('reads segments ended by %s', (_name, eol) => {
    const msg = parseHl7(QUEST_SEGMENTS.join(eol) + eol);

    expect(msg.segments.map((s) => s.name)).toEqual(['MSH', 'PID', 'ORC', 'OBR', 'OBX', 'NTE']);
    expect(msg.messageType).toBe('ORU^R01');
    expect(msg.controlId).toBe('QD20261122083000123');
    expect(msg.version).toBe('2.3.1');
    // No stray CR left on the last field of a segment.
    expect(msg.segment('MSH')!.get(12)).toBe('2.3.1');
    expect(msg.segment('OBX')!.get(11)).toBe('F');
  });

  test('ignores a leading byte-order mark and whitespace, and blank lines between segments', () => {
    const msg = parseHl7('\uFEFF\r\n' + QUEST_SEGMENTS.join('\r\r'));

    expect(msg.segments.map((s) => s.name)).toEqual(['MSH', 'PID', 'ORC', 'OBR', 'OBX', 'NTE']);
  });

  test('reads fields, repetitions, components and subcomponents with 1-based accessors', () => {
    const msg = parseHl7(QUEST_SEGMENTS.join('\r'));
    const msh = msg.header;
    const pid = msg.segment('PID')!;

    expect(msh.field(1).text).toBe('|');
    expect(msh.field(2).text).toBe('^~\\&');
    expect(msh.get(3)).toBe('LAB');
    expect(msh.get(4, 1)).toBe('QUEST DIAGNOSTICS-WOOD DALE');
    expect(msh.get(4, 2)).toBe('05D0642827');
    expect(msh.get(9, 2)).toBe('R01');

    const ids = pid.repetitions(3);
    expect(ids).toHaveLength(2);
    expect(ids.map((cx) => [cx.component(1), cx.component(4), cx.component(5)])).toEqual([
      ['987654321', 'STMARYS', 'MR'],
      ['WD123456A', 'QUEST', 'PI'],
    ]);
    expect(ids[1]!.component(4, 2)).toBe('2.16.840.1.113883.3.1');
    expect(ids[1]!.component(4, 3)).toBe('ISO');
    expect(pid.get(3)).toBe('987654321'); // PID-3 is its first repetition
    expect(pid.get(5, 1)).toBe('SMITH');
    expect(pid.get(5, 2)).toBe('JOHN');
    expect(pid.field(5).components()).toEqual(['SMITH', 'JOHN', 'A']);
  });

  test('answers an empty string for fields, components and repetitions that are not there', () => {
    const msg = parseHl7(QUEST_SEGMENTS.join('\r'));
    const obx = msg.segment('OBX')!;

    expect(obx.get(4)).toBe('');
    expect(obx.field(4).isEmpty).toBe(true);
    expect(obx.repetitions(4)).toEqual([]);
    expect(obx.get(40)).toBe('');
    expect(obx.get(3, 9)).toBe('');
    expect(obx.get(3, 1, 2)).toBe('');
    expect(msg.segment('ZDS')).toBeUndefined();
    expect(msg.segmentsNamed('OBX')).toHaveLength(1);
  });

  test('unescapes values read through the accessors but keeps raw fields as sent', () => {
    const nte = parseHl7(QUEST_SEGMENTS.join('\r')).segment('NTE')!;

    expect(nte.get(3)).toBe('Fasting & non-fasting ranges differ\nSee www.questdiagnostics.com');
    expect(nte.rawField(3)).toBe(
      'Fasting \\T\\ non-fasting ranges differ\\.br\\See www.questdiagnostics.com',
    );
  });

  test('reads the encoding characters from MSH-1 and MSH-2 when they are not the defaults', () => {
    const raw = [
      'MSH#$*@%#EPIC#BEAKER$1.2.840.114350#LABRELAY#STMARYS#20261122143005-0500##ORU$R01$ORU_R01#800123#P#2.5.1',
      'PID#1##E1234567$$$EPI$MR*4567890123$$$%2.16.840.1.113883.19.5%ISO$PI##O|BRIEN$MARY',
      'OBX#1#TX#8251-1$Comment$LN##Ratio 1@S@2 @F@ see note@R@2 @T@ done@E@',
    ].join('\r');
    const msg = parseHl7(raw);

    expect(msg.encoding).toEqual({
      field: '#',
      component: '$',
      repetition: '*',
      escape: '@',
      subcomponent: '%',
    });
    expect(msg.messageType).toBe('ORU^R01');
    expect(msg.header.field(1).text).toBe('#');
    expect(msg.header.field(2).text).toBe('$*@%');
    expect(msg.header.get(4, 2)).toBe('1.2.840.114350');

    const pid = msg.segment('PID')!;
    expect(pid.repetitions(3).map((cx) => cx.component(1))).toEqual(['E1234567', '4567890123']);
    expect(pid.repetitions(3)[1]!.component(4, 2)).toBe('2.16.840.1.113883.19.5');
    // The default separators are ordinary text in this message.
    expect(pid.get(5, 1)).toBe('O|BRIEN');

    expect(msg.segment('OBX')!.get(5)).toBe('Ratio 1$2 # see note*2 % done@');
  });

  test('accepts the five-character MSH-2 of HL7 v2.7 (with the truncation character)', () => {
    const msg = parseHl7('MSH|^~\\&#|LAB|ACME|||20261122||ORU^R01|42|P|2.7\rPID|1||123^^^ACME^MR');

    expect(msg.version).toBe('2.7');
    expect(msg.header.field(2).text).toBe('^~\\&#');
    expect(msg.segment('PID')!.get(3, 4)).toBe('ACME');
  });

  const VALID_MSH = 'MSH|^~\\&|LAB|ACME|LABRELAY|STMARYS|20261122083000||ORU^R01|MSG00001|P|2.5.1';

  test.each([
    ['a PID where the MSH should be', 'PID|1||123^^^ACME^MR\rMSH|^~\\&|LAB', 'MSH'],
    ['an empty body', '', 'MSH'],
    ['a FHIR resource', '{"resourceType":"Bundle"}', 'MSH'],
    ['an MSH cut short in MSH-2', 'MSH|^~\\', 'MSH-2'],
    ['a letter as the field separator', 'MSHX^~\\&X', 'MSH-1'],
    ['three encoding characters', 'MSH|^~\\|LAB|ACME|||20261122||ORU^R01|1|P|2.5.1', 'MSH-2'],
    ['six encoding characters', 'MSH|^~\\&#!|LAB|ACME|||20261122||ORU^R01|1|P|2.5.1', 'MSH-2'],
    ['a repeated encoding character', 'MSH|^~^&|LAB|ACME|||20261122||ORU^R01|1|P|2.5.1', 'MSH-2'],
    [
      'the field separator among the encoding characters',
      'MSH|^~\\||LAB|ACME|||20261122||ORU^R01|1|P|2.5.1',
      'MSH-2',
    ],
    ['a letter among the encoding characters', 'MSH|^~\\A|LAB|ACME|||20261122||ORU^R01|1|P|2.5.1', 'MSH-2'],
    ['an empty MSH-9', 'MSH|^~\\&|LAB|ACME|LABRELAY|STMARYS|20261122083000|||MSG00001|P|2.5.1', 'MSH-9'],
    ['an empty MSH-10', 'MSH|^~\\&|LAB|ACME|LABRELAY|STMARYS|20261122083000||ORU^R01||P|2.5.1', 'MSH-10'],
    ['an empty MSH-12', 'MSH|^~\\&|LAB|ACME|LABRELAY|STMARYS|20261122083000||ORU^R01|MSG00001|P|', 'MSH-12'],
    [
      'an MSH that stops before MSH-12',
      'MSH|^~\\&|LAB|ACME|LABRELAY|STMARYS|20261122083000||ORU^R01|MSG00001',
      'MSH-12',
    ],
    ['a lower-case segment name', `${VALID_MSH}\rpid|1||123`, 'segment 2'],
    ['a segment name of two letters', `${VALID_MSH}\rPID|1||123\rOB|1`, 'segment 3'],
    ['a segment name run into its first field', `${VALID_MSH}\rPID|1||123\rOBX1|NM`, 'segment 3'],
    ['free text pasted after the message', `${VALID_MSH}\rPID|1||123\rThank you for your order`, 'segment 3'],
    [
      'a bad segment after blank lines (counted as segments, not lines)',
      `${VALID_MSH}\r\n\r\nPID|1||123\r\n\r\nobx|1`,
      'segment 3',
    ],
    ['an MLLP end block left in the body', `${VALID_MSH}\rPID|1||123\r\x1c`, 'segment 3'],
  ])('refuses %s', (_what, text, location) => {
    const error = parseError(text);

    expect(error.name).toBe('Hl7ParseError');
    expect(error.location).toBe(location);
    expect(error.message).not.toBe('');
  });
});

describe('unescapeHl7', () => {
  test.each([
    ['field separator', 'Call 555\\F\\1212', 'Call 555|1212'],
    ['component separator', 'Ratio 1\\S\\4', 'Ratio 1^4'],
    ['subcomponent separator', 'Smith \\T\\ Sons', 'Smith & Sons'],
    ['repetition separator', 'approx \\R\\ 5', 'approx ~ 5'],
    ['escape character', 'C:\\E\\results', 'C:\\results'],
    ['line break', 'Line one\\.br\\Line two', 'Line one\nLine two'],
    ['one hex byte', 'Temp 37\\XB0\\C', 'Temp 37\u00b0C'],
    ['several hex bytes', '\\X48454C4C4F\\', 'HELLO'],
    ['highlighting, dropped', 'Result \\H\\CRITICAL\\N\\ called', 'Result CRITICAL called'],
    ['an unknown sequence, kept', 'Value \\Zxx\\ kept', 'Value \\Zxx\\ kept'],
    ['an unterminated sequence, kept', 'Ends with \\F', 'Ends with \\F'],
    ['a bad hex sequence, kept', '\\XZZ\\', '\\XZZ\\'],
    ['no escapes at all', 'Hemolyzed specimen', 'Hemolyzed specimen'],
  ])('decodes %s', (_what, escaped, text) => {
    expect(unescapeHl7(escaped)).toBe(text);
  });

  test('uses the escape character of the message', () => {
    const enc: EncodingCharacters = {
      field: '#',
      component: '$',
      repetition: '*',
      escape: '@',
      subcomponent: '%',
    };

    expect(unescapeHl7('a@F@b@S@c@R@d@T@e@E@f@.br@g', enc)).toBe('a#b$c*d%e@f\ng');
    // A backslash is plain text when it is not the escape character.
    expect(unescapeHl7('C:\\F\\x', enc)).toBe('C:\\F\\x');
  });
});

describe('escapeHl7', () => {
  test.each([
    ['each separator', 'a|b^c~d&e\\f', 'a\\F\\b\\S\\c\\R\\d\\T\\e\\E\\f'],
    ['a line break', 'one\ntwo', 'one\\.br\\two'],
    ['CRLF as a single line break', 'one\r\ntwo', 'one\\.br\\two'],
    ['a lone CR', 'one\rtwo', 'one\\.br\\two'],
    ['plain text unchanged', 'Potassium 6.8 mmol/L', 'Potassium 6.8 mmol/L'],
  ])('escapes %s', (_what, text, escaped) => {
    expect(escapeHl7(text)).toBe(escaped);
  });

  const NON_DEFAULT: EncodingCharacters = {
    field: '#',
    component: '$',
    repetition: '*',
    escape: '@',
    subcomponent: '%',
  };
  test.each([
    ['default', DEFAULT_ENCODING, 'Value "a|b^c" ~ 50% & C:\\tmp\nsecond line'],
    ['non-default', NON_DEFAULT, 'Ratio 1$2 # 3*4 % 5@6 | ^ ~ & \\\nsecond line'],
  ])('is undone by unescapeHl7 with %s encoding characters', (_what, enc, text) => {
    const escaped = escapeHl7(text, enc);

    for (const separator of [enc.field, enc.component, enc.repetition, enc.subcomponent, '\r', '\n']) {
      expect(escaped).not.toContain(separator);
    }
    expect(unescapeHl7(escaped, enc)).toBe(text);
  });
});

describe('parseHl7 robustness', () => {
  test('reads segments whose endings are mixed in one message (CR, LF and CRLF)', () => {
    const [msh, pid, orc, obr, obx, nte] = QUEST_SEGMENTS;
    const msg = parseHl7(`${msh}\r${pid}\n${orc}\r\n${obr}\n${obx}\r${nte}\r\n`);

    expect(msg.segments.map((s) => s.name)).toEqual(['MSH', 'PID', 'ORC', 'OBR', 'OBX', 'NTE']);
    expect(msg.segments.map((s) => s.rawFields.at(-1)!.endsWith('\r'))).not.toContain(true);
    expect(msg.segment('OBX')!.get(11)).toBe('F');
  });

  test.each([
    ['200,000 trailing blank lines', `${QUEST_SEGMENTS.join('\r')}${'\n'.repeat(200_000)}`],
    ['200,000 trailing CRLFs', `${QUEST_SEGMENTS.join('\r')}${'\r\n'.repeat(200_000)}`],
  ])('reads a message with %s in linear time', (_what, text) => {
    const started = performance.now();
    const msg = parseHl7(text);

    expect(msg.segments).toHaveLength(6);
    // A backtracking trim took seconds here; the scan takes milliseconds.
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  test('refuses, promptly, 200,000 blank lines followed by text that is not a segment', () => {
    const started = performance.now();
    const error = parseError(`${QUEST_SEGMENTS[0]}${'\n'.repeat(200_000)}x`);

    expect(error.location).toBe('segment 2');
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  /** The same lab result in the encoding characters of a given MSH-1 and MSH-2. */
  function inEncoding(field: string, chars: string): string {
    const [component, repetition, escape, subcomponent] = chars;
    const map: Record<string, string> = {
      '|': field,
      '^': component!,
      '~': repetition!,
      '\\': escape!,
      '&': subcomponent!,
    };
    const convert = (segment: string) => segment.replace(/[|^~\\&]/g, (ch) => map[ch]!);
    return [
      `MSH${field}${chars}${convert('|LAB|ACME^05D0642827^CLIA|LABRELAY|STMARYS|20261122083000||ORU^R01|MSG1|P|2.5.1')}`,
      convert('PID|1||987654321^^^STMARYS^MR~WD123456A^^^QUEST&2.16.840.1.113883.3.1&ISO^PI||SMITH^JOHN'),
      convert(
        'OBX|1|FT|8251-1^Comment^LN||Pipe \\F\\ caret \\S\\ amp \\T\\ tilde \\R\\ esc \\E\\\\.br\\next~second',
      ),
    ].join('\r');
  }

  test.each([
    ['the defaults', '|', '^~\\&'],
    ['MSH#@!$% (field #, component @, repetition !, escape $, subcomponent %)', '#', '@!$%'],
    ['MSH|$*@% (only the inner four changed)', '|', '$*@%'],
    ['a v2.7 truncation character', '|', '^~\\&#'],
  ])('reads the same values with %s', (_what, field, chars) => {
    const msg = parseHl7(inEncoding(field, chars));
    const pid = msg.segment('PID')!;
    const obx = msg.segment('OBX')!;

    expect(msg.encoding.field).toBe(field);
    expect(msg.header.field(2).text).toBe(chars);
    expect(msg.messageType).toBe('ORU^R01');
    expect(msg.header.field(4).components()).toEqual(['ACME', '05D0642827', 'CLIA']);
    expect(pid.repetitions(3).map((cx) => [cx.component(1), cx.component(4, 1), cx.component(4, 2)])).toEqual(
      [
        ['987654321', 'STMARYS', ''],
        ['WD123456A', 'QUEST', '2.16.840.1.113883.3.1'],
      ],
    );
    expect(obx.repetitions(5).map((r) => r.text)).toEqual([
      `Pipe ${field} caret ${chars[0]} amp ${chars[3]} tilde ${chars[1]} esc ${chars[2]}\nnext`,
      'second',
    ]);
  });

  test.each([
    ['a truncation character that repeats a separator', 'MSH|^~\\&^|LAB|ACME|||20261122||ORU^R01|1|P|2.7'],

    ['a letter as the truncation character', 'MSH|^~\\&T|LAB|ACME|||20261122||ORU^R01|1|P|2.7'],
  ])('refuses %s at MSH-2', (_what, text) => {
    expect(parseError(text).location).toBe('MSH-2');
  });
});

describe('unescapeHl7 beyond the separators', () => {
  test.each([
    ['a two-byte UTF-8 character', 'Temp 37\\XC2B0\\C', 'Temp 37\u00b0C'],
    ['a three-byte UTF-8 character', 'Cost \\XE282AC\\5', 'Cost \u20ac5'],
    ['a four-byte UTF-8 character', '\\XF09FA7AA\\ tube', '\u{1F9EA} tube'],
    ['ASCII and UTF-8 bytes in one sequence', '\\X4DC3BC6C6C6572\\', 'M\u00fcller'],
    ['bytes that are not UTF-8, read as ISO 8859-1', '\\XE9\\t\\XE9\\', '\u00e9t\u00e9'],
    ['lower-case hex digits', '\\Xc3a9\\', '\u00e9'],
    ['.sp as a line break', 'Para one.\\.sp\\Para two.', 'Para one.\nPara two.'],
    ['.sp with a count as a line break', 'Para one.\\.sp 2\\Para two.', 'Para one.\nPara two.'],
    ['indentation, dropped', '\\.in+4\\Indented', 'Indented'],
    ['centring, dropped', '\\.ce\\TITLE', 'TITLE'],
    ['an escape next to an unknown sequence', 'a\\Zq\\\\F\\b', 'a\\Zq\\|b'],
    ['a sequence right at the end', 'end\\.br\\', 'end\n'],
  ])('decodes %s', (_what, escaped, text) => {
    expect(unescapeHl7(escaped)).toBe(text);
  });

  test('decodes a long value with many sequences in linear time', () => {
    const value = 'x\\.br\\'.repeat(200_000);
    const started = performance.now();

    expect(unescapeHl7(value)).toBe('x\n'.repeat(200_000));
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
