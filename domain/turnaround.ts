/** Turnaround before an order without its final results is overdue, when the tenant sets none: 24 h. */
export const DEFAULT_TURNAROUND_MINUTES = 24 * 60;

/**
 * The turnaround of an order for a test, in minutes: the tenant's time for that test, else its
 * default, else 24 hours.
 *
 * @example turnaroundMinutesFor({ default: 120, byTest: { '2823-3': 60 } }, '2823-3') // 60
 */
export function turnaroundMinutesFor(
  turnaround: { default: number; byTest?: Record<string, number> } | undefined,
  testCode: string | null | undefined,
): number {
  const byTest = testCode && turnaround?.byTest && Object.hasOwn(turnaround.byTest, testCode);
  return (
    (byTest ? turnaround!.byTest![testCode!] : undefined) ?? turnaround?.default ?? DEFAULT_TURNAROUND_MINUTES
  );
}
