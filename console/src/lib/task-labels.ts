/** How the review queue names task kinds and priorities, in the lab's words. */
export const TASK_KIND_LABEL: Record<string, string> = {
  review_result: 'Review result',
  match_patient: 'Match patient',
  critical_unacknowledged: 'Critical not acknowledged',
  contact_patient: 'Contact patient',
  order_overdue: 'Order overdue',
  delivery_failed: 'Delivery failed',
};

export const TASK_PRIORITY_LABEL: Record<number, string> = { 0: 'routine', 1: 'urgent', 2: 'stat' };

/** How long a task has waited, as a person reads it: "35 min", "4 h 10 min", "2 d 3 h". */
export function waited(minutes: number): string {
  const m = Math.max(0, Math.floor(minutes));
  if (m < 60) return `${m} min`;
  if (m < 24 * 60) return `${Math.floor(m / 60)} h ${m % 60} min`;
  return `${Math.floor(m / (24 * 60))} d ${Math.floor((m % (24 * 60)) / 60)} h`;
}

/** What the queue says after a task is completed from its page. */
export const DONE_MESSAGE: Record<string, string> = {
  approve: 'Approved: the report goes on to release.',
  correct: 'Corrected and approved: the corrected values are flagged again and the report is released.',
  reject: 'Rejected: the report will not be released.',
  match: 'Patient matched: the report goes on under that patient.',
  new: 'Filed under a new patient: the report goes on.',
  acknowledge: 'Acknowledged.',
};
