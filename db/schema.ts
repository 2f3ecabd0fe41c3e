import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';
import type { Coding, PatientDemographics, Practitioner, ReferenceRange } from '../domain/model.ts';

/** Timestamps are written as Date (or left to the default) and read back as Date. */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
/** jsonb columns: pg and PGlite both hand back parsed JSON. */
type Json<T> = ColumnType<T, string, string>;

export interface TenantSettings {
  /** Seconds a result waits after flagging before it is released (seed 000 "release delay"). */
  releaseDelaySeconds?: number;
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
  revoked_at: NullableTimestamp;
}

export interface SigningSecretRecord {
  salt: string;
  hash: string;
  createdAt: string;
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
  created_at: Timestamp;
  updated_at: Timestamp;
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
}

export type Tenant = Selectable<TenantsTable>;
export type Credential = Selectable<CredentialsTable>;
export type Connection = Selectable<ConnectionsTable>;
export type Message = Selectable<MessagesTable>;
export type NewMessage = Insertable<MessagesTable>;
export type Report = Selectable<ReportsTable>;
export type Observation = Selectable<ObservationsTable>;
export type Patient = Selectable<PatientsTable>;
