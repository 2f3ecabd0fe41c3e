import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';
import type { CriticalLimit } from '../domain/critical-values.ts';
import type { DeltaThreshold } from '../domain/delta-check.ts';
import type { EscalationPolicy } from '../domain/escalation.ts';
import type { Coding, PatientDemographics, Practitioner, ReferenceRange } from '../domain/model.ts';
import type { RoutingDecision, RoutingRuleSet } from '../domain/routing-rules.ts';

/** Timestamps are written as Date (or left to the default) and read back as Date. */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
/** jsonb columns: pg and PGlite both hand back parsed JSON. */
type Json<T> = ColumnType<T, string, string>;

export interface TenantSettings {
  /** Seconds a result waits after flagging before it is released (seed 000 "release delay"). */
  releaseDelaySeconds?: number;
  /** The tenant's own critical table; the default table (DESIGN.md) when absent. */
  criticalTable?: CriticalLimit[];
  /** Who is told of a critical result, in what order, and how long each has to acknowledge. */
  escalation?: EscalationPolicy;
  /** Delta-check limits per analyte; the defaults when absent. */
  deltaThresholds?: DeltaThreshold[];
  /** Reference ranges used when a result arrives without one (by LOINC code, in `unit`). */
  referenceRanges?: { code: string; low: number | null; high: number | null; unit: string }[];
  /** Turnaround before an order without its final results is overdue, in minutes. */
  turnaroundMinutes?: { default: number; byTest?: Record<string, number> };
  /** Minutes an open task waits before it rises one priority level. */
  taskAgingMinutes?: number;
}

export interface TenantsTable {
  id: string;
  slug: string;
  name: string;
  settings: Json<TenantSettings>;
  created_at: Timestamp;
}

export interface CredentialsTable {
  id: string;
  tenant_id: string;
  name: string;
  scopes: Json<string[]>;
  /** First characters of the key, kept to tell keys apart in lists; never enough to use it. */
  key_prefix: string;
  /** SHA-256 of the whole API key: the only form the key is kept in. */
  key_hash: string;
  /** Per-secret salts and hashes; the secrets themselves are derived from the master key. */
  signing_salts: Json<SigningSecretRecord[]>;
  created_at: Timestamp;
  /** When the key stops working: now when revoked, later when rotated with overlap. */
  revoked_at: NullableTimestamp;
  /** Seed 003 access scope: the clients (ordering organisations) this key may read and write; null = all. */
  client_ids: Json<string[]> | null;
  /** Likewise the ordering locations; null = all. */
  location_ids: Json<string[]> | null;
  /** Requests per minute this key may make; null = the process default. */
  rate_limit_per_minute: number | null;
  /** Source addresses (IP or CIDR) this key may be used from; null = anywhere. */
  allow_ips: Json<string[]> | null;
}

export interface SigningSecretRecord {
  salt: string;
  hash: string;
  createdAt: string;
  /** Set on the older secret when a new one is issued: both verify until then (rotation overlap). */
  expiresAt?: string;
}

export interface ConnectionsTable {
  id: string;
  tenant_id: string;
  name: string;
  direction: string;
  format: string;
  environment: string;
  endpoint: Json<Record<string, unknown>> | null;
  mllp_sending_facility: string | null;
  mllp_receiving_facility: string | null;
  mllp_allow_ips: Json<string[]> | null;
  /** Outbound authentication settings, AES-256-GCM under the master key; never returned. */
  auth_encrypted: string | null;
  created_at: Timestamp;
  disabled_at: NullableTimestamp;
  /** Per-connection options (see domain/outbound.ts `ConnectionSettings`). */
  settings: ColumnType<ConnectionSettingsJson, string | undefined, string>;
  /** A webhook's signing secret, AES-256-GCM under the master key; shown once at creation. */
  secret_encrypted: string | null;
  /** Pull direction: the `_lastUpdated` of the newest ServiceRequest already taken. */
  pull_cursor: string | null;
  /** Pull direction: the ServiceRequest ids already taken whose `_lastUpdated` is the cursor's. */
  pull_cursor_taken: ColumnType<string[], string | undefined, string>;
  /** Pull direction: failed polls in a row (the next poll waits longer after each). */
  pull_failures: Generated<number>;
  /** Pull direction: the connection is its poller's until then (null: nobody polls it). */
  pull_lease_until: NullableTimestamp;
  last_polled_at: NullableTimestamp;
}

export type ConnectionSettingsJson = Record<string, unknown>;

/** One report's delivery to one outbound connection, from release to delivered or dead letter. */
export interface DeliveriesTable {
  id: string;
  tenant_id: string;
  report_id: string;
  connection_id: string;
  environment: string;
  /** pending | delivering | delivered | dead_letter */
  status: string;
  critical: Generated<boolean>;
  /** How many times the delivery was sent from the start (re-sends after a dead letter count). */
  sends: Generated<number>;
  attempts: Generated<number>;
  workflow_id: string | null;
  /** What was sent last (FHIR Bundle JSON, HL7 message, webhook body). */
  payload: string | null;
  /** What the destination answered last (HTTP status and body, HL7 ACK). */
  response: string | null;
  /** The destination's id for what we sent (FHIR DiagnosticReport location, ACK control id). */
  remote_reference: string | null;
  last_error: string | null;
  dead_letter_reason: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  delivered_at: NullableTimestamp;
  dead_lettered_at: NullableTimestamp;
}

/** A SMART EHR launch between the redirect to the EHR's authorize endpoint and the callback. */
export interface SmartLaunchesTable {
  state: string;
  tenant_id: string;
  connection_id: string;
  issuer: string;
  launch: string | null;
  code_verifier: string;
  redirect_uri: string;
  token_endpoint: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
}

export interface MessagesTable {
  id: string;
  tenant_id: string;
  credential_id: string | null;
  connection_id: string | null;
  transport: string;
  format: string;
  message_type: string;
  control_id: string | null;
  sender: string | null;
  idempotency_key: string | null;
  content_hash: string;
  raw: string;
  status: string;
  status_detail: string | null;
  /** The exact answer given to the sender, repeated byte for byte to a retry. */
  response: string;
  response_status: number;
  received_at: Timestamp;
  updated_at: Timestamp;
  /** A large upload's progress (rows read, accepted, rejected), updated as each batch commits. */
  progress: Json<MessageProgress> | null;
}

export interface MessageProgress {
  rowsRead: number;
  accepted: number;
  rejected: number;
  /** The first rejected rows with their reasons (at most 1,000 kept). */
  rejections: { row: number; message: string }[];
  done: boolean;
}

/** The raw bytes of a large upload, in order, when they are too large for one row. */
export interface MessagePartsTable {
  message_id: string;
  part: number;
  content: string;
}

export interface DocumentsTable {
  id: string;
  tenant_id: string;
  message_id: string;
  report_id: string | null;
  content_type: string;
  filename: string | null;
  title: string | null;
  size: number;
  sha256: string;
  data: Uint8Array;
  /** extracted | partial | unreadable | not_extracted */
  extraction_status: string;
  extracted_text: string | null;
  extraction: Json<Record<string, unknown>> | null;
  created_at: Timestamp;
}

export interface OrderInboxTable {
  order_id: string;
  tenant_id: string;
  workflow_id: string;
  order_key: string;
  message_id: string;
  created_at: Timestamp;
  started_at: NullableTimestamp;
  next_attempt_at: ColumnType<Date, Date | string | undefined, Date | string>;
  attempts: Generated<number>;
  last_error: string | null;
}

export interface RejectedMessagesTable {
  id: string;
  tenant_id: string | null;
  transport: string;
  format: string;
  remote_address: string | null;
  reason: string;
  raw: string;
  received_at: Timestamp;
}

export interface PatientsTable {
  id: string;
  tenant_id: string;
  family_name: string | null;
  given_names: Json<string[]>;
  birth_date: string | null;
  sex: string | null;
  /** The sender's own patient id (seed 003 `externalPatientID`), unique per tenant. */
  external_id: string | null;
  /** No e-mail address: the patient is not notifiable ("no e-mail, no account"). */
  email: string | null;
  phone: string | null;
  /** Normalised family|given|birth date, for demographic matching; null when incomplete. */
  demographic_key: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface PatientIdentifiersTable {
  tenant_id: string;
  patient_id: string;
  system: string;
  value: string;
  type: string | null;
}

export interface ReportsTable {
  id: string;
  tenant_id: string;
  message_id: string;
  patient_id: string | null;
  /** The patient as the sender described them, kept for reconciliation and review. */
  patient: Json<PatientDemographics>;
  order_key: string;
  placer_order_number: string | null;
  filler_order_number: string | null;
  code: Json<Coding>;
  status: string;
  ordering_provider: Json<Practitioner> | null;
  effective_at: NullableTimestamp;
  issued_at: NullableTimestamp;
  workflow_id: string;
  stage: string;
  /** The routing decision and the rule version that made it. */
  routing: Json<RecordedRoutingDecision> | null;
  /** Set when this report repeats one already received; it is not processed again. */
  duplicate_of: string | null;
  /** The earlier report of the same order and test this one corrects. */
  replaces: string | null;
  /** A reviewer's or provider's interpretation, shown to the patient. */
  interpretation: string | null;
  reviewed_at: NullableTimestamp;
  reviewed_by: string | null;
  notes: Json<string[]> | null;
  /** Segments LabRelay does not read (HL7 Z-segments), as sent. */
  extra_segments: Json<string[]> | null;
  client_id: string | null;
  location_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface RecordedRoutingDecision extends RoutingDecision {
  /** Version of the tenant's rules that decided; 0 for the built-in defaults. */
  ruleVersion: number;
  /** Set when the rules failed to evaluate and a person decides instead. */
  error?: string;
}

export interface ObservationsTable {
  id: string;
  tenant_id: string;
  report_id: string;
  sequence: number;
  code: Json<Coding>;
  value_type: string;
  value_numeric: number | null;
  value_comparator: string | null;
  value_text: string | null;
  unit: string | null;
  reference_range: Json<ReferenceRange> | null;
  source_flags: Json<string[]>;
  status: string;
  effective_at: NullableTimestamp;
  interpretation: string | null;
  critical: boolean | null;
  flag_reasons: Json<string[]> | null;
  flagged_at: NullableTimestamp;
  /** Trend against the patient's previous value of the analyte (delta check). */
  delta: Json<ObservationDelta> | null;
  /** The value as received, when a reviewer corrected it. */
  corrected_from: Json<{
    numeric: number | null;
    text: string | null;
    unit: string | null;
    by: string;
    at: string;
  }> | null;
  notes: Json<string[]> | null;
}

export interface ObservationDelta {
  previousObservationId: string;
  previousValue: number;
  previousAt: string;
  trend: 'up' | 'down' | 'same' | null;
  delta: number | null;
  percent: number | null;
  exceeded: boolean;
  reason: string | null;
}

export interface OrdersTable {
  id: string;
  tenant_id: string;
  order_key: string;
  workflow_id: string;
  status: string;
  patient_id: string | null;
  code: Json<Coding> | null;
  ordered_at: NullableTimestamp;
  due_at: NullableTimestamp;
  overdue_at: NullableTimestamp;
  closed_at: NullableTimestamp;
  /** Every status the order passed through, with when and why. */
  history: Json<Array<{ status: string; at: string; detail?: string; messageId?: string }>>;
  message_id: string | null;
  placer_order_number: string | null;
  filler_order_number: string | null;
  priority: string | null;
  ordering_provider: Json<Practitioner> | null;
  /** The patient as the placer described them. */
  patient: Json<PatientDemographics> | null;
  specimen: Json<{ id: string | null; type: Coding | null; collectedAt: string | null }> | null;
  notes: Json<string[]> | null;
  client_id: string | null;
  location_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface TasksTable {
  id: string;
  tenant_id: string;
  dedupe_key: string;
  kind: string;
  status: string;
  /** 0 routine, 1 urgent, 2 stat; an open task rises as it ages. */
  priority: number;
  title: string;
  reason: string;
  report_id: string | null;
  critical_result_id: string | null;
  order_key: string | null;
  workflow_id: string;
  payload: Json<Record<string, unknown>>;
  assignee: string | null;
  decision: Json<Record<string, unknown>> | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  claimed_at: NullableTimestamp;
  completed_at: NullableTimestamp;
  completed_by: string | null;
}

export interface RoutingRulesTable {
  tenant_id: string;
  version: number;
  rules: Json<RoutingRuleSet>;
  note: string | null;
  created_by: string;
  created_at: Timestamp;
}

export interface ProvidersTable {
  id: string;
  tenant_id: string;
  external_id: string | null;
  name: string;
  email: string | null;
  /** Escalation roles this provider fills: covering, on_call, lab_director. */
  roles: Json<string[]>;
  created_at: Timestamp;
  disabled_at: NullableTimestamp;
}

export interface CriticalResultsTable {
  id: string;
  tenant_id: string;
  report_id: string;
  observation_id: string;
  patient_id: string | null;
  workflow_id: string;
  status: string;
  step: number;
  /** The six documented facts (CLSI GP47): finding, time identified, communicator, recipient, time received, method. */
  finding: string;
  identified_at: Timestamp;
  communicator: string | null;
  recipient: string | null;
  received_at: NullableTimestamp;
  method: string | null;
  patient_contact: Json<{ outcome: string; attempts: number; at: string }> | null;
  closed_at: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface CriticalAttemptsTable {
  id: string;
  tenant_id: string;
  critical_result_id: string;
  /** provider or patient. */
  target: string;
  step: number;
  role: string | null;
  recipient: string | null;
  channel: string;
  outcome: string;
  detail: string | null;
  actor: string;
  at: Timestamp;
}

export interface AckTokensTable {
  id: string;
  tenant_id: string;
  critical_result_id: string;
  step: number;
  recipient: string;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
  created_at: Timestamp;
}

export interface MailOutboxTable {
  id: string;
  tenant_id: string | null;
  dedupe_key: string;
  kind: string;
  to: string;
  subject: string;
  text: string;
  created_at: Timestamp;
  sent_at: NullableTimestamp;
  /** smtp, or captured when no SMTP_URL is set (the embedded default shows it in the console). */
  transport: string | null;
  error: string | null;
}

export interface PatientNotificationsTable {
  id: string;
  tenant_id: string;
  patient_id: string | null;
  report_id: string;
  kind: string;
  /** sent, or not_notifiable (no e-mail address), or skipped (the routing decision said no). */
  status: string;
  reason: string | null;
  mail_id: string | null;
  at: Timestamp;
}

export interface InboxTable {
  report_id: string;
  tenant_id: string;
  workflow_id: string;
  created_at: Timestamp;
  started_at: NullableTimestamp;
  next_attempt_at: ColumnType<Date, Date | string | undefined, Date | string>;
  attempts: Generated<number>;
  last_error: string | null;
}

export interface AuditEventsTable {
  id: Generated<string>;
  tenant_id: string;
  sequence: ColumnType<string, string | number, string | number>;
  at: Timestamp;
  actor: string;
  action: string;
  subject: string;
  details: Json<Record<string, unknown>>;
  prev_hash: string;
  hash: string;
}

export interface UsersTable {
  id: string;
  /** Lower-case; one account per address. */
  email: string;
  name: string;
  /** argon2id, in its PHC string form. */
  password_hash: string;
  platform_admin: Generated<boolean>;
  created_at: Timestamp;
  password_changed_at: Timestamp;
  /** The password was set by someone else (first password, reset): the person is asked to change it. */
  password_given: Generated<boolean>;
  disabled_at: NullableTimestamp;
}

export interface UserRolesTable {
  user_id: string;
  tenant_id: string;
  /** admin, reviewer or provider (domain/console-access.ts). */
  role: string;
  /** For a provider: the tenant's provider this person is (their critical results and acknowledgements). */
  provider_id: string | null;
  created_at: Timestamp;
}

export interface ConsoleSessionsTable {
  /** SHA-256 of the cookie's token: a database read never yields a usable session. */
  token_hash: string;
  user_id: string;
  /** Every form of the session carries it; a form without it is refused. */
  csrf_token: string;
  created_at: Timestamp;
  last_seen_at: Timestamp;
  expires_at: Timestamp;
}

export interface Database {
  tenants: TenantsTable;
  credentials: CredentialsTable;
  connections: ConnectionsTable;
  messages: MessagesTable;
  rejected_messages: RejectedMessagesTable;
  patients: PatientsTable;
  patient_identifiers: PatientIdentifiersTable;
  reports: ReportsTable;
  observations: ObservationsTable;
  inbox: InboxTable;
  audit_events: AuditEventsTable;
  orders: OrdersTable;
  tasks: TasksTable;
  routing_rules: RoutingRulesTable;
  providers: ProvidersTable;
  critical_results: CriticalResultsTable;
  critical_attempts: CriticalAttemptsTable;
  ack_tokens: AckTokensTable;
  mail_outbox: MailOutboxTable;
  patient_notifications: PatientNotificationsTable;
  message_parts: MessagePartsTable;
  documents: DocumentsTable;
  order_inbox: OrderInboxTable;
  deliveries: DeliveriesTable;
  smart_launches: SmartLaunchesTable;
  users: UsersTable;
  user_roles: UserRolesTable;
  console_sessions: ConsoleSessionsTable;
}

export type Tenant = Selectable<TenantsTable>;
export type Credential = Selectable<CredentialsTable>;
export type Connection = Selectable<ConnectionsTable>;
export type Message = Selectable<MessagesTable>;
export type NewMessage = Insertable<MessagesTable>;
export type Report = Selectable<ReportsTable>;
export type Observation = Selectable<ObservationsTable>;
export type Patient = Selectable<PatientsTable>;
export type Order = Selectable<OrdersTable>;
export type Task = Selectable<TasksTable>;
export type Provider = Selectable<ProvidersTable>;
export type User = Selectable<UsersTable>;
export type UserRole = Selectable<UserRolesTable>;
export type CriticalResult = Selectable<CriticalResultsTable>;
export type CriticalAttempt = Selectable<CriticalAttemptsTable>;
export type StoredDocument = Selectable<DocumentsTable>;
export type Delivery = Selectable<DeliveriesTable>;
export type SmartLaunch = Selectable<SmartLaunchesTable>;
