import { describe, expect, test } from 'vitest';
import {
  ALLOWED_OPERATIONS,
  DEFAULT_ROUTING_DECISION,
  RoutingRuleError,
  evaluateRouting,
  routeReport,
  routingDifferences,
  validateRuleSet,
  type RoutingFacts,
  type RoutingRuleSet,
} from '../../domain/routing-rules.ts';

type Result = RoutingFacts['results'][number];

function result(code: string, value: number | null, unit: string | null, more: Partial<Result> = {}): Result {
  return {
    code,
    system: 'http://loinc.org',
    value,
    text: value === null ? null : String(value),
    unit,
    interpretation: 'N',
    critical: false,
    low: null,
    high: null,
    ...more,
  };
}

/** A basic metabolic panel over MLLP from the main lab, with one critical potassium unless told. */
function facts(more: Partial<RoutingFacts> = {}): RoutingFacts {
  return {
    tenant: 'acme',
    source: { format: 'hl7v2', transport: 'mllp', connection: 'main-lab' },
    test: { code: '51990-0', system: 'http://loinc.org', display: 'Basic metabolic panel' },
    report: { status: 'final', critical: true, abnormal: true, needsReview: false },
    results: [
      result('2823-3', 6.8, 'mmol/L', { interpretation: 'HH', critical: true, low: 3.5, high: 5.1 }),
      result('2951-2', 139, 'mmol/L', { low: 135, high: 145 }),
      result('2345-7', 98, 'mg/dL', { low: 70, high: 99 }),
    ],
    patient: { ageYears: 57, sex: 'female', notifiable: true },
    orderingLocation: 'WARD-4B',
    orderingProvider: 'P12345',
    ...more,
  };
}

const NORMAL_BMP: RoutingFacts['results'] = [
  result('2823-3', 4.1, 'mmol/L', { low: 3.5, high: 5.1 }),
  result('2951-2', 139, 'mmol/L', { low: 135, high: 145 }),
  result('2345-7', 98, 'mg/dL', { low: 70, high: 99 }),
];

const calm = (results = NORMAL_BMP): Partial<RoutingFacts> => ({
  results,
  report: { status: 'final', critical: false, abnormal: false, needsReview: false },
});

const ANY_CRITICAL = { some: [{ var: 'results' }, { var: 'critical' }] };
const GLUCOSE_OVER_300 = {
  some: [
    { var: 'results' },
    { and: [{ '==': [{ var: 'code' }, '2345-7'] }, { '>': [{ var: 'value' }, 300] }] },
  ],
};
const REVIEW_RULE = { or: [ANY_CRITICAL, GLUCOSE_OVER_300] };

const errorOf = (fn: () => unknown): RoutingRuleError => {
  try {
    fn();
  } catch (error) {
    if (error instanceof RoutingRuleError) return error;
    throw error;
  }
  throw new Error('expected a RoutingRuleError');
};

describe('validateRuleSet', () => {
  test.each<[string, unknown]>([
    ['an empty rule set', {}],
    [
      'literals only',
      { reviewRequired: true, destinations: ['ehr'], releaseDelaySeconds: 0, priority: 'stat' },
    ],
    ['the review rule for critical values and high glucose', { reviewRequired: REVIEW_RULE }],
    [
      'destinations by connection',
      { destinations: { if: [{ '==': [{ var: 'source.connection' }, 'main-lab'] }, ['ehr-main'], []] } },
    ],
    ['a var with a default', { notifyPatient: { '!!': { var: ['patient.notifiable', false] } } }],
    ['a numeric var path inside map', { destinations: { map: [{ var: 'results' }, { var: 'code' }] } }],
    [
      'reduce over results',
      {
        releaseDelaySeconds: {
          reduce: [{ var: 'results' }, { '+': [{ var: 'accumulator' }, 60] }, 0],
        },
      },
    ],
    [
      'missing_some',
      { reviewRequired: { '!!': { missing_some: [1, ['orderingProvider', 'orderingLocation']] } } },
    ],
    ['the ?: spelling of if', { reviewRequired: { '?:': [{ '!==': [1, 2] }, true, false] } }],
  ])('accepts %s', (_what, input) => {
    expect(validateRuleSet(input)).toEqual({ ok: true, rules: input });
  });

  test.each<[string, unknown, string, RegExp]>([
    ['the log operation', { reviewRequired: { log: 1 } }, 'reviewRequired', /"log" is not allowed/],
    [
      'an unknown operation nested inside and',
      { reviewRequired: { and: [true, { eval: 'x' }] } },
      'reviewRequired.and[1]',
      /"eval" is not allowed/,
    ],
    [
      'a dotted operation (json-logic-js resolves it to a method)',
      { priority: { 'toString.call': [] } },
      'priority',
      /"toString.call" is not allowed/,
    ],
    [
      'a path into __proto__',
      { reviewRequired: { var: '__proto__.x' } },
      'reviewRequired.var',
      /"__proto__"/,
    ],
    [
      'a path to constructor inside a list',
      { destinations: { map: [{ var: 'results' }, { var: 'code.constructor' }] } },
      'destinations.map[1].var',
      /"constructor"/,
    ],
    [
      'prototype as the path of a var with a default',
      { notifyPatient: { var: ['results.prototype', true] } },
      'notifyPatient.var[0]',
      /"prototype"/,
    ],
    [
      'a computed var path',
      { notifyPatient: { var: { cat: ['constr', 'uctor'] } } },
      'notifyPatient.var',
      /must be written out as text/,
    ],
    [
      'a missing key into __proto__',
      { reviewRequired: { missing: ['__proto__'] } },
      'reviewRequired.missing[0]',
      /"__proto__"/,
    ],
    [
      'an object with two keys',
      { reviewRequired: { '==': [1, 1], '!=': [1, 2] } },
      'reviewRequired',
      /exactly one key/,
    ],
    ['an empty object', { destinations: {} }, 'destinations', /empty object/],
    ['an unknown rule key', { reviewRequired: true, sendFax: true }, 'sendFax', /not a routing rule/],
    [
      'a __proto__ rule key from JSON',
      JSON.parse('{"__proto__": {"var": "x"}}'),
      '__proto__',
      /not a routing rule/,
    ],
    [
      'a string over 1000 characters',
      { destinations: ['x'.repeat(1001)] },
      'destinations[0]',
      /1001 characters long.*at most 1000/,
    ],
    ['a non-finite number', { releaseDelaySeconds: Infinity }, 'releaseDelaySeconds', /finite/],
  ])('refuses %s', (_what, input, path, message) => {
    const checked = validateRuleSet(input);
    expect(checked.ok).toBe(false);
    if (checked.ok) return;
    expect(checked.errors).toContainEqual({ path, message: expect.stringMatching(message) });
  });

  test.each<[string, unknown]>([
    ['null', null],
    ['a list', [{ reviewRequired: true }]],
    ['a string', '{"reviewRequired": true}'],
    ['a Date', new Date(0)],
  ])('refuses %s as the rule set', (_what, input) => {
    expect(validateRuleSet(input)).toEqual({
      ok: false,
      errors: [{ path: '', message: expect.stringMatching(/must be an object/) }],
    });
  });

  const nested = (levels: number): unknown => {
    let expression: unknown = true;
    for (let i = 0; i < levels; i++) expression = { '!!': expression };
    return expression;
  };

  test('allows operations nested 32 levels and refuses 33', () => {
    expect(validateRuleSet({ reviewRequired: nested(32) }).ok).toBe(true);
    const checked = validateRuleSet({ reviewRequired: nested(33) });
    expect(checked).toEqual({
      ok: false,
      errors: [
        { path: `reviewRequired${'["!!"]'.repeat(32)}`, message: expect.stringMatching(/nested too deeply/) },
      ],
    });
  });

  test('refuses a very deep rule without overflowing the stack', () => {
    const checked = validateRuleSet({ reviewRequired: nested(100_000) });
    expect(checked.ok).toBe(false);
  });

  test('counts nodes across the whole rule set', () => {
    const codes = (n: number) => Array.from({ length: n }, (_, i) => `dest-${i}`);
    // 1 list + 999 names = 1000 nodes in each rule.
    expect(validateRuleSet({ destinations: codes(999), priority: { in: ['stat', codes(997)] } }).ok).toBe(
      true,
    );
    const checked = validateRuleSet({ destinations: codes(999), priority: { in: ['stat', codes(998)] } });
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.errors[0]!.message).toMatch(/at most 2000/);
  });

  test('the whitelist holds exactly the operations that cannot reach outside the facts', () => {
    expect([...ALLOWED_OPERATIONS].sort()).toEqual(
      [
        'var',
        'missing',
        'missing_some',
        'if',
        '?:',
        '==',
        '===',
        '!=',
        '!==',
        '!',
        '!!',
        'or',
        'and',
        '>',
        '>=',
        '<',
        '<=',
        'max',
        'min',
        '+',
        '-',
        '*',
        '/',
        '%',
        'in',
        'cat',
        'substr',
        'merge',
        'map',
        'filter',
        'reduce',
        'all',
        'none',
        'some',
      ].sort(),
    );
  });
});

describe('evaluateRouting', () => {
  test('takes the defaults when there are no rules', () => {
    const decision = evaluateRouting({}, facts(), DEFAULT_ROUTING_DECISION);
    expect(decision).toEqual(DEFAULT_ROUTING_DECISION);
    // The caller's default list is not handed out to be mutated.
    expect(decision.destinations).not.toBe(DEFAULT_ROUTING_DECISION.destinations);
  });

  test.each<[string, Partial<RoutingFacts>, boolean]>([
    ['a critical potassium', {}, true],
    ['a normal panel', calm(), false],
    [
      'a glucose of 412 mg/dL that is not critical by the table',
      calm([
        ...NORMAL_BMP.slice(0, 2),
        result('2345-7', 412, 'mg/dL', { interpretation: 'H', low: 70, high: 99 }),
      ]),
      true,
    ],
    [
      'a glucose of exactly 300 mg/dL',
      calm([
        ...NORMAL_BMP.slice(0, 2),
        result('2345-7', 300, 'mg/dL', { interpretation: 'H', low: 70, high: 99 }),
      ]),
      false,
    ],
    [
      'a sodium of 412 (the glucose rule looks at glucose only)',
      calm([result('2951-2', 412, 'mmol/L')]),
      false,
    ],
    ['no results', calm([]), false],
  ])('review rule: %s', (_what, more, expected) => {
    const decision = evaluateRouting({ reviewRequired: REVIEW_RULE }, facts(more), DEFAULT_ROUTING_DECISION);
    expect(decision.reviewRequired).toBe(expected);
  });

  const byConnection: RoutingRuleSet = {
    destinations: {
      if: [
        { '==': [{ var: 'source.connection' }, 'main-lab'] },
        ['ehr-main', 'archive'],
        { '==': [{ var: 'source.connection' }, 'reference-lab'] },
        { merge: ['ehr-main', { if: [{ var: 'report.critical' }, 'on-call-pager', []] }, 'ehr-main'] },
        [],
      ],
    },
  };

  test.each<[string | null, boolean, string[]]>([
    ['main-lab', true, ['ehr-main', 'archive']],
    ['reference-lab', true, ['ehr-main', 'on-call-pager']],
    ['reference-lab', false, ['ehr-main']],
    ['unknown-clinic', true, []],
    [null, true, []],
  ])('destinations for connection %s (critical %s) are %j', (connection, critical, expected) => {
    const f = facts({
      source: { format: 'hl7v2', transport: 'mllp', connection },
      report: { status: 'final', critical, abnormal: true, needsReview: false },
    });
    expect(evaluateRouting(byConnection, f, DEFAULT_ROUTING_DECISION).destinations).toEqual(expected);
  });

  test.each<[unknown, string[]]>([
    ['ehr-main', ['ehr-main']],
    [' ehr-main ', ['ehr-main']],
    [
      ['a', 'b', 'a', 'c', 'b'],
      ['a', 'b', 'c'],
    ],
    [[], []],
  ])('destinations %j become %j', (rule, expected) => {
    expect(evaluateRouting({ destinations: rule }, facts(), DEFAULT_ROUTING_DECISION).destinations).toEqual(
      expected,
    );
  });

  const HIV_DELAY: RoutingRuleSet = {
    releaseDelaySeconds: { if: [{ in: [{ var: 'test.code' }, ['75622-1', '56888-1']] }, 3600, 0] },
  };

  test.each<[string, string, number]>([
    ['HIV 1+2 antibody and p24 antigen', '56888-1', 3600],
    ['HIV 1 and 2 tests panel', '75622-1', 3600],
    ['basic metabolic panel', '51990-0', 0],
  ])('release delay for %s (%s) is %i s', (_what, code, expected) => {
    const f = facts({ test: { code, system: 'http://loinc.org', display: null } });
    expect(evaluateRouting(HIV_DELAY, f, DEFAULT_ROUTING_DECISION).releaseDelaySeconds).toBe(expected);
  });

  test.each<[unknown, number]>([
    [0, 0],
    [3600, 3600],
    [89.5, 90],
    [{ '*': [1.5, 60] }, 90],
    [604800, 604800],
  ])('a release delay of %j is %i whole seconds', (rule, expected) => {
    expect(
      evaluateRouting({ releaseDelaySeconds: rule }, facts(), DEFAULT_ROUTING_DECISION).releaseDelaySeconds,
    ).toBe(expected);
  });

  const PRIORITY: RoutingRuleSet = {
    priority: { if: [{ var: 'report.critical' }, 'stat', { var: 'report.abnormal' }, 'urgent', 'routine'] },
  };

  test.each<[string, string, Partial<RoutingFacts>]>([
    ['critical', 'stat', {}],
    [
      'abnormal',
      'urgent',
      { report: { status: 'final', critical: false, abnormal: true, needsReview: false } },
    ],
    ['normal', 'routine', calm()],
  ])('priority for a %s report is %s', (_what, expected, more) => {
    expect(evaluateRouting(PRIORITY, facts(more), DEFAULT_ROUTING_DECISION).priority).toBe(expected);
  });

  test('notifies the patient only when they may be told and nothing is critical', () => {
    const rules: RoutingRuleSet = {
      notifyPatient: {
        and: [{ '===': [{ var: 'patient.notifiable' }, true] }, { '!': { var: 'report.critical' } }],
      },
    };
    expect(evaluateRouting(rules, facts(), DEFAULT_ROUTING_DECISION).notifyPatient).toBe(false);
    expect(evaluateRouting(rules, facts(calm()), DEFAULT_ROUTING_DECISION).notifyPatient).toBe(true);
  });

  test('evaluates each rule present and keeps the defaults for the rest', () => {
    const defaults = { ...DEFAULT_ROUTING_DECISION, destinations: ['ehr-default'], releaseDelaySeconds: 60 };
    expect(evaluateRouting({ reviewRequired: ANY_CRITICAL, ...PRIORITY }, facts(), defaults)).toEqual({
      reviewRequired: true,
      destinations: ['ehr-default'],
      notifyPatient: true,
      releaseDelaySeconds: 60,
      priority: 'stat',
    });
  });

  test.each(['toString', 'valueOf', 'hasOwnProperty', 'report.isPrototypeOf', 'patient.__defineGetter__'])(
    'a var of %s finds nothing: the facts are copied without a prototype',
    (path) => {
      const rules = { reviewRequired: { '===': [{ var: path }, null] } };
      expect(evaluateRouting(rules, facts(), DEFAULT_ROUTING_DECISION).reviewRequired).toBe(true);
    },
  );

  test('{"var": "constructor"} is refused before it can reach a Function', () => {
    const error = errorOf(() =>
      evaluateRouting({ destinations: { var: 'constructor' } }, facts(), DEFAULT_ROUTING_DECISION),
    );
    expect(error.rule).toBe('destinations');
    expect(error.message).toMatch(/"constructor"/);
  });

  test('does not change the facts it was given', () => {
    const f = facts();
    const before = structuredClone(f);
    evaluateRouting(
      { destinations: { map: [{ var: 'results' }, { var: 'code' }] }, reviewRequired: ANY_CRITICAL },
      f,
      DEFAULT_ROUTING_DECISION,
    );
    expect(f).toEqual(before);
  });

  test.each<[string, RoutingRuleSet, string, RegExp]>([
    [
      '1 for reviewRequired',
      { reviewRequired: 1 },
      'reviewRequired',
      /must give true or false, but it gave 1/,
    ],
    [
      '"yes" for notifyPatient',
      { notifyPatient: 'yes' },
      'notifyPatient',
      /must give true or false, but it gave "yes"/,
    ],
    [
      'the truthy last value of "and"',
      { reviewRequired: { and: [{ var: 'report.critical' }, { var: 'test.code' }] } },
      'reviewRequired',
      /but it gave "51990-0"/,
    ],
    [
      'null from an if without else',
      { reviewRequired: { if: [false, true] } },
      'reviewRequired',
      /gave null/,
    ],
    [
      'a number for destinations',
      { destinations: 42 },
      'destinations',
      /list of destination names, but it gave 42/,
    ],
    [
      'null destinations',
      { destinations: { if: [false, ['x']] } },
      'destinations',
      /every "if" ends with an else/,
    ],
    [
      'an empty destination name',
      { destinations: ['ehr', ''] },
      'destinations',
      /only destination names.*""/,
    ],
    ['a number in the destinations', { destinations: ['ehr', 7] }, 'destinations', /holds 7/],
    ['results as destinations', { destinations: { var: 'results' } }, 'destinations', /destination names/],
    ['a negative delay', { releaseDelaySeconds: -1 }, 'releaseDelaySeconds', /from 0 to 604800.*gave -1/],
    ['a delay over a week', { releaseDelaySeconds: 604801 }, 'releaseDelaySeconds', /gave 604801/],
    ['a delay as text', { releaseDelaySeconds: '3600' }, 'releaseDelaySeconds', /gave "3600"/],
    ['NaN from arithmetic', { releaseDelaySeconds: { '/': [0, 0] } }, 'releaseDelaySeconds', /gave NaN/],
    ['an unknown priority', { priority: 'asap' }, 'priority', /routine, urgent, stat.*"asap"/],
    ['a priority in capitals', { priority: 'STAT' }, 'priority', /"STAT"/],
    [
      'an exception inside json-logic',
      { reviewRequired: { '!!': { missing_some: [1, null] } } },
      'reviewRequired',
      /The reviewRequired rule failed while it was evaluated: .+\.$/,
    ],
    [
      'an invalid rule set',
      { reviewRequired: { log: 'x' } },
      'reviewRequired',
      /not valid: reviewRequired: .*"log"/,
    ],
  ])('throws for %s', (_what, rules, rule, message) => {
    const error = errorOf(() => evaluateRouting(rules, facts(), DEFAULT_ROUTING_DECISION));
    expect(error.rule).toBe(rule);
    expect(error.message).toMatch(message);
  });

  test('names no rule when the rule set as a whole is unusable', () => {
    const error = errorOf(() =>
      evaluateRouting(null as unknown as RoutingRuleSet, facts(), DEFAULT_ROUTING_DECISION),
    );
    expect(error.rule).toBeNull();
    expect(error.message).toMatch(/must be an object/);
  });
});

describe('routeReport and routingDifferences', () => {
  const critical = { reviewRequired: { some: [{ var: 'results' }, { var: 'critical' }] } };

  test('no rules: the defaults, as version 0; failing rules: review, with the error kept', () => {
    expect(routeReport(null, facts(), DEFAULT_ROUTING_DECISION)).toEqual({
      ...DEFAULT_ROUTING_DECISION,
      ruleVersion: 0,
    });
    expect(routeReport({ version: 4, rules: critical }, facts(), DEFAULT_ROUTING_DECISION)).toMatchObject({
      reviewRequired: true,
      ruleVersion: 4,
    });
    const failed = routeReport(
      { version: 5, rules: { priority: 'asap' } },
      facts(),
      DEFAULT_ROUTING_DECISION,
    );
    expect(failed).toMatchObject({ reviewRequired: true, ruleVersion: 5, priority: 'routine' });
    expect(failed.error).toMatch(/priority/);
  });

  test('names the decisions that differ, destinations compared as sets', () => {
    const a = { ...DEFAULT_ROUTING_DECISION, destinations: ['x', 'y'] };
    expect(routingDifferences(a, { ...a, destinations: ['y', 'x'] })).toEqual([]);
    expect(routingDifferences(a, { ...a, reviewRequired: true, destinations: ['x'] })).toEqual([
      'reviewRequired',
      'destinations',
    ]);
    expect(routingDifferences(a, { ...a, reviewRequired: true, error: 'failed' })).toEqual([
      'reviewRequired',
      'error',
    ]);
  });
});
