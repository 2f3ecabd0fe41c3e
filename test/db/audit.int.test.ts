import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { appendAuditEvents, verifyAuditChain } from '../../db/audit.ts';
import { migrateToLatest, openDatabase, type DatabaseHandle } from '../../db/connect.ts';
import { insertTenant } from '../../db/tenants.ts';

/**
 * A tenant's audit chain longer than one verification batch (1,000 events) verifies across the
 * batch boundaries, and an edit or a deleted event far down the chain is found at its sequence.
 */
describe('verifying a long audit chain', () => {
  let handle: DatabaseHandle;
  let tenantId: string;

  beforeAll(async () => {
    handle = await openDatabase({ pgliteDir: 'memory://' });
    await migrateToLatest(handle.db);
    tenantId = (await insertTenant(handle.db, { slug: 'long-chain', name: 'Long chain' })).id;
    const other = (await insertTenant(handle.db, { slug: 'other-chain', name: 'Other' })).id;
    await handle.db.transaction().execute(async (trx) => {
      await appendAuditEvents(
        trx,
        Array.from({ length: 2_500 }, (_, i) => ({
          tenantId,
          actor: 'system',
          action: 'message.received',
          subject: `message/${i}`,
          details: { n: i },
        })),
      );
      // Another tenant's chain beside it: each tenant's chain is verified on its own.
      await appendAuditEvents(trx, [{ tenantId: other, actor: 'system', action: 'x.y', subject: 's/1' }]);
    });
  }, 60_000);
  afterAll(async () => {
    await handle?.close();
  });

  test('2,500 events verify; an edited event and then a deleted one are found at their sequence', async () => {
    expect(await verifyAuditChain(handle.db, tenantId)).toBeNull();

    const sequenceOf = async (subject: string) =>
      Number(
        (
          await handle.db
            .selectFrom('audit_events')
            .select('sequence')
            .where('tenant_id', '=', tenantId)
            .where('subject', '=', subject)
            .executeTakeFirstOrThrow()
        ).sequence,
      );
    const edited = await sequenceOf('message/2200');
    await handle.db
      .updateTable('audit_events')
      .set({ details: JSON.stringify({ n: 'changed' }) })
      .where('tenant_id', '=', tenantId)
      .where('subject', '=', 'message/2200')
      .execute();
    expect(await verifyAuditChain(handle.db, tenantId)).toBe(edited);

    const deleted = await sequenceOf('message/1500');
    await handle.db
      .deleteFrom('audit_events')
      .where('tenant_id', '=', tenantId)
      .where('subject', '=', 'message/1500')
      .execute();
    // The event after the gap no longer follows the one before it.
    expect(await verifyAuditChain(handle.db, tenantId)).toBe(deleted + 1);
  });
});
