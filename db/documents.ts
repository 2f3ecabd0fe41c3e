import { createHash, randomUUID } from 'node:crypto';
import type { StoredDocument } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/** How far the text of a stored document could be read. */
export const EXTRACTION_STATUS = {
  extracted: 'extracted',
  partial: 'partial',
  /** Kept as an attachment and flagged for manual processing (seed 004): never dropped. */
  unreadable: 'unreadable',
  /** Carried with structured results (HL7 ED, FHIR presentedForm): nothing to extract. */
  notExtracted: 'not_extracted',
} as const;
export type ExtractionStatus = (typeof EXTRACTION_STATUS)[keyof typeof EXTRACTION_STATUS];

/** Stores a document's bytes (inside the intake transaction). */
export async function insertDocument(
  db: Db,
  input: {
    tenantId: string;
    messageId: string;
    reportId: string | null;
    contentType: string;
    filename?: string | null;
    title: string | null;
    data: Uint8Array;
    extractionStatus: ExtractionStatus;
    extractedText?: string | null;
    extraction?: Record<string, unknown> | null;
  },
): Promise<string> {
  const id = randomUUID();
  await db
    .insertInto('documents')
    .values({
      id,
      tenant_id: input.tenantId,
      message_id: input.messageId,
      report_id: input.reportId,
      content_type: input.contentType,
      filename: input.filename ?? null,
      title: input.title,
      size: input.data.byteLength,
      sha256: createHash('sha256').update(input.data).digest('hex'),
      data: input.data,
      extraction_status: input.extractionStatus,
      // Postgres text cannot hold NUL, which extracted PDF text sometimes does.
      extracted_text: input.extractedText?.replaceAll('\u0000', '') ?? null,
      extraction: input.extraction ? JSON.stringify(input.extraction) : null,
    })
    .execute();
  return id;
}

/** A document's description without its bytes. */
export type DocumentSummary = Omit<StoredDocument, 'data'>;

export async function listDocumentsOfMessage(
  db: Db,
  tenantId: string,
  messageId: string,
): Promise<DocumentSummary[]> {
  return tenantScope(db, tenantId)
    .selectFrom('documents')
    .select([
      'id',
      'tenant_id',
      'message_id',
      'report_id',
      'content_type',
      'filename',
      'title',
      'size',
      'sha256',
      'extraction_status',
      'extracted_text',
      'extraction',
      'created_at',
    ])
    .where('message_id', '=', messageId)
    .orderBy('created_at')
    .execute();
}

export async function findDocument(
  db: Db,
  tenantId: string,
  id: string,
): Promise<StoredDocument | undefined> {
  return tenantScope(db, tenantId)
    .selectFrom('documents')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirst();
}
