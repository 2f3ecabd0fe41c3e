import { describe, expect, test } from 'vitest';
import {
  chooseDemographicMatch,
  demographicKey,
  normaliseName,
  type DemographicPatient,
} from '../../domain/reconciliation.ts';

describe('normaliseName', () => {
  test.each<[string | null, string[], string]>([
    ["O'Brien-Smith", ['José', 'María'], 'obriensmith|jose maria'],
    ['O’Brien', ['Seán'], 'obrien|sean'],
    ['  van  der   Berg ', ['Anna-Lena'], 'van der berg|annalena'],
    ['MÜLLER', ['Jürgen'], 'muller|jurgen'],
    ['Nguyễn', ['Thị', 'Lan'], 'nguyen|thi lan'],
    ['Strauß', ['Zoë'], 'strauss|zoe'],
    ['Søndergaard', ['Bjørn'], 'sondergaard|bjorn'],
    ['Wałęsa', ['Łukasz'], 'walesa|lukasz'],
    ['Ægir', ['Œdipe'], 'aegir|oedipe'],
    ['Smith, Jr.', ['J.', 'R.'], 'smith jr|j r'],
    ['Dupont', ['Mary Ann'], 'dupont|mary ann'],
    ['Dupont', ['Mary', 'Ann'], 'dupont|mary ann'],
    ['Dupont', ['', '  ', 'Ann'], 'dupont|ann'],
    [null, ['Ann'], '|ann'],
    ['Dupont', [], 'dupont|'],
    ['Çelik', ['İbrahim'], 'celik|ibrahim'],
    ['Ortiz|Admin', ['Ana'], 'ortizadmin|ana'],
  ])('normalises %j %j to %j', (family, given, expected) => {
    expect(normaliseName(family, given)).toBe(expected);
  });

  test('a decomposed and a precomposed é are the same letter', () => {
    expect(normaliseName('Ren\u0065\u0301', [])).toBe(normaliseName('Ren\u00e9', []));
  });
});

describe('demographicKey', () => {
  test.each<[string, DemographicPatient, string | null]>([
    [
      'a full record',
      { familyName: 'García', givenNames: ['María', 'José'], birthDate: '1990-05-01' },
      'garcia|maria jose|1990-05-01',
    ],
    ['no family name', { familyName: null, givenNames: ['Maria'], birthDate: '1990-05-01' }, null],
    [
      'a family name of punctuation only',
      { familyName: "'-.", givenNames: ['Maria'], birthDate: '1990-05-01' },
      null,
    ],
    ['no given name', { familyName: 'Garcia', givenNames: [], birthDate: '1990-05-01' }, null],
    [
      'only blank given names',
      { familyName: 'Garcia', givenNames: [' ', ''], birthDate: '1990-05-01' },
      null,
    ],
    ['no birth date', { familyName: 'Garcia', givenNames: ['Maria'], birthDate: null }, null],
    ['a birth year only', { familyName: 'Garcia', givenNames: ['Maria'], birthDate: '1990' }, null],
    ['a birth month only', { familyName: 'Garcia', givenNames: ['Maria'], birthDate: '1990-05' }, null],
    [
      'a birth date with a time',
      { familyName: 'Garcia', givenNames: ['Maria'], birthDate: '1990-05-01T00:00' },
      null,
    ],
    ['an HL7 TS birth date', { familyName: 'Garcia', givenNames: ['Maria'], birthDate: '19900501' }, null],
    [
      'a date that does not exist',
      { familyName: 'Garcia', givenNames: ['Maria'], birthDate: '1990-02-30' },
      null,
    ],
    [
      'a leap day',
      { familyName: 'Garcia', givenNames: ['Maria'], birthDate: '1992-02-29' },
      'garcia|maria|1992-02-29',
    ],
  ])('%s', (_what, patient, expected) => {
    expect(demographicKey(patient)).toBe(expected);
  });
});

describe('chooseDemographicMatch', () => {
  type Candidate = DemographicPatient & { id: string; mrn: string };
  const candidate = (
    id: string,
    familyName: string | null,
    givenNames: string[],
    birthDate: string | null,
  ): Candidate => ({ id, mrn: `MRN-${id}`, familyName, givenNames, birthDate });

  const MARIA = candidate('p1', 'García', ['María'], '1990-05-01');
  const MARIA_TWIN = candidate('p2', 'Garcia', ['Maria'], '1990-05-01');
  const MARTA_SISTER = candidate('p3', 'Garcia', ['Marta'], '1990-05-01');
  const MARIA_OTHER_BIRTHDAY = candidate('p4', 'Garcia', ['Maria'], '1991-05-01');
  const MARIA_JOSE = candidate('p5', 'Garcia', ['Maria', 'Jose'], '1990-05-01');
  const NO_BIRTH_DATE = candidate('p6', 'Garcia', ['Maria'], null);
  const LOPEZ = candidate('p7', 'Lopez', ['Maria'], '1990-05-01');

  const incoming: DemographicPatient = {
    familyName: 'GARCIA',
    givenNames: ['Maria'],
    birthDate: '1990-05-01',
  };

  test('matches the one candidate with the same name and birth date, however written', () => {
    const choice = chooseDemographicMatch(incoming, [LOPEZ, MARTA_SISTER, MARIA, MARIA_OTHER_BIRTHDAY]);
    expect(choice).toEqual({ match: MARIA });
    // The caller gets its own candidate type back.
    if (choice.match) expect(choice.match.mrn).toBe('MRN-p1');
  });

  test('does not pick between two candidates with the same key', () => {
    expect(chooseDemographicMatch(incoming, [MARIA, LOPEZ, MARIA_TWIN, MARTA_SISTER])).toEqual({
      match: null,
      candidates: [MARIA, MARIA_TWIN, MARTA_SISTER],
    });
  });

  test('counts one patient found twice as one candidate', () => {
    expect(chooseDemographicMatch(incoming, [MARIA, { ...MARIA }])).toEqual({ match: MARIA });
  });

  test.each<[string, DemographicPatient, Candidate[], Candidate[]]>([
    [
      'a sister with the same family name and birth date',
      incoming,
      [MARTA_SISTER, LOPEZ, MARIA_OTHER_BIRTHDAY],
      [MARTA_SISTER],
    ],
    ['a second given name on file ("Maria Jose" is not "Maria")', incoming, [MARIA_JOSE], [MARIA_JOSE]],
    [
      'a first given name only on file ("Maria" is not "Maria Jose")',
      { familyName: 'Garcia', givenNames: ['Maria', 'Jose'], birthDate: '1990-05-01' },
      [MARIA],
      [MARIA],
    ],
    [
      'given names in another order',
      { familyName: 'Garcia', givenNames: ['Jose', 'Maria'], birthDate: '1990-05-01' },
      [MARIA_JOSE],
      [MARIA_JOSE],
    ],
    ['a candidate without a birth date', incoming, [NO_BIRTH_DATE], []],
    ['another birth date only', incoming, [MARIA_OTHER_BIRTHDAY], []],
    ['no candidates', incoming, [], []],
    [
      'an incoming patient without given names',
      { familyName: 'Garcia', givenNames: [], birthDate: '1990-05-01' },
      [MARIA, MARTA_SISTER, LOPEZ],
      [MARIA, MARTA_SISTER],
    ],
    [
      'an incoming patient with a birth year only',
      { familyName: 'Garcia', givenNames: ['Maria'], birthDate: '1990' },
      [MARIA, candidate('p8', 'Garcia', ['Maria'], '1990')],
      [],
    ],
    [
      'an incoming patient without a family name',
      { familyName: null, givenNames: ['Maria'], birthDate: '1990-05-01' },
      [MARIA, LOPEZ],
      [],
    ],
  ])('never guesses: %s', (_what, patient, candidates, forReview) => {
    expect(chooseDemographicMatch(patient, candidates)).toEqual({ match: null, candidates: forReview });
  });

  test('a patient without a birth date never matches one without either', () => {
    const partial = { familyName: 'Garcia', givenNames: ['Maria'], birthDate: null };
    expect(chooseDemographicMatch(partial, [NO_BIRTH_DATE])).toEqual({ match: null, candidates: [] });
  });
});
