/**
 * The canonical model: what every inbound format (HL7 v2, FHIR, CSV, JSON, PDF) is mapped to, and
 * what every outbound format is built from. Field names follow FHIR R4 where one exists.
 */

/** A code from a code system, e.g. LOINC 2823-3 "Potassium". */
export interface Coding {
  /** Canonical URI when known (`http://loinc.org`), else the sender's coding-system name. */
  system: string | null;
  code: string;
  display: string | null;
}

export interface Identifier {
  /** Assigning authority (HL7 CX-4) or FHIR Identifier.system; empty string when the sender gave none. */
  system: string;
  value: string;
  /** Identifier type code, e.g. MR (medical record number). */
  type: string | null;
}

export interface PatientDemographics {
  identifiers: Identifier[];
  familyName: string | null;
  givenNames: string[];
  /** YYYY-MM-DD, or a partial date (YYYY, YYYY-MM) when that is all the sender gave. */
  birthDate: string | null;
  /** FHIR administrative gender: male | female | other | unknown. */
  sex: string | null;
  /** Our own Patient id, when the sender knows it (a FHIR reference to us, a JSON `patientId`). */
  internalId?: string | null;
  /** The sender's own patient id (seed 003 `externalPatientID`). */
  externalId?: string | null;
  /** Without one the patient is not notifiable ("no e-mail, no account"). */
  email?: string | null;
  phone?: string | null;
}

export interface Practitioner {
  id: string | null;
  familyName: string | null;
  givenNames: string[];
}

export interface ReferenceRange {
  low: number | null;
  high: number | null;
  /** The range as the sender wrote it, e.g. "3.5-5.1" or "<200". */
  text: string | null;
}

export const OBSERVATION_VALUE_TYPE = {
  quantity: 'quantity',
  text: 'text',
  coded: 'coded',
} as const;
export type ObservationValueType = (typeof OBSERVATION_VALUE_TYPE)[keyof typeof OBSERVATION_VALUE_TYPE];

/** FHIR ObservationStatus / DiagnosticReportStatus values used by LabRelay. */
export const RESULT_STATUS = {
  registered: 'registered',
  preliminary: 'preliminary',
  final: 'final',
  amended: 'amended',
  corrected: 'corrected',
  cancelled: 'cancelled',
  enteredInError: 'entered-in-error',
} as const;
export type ResultStatus = (typeof RESULT_STATUS)[keyof typeof RESULT_STATUS];

export interface ObservationResult {
  /** Position in the report (HL7 OBX-1 or order of appearance), unique within the report. */
  sequence: number;
  code: Coding;
  valueType: ObservationValueType;
  /** For quantities; null when the value is text or coded. */
  numericValue: number | null;
  /** `<`, `<=`, `>`, `>=` when the sender gave a bounded value such as `<0.01`. */
  comparator: string | null;
  /** The value as text for text/coded values (and the original text of a quantity). */
  textValue: string | null;
  unit: string | null;
  referenceRange: ReferenceRange | null;
  /** Abnormal flags as the sender gave them (HL7 table 0078 / FHIR interpretation codes). */
  sourceFlags: string[];
  status: ResultStatus;
  effectiveAt: string | null;
  /** Comments on this result (HL7 NTE after the OBX, FHIR Observation.note). */
  notes?: string[];
}

/**
 * A document carried with a report or sent on its own: a PDF report (HL7 OBX of type ED, FHIR
 * DiagnosticReport.presentedForm, an upload). Stored as sent and linked to its report.
 */
export interface ReportDocument {
  /** MIME type, e.g. `application/pdf`. */
  contentType: string;
  /** The document's bytes, base64-encoded. */
  dataBase64: string;
  title: string | null;
}

/** One diagnostic report: an order (HL7 OBR group) and its results. */
export interface LabReport {
  placerOrderNumber: string | null;
  fillerOrderNumber: string | null;
  code: Coding;
  status: ResultStatus;
  orderingProvider: Practitioner | null;
  effectiveAt: string | null;
  issuedAt: string | null;
  observations: ObservationResult[];
  /** Namespace of the placer order number (HL7 EI-2 of OBR-2, FHIR Identifier.system); links results to their order. */
  placerAuthority?: string | null;
  /** Comments on the report (HL7 NTE after the OBR, FHIR DiagnosticReport.conclusion). */
  notes?: string[];
  /** Documents of the report (HL7 OBX ED, FHIR presentedForm). */
  documents?: ReportDocument[];
  /** The client (ordering organisation) the report belongs to, for seed 003's access scope. */
  clientId?: string | null;
  /** The ordering location (HL7 PV1-3, FHIR ServiceRequest.locationCode), for access scope and routing. */
  locationId?: string | null;
  /** A clinician's interpretation entered with the results (console manual entry), shown to the patient. */
  interpretation?: string | null;
}

/** A result message: one patient, one or more reports. */
export interface ResultMessage {
  patient: PatientDemographics;
  reports: LabReport[];
  /** Segments LabRelay does not read (HL7 Z-segments), kept as sent. */
  extraSegments?: string[];
}

/** What an order message asks for one order: place it, change it, or cancel it. */
export const ORDER_ACTION = { new: 'new', update: 'update', cancel: 'cancel' } as const;
export type OrderAction = (typeof ORDER_ACTION)[keyof typeof ORDER_ACTION];

/**
 * A lab order as placed by a hospital or EHR (HL7 ORM^O01 / OML^O21 ORC + OBR, FHIR ServiceRequest,
 * a CSV or JSON row with an order number and no value).
 */
export interface LabOrder {
  placerOrderNumber: string | null;
  fillerOrderNumber: string | null;
  /** Namespace of the placer order number (HL7 EI-2, FHIR Identifier.system). */
  placerAuthority: string | null;
  /** The ordered test or panel (OBR-4, ServiceRequest.code). */
  code: Coding;
  action: OrderAction;
  /** FHIR request priority: routine | urgent | asap | stat. */
  priority: string | null;
  orderingProvider: Practitioner | null;
  /** When the order was placed (ORC-9, ServiceRequest.authoredOn). */
  orderedAt: string | null;
  specimen: { id: string | null; type: Coding | null; collectedAt: string | null } | null;
  notes?: string[];
  clientId?: string | null;
  locationId?: string | null;
}

/** An order message: one patient, one or more orders. */
export interface OrderMessage {
  patient: PatientDemographics;
  orders: LabOrder[];
}

/** The interpretation codes LabRelay assigns (HL7 v3 ObservationInterpretation). */
export const INTERPRETATION = {
  normal: 'N',
  low: 'L',
  high: 'H',
  criticalLow: 'LL',
  criticalHigh: 'HH',
  abnormal: 'A',
  criticalAbnormal: 'AA',
} as const;
export type Interpretation = (typeof INTERPRETATION)[keyof typeof INTERPRETATION];
