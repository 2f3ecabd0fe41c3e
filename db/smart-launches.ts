import type { Insertable } from 'kysely';
import type { SmartLaunch, SmartLaunchesTable } from './schema.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/** How long a used or expired launch row is kept (for an inquiry) before the next launch removes it. */
const KEEP_MS = 24 * 60 * 60_000;

/**
 * Records a SMART EHR launch between the redirect to the EHR's authorize endpoint and the callback
 * (https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code): its `state`
 * and PKCE `code_verifier`. Launches that ended more than a day ago are removed on the way.
 *
 * @example
 * await insertSmartLaunch(db, { state, tenant_id, connection_id, issuer, launch, code_verifier,
 *   redirect_uri, token_endpoint, expires_at: new Date(Date.now() + 10 * 60_000) });
 */
export async function insertSmartLaunch(db: Db, launch: Insertable<SmartLaunchesTable>): Promise<void> {
  await db
    .deleteFrom('smart_launches')
    .where('expires_at', '<', new Date(Date.now() - KEEP_MS))
    .execute();
  await db.insertInto('smart_launches').values(launch).execute();
}

/**
 * Takes a launch's state for its callback, once: the row is marked used in the same statement, so
 * a replayed callback (or a second tab) finds nothing. Expired states and another tenant's states
 * find nothing either.
 *
 * @example
 * const launch = await takeSmartLaunch(db, tenant.id, c.req.query('state'));
 * if (!launch) throw new LaunchError('This launch is unknown, was already used or has expired.');
 */
export async function takeSmartLaunch(
  db: Db,
  tenantId: string,
  state: string,
): Promise<SmartLaunch | undefined> {
  return tenantScope(db, tenantId)
    .updateTable('smart_launches')
    .set({ used_at: new Date() })
    .where('state', '=', state)
    .where('used_at', 'is', null)
    .where('expires_at', '>', new Date())
    .returningAll()
    .executeTakeFirst();
}
