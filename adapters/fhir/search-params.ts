/**
 * Parsers for FHIR R4 search parameter values: https://hl7.org/fhir/R4/search.html
 * Each throws {@link SearchParamError} naming the parameter when a value cannot be read.
 */

export class SearchParamError extends Error {
  override readonly name = 'SearchParamError';
  readonly param: string;
  constructor(param: string, message: string) {
    super(message);
    this.param = param;
  }
}

/** A token `[system|]code`: `system` is undefined when no bar was given, '' for `|code`. */
export interface Token {
  system: string | undefined;
  code: string;
}

/** Reads a token list (`a|1,b|2`), splitting on commas that are not escaped. */
export function parseTokens(param: string, value: string): Token[] {
  const parts = value.split(/(?<!\\),/).map((p) => p.replaceAll('\\,', ','));
  return parts.map((part) => {
    const bar = part.indexOf('|');
    const token =
      bar === -1
        ? { system: undefined, code: part }
        : { system: part.slice(0, bar), code: part.slice(bar + 1) };
    if (token.code === '')
      throw new SearchParamError(param, `${param}=${value}: a token needs a code or value after the |`);
    return token;
  });
}

/** Reads a reference to a resource of `type`: `Type/id` or a bare `id`. */
export function parseReference(param: string, value: string, type: string): string[] {
  return value.split(',').map((v) => {
    const m = new RegExp(`^(?:(?:.*/)?${type}/)?([A-Za-z0-9\\-.]{1,64})$`).exec(v.trim());
    if (!m) throw new SearchParamError(param, `${param}=${v} is not a ${type} reference`);
    return m[1]!;
  });
}

export interface DateBounds {
  from?: Date;
  to?: Date;
}

const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'] as const;

/**
 * Reads one or more date parameters (`date=ge2026-01-01&date=lt2026-02`) into inclusive bounds.
 * A date without time covers its whole day (or month, or year).
 */
export function parseDateParams(param: string, values: string[]): DateBounds {
  const bounds: DateBounds = {};
  for (const raw of values) {
    const prefix = PREFIXES.find((p) => raw.startsWith(p)) ?? 'eq';
    const text = PREFIXES.some((p) => raw.startsWith(p)) ? raw.slice(2) : raw;
    const range = dateRange(text);
    if (!range)
      throw new SearchParamError(
        param,
        `${param}=${raw} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with a time zone)`,
      );
    switch (prefix) {
      case 'eq':
      case 'ap':
        bounds.from = max(bounds.from, range.start);
        bounds.to = min(bounds.to, range.end);
        break;
      case 'gt':
      case 'sa':
        bounds.from = max(bounds.from, new Date(range.end.getTime() + 1));
        break;
      case 'ge':
        bounds.from = max(bounds.from, range.start);
        break;
      case 'lt':
      case 'eb':
        bounds.to = min(bounds.to, new Date(range.start.getTime() - 1));
        break;
      case 'le':
        bounds.to = min(bounds.to, range.end);
        break;
      case 'ne':
        throw new SearchParamError(param, `${param}: the ne prefix is not supported`);
    }
  }
  return bounds;
}

function dateRange(text: string): { start: Date; end: Date } | null {
  const m =
    /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$/.exec(
      text,
    );
  if (!m) return null;
  const [, y, mo, d, h] = m;
  if (h !== undefined) {
    const instant = new Date(text);
    if (Number.isNaN(instant.getTime())) return null;
    return { start: instant, end: instant };
  }
  const year = Number(y);
  const month = mo ? Number(mo) - 1 : 0;
  const day = d ? Number(d) : 1;
  if (month > 11 || day < 1 || day > 31) return null;
  const start = new Date(Date.UTC(year, month, day));
  const end = d
    ? new Date(Date.UTC(year, month, day + 1) - 1)
    : mo
      ? new Date(Date.UTC(year, month + 1, 1) - 1)
      : new Date(Date.UTC(year + 1, 0, 1) - 1);
  return { start, end };
}

function max(a: Date | undefined, b: Date): Date {
  return a && a > b ? a : b;
}
function min(a: Date | undefined, b: Date): Date {
  return a && a < b ? a : b;
}
