import type { Insertable } from 'kysely';
import type { Connection, ConnectionsTable } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

export async function insertConnection(db: Db, values: Insertable<ConnectionsTable>): Promise<Connection> {
  return db.insertInto('connections').values(values).returningAll().executeTakeFirstOrThrow();
}

export async function listConnections(db: Db, tenantId: string): Promise<Connection[]> {
  return tenantScope(db, tenantId).selectFrom('connections').selectAll().orderBy('created_at').execute();
}

/** Live inbound HL7 connections that accept MLLP messages from `sendingFacility` (MSH-4). */
export async function findMllpConnections(db: Db, sendingFacility: string): Promise<Connection[]> {
  return db
    .selectFrom('connections')
    .selectAll()
    .where('direction', '=', 'inbound')
    .where('format', '=', 'hl7v2')
    .where('mllp_sending_facility', '=', sendingFacility)
    .where('disabled_at', 'is', null)
    .execute();
}
