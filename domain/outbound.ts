/**
 * Outbound connections: how a tenant's results reach the hospital, and how LabRelay authenticates
 * to it. Pure types and rules; the clients live in adapters/, the delivery steps in activities/.
 */

/** What an HL7 v2 destination's ACK code means for the delivery (per connection). */
export const ACK_OUTCOME = { delivered: 'delivered', retry: 'retry', deadLetter: 'dead_letter' } as const;
export type AckOutcome = (typeof ACK_OUTCOME)[keyof typeof ACK_OUTCOME];

/** Per-connection options kept in `connections.settings`. Every field has a default. */
export interface ConnectionSettings {
  /** HL7 over MLLP: what MSA-1 `AE` means (default retry) and `AR` (default dead letter). */
  onApplicationError?: AckOutcome;
  onApplicationReject?: AckOutcome;
  /** Attempts before a delivery is dead-lettered (default 8). */
  maxAttempts?: number;
  /** Seconds one attempt may wait for the destination's answer (HTTP or ACK; default 30). */
  timeoutSeconds?: number;
  /** HL7 MSH-3/MSH-4 we send as, MSH-5/MSH-6 we send to. */
  sendingApplication?: string;
  sendingFacility?: string;
  receivingApplication?: string;
  receivingFacility?: string;
  /** Pull direction: how often to poll (seconds, default 60) and the FHIR search parameters added. */
  pollIntervalSeconds?: number;
  pullQuery?: string;
}

/**
 * How LabRelay authenticates to a hospital endpoint. Kept sealed under LABRELAY_MASTER_KEY in
 * `connections.auth_encrypted`; never logged, never returned by the API.
 * - `client_credentials`: OAuth 2.0 client credentials, secret sent by HTTP Basic or in the form.
 * - `smart_backend`: SMART Backend Services, a client assertion (private_key_jwt) signed RS384/ES384.
 * - `smart_launch`: the client registered for the SMART EHR launch of our read-only results app.
 */
export type OutboundAuth =
  | { type: 'none' }
  | { type: 'bearer'; token: string }
  | { type: 'basic'; username: string; password: string }
  | {
      type: 'client_credentials';
      tokenUrl: string;
      clientId: string;
      clientSecret: string;
      method: 'client_secret_basic' | 'client_secret_post';
      scope?: string;
    }
  | {
      type: 'smart_backend';
      tokenUrl: string;
      clientId: string;
      /** Private JWK (with `kid` and `alg` RS384 or ES384). */
      privateJwk: Record<string, unknown>;
      scope?: string;
    }
  | {
      type: 'smart_launch';
      clientId: string;
      clientSecret?: string;
      scope?: string;
    };

/** What LabRelay's read-only results app asks an EHR for at a SMART launch, unless the connection says otherwise. */
export const SMART_LAUNCH_SCOPE =
  'launch openid fhirUser patient/Patient.rs patient/Observation.rs patient/DiagnosticReport.rs';
