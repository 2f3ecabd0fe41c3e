import { describe, expect, test } from 'vitest';
import {
  ACK_CODE,
  ackCodeOf,
  ackModeFromRaw,
  ackModeOf,
  acknowledgementsFor,
  ackTargetFromRaw,
  ackTargetOf,
  buildAck,
  HL7_ERROR,
  isOriginalMode,
  type AckCode,
  type AckError,
} from '../../../adapters/hl7v2/ack.ts';
import { parseHl7 } from '../../../adapters/hl7v2/message.ts';

const EPIC_ORU = [
  'MSH|^~\\&|EPIC|BEAKER^1.2.840.114350^ISO|LABRELAY|STMARYS|20261122143005-0500||ORU^R01^ORU_R01|800123|P|2.5.1|||AL|NE',
  'PID|1||E1234567^^^EPI^MR||TESTPATIENT^ALPHA^B||19551231|F',
  'OBR|1|1200345^EPC|26BK-327C0012^Beaker|LAB44^BASIC METABOLIC PANEL^EAP',
  'OBX|1|NM|2823-3^POTASSIUM^LN||6.9|mmol/L|3.5 - 5.1|HH|||F',
].join('\r');

const NOW = new Date('2026-11-22T19:30:05.123Z');

describe('buildAck', () => {
  test('answers the sender: applications swapped, MSH-10 in MSA-2, a fresh control id of its own', () => {
    const ack = parseHl7(buildAck(ackTargetOf(parseHl7(EPIC_ORU)), ACK_CODE.accept, [], NOW));
    const msh = ack.header;
    const msa = ack.segment('MSA')!;

    expect(ack.segments.map((s) => s.name)).toEqual(['MSH', 'MSA']);
    expect(msh.get(3)).toBe('LABRELAY');
    expect(msh.get(4)).toBe('STMARYS');
    expect(msh.get(5)).toBe('EPIC');
    expect(msh.field(6).components()).toEqual(['BEAKER', '1.2.840.114350', 'ISO']);
    expect(msh.get(7)).toBe('20261122193005+0000');
    expect(ack.messageType).toBe('ACK^R01');
    expect(msh.get(9, 3)).toBe('ACK');
    expect(ack.controlId).toMatch(/^[0-9a-f]{20}$/);
    expect(ack.controlId).not.toBe('800123');
    expect(msh.get(11)).toBe('P');
    expect(ack.version).toBe('2.5.1');
    expect(msa.get(1)).toBe('AA');
    expect(msa.get(2)).toBe('800123');
    expect(msa.get(3)).toBe('');
  });

  test('gives every ACK its own control id', () => {
    const target = ackTargetOf(parseHl7(EPIC_ORU));

    expect(parseHl7(buildAck(target, 'AA')).controlId).not.toBe(parseHl7(buildAck(target, 'AA')).controlId);
  });

  test('ends every segment with CR, as MLLP peers expect', () => {
    const ack = buildAck(
      ackTargetOf(parseHl7(EPIC_ORU)),
      'AE',
      [{ code: '102', location: 'OBX-5', message: 'bad' }],
      NOW,
    );

    expect(ack.endsWith('\r')).toBe(true);
    expect(ack).not.toContain('\n');
    expect(
      ack
        .split('\r')
        .filter(Boolean)
        .map((s) => s.slice(0, 3)),
    ).toEqual(['MSH', 'MSA', 'ERR']);
  });

  test.each<[string, string | null, string[]]>([
    ['a field', 'MSH-9', ['MSH', '1', '9']],
    ['a field of a later order', 'OBR-4 (order 2)', ['OBR', '1', '4']],
    ['a field of a result', 'OBX-5 (result 3)', ['OBX', '1', '5']],
    ['a segment', 'PID', ['PID', '1']],
    ['a parse position', 'segment 3', ['']],
    ['no location', null, ['']],
  ])('writes ERR-2 for %s (%s) as segment^1^field', (_what, location, erl) => {
    const ack = parseHl7(
      buildAck(ackTargetOf(parseHl7(EPIC_ORU)), 'AE', [{ code: HL7_ERROR.dataType, location, message: 'x' }]),
    );

    expect(ack.segment('ERR')!.field(2).components()).toEqual(erl);
  });

  test('writes one ERR per error with its HL7 0357 code, severity and message', () => {
    const errors: AckError[] = [
      {
        code: HL7_ERROR.requiredFieldMissing,
        location: 'PID-3',
        message: 'PID-3 (patient identifier list) is empty',
      },
      {
        code: HL7_ERROR.dataType,
        location: 'OBX-5',
        message: 'OBX-5 (result 1) value "pending" is not a number (value type NM)',
      },
    ];
    const ack = parseHl7(buildAck(ackTargetOf(parseHl7(EPIC_ORU)), ACK_CODE.error, errors, NOW));
    const errs = ack.segmentsNamed('ERR');

    expect(ack.segment('MSA')!.get(1)).toBe('AE');
    expect(errs.map((e) => [e.field(2).components(), e.get(3, 1), e.get(3, 3), e.get(4), e.get(8)])).toEqual([
      [['PID', '1', '3'], '101', 'HL70357', 'E', 'PID-3 (patient identifier list) is empty'],
      [
        ['OBX', '1', '5'],
        '102',
        'HL70357',
        'E',
        'OBX-5 (result 1) value "pending" is not a number (value type NM)',
      ],
    ]);
    // MSA-3 (text message) carries the errors joined, cut to its 80 characters.
    expect(ack.segment('MSA')!.get(3)).toBe(
      errors
        .map((e) => e.message)
        .join('; ')
        .slice(0, 80),
    );
  });

  test.each<[AckCode, string]>([
    ['AA', 'W'],
    ['AE', 'E'],
    ['AR', 'E'],
  ])('marks errors of an %s as severity %s', (code, severity) => {
    const ack = parseHl7(
      buildAck(ackTargetOf(parseHl7(EPIC_ORU)), code, [{ code: '207', location: null, message: 'x' }]),
    );

    expect(ack.segment('ERR')!.get(4)).toBe(severity);
  });

  test('escapes the reason text so that separators and line breaks in it cannot break the ACK', () => {
    const message = 'OBX-5 value "<5|>3^~x&y\\z" is not a number\r\nsee the sender\'s manual';
    const raw = buildAck(
      ackTargetOf(parseHl7(EPIC_ORU)),
      'AE',
      [{ code: '102', location: 'OBX-5', message }],
      NOW,
    );
    const ack = parseHl7(raw);

    expect(ack.segments.map((s) => s.name)).toEqual(['MSH', 'MSA', 'ERR']);
    expect(ack.segment('ERR')!.rawFields).toHaveLength(9);
    expect(ack.segment('ERR')!.get(8)).toBe(
      'OBX-5 value "<5|>3^~x&y\\z" is not a number\nsee the sender\'s manual',
    );
    expect(ack.segment('MSA')!.get(3)).toBe(
      'OBX-5 value "<5|>3^~x&y\\z" is not a number\nsee the sender\'s manual',
    );
  });
});

describe('ackTargetFromRaw', () => {
  test.each([
    {
      what: 'an ORU whose MSH-12 is empty (so it did not parse)',
      raw: 'MSH|^~\\&|LIS|ACME_LAB|LABRELAY|STMARYS|20261122083000||ORU^R01|MSG00042|P|\rPID|1||123',
      sender: ['LIS', 'ACME_LAB'],
      controlId: 'MSG00042',
      trigger: 'R01',
      version: '2.5.1',
    },
    {
      what: 'a message framed with MLLP start block and LF line endings',
      raw: '\x0bMSH|^~\\&|HNAM|CERNER|LABRELAY|STMARYS|20261122101500||ORU^R01|Q8812345T99|T|2.4\nbad segment',
      sender: ['HNAM', 'CERNER'],
      controlId: 'Q8812345T99',
      trigger: 'R01',
      version: '2.4',
    },
    {
      what: 'non-default encoding characters',
      raw: 'MSH#$*@%#EPIC#BEAKER#LABRELAY#STMARYS#20261122##ORU$R01$ORU_R01#800123#P#2.5.1$USA\rpid#1',
      sender: ['EPIC', 'BEAKER'],
      controlId: '800123',
      trigger: 'R01',
      version: '2.5.1',
    },
  ])('reads the header of $what', ({ raw, sender, controlId, trigger, version }) => {
    const target = ackTargetFromRaw(raw);

    expect([target.sendingApplication, target.sendingFacility]).toEqual(sender);
    expect(target.controlId).toBe(controlId);
    expect(target.triggerEvent).toBe(trigger);
    expect(target.version).toBe(version);

    const ack = parseHl7(
      buildAck(target, 'AR', [{ code: '100', location: 'segment 2', message: 'bad segment' }]),
    );
    expect(ack.segment('MSA')!.get(1)).toBe('AR');
    expect(ack.segment('MSA')!.get(2)).toBe(controlId);
    expect([ack.header.get(5), ack.header.get(6)]).toEqual(sender);
  });

  test.each([
    ['an empty body', ''],
    ['a JSON body', '{"resourceType":"Bundle","type":"transaction"}'],
    ['a PID without its MSH', 'PID|1||123^^^ACME^MR'],
  ])('still yields a well-formed AR for %s', (_what, raw) => {
    const target = ackTargetFromRaw(raw);
    const ack = parseHl7(buildAck(target, 'AR', [{ code: '100', location: 'MSH', message: 'no MSH' }]));

    expect(target.controlId).toBe('');
    expect(ack.header.get(3)).toBe('LABRELAY');
    expect(ack.version).toBe('2.5.1');
    expect(ack.header.get(11)).toBe('P');
    expect(ack.segment('MSA')!.get(1)).toBe('AR');
    expect(ack.segment('MSA')!.get(2)).toBe('');
  });

  test('cuts overlong header fields so a hostile sender cannot make the ACK huge', () => {
    const target = ackTargetFromRaw(
      `MSH|^~\\&|${'A'.repeat(5000)}|ACME|||2026||ORU^R01|${'9'.repeat(500)}|P|2.5.1`,
    );

    expect(target.sendingApplication).toHaveLength(180);
    expect(target.controlId).toHaveLength(180);
  });
});

describe('ackCodeOf', () => {
  test.each<AckCode>(['AA', 'AE', 'AR'])('reads MSA-1 %s back from an ACK we built', (code) => {
    const errors: AckError[] =
      code === 'AA' ? [] : [{ code: '207', location: null, message: 'AA would be wrong here' }];

    expect(ackCodeOf(buildAck(ackTargetOf(parseHl7(EPIC_ORU)), code, errors))).toBe(code);
  });
});

/** An ORU^R01 header asking for MSH-15 / MSH-16 acknowledgements, as the sender would write it. */
const withMode = (accept: string, application: string, version = '2.5.1') =>
  parseHl7(
    [
      `MSH|^~\\&|EPIC|BEAKER|LABRELAY|STMARYS|20261122143005-0500||ORU^R01^ORU_R01|800123|P|${version}|||${accept}|${application}`,
      'PID|1||E1234567^^^EPI^MR',
    ].join('\r'),
  );

const msaCodes = (acks: string[]) => acks.map((ack) => parseHl7(ack).segment('MSA')!.get(1));

describe('acknowledgementsFor', () => {
  const ERRORS: AckError[] = [{ code: HL7_ERROR.dataType, location: 'OBX-5', message: 'not a number' }];

  test.each<[string, string, string, AckCode, string[]]>([
    ['original mode, accepted', '', '', 'AA', ['AA']],
    ['original mode, error', '', '', 'AE', ['AE']],
    ['original mode, rejected', '', '', 'AR', ['AR']],
    ['AL/AL, accepted: commit then application', 'AL', 'AL', 'AA', ['CA', 'AA']],
    ['AL/AL, error', 'AL', 'AL', 'AE', ['CE', 'AE']],
    ['AL/AL, rejected', 'AL', 'AL', 'AR', ['CR', 'AR']],
    ['AL/NE (Epic Beaker), accepted: commit only', 'AL', 'NE', 'AA', ['CA']],
    ['AL/NE, error: commit only', 'AL', 'NE', 'AE', ['CE']],
    ['NE/AL, accepted: application only', 'NE', 'AL', 'AA', ['AA']],
    ['NE/NE: nothing at all', 'NE', 'NE', 'AE', []],
    ['ER/ER, accepted: nothing', 'ER', 'ER', 'AA', []],
    ['ER/ER, error: both', 'ER', 'ER', 'AE', ['CE', 'AE']],
    ['ER/ER, rejected: both', 'ER', 'ER', 'AR', ['CR', 'AR']],
    ['SU/SU, accepted: both', 'SU', 'SU', 'AA', ['CA', 'AA']],
    ['SU/SU, rejected: nothing', 'SU', 'SU', 'AR', []],
    ['AL/ER, accepted: commit only', 'AL', 'ER', 'AA', ['CA']],
    ['AL/ER, error: both', 'AL', 'ER', 'AE', ['CE', 'AE']],
    ['SU/ER, error: application only', 'SU', 'ER', 'AE', ['AE']],
    ['an empty MSH-15 beside MSH-16 AL: application only', '', 'AL', 'AA', ['AA']],
    ['MSH-15 AL beside an empty MSH-16: commit only', 'AL', '', 'AE', ['CE']],
    ['lower-case codes', 'al', 'su', 'AA', ['CA', 'AA']],
    ['a value outside table 0155, read as AL', 'YES', 'NE', 'AA', ['CA']],
  ])('%s (MSH-15 %j, MSH-16 %j, outcome %s)', (_what, accept, application, code, expected) => {
    const msg = withMode(accept, application);
    const acks = acknowledgementsFor(ackTargetOf(msg), ackModeOf(msg), {
      code,
      errors: code === 'AA' ? [] : ERRORS,
    });

    expect(msaCodes(acks)).toEqual(expected);
  });

  test.each([
    ['original', '', '', 'AE'],
    ['enhanced', 'AL', 'AL', 'AE'],
    ['enhanced', 'AL', 'AL', 'AA'],
  ] as const)(
    'answers the sender in %s mode: swapped, MSH-10 in MSA-2, its version',
    (_m, accept, application, code) => {
      const msg = withMode(accept, application, '2.4');
      const acks = acknowledgementsFor(ackTargetOf(msg), ackModeOf(msg), { code, errors: ERRORS }, NOW);

      expect(acks.length).toBeGreaterThan(0);
      for (const raw of acks) {
        const ack = parseHl7(raw);
        expect([ack.header.get(3), ack.header.get(4), ack.header.get(5), ack.header.get(6)]).toEqual([
          'LABRELAY',
          'STMARYS',
          'EPIC',
          'BEAKER',
        ]);
        expect(ack.messageType).toBe('ACK^R01');
        expect(ack.version).toBe('2.4');
        expect(ack.segment('MSA')!.get(2)).toBe('800123');
        expect(ack.controlId).not.toBe('800123');
        expect(ack.segmentsNamed('ERR').map((e) => [e.get(3), e.get(4)])).toEqual([
          ['102', code === 'AA' ? 'W' : 'E'],
        ]);
      }
      expect(new Set(acks.map((a) => parseHl7(a).controlId)).size).toBe(acks.length);
    },
  );

  test('answers original mode exactly as buildAck does, with no MSH-15/16 of its own', () => {
    const msg = withMode('', '');
    const [ack] = acknowledgementsFor(ackTargetOf(msg), ackModeOf(msg), { code: 'AE', errors: ERRORS }, NOW);
    const built = buildAck(ackTargetOf(msg), 'AE', ERRORS, NOW);
    const withoutControlId = (raw: string) => raw.replace(/\|[0-9a-f]{20}\|/, '|ID|');

    expect(withoutControlId(ack!)).toBe(withoutControlId(built));
    expect(parseHl7(ack!).header.rawFields).toHaveLength(13);
  });

  test('marks enhanced-mode ACKs as not to be acknowledged (MSH-15 and MSH-16 NE)', () => {
    const msg = withMode('AL', 'AL');
    const acks = acknowledgementsFor(ackTargetOf(msg), ackModeOf(msg), { code: 'AA' });

    expect(acks.map((a) => [parseHl7(a).header.get(15), parseHl7(a).header.get(16)])).toEqual([
      ['NE', 'NE'],
      ['NE', 'NE'],
    ]);
  });

  test('answers bytes that did not parse by the mode their header asks for', () => {
    const raw =
      'MSH|^~\\&|LIS|ACME_LAB|LABRELAY|STMARYS|20261122083000||ORU^R01|MSG00042|P|2.5.1|||AL|ER\rpid|1';
    const acks = acknowledgementsFor(ackTargetFromRaw(raw), ackModeFromRaw(raw), {
      code: 'AR',
      errors: [{ code: HL7_ERROR.segmentSequence, location: 'segment 2', message: 'bad segment' }],
    });

    expect(msaCodes(acks)).toEqual(['CR', 'AR']);
    expect(acks.map((a) => parseHl7(a).segment('MSA')!.get(2))).toEqual(['MSG00042', 'MSG00042']);
  });
});

describe('ackModeOf and ackModeFromRaw', () => {
  test.each([
    ['Epic Beaker (AL, NE)', EPIC_ORU, { accept: 'AL', application: 'NE' }, false],
    [
      'a header that stops at MSH-12',
      EPIC_ORU.replace('|||AL|NE', ''),
      { accept: '', application: '' },
      true,
    ],
    [
      'lower case with spaces',
      EPIC_ORU.replace('|||AL|NE', '||| al |su'),
      { accept: 'AL', application: 'SU' },
      false,
    ],
    ['only MSH-16', EPIC_ORU.replace('|||AL|NE', '||||AL'), { accept: '', application: 'AL' }, false],
  ])('reads %s', (_what, raw, mode, original) => {
    expect(ackModeOf(parseHl7(raw))).toEqual(mode);
    expect(ackModeFromRaw(raw)).toEqual(mode);
    expect(isOriginalMode(mode)).toBe(original);
  });

  test.each([
    ['an empty body', ''],
    ['a JSON body', '{"resourceType":"Bundle"}'],
    ['a PID without its MSH', 'PID|1||123^^^ACME^MR'],
  ])('reads original mode from %s', (_what, raw) => {
    expect(isOriginalMode(ackModeFromRaw(raw))).toBe(true);
  });

  test('reads MSH-15/16 of a message with non-default encoding characters', () => {
    const raw = 'MSH#$*@%#EPIC#BEAKER#LABRELAY#STMARYS#20261122##ORU$R01#800123#P#2.5.1###AL#ER';

    expect(ackModeFromRaw(raw)).toEqual({ accept: 'AL', application: 'ER' });
    expect(ackModeOf(parseHl7(raw))).toEqual({ accept: 'AL', application: 'ER' });
  });
});

describe('ACKs to senders with non-default encoding characters', () => {
  const RAW =
    'MSH#$*@%#EPIC#BEAKER$1.2.840.114350$ISO#LABRELAY#STMARYS#20261122143005-0500##ORU$R01$ORU_R01#800|12^3@F@#P#2.5.1$USA\rPID#1##E1234567$$$EPI$MR';

  test.each([
    ['a parsed message', () => ackTargetOf(parseHl7(RAW))],
    ['the raw bytes', () => ackTargetFromRaw(RAW)],
  ])('rewrites the header fields copied from %s into our encoding characters', (_what, target) => {
    const ack = parseHl7(buildAck(target(), 'AA', [], NOW));

    expect(ack.encoding.component).toBe('^');
    expect(ack.header.field(6).components()).toEqual(['BEAKER', '1.2.840.114350', 'ISO']);
    expect(ack.header.get(5)).toBe('EPIC');
    // MSH-10 `800|12^3@F@` is `800|12^3#` in that sender's escapes: the same text in ours.
    expect(ack.segment('MSA')!.rawField(2)).toBe('800\\F\\12\\S\\3#');
    expect(ack.segment('MSA')!.get(2)).toBe('800|12^3#');
    expect(ack.version).toBe('2.5.1');
    expect(ack.messageType).toBe('ACK^R01');
  });
});

describe('ackCodeOf on commit ACKs', () => {
  test.each([
    ['CA', 'AA'],
    ['CE', 'AE'],
    ['CR', 'AR'],
  ])('reads a commit %s as %s', (commit, code) => {
    const msg = withMode('AL', 'NE');
    const [ack] = acknowledgementsFor(ackTargetOf(msg), ackModeOf(msg), {
      code: code as AckCode,
      errors: code === 'AA' ? [] : [{ code: '207', location: null, message: 'x' }],
    });

    expect(parseHl7(ack!).segment('MSA')!.get(1)).toBe(commit);
    expect(ackCodeOf(ack!)).toBe(code);
  });
});

describe('ACKs stay well-formed whatever the header held', () => {
  test('escapes a | that is plain text in a sender using # as its field separator', () => {
    const raw =
      'MSH#^~\\&#EPIC|PROD#BEAKER#LABRELAY#STMARYS#20261122##ORU^R01#800|123#P#2.5.1\rPID#1##E1^^^EPI^MR';

    for (const target of [ackTargetOf(parseHl7(raw)), ackTargetFromRaw(raw)]) {
      const ack = parseHl7(buildAck(target, 'AA', [], NOW));

      expect(ack.header.rawFields).toHaveLength(13);
      expect(ack.header.get(5)).toBe('EPIC|PROD');
      expect(ack.segment('MSA')!.get(2)).toBe('800|123');
    }
  });

  test.each([
    [
      'a letter as the field separator',
      'MSHY8AA|^~\\&|HNAM|STMARYS|LABRELAY|ACME_LAB|2026||OML^O21|Q1|P|2.5.1|||AL|AL',
    ],
    ['repeated encoding characters', 'MSH|^^^^|HNAM|ST|MARYS|LABRELAY|2026||OML^O21|Q1|P|2.5.1|||AL|AL'],
  ])('answers bytes with %s with well-formed ACKs', (_what, raw) => {
    const acks = acknowledgementsFor(ackTargetFromRaw(raw), ackModeFromRaw(raw), {
      code: 'AR',
      errors: [{ code: HL7_ERROR.segmentSequence, location: 'MSH-1', message: 'bad header' }],
    });

    expect(acks.length).toBeGreaterThan(0);
    for (const ack of acks) {
      const parsed = parseHl7(ack);
      expect(parsed.header.rawFields.length).toBeGreaterThanOrEqual(13);
      expect(['AR', 'CR']).toContain(parsed.segment('MSA')!.get(1));
    }
  });
});
