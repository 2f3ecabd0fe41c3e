import { describe, expect, test } from 'vitest';
import { lineDiff } from '../../console/src/lib/line-diff.ts';
import { rulesFromBuilder, type BuilderModel } from '../../console/src/lib/rule-builder.ts';
import {
  DEFAULT_ROUTING_DECISION,
  evaluateRouting,
  validateRuleSet,
  type RoutingFacts,
  type RoutingRuleSet,
} from '../../domain/routing-rules.ts';

type Result = RoutingFacts['results'][number];
const potassium = (value: number | null, more: Partial<Result> = {}): Result => ({
  code: '2823-3',
  system: 'http://loinc.org',
  value,
  text: null,
  unit: 'mmol/L',
  interpretation: 'N',
  critical: false,
  low: 3.5,
  high: 5.1,
  ...more,
});
const facts = (results: Result[], more: Partial<RoutingFacts> = {}): RoutingFacts => ({
  tenant: 'demo',
  source: { format: 'hl7v2', transport: 'mllp', connection: 'Main lab' },
  test: { code: '24321-2', system: 'http://loinc.org', display: 'Basic metabolic panel' },
  report: { status: 'final', critical: false, abnormal: false, needsReview: false },
  results,
  patient: { ageYears: 40, sex: 'female', notifiable: true },
  orderingLocation: 'ICU',
  orderingProvider: null,
  ...more,
});
const model = (more: Partial<BuilderModel>): BuilderModel => ({
  match: 'all',
  conditions: [],
  review: true,
  destinations: '',
  notifyPatient: 'default',
  ...more,
});
const decide = (m: BuilderModel, f: RoutingFacts) => {
  const rules = rulesFromBuilder(m);
  // What the builder makes is checked by the same validation as rules written by hand.
  expect(validateRuleSet(rules).ok).toBe(true);
  return evaluateRouting(rules as RoutingRuleSet, f, DEFAULT_ROUTING_DECISION);
};

describe('the rules page builder', () => {
  const highPotassium = model({
    conditions: [
      { kind: 'resultCode', value: '2823-3' },
      { kind: 'valueAbove', value: '5.0' },
    ],
  });

  test('"all" needs the result conditions to hold for the same result', () => {
    expect(decide(highPotassium, facts([potassium(5.6)])).reviewRequired).toBe(true);
    expect(decide(highPotassium, facts([potassium(4.1)])).reviewRequired).toBe(false);
    // A high sodium beside a normal potassium is not a high potassium.
    const sodium = potassium(150, { code: '2951-2' });
    expect(decide(highPotassium, facts([potassium(4.1), sodium])).reviewRequired).toBe(false);
    expect(decide({ ...highPotassium, match: 'any' }, facts([potassium(4.1), sodium])).reviewRequired).toBe(
      true,
    );
  });

  test.each([
    ['valueBelow', '3.0', potassium(null), false],
    ['valueBelow', '3.0', potassium(2.9), true],
    ['outsideRange', '', potassium(5.2), true],
    ['outsideRange', '', potassium(4), false],
    ['outsideRange', '', potassium(9, { high: null, low: null }), false],
    ['flag', 'HH', potassium(7, { interpretation: 'HH' }), true],
    ['flag', 'critical', potassium(7, { critical: true }), true],
    ['flag', 'critical', potassium(7), false],
  ] as const)('a result condition %s %s', (kind, value, result, review) => {
    expect(decide(model({ conditions: [{ kind, value }] }), facts([result])).reviewRequired).toBe(review);
  });

  test.each([
    ['ageUnder', '18', { patient: { ageYears: null, sex: null, notifiable: false } }, false],
    ['ageUnder', '18', { patient: { ageYears: 12, sex: null, notifiable: false } }, true],
    ['ageOver', '65', {}, false],
    ['location', 'ICU', {}, true],
    ['transport', 'http', {}, false],
    ['format', 'hl7v2', {}, true],
    ['tenant', 'demo', {}, true],
    ['testCode', '24321-2, 24323-8', {}, true],
  ] as const)('a report condition %s %s', (kind, value, more, review) => {
    expect(decide(model({ conditions: [{ kind, value }] }), facts([potassium(4)], more)).reviewRequired).toBe(
      review,
    );
  });

  test('the action: destinations and not notifying the patient apply only when the conditions hold', () => {
    const m = model({
      ...highPotassium,
      review: false,
      destinations: 'Cardiology, ICU feed',
      notifyPatient: 'no',
    });
    expect(decide(m, facts([potassium(5.6)]))).toMatchObject({
      reviewRequired: false,
      destinations: ['Cardiology', 'ICU feed'],
      notifyPatient: false,
    });
    expect(decide(m, facts([potassium(4.1)]))).toMatchObject({ destinations: [], notifyPatient: true });
  });

  test('an incomplete condition or no action is named, not turned into a rule', () => {
    expect(() => rulesFromBuilder(model({ conditions: [{ kind: 'valueAbove', value: 'high' }] }))).toThrow(
      /Condition 1 \(value is above\): enter a number/,
    );
    expect(() => rulesFromBuilder(model({ review: false }))).toThrow(/Choose an action/);
  });
});

describe('lineDiff', () => {
  test('marks removed and added lines, keeping the common ones', () => {
    expect(lineDiff('{\n  "a": 1,\n  "b": 2\n}', '{\n  "a": 1,\n  "c": 3\n}')).toEqual([
      { kind: 'same', text: '{' },
      { kind: 'same', text: '  "a": 1,' },
      { kind: 'removed', text: '  "b": 2' },
      { kind: 'added', text: '  "c": 3' },
      { kind: 'same', text: '}' },
    ]);
    expect(lineDiff('', 'x\ny')).toEqual([
      { kind: 'added', text: 'x' },
      { kind: 'added', text: 'y' },
    ]);
  });
});
