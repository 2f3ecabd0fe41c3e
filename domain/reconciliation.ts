/**
 * The last step of patient reconciliation: after identifiers found no one, demographics (normalised
 * name and date of birth) may name exactly one patient. Anything else goes to a person as a "match
 * patient" review task with the candidates; this step never guesses, because a result filed under
 * the wrong patient is worse than one that waits.
 */

export interface DemographicPatient {
  familyName: string | null;
  givenNames: string[];
  /** YYYY-MM-DD; a partial date (YYYY, YYYY-MM) never matches. */
  birthDate: string | null;
}

/**
 * Letters that are not a base letter plus a combining mark, so NFD leaves them whole; senders and
 * registration clerks write them as these ASCII forms.
 */
const FOLDED_LETTERS: Record<string, string> = {
  ß: 'ss',
  æ: 'ae',
  œ: 'oe',
  ø: 'o',
  ł: 'l',
  đ: 'd',
  ð: 'd',
  þ: 'th',
  ı: 'i',
};

/**
 * A name as a comparison key, `family|given given`: diacritics stripped (NFD), lower case,
 * punctuation, hyphens and apostrophes dropped without a space (O'Brien-Smith is obriensmith,
 * however the sender split it), spaces collapsed.
 *
 * @example normaliseName("O'Brien-Smith", ['José', 'María']) // 'obriensmith|jose maria'
 */
export function normaliseName(family: string | null, given: string[]): string {
  return `${normalisePart(family ?? '')}|${normaliseGiven(given)}`;
}

/**
 * The key two records must share to be the same patient by demographics: normalised family and
 * given names plus the full birth date. Null unless all three are present, because partial data
 * would match people who only share what is known.
 *
 * @example
 * demographicKey({ familyName: 'Nguyễn', givenNames: ['Thị', 'Lan'], birthDate: '1984-07-02' })
 * // 'nguyen|thi lan|1984-07-02'
 * demographicKey({ familyName: 'Nguyen', givenNames: ['Lan'], birthDate: '1984' }) // null
 */
export function demographicKey(p: DemographicPatient): string | null {
  const family = normalisePart(p.familyName ?? '');
  const given = normaliseGiven(p.givenNames);
  if (family === '' || given === '' || !isFullDate(p.birthDate)) return null;
  return `${family}|${given}|${p.birthDate}`;
}

/**
 * Picks the one candidate with the same demographic key as the incoming patient. All given names
 * are compared ("Mary Ann" is not "Mary"), so a match is a match and not a guess. With no match, or
 * more than one, it returns no match and the candidates a reviewer should look at: those with the
 * same key, and those sharing the family name and birth date.
 *
 * @example
 * chooseDemographicMatch(
 *   { familyName: 'Garcia', givenNames: ['Maria'], birthDate: '1990-05-01' },
 *   [{ id: 'p1', familyName: 'García', givenNames: ['María'], birthDate: '1990-05-01' }],
 * ) // { match: { id: 'p1', ... } }
 */
export function chooseDemographicMatch<T extends DemographicPatient & { id: string }>(
  incoming: DemographicPatient,
  candidates: T[],
): { match: T } | { match: null; candidates: T[] } {
  // One patient can be found twice (by two identifiers, say); that is still one candidate.
  const seen = new Set<string>();
  const unique: T[] = [];
  for (const c of candidates) {
    if (seen.has(c.id)) continue;
    seen.add(c.id);
    unique.push(c);
  }

  const key = demographicKey(incoming);
  const sameKey = key === null ? [] : unique.filter((c) => demographicKey(c) === key);
  if (sameKey.length === 1) return { match: sameKey[0]! };

  const family = normalisePart(incoming.familyName ?? '');
  const sharesFamilyAndBirth = (c: T) =>
    family !== '' &&
    isFullDate(incoming.birthDate) &&
    c.birthDate === incoming.birthDate &&
    normalisePart(c.familyName ?? '') === family;
  return { match: null, candidates: unique.filter((c) => sameKey.includes(c) || sharesFamilyAndBirth(c)) };
}

function normaliseGiven(given: string[]): string {
  return given
    .map(normalisePart)
    .filter((part) => part !== '')
    .join(' ');
}

function normalisePart(text: string): string {
  return text
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[ßæœøłđðþı]/g, (letter) => FOLDED_LETTERS[letter] ?? letter)
    .replace(/[^\p{L}\p{N}\s]/gu, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** A real calendar date written YYYY-MM-DD: 1990-02-30 is a typing error, not a birth date. */
function isFullDate(date: string | null): date is string {
  if (date === null || !/^\d{4}-\d{2}-\d{2}$/.test(date)) return false;
  const parsed = new Date(`${date}T00:00:00Z`);
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString().slice(0, 10) === date;
}
