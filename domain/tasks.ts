/**
 * Human tasks: where a workflow waits for a person (seed 000 "Reviewing Results", seed 004
 * "Patient reconciliation"). The workflow opens the task and waits; the task endpoints complete it.
 */

export const TASK_KIND = {
  /** A result a person must look at before release (rule, unit not convertible, rule error). */
  reviewResult: 'review_result',
  /** The patient could not be matched with certainty; the reviewer picks a candidate or a new patient. */
  matchPatient: 'match_patient',
  /** No one in the escalation chain acknowledged a critical result. */
  criticalUnacknowledged: 'critical_unacknowledged',
  /** The patient must be contacted about a critical result; attempts are recorded. */
  contactPatient: 'contact_patient',
  /** An order's results have not arrived within its turnaround time. */
  orderOverdue: 'order_overdue',
  /** A critical result could not be delivered to its destination: a person makes sure it arrives. */
  deliveryFailed: 'delivery_failed',
} as const;
export type TaskKind = (typeof TASK_KIND)[keyof typeof TASK_KIND];

export const TASK_STATUS = {
  open: 'open',
  claimed: 'claimed',
  completed: 'completed',
  cancelled: 'cancelled',
} as const;
export type TaskStatus = (typeof TASK_STATUS)[keyof typeof TASK_STATUS];

/** Review decisions; `correct` releases with corrected values, `reject` never releases. */
export const REVIEW_DECISION = {
  approve: 'approve',
  correct: 'correct',
  reject: 'reject',
} as const;
export type ReviewDecision = (typeof REVIEW_DECISION)[keyof typeof REVIEW_DECISION];

export const TASK_PRIORITY = { routine: 0, urgent: 1, stat: 2 } as const;
export const MAX_TASK_PRIORITY = TASK_PRIORITY.stat;

/** The default minutes a task waits before it rises one level. */
export const DEFAULT_TASK_AGING_MINUTES = 240;

/**
 * The priority a task should have after waiting `ageMinutes`: one level up per aging period,
 * never above stat.
 *
 * @example agedPriority(0, 500, 240) // 2
 */
export function agedPriority(initial: number, ageMinutes: number, agingMinutes: number): number {
  const steps = agingMinutes > 0 ? Math.floor(ageMinutes / agingMinutes) : 0;
  return Math.min(MAX_TASK_PRIORITY, initial + Math.max(0, steps));
}
