/**
 * Critical-result escalation (seed 000 "Critical Results"; CLSI GP47): who is told, in what order,
 * how long each has to acknowledge, and how often the patient is tried afterwards.
 */

/** Who fills an escalation step: the report's ordering provider, or the tenant's providers holding the role. */
export const ESCALATION_ROLE = {
  ordering: 'ordering',
  covering: 'covering',
  onCall: 'on_call',
  labDirector: 'lab_director',
} as const;
export type EscalationRole = (typeof ESCALATION_ROLE)[keyof typeof ESCALATION_ROLE];

export interface EscalationStep {
  role: EscalationRole;
  /** Minutes the step's recipient has to acknowledge before the next step is tried. */
  timeoutMinutes: number;
}

export interface EscalationPolicy {
  steps: EscalationStep[];
  /** How many patient contact attempts are recorded before the follow-up closes unreached. */
  patientContactAttempts: number;
  /** Hours an acknowledgement link stays valid. */
  ackLinkHours: number;
}

/**
 * The default chain: ordering provider, then covering/on-call, then the lab director, 15 minutes
 * each, so that with the first notification at once the whole loop fits in GP47's hour.
 */
export const DEFAULT_ESCALATION_POLICY: EscalationPolicy = {
  steps: [
    { role: ESCALATION_ROLE.ordering, timeoutMinutes: 15 },
    { role: ESCALATION_ROLE.covering, timeoutMinutes: 15 },
    { role: ESCALATION_ROLE.onCall, timeoutMinutes: 15 },
    { role: ESCALATION_ROLE.labDirector, timeoutMinutes: 15 },
  ],
  patientContactAttempts: 3,
  ackLinkHours: 24,
};

/** Where a critical result is in its loop. */
export const CRITICAL_STATUS = {
  notifying: 'notifying',
  /** Nobody in the chain acknowledged: an open task on the critical board waits for a person. */
  unacknowledged: 'unacknowledged',
  acknowledged: 'acknowledged',
  closed: 'closed',
} as const;
export type CriticalStatus = (typeof CRITICAL_STATUS)[keyof typeof CRITICAL_STATUS];

/** Outcomes of one patient contact attempt; `reached` ends the follow-up. */
export const PATIENT_CONTACT_OUTCOME = {
  reached: 'reached',
  noAnswer: 'no_answer',
  leftMessage: 'left_message',
  wrongNumber: 'wrong_number',
} as const;
export type PatientContactOutcome = (typeof PATIENT_CONTACT_OUTCOME)[keyof typeof PATIENT_CONTACT_OUTCOME];
