/** How the critical board names a result's status, an attempt's channel and its outcome. */
export const STATUS: Record<string, string> = {
  notifying: 'notifying',
  unacknowledged: 'not acknowledged',
  acknowledged: 'acknowledged — patient contact',
  closed: 'closed',
};

export const CHANNEL: Record<string, string> = {
  email: 'e-mail',
  phone: 'phone',
  in_person: 'in person',
  secure_message: 'secure message',
  sms: 'SMS',
  letter: 'letter',
  portal: 'portal',
};

export const OUTCOME: Record<string, string> = {
  sent: 'sent',
  no_recipient: 'nobody to notify',
  failed: 'could not be sent',
  not_acknowledged: 'not acknowledged in time',
  acknowledged: 'acknowledged',
  read_back_refused: 'read-back did not match',
  reached: 'reached',
  no_answer: 'no answer',
  left_message: 'left a message',
  wrong_number: 'wrong number',
};

/** Who fills an escalation step, in the lab's words. */
export const ROLE_LABEL: Record<string, string> = {
  ordering: 'ordering provider',
  covering: 'covering provider',
  on_call: 'on-call provider',
  lab_director: 'lab director',
};
