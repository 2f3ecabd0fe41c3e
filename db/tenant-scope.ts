import {
  sql,
  type Kysely,
  type SelectQueryBuilder,
  type Transaction,
  type UpdateQueryBuilder,
  type UpdateResult,
} from 'kysely';
import type { Database } from './schema.ts';

export type Db = Kysely<Database> | Transaction<Database>;

/** The tables that belong to one tenant (they carry `tenant_id`). */
export type TenantTable = {
  [K in keyof Database]: Database[K] extends { tenant_id: string } ? K : never;
}[keyof Database];

/**
 * The one place tenant isolation is enforced: every query on a tenant's data starts here, and the
 * tenant condition is added before the caller can add anything else.
 *
 * @example
 * const report = await tenantScope(db, tenantId).selectFrom('reports').selectAll().where('id', '=', id).executeTakeFirst();
 */
export function tenantScope(db: Db, tenantId: string) {
  return {
    tenantId,
    selectFrom<T extends TenantTable>(table: T): SelectQueryBuilder<Database, T, {}> {
      // Kysely cannot type a column of a table chosen by a type parameter; the ref is checked by TenantTable.
      return (db.selectFrom(table) as SelectQueryBuilder<Database, T, {}>).where(
        sql.ref(`${table}.tenant_id`),
        '=',
        tenantId,
      );
    },
    updateTable<T extends TenantTable>(table: T): UpdateQueryBuilder<Database, T, T, UpdateResult> {
      return (db.updateTable(table) as unknown as UpdateQueryBuilder<Database, T, T, UpdateResult>).where(
        sql.ref(`${table}.tenant_id`),
        '=',
        tenantId,
      );
    },
  };
}
