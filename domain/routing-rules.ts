import jsonLogic, { type RulesLogic } from 'json-logic-js';

/**
 * Per-tenant routing rules: what happens to a report once it is flagged. Each rule is a JSON-logic
 * expression (https://jsonlogic.com) or a plain literal, written by a tenant admin in the console.
 * An admin is trusted with their own tenant's routing, not with the server, so rules are checked
 * against a whitelist before they are stored and again before every evaluation.
 */
export interface RoutingRuleSet {
  reviewRequired?: unknown;
  destinations?: unknown;
  notifyPatient?: unknown;
  releaseDelaySeconds?: unknown;
  priority?: unknown;
}

/** What a rule can see: the report as flagged, without any free text beyond codes and values. */
export interface RoutingFacts {
  tenant: string;
  source: { format: string; transport: string; connection: string | null };
  test: { code: string; system: string | null; display: string | null };
  report: { status: string; critical: boolean; abnormal: boolean; needsReview: boolean };
  results: Array<{
    code: string;
    system: string | null;
    value: number | null;
    text: string | null;
    unit: string | null;
    interpretation: string | null;
    critical: boolean;
    low: number | null;
    high: number | null;
  }>;
  patient: { ageYears: number | null; sex: string | null; notifiable: boolean };
  orderingLocation: string | null;
  orderingProvider: string | null;
}

export const ROUTING_PRIORITY = {
  routine: 'routine',
  urgent: 'urgent',
  stat: 'stat',
} as const;
export type RoutingPriority = (typeof ROUTING_PRIORITY)[keyof typeof ROUTING_PRIORITY];

export interface RoutingDecision {
  reviewRequired: boolean;
  destinations: string[];
  notifyPatient: boolean;
  releaseDelaySeconds: number;
  priority: RoutingPriority;
}

/** The decision when a tenant has written no rules: release at once, notify, no review. */
export const DEFAULT_ROUTING_DECISION: RoutingDecision = {
  reviewRequired: false,
  destinations: [],
  notifyPatient: true,
  releaseDelaySeconds: 0,
  priority: ROUTING_PRIORITY.routine,
};

/** The decision keys a rule set may hold, in the order they are checked and evaluated. */
const RULE_KEYS = [
  'reviewRequired',
  'destinations',
  'notifyPatient',
  'releaseDelaySeconds',
  'priority',
] as const satisfies ReadonlyArray<keyof RoutingRuleSet & keyof RoutingDecision>;
export type RoutingRuleKey = (typeof RULE_KEYS)[number];

/**
 * The JSON-logic operations a rule may use. `log` is left out (it writes to the console), and so is
 * every added or dotted operation, because json-logic-js resolves `a.b` names to functions.
 */
export const ALLOWED_OPERATIONS = [
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
] as const;
export type AllowedOperation = (typeof ALLOWED_OPERATIONS)[number];

const ALLOWED = new Set<string>(ALLOWED_OPERATIONS);

/** Path segments that would walk out of the facts into JavaScript's prototype chain. */
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);

/** Limits that keep one tenant's rules from costing the worker more than a routing decision should. */
export const ROUTING_RULE_LIMITS = { maxDepth: 32, maxNodes: 2000, maxStringLength: 1000 } as const;

export interface RuleSetError {
  /** Where the problem is, e.g. `reviewRequired.and[1]`; empty for the rule set as a whole. */
  path: string;
  message: string;
}

/**
 * Checks a rule set as an admin submitted it (parsed JSON): only the five decision keys, only
 * whitelisted operations, `var` paths that stay inside the facts, and size limits. Every problem is
 * reported with its path so the console can point at it.
 *
 * @example
 * validateRuleSet({ reviewRequired: { some: [{ var: 'results' }, { var: 'critical' }] } })
 * // { ok: true, rules: { reviewRequired: { some: [...] } } }
 * validateRuleSet({ reviewRequired: { log: 1 } })
 * // { ok: false, errors: [{ path: 'reviewRequired', message: 'The operation "log" is not allowed ...' }] }
 */
export function validateRuleSet(
  input: unknown,
): { ok: true; rules: RoutingRuleSet } | { ok: false; errors: RuleSetError[] } {
  if (!isPlainObject(input))
    return {
      ok: false,
      errors: [
        {
          path: '',
          message: `The routing rules must be an object with any of the keys ${RULE_KEYS.join(', ')}.`,
        },
      ],
    };
  const errors: RuleSetError[] = [];
  const walker = new ExpressionWalker(errors);
  for (const key of Object.keys(input)) {
    if (!(RULE_KEYS as readonly string[]).includes(key))
      errors.push({
        path: pathOfKey('', key),
        message: `"${key}" is not a routing rule; the rules may only set ${RULE_KEYS.join(', ')}.`,
      });
  }
  for (const key of RULE_KEYS) {
    const expression = input[key];
    if (expression !== undefined) walker.walk(expression, key, 0);
  }
  return errors.length === 0 ? { ok: true, rules: input as RoutingRuleSet } : { ok: false, errors };
}

/** Walks one expression tree, counting nodes across the whole rule set. */
class ExpressionWalker {
  readonly errors: RuleSetError[];
  nodes = 0;
  tooLarge = false;

  constructor(errors: RuleSetError[]) {
    this.errors = errors;
  }

  /** `depth` counts operations and literal lists, not the argument list of an operation. */
  walk(node: unknown, path: string, depth: number): void {
    if (this.tooLarge) return;
    this.nodes += 1;
    if (this.nodes > ROUTING_RULE_LIMITS.maxNodes) {
      this.tooLarge = true;
      this.errors.push({
        path,
        message: `The rules are too large: together they may have at most ${ROUTING_RULE_LIMITS.maxNodes} values and operations. Simplify them or split long lists.`,
      });
      return;
    }
    if (node === null || typeof node === 'boolean') return;
    if (typeof node === 'number') {
      if (!Number.isFinite(node)) this.errors.push({ path, message: 'Numbers in a rule must be finite.' });
      return;
    }
    if (typeof node === 'string') {
      if (node.length > ROUTING_RULE_LIMITS.maxStringLength)
        this.errors.push({
          path,
          message: `This text is ${node.length} characters long; text in a rule may have at most ${ROUTING_RULE_LIMITS.maxStringLength}.`,
        });
      return;
    }
    if (depth + 1 > ROUTING_RULE_LIMITS.maxDepth) {
      // Stop here: going on would recurse as deep as the input, which is what the limit prevents.
      this.errors.push({
        path,
        message: `The rule is nested too deeply: operations and lists may be nested at most ${ROUTING_RULE_LIMITS.maxDepth} levels.`,
      });
      return;
    }
    if (Array.isArray(node)) {
      node.forEach((item, i) => this.walk(item, `${path}[${i}]`, depth + 1));
      return;
    }
    if (!isPlainObject(node)) {
      this.errors.push({
        path,
        message:
          'A rule may only contain JSON values: text, numbers, true/false, null, lists and operations.',
      });
      return;
    }
    const keys = Object.keys(node);
    if (keys.length !== 1) {
      this.errors.push({
        path,
        message:
          keys.length === 0
            ? 'An empty object is not an operation; write an operation such as {"var": "report.critical"}.'
            : `An operation must have exactly one key, but this object has ${keys.length} (${keys.join(', ')}); split it into separate operations joined with "and" or "or".`,
      });
      return;
    }
    const op = keys[0]!;
    if (!ALLOWED.has(op)) {
      this.errors.push({
        path,
        message: `The operation "${op}" is not allowed in routing rules; use one of: ${ALLOWED_OPERATIONS.join(' ')}.`,
      });
      return;
    }
    const args = node[op];
    const argsPath = pathOfKey(path, op);
    if (op === 'var') this.checkVarPath(args, argsPath);
    if (op === 'missing' || op === 'missing_some') this.checkMissingKeys(op, args, argsPath);
    // The argument list of an operation is where its arguments live, not a level of its own.
    if (Array.isArray(args)) args.forEach((arg, i) => this.walk(arg, `${argsPath}[${i}]`, depth + 1));
    else this.walk(args, argsPath, depth + 1);
  }

  private checkVarPath(args: unknown, path: string): void {
    const [name, pathAt] = Array.isArray(args) ? [args[0], `${path}[0]`] : [args, path];
    if (Array.isArray(args) && args.length > 2) {
      this.errors.push({
        path,
        message: '"var" takes a path and at most one default value, e.g. {"var": ["patient.ageYears", 0]}.',
      });
    }
    if (name === undefined || name === null || typeof name === 'number') return;
    if (typeof name !== 'string') {
      // A computed path could spell "constructor" at run time, so only written paths are accepted.
      this.errors.push({
        path: pathAt,
        message:
          'The path of a "var" must be written out as text, e.g. {"var": "test.code"}; computed paths are not allowed.',
      });
      return;
    }
    this.checkSegments(name, pathAt);
  }

  private checkMissingKeys(op: string, args: unknown, path: string): void {
    const keys = op === 'missing_some' ? (Array.isArray(args) ? args[1] : undefined) : args;
    const keysPath = op === 'missing_some' ? `${path}[1]` : path;
    const list = Array.isArray(keys) ? keys : [keys];
    list.forEach((key, i) => {
      if (typeof key === 'string')
        this.checkSegments(key, Array.isArray(keys) ? `${keysPath}[${i}]` : keysPath);
    });
  }

  private checkSegments(name: string, path: string): void {
    const bad = name.split('.').find((segment) => FORBIDDEN_SEGMENTS.has(segment));
    if (bad !== undefined)
      this.errors.push({
        path,
        message: `The path "${name}" uses "${bad}", which is not a field of the report; use the field names listed in the rule editor.`,
      });
  }
}

/** Raised when a rule cannot be evaluated or gives a value of the wrong kind. */
export class RoutingRuleError extends Error {
  /** The decision whose rule failed; null when the rule set as a whole is unusable. */
  readonly rule: RoutingRuleKey | null;

  constructor(rule: RoutingRuleKey | null, message: string) {
    super(message);
    this.name = 'RoutingRuleError';
    this.rule = rule;
  }
}

/**
 * Decides how a report is routed: each rule present is evaluated against the facts, each absent one
 * takes its default. Results are checked strictly (`reviewRequired` must be exactly true or false,
 * not 1 or "yes"), because a rule that gives something else is a rule the admin did not mean.
 * Throws {@link RoutingRuleError} on any invalid rule set, failed evaluation or wrong result; the
 * caller turns that into a review task and must keep a critical report's outcome at least as safe.
 *
 * @example
 * evaluateRouting(
 *   { reviewRequired: { some: [{ var: 'results' }, { var: 'critical' }] }, priority: 'urgent' },
 *   facts, // one critical potassium
 *   DEFAULT_ROUTING_DECISION,
 * )
 * // { reviewRequired: true, destinations: [], notifyPatient: true, releaseDelaySeconds: 0, priority: 'urgent' }
 */
export function evaluateRouting(
  rules: RoutingRuleSet,
  facts: RoutingFacts,
  defaults: RoutingDecision,
): RoutingDecision {
  // Rules are stored, and storage can be edited behind the console's back: check them every time.
  const checked = validateRuleSet(rules);
  if (!checked.ok) {
    const first = checked.errors[0]!;
    const rule = ruleKeyOfPath(first.path);
    throw new RoutingRuleError(
      rule,
      `The routing rules are not valid: ${checked.errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join(' ')}`,
    );
  }
  // A null-prototype copy: `{"var": "constructor"}` finds nothing instead of Object's constructor,
  // and nothing a rule does can reach the caller's objects.
  const data = nullPrototypeCopy(facts);
  const valueOf = (key: RoutingRuleKey): unknown => {
    const expression = checked.rules[key];
    try {
      return jsonLogic.apply(expression as RulesLogic, data);
    } catch (error) {
      throw new RoutingRuleError(
        key,
        `The ${key} rule failed while it was evaluated: ${(error instanceof Error ? error.message : String(error)).replace(/\.$/, '')}.`,
      );
    }
  };
  const has = (key: RoutingRuleKey) => checked.rules[key] !== undefined;
  return {
    reviewRequired: has('reviewRequired')
      ? asBoolean('reviewRequired', valueOf('reviewRequired'))
      : defaults.reviewRequired,
    destinations: has('destinations') ? asDestinations(valueOf('destinations')) : [...defaults.destinations],
    notifyPatient: has('notifyPatient')
      ? asBoolean('notifyPatient', valueOf('notifyPatient'))
      : defaults.notifyPatient,
    releaseDelaySeconds: has('releaseDelaySeconds')
      ? asDelay(valueOf('releaseDelaySeconds'))
      : defaults.releaseDelaySeconds,
    priority: has('priority') ? asPriority(valueOf('priority')) : defaults.priority,
  };
}

/** A decision as recorded on a report: the rules version that made it (0: none written), and why it failed. */
export interface RoutedDecision extends RoutingDecision {
  ruleVersion: number;
  /** Set when the rules failed to evaluate and a person decides instead. */
  error?: string;
}

/**
 * The defaults a tenant's rules override: {@link DEFAULT_ROUTING_DECISION} with the tenant's own
 * release delay.
 *
 * @example
 * routingDefaults({ releaseDelaySeconds: 3600 }) // { ...DEFAULT_ROUTING_DECISION, releaseDelaySeconds: 3600 }
 */
export function routingDefaults(settings: { releaseDelaySeconds?: number }): RoutingDecision {
  return {
    ...DEFAULT_ROUTING_DECISION,
    releaseDelaySeconds: Math.max(0, settings.releaseDelaySeconds ?? 0),
  };
}

/**
 * Routes one report by a version of the tenant's rules (null when none was ever written). Rules that
 * fail to evaluate never skip a result: the report goes to review, with the error kept for the
 * reviewer. The routing activity records this decision; the console's dry run compares against it.
 *
 * @example
 * routeReport({ version: 2, rules: { priority: 'asap' } }, facts, DEFAULT_ROUTING_DECISION)
 * // { ...DEFAULT_ROUTING_DECISION, reviewRequired: true, ruleVersion: 2, error: 'The priority rule must give ...' }
 */
export function routeReport(
  rules: { version: number; rules: RoutingRuleSet } | null,
  facts: RoutingFacts,
  defaults: RoutingDecision,
): RoutedDecision {
  if (!rules) return { ...defaults, destinations: [...defaults.destinations], ruleVersion: 0 };
  try {
    return { ...evaluateRouting(rules.rules, facts, defaults), ruleVersion: rules.version };
  } catch (error) {
    if (!(error instanceof RoutingRuleError)) throw error;
    return {
      ...defaults,
      destinations: [...defaults.destinations],
      reviewRequired: true,
      ruleVersion: rules.version,
      error: error.message,
    };
  }
}

/**
 * Where two decisions differ, by decision key (destinations compared as sets), plus `error` when
 * one of them failed and the other did not. Empty when a report would be routed the same way.
 *
 * @example
 * routingDifferences(recorded, { ...recorded, reviewRequired: true }) // ['reviewRequired']
 */
export function routingDifferences(
  before: RoutingDecision & { error?: string },
  after: RoutingDecision & { error?: string },
): Array<RoutingRuleKey | 'error'> {
  const out: Array<RoutingRuleKey | 'error'> = [];
  const sameSet = (a: readonly string[], b: readonly string[]) =>
    a.length === b.length && a.every((x) => b.includes(x));
  for (const key of RULE_KEYS) {
    const same =
      key === 'destinations'
        ? sameSet(before.destinations ?? [], after.destinations ?? [])
        : before[key] === after[key];
    if (!same) out.push(key);
  }
  if (Boolean(before.error) !== Boolean(after.error)) out.push('error');
  return out;
}

const MAX_RELEASE_DELAY_SECONDS = 7 * 24 * 3600;

function asBoolean(key: 'reviewRequired' | 'notifyPatient', value: unknown): boolean {
  if (value === true || value === false) return value;
  throw new RoutingRuleError(
    key,
    `The ${key} rule must give true or false, but it gave ${describe(value)}; compare explicitly, e.g. {"==": [..., ...]}, or wrap it in {"!!": ...}.`,
  );
}

function asDestinations(value: unknown): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list))
    throw new RoutingRuleError(
      'destinations',
      `The destinations rule must give a list of destination names, but it gave ${describe(value)}; make sure every "if" ends with an else value such as [].`,
    );
  const out: string[] = [];
  for (const item of list) {
    if (typeof item !== 'string' || item.trim() === '')
      throw new RoutingRuleError(
        'destinations',
        `The destinations rule must give only destination names, but the list holds ${describe(item)}.`,
      );
    const name = item.trim();
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

function asDelay(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_RELEASE_DELAY_SECONDS)
    throw new RoutingRuleError(
      'releaseDelaySeconds',
      `The releaseDelaySeconds rule must give a number of seconds from 0 to ${MAX_RELEASE_DELAY_SECONDS} (7 days), but it gave ${describe(value)}.`,
    );
  return Math.round(value);
}

function asPriority(value: unknown): RoutingPriority {
  const priorities: readonly unknown[] = Object.values(ROUTING_PRIORITY);
  if (priorities.includes(value)) return value as RoutingPriority;
  throw new RoutingRuleError(
    'priority',
    `The priority rule must give one of ${Object.values(ROUTING_PRIORITY).join(', ')}, but it gave ${describe(value)}.`,
  );
}

/** A value as an admin would recognise it in an error message, kept short. */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'function') return 'a function';
  // JSON would write NaN as null, which would send the admin looking for the wrong mistake.
  if (typeof value === 'number') return String(value);
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function nullPrototypeCopy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(nullPrototypeCopy);
  if (value !== null && typeof value === 'object') {
    const copy: Record<string, unknown> = Object.create(null);
    for (const [key, item] of Object.entries(value)) copy[key] = nullPrototypeCopy(item);
    return copy;
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** `reviewRequired.and[1]`, or `reviewRequired.and[1][">"]` for an operation that is not a name. */
function pathOfKey(path: string, key: string): string {
  if (/^[A-Za-z_$][\w$]*$/.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}

function ruleKeyOfPath(path: string): RoutingRuleKey | null {
  const head = /^[A-Za-z_$][\w$]*/.exec(path)?.[0];
  return (RULE_KEYS as readonly string[]).includes(head ?? '') ? (head as RoutingRuleKey) : null;
}
