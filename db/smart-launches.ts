import type { Insertable } from 'kysely';
import type { SmartLaunch, SmartLaunchesTable } from './schema.ts';
import type { Db } from './tenant-scope.ts';

export async function insertSmartLaunch(db: Db, launch: Insertable<SmartLaunchesTable>): Promise<void> {
  await db.insertInto('smart_launches').values(launch).execute();
}

/**
 * Takes a launch's state for its callback, once: the row is marked used in the same statement, so
 * a replayed callback (or a second tab) finds nothing. Expired or other-tenant states find nothing.
 */
export async function takeSmartLaunch(
  db: Db,
  tenantId: string,
  state: string,
): Promise<SmartLaunch | undefined> {
  return db
    .updateTable('smart_launches')
    .set({ used_at: new Date() })
    .where('state', '=', state)
    .where('tenant_id', '=', tenantId)
    .where('used_at', 'is', null)
    .where('expires_at', '>', new Date())
    .returningAll()
    .executeTakeFirst();
}
