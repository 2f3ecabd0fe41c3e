// The rules page's visual builder: common conditions and one action, turned into plain JSON-logic
// that goes through the same validation (domain/routing-rules.ts) as rules written by hand.

/** What a condition looks at: one result of the report (`some` result matches) or the report. */
export const CONDITION_KINDS = {
  resultCode: { label: 'Result code is', scope: 'result', input: 'codes' },
  valueAbove: { label: 'Value is above', scope: 'result', input: 'number' },
  valueBelow: { label: 'Value is below', scope: 'result', input: 'number' },
  outsideRange: { label: 'Value is outside its reference range', scope: 'result', input: 'none' },
  flag: { label: 'Flag is', scope: 'result', input: 'flag' },
  testCode: { label: 'Test (order) code is', scope: 'report', input: 'codes' },
  ageOver: { label: 'Patient age (years) is over', scope: 'report', input: 'number' },
  ageUnder: { label: 'Patient age (years) is under', scope: 'report', input: 'number' },
  location: { label: 'Ordering location is', scope: 'report', input: 'text' },
  transport: { label: 'Source transport is', scope: 'report', input: 'text' },
  format: { label: 'Source format is', scope: 'report', input: 'text' },
  tenant: { label: 'Tenant is', scope: 'report', input: 'text' },
} as const;
export type ConditionKind = keyof typeof CONDITION_KINDS;

/** Flags a result can carry (HL7 table 0078 as LabRelay writes them), and `critical`. */
export const FLAGS = ['H', 'L', 'HH', 'LL', 'A', 'critical'] as const;

export interface BuilderCondition {
  kind: ConditionKind;
  /** Codes (comma-separated: any of them), a number, a flag or a name, as typed. */
  value: string;
}

export interface BuilderModel {
  match: 'all' | 'any';
  conditions: BuilderCondition[];
  review: boolean;
  /** Destination (connection) names, comma-separated. */
  destinations: string;
  notifyPatient: 'default' | 'no';
}

export const EMPTY_BUILDER: BuilderModel = {
  match: 'all',
  conditions: [{ kind: 'resultCode', value: '' }],
  review: true,
  destinations: '',
  notifyPatient: 'default',
};

type Logic = unknown;
const v = (name: string) => ({ var: name });
const notNull = (name: string) => ({ '!=': [v(name), null] });

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function isOneOf(name: string, values: string[]): Logic {
  return values.length === 1 ? { '==': [v(name), values[0]] } : { in: [v(name), values] };
}

/**
 * `above`/`below` a number; a missing value (text result, unknown age) never matches, which JSON-logic
 * would otherwise read as 0.
 */
function compare(name: string, op: '>' | '<', n: number): Logic {
  const test = { [op]: [v(name), n] };
  const needsGuard = op === '<' ? n > 0 : n < 0;
  return needsGuard ? { and: [notNull(name), test] } : test;
}

function conditionLogic(c: BuilderCondition, index: number): Logic {
  const where = `Condition ${index + 1} (${CONDITION_KINDS[c.kind].label.toLowerCase()})`;
  const text = c.value.trim();
  const number = (): number => {
    const n = Number(text);
    if (text === '' || !Number.isFinite(n)) throw new Error(`${where}: enter a number.`);
    return n;
  };
  const required = (): string => {
    if (text === '') throw new Error(`${where}: enter a value.`);
    return text;
  };
  switch (c.kind) {
    case 'resultCode':
    case 'testCode': {
      const codes = list(c.value);
      if (codes.length === 0) throw new Error(`${where}: enter a code, or several separated by commas.`);
      return isOneOf(c.kind === 'resultCode' ? 'code' : 'test.code', codes);
    }
    case 'valueAbove':
      return compare('value', '>', number());
    case 'valueBelow':
      return compare('value', '<', number());
    case 'outsideRange':
      return {
        or: [
          { and: [notNull('value'), notNull('low'), { '<': [v('value'), v('low')] }] },
          { and: [notNull('value'), notNull('high'), { '>': [v('value'), v('high')] }] },
        ],
      };
    case 'flag': {
      const flag = required();
      if (!(FLAGS as readonly string[]).includes(flag))
        throw new Error(`${where}: choose one of ${FLAGS.join(', ')}.`);
      return flag === 'critical' ? { '==': [v('critical'), true] } : { '==': [v('interpretation'), flag] };
    }
    case 'ageOver':
      return compare('patient.ageYears', '>', number());
    case 'ageUnder':
      return compare('patient.ageYears', '<', number());
    case 'location':
      return { '==': [v('orderingLocation'), required()] };
    case 'transport':
      return { '==': [v('source.transport'), required()] };
    case 'format':
      return { '==': [v('source.format'), required()] };
    case 'tenant':
      return { '==': [v('tenant'), required()] };
  }
}

/**
 * The builder's rules as JSON-logic. Result conditions must hold for one and the same result
 * ("all") or for any result ("any"); report conditions are joined to them the same way.
 * Throws an Error naming the condition when one is incomplete.
 *
 * @example
 * rulesFromBuilder({ match: 'all', conditions: [{ kind: 'resultCode', value: '2823-3' },
 *   { kind: 'valueAbove', value: '5.0' }], review: true, destinations: '', notifyPatient: 'default' })
 * // { reviewRequired: { some: [{ var: 'results' }, { and: [{ '==': [{ var: 'code' }, '2823-3'] },
 * //   { '>': [{ var: 'value' }, 5] }] }] } }
 */
export function rulesFromBuilder(model: BuilderModel): Record<string, Logic> {
  const join = model.match === 'all' ? 'and' : 'or';
  const combine = (parts: Logic[]): Logic => (parts.length === 1 ? parts[0] : { [join]: parts });
  const resultParts: Logic[] = [];
  const reportParts: Logic[] = [];
  model.conditions.forEach((c, i) =>
    (CONDITION_KINDS[c.kind].scope === 'result' ? resultParts : reportParts).push(conditionLogic(c, i)),
  );
  const parts = [
    ...(resultParts.length > 0 ? [{ some: [v('results'), combine(resultParts)] }] : []),
    ...reportParts,
  ];
  // No condition: the action applies to every result.
  const condition = parts.length === 0 ? true : combine(parts);
  const rules: Record<string, Logic> = {};
  if (model.review) rules.reviewRequired = condition;
  const destinations = list(model.destinations);
  if (destinations.length > 0) rules.destinations = { if: [condition, destinations, []] };
  if (model.notifyPatient === 'no') rules.notifyPatient = { '!': condition };
  if (Object.keys(rules).length === 0)
    throw new Error('Choose an action: send to review, send to destinations, or do not notify the patient.');
  return rules;
}
