import { z } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { appendAudit } from '../db/audit.ts';
import type { Database, Tenant } from '../db/schema.ts';
import { findTenantBySlug } from '../db/tenants.ts';
import { isKnownUnit } from '../domain/units.ts';
import { AppError } from './errors.ts';
import { schemaFailure } from './validation.ts';

// A tenant's name and settings (critical table, escalation chain, ranges, turnaround), checked and
// saved by one function that both the admin API (PATCH /v1/admin/tenants/{slug}) and the console's
// critical-values page call.

const Minutes = z
  .number()
  .int()
  .min(1)
  .max(7 * 24 * 60);
const Ucum = z
  .string()
  .trim()
  .min(1)
  .refine(isKnownUnit, 'not a UCUM unit LabRelay can convert (e.g. mmol/L, mg/dL, 10*3/uL)');
const ordered = (r: { low: number | null; high: number | null }) =>
  r.low === null || r.high === null || r.low < r.high;

export const TenantSettingsSchema = z
  .object({
    releaseDelaySeconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 3600)
      .optional()
      .openapi({ description: 'Seconds a flagged result is held before release.' }),
    criticalTable: z
      .array(
        z
          .object({
            loinc: z.string().trim().min(1),
            name: z.string().trim().min(1),
            low: z.number().nullable(),
            high: z.number().nullable(),
            unit: Ucum.openapi({ description: 'UCUM unit the limits are in.' }),
            molecularWeight: z.number().positive().optional(),
            charge: z.number().int().positive().optional(),
          })
          .strict()
          .refine((l) => l.low !== null || l.high !== null, {
            message: 'a critical limit needs a low or a high bound',
            path: ['low'],
          })
          .refine(ordered, { message: 'the low critical limit must be below the high one', path: ['low'] }),
      )
      .max(500)
      .refine(
        (t) => new Set(t.map((l) => l.loinc)).size === t.length,
        'each LOINC code appears once in the critical table',
      )
      .optional()
      .openapi({
        description:
          "The tenant's whole critical table: it replaces the default table (DESIGN.md), so list every analyte you want checked.",
      }),
    escalation: z
      .object({
        steps: z
          .array(
            z
              .object({
                role: z.enum(['ordering', 'covering', 'on_call', 'lab_director']),
                timeoutMinutes: Minutes,
              })
              .strict(),
          )
          .min(1)
          .max(10),
        patientContactAttempts: z.number().int().min(1).max(10),
        ackLinkHours: z
          .number()
          .int()
          .min(1)
          .max(24 * 14),
      })
      .strict()
      .optional()
      .openapi({
        description:
          'Critical-result escalation chain (default: ordering, covering, on-call, lab director; 15 minutes each).',
      }),
    deltaThresholds: z
      .array(
        z
          .object({
            code: z.string().trim().min(1),
            unit: Ucum,
            absolute: z.number().positive().optional(),
            percent: z.number().positive().optional(),
            withinHours: z.number().positive().optional(),
          })
          .strict()
          .refine(
            (t) => t.absolute !== undefined || t.percent !== undefined,
            'give an absolute or a percent limit',
          ),
      )
      .max(500)
      .optional(),
    referenceRanges: z
      .array(
        z
          .object({
            code: z.string().trim().min(1).openapi({ description: 'LOINC code' }),
            low: z.number().nullable(),
            high: z.number().nullable(),
            unit: Ucum.openapi({ description: 'UCUM unit of low and high' }),
          })
          .strict()
          .refine((r) => r.low !== null || r.high !== null, {
            message: 'a reference range needs a low or a high bound',
            path: ['low'],
          })
          .refine(ordered, { message: 'the low bound must be below the high one', path: ['low'] }),
      )
      .max(2000)
      .optional()
      .openapi({ description: 'Ranges used when a result arrives without its own.' }),
    turnaroundMinutes: z
      .object({ default: Minutes, byTest: z.record(z.string(), Minutes).optional() })
      .strict()
      .optional()
      .openapi({
        description: 'Minutes from order to final results before an overdue alert (default 1440).',
      }),
    taskAgingMinutes: z
      .number()
      .int()
      .min(15)
      .max(7 * 24 * 60)
      .optional()
      .openapi({
        description: 'Minutes an open task waits before it rises one priority level (default 240).',
      }),
  })
  .strict();

export const TenantPatchSchema = z
  .object({ name: z.string().trim().min(1).max(200).optional(), settings: TenantSettingsSchema.optional() })
  .strict()
  .openapi('TenantPatch');
export type TenantPatch = z.infer<typeof TenantPatchSchema>;

/**
 * Changes a tenant's name and settings in one transaction with its audit event. The settings given
 * replace those of the same name (a critical table replaces the whole table); others are kept. A
 * change that fails the schema is refused whole with one detail per failing path (e.g.
 * `settings.criticalTable.1.unit`), nothing saved.
 *
 * @example
 * await updateTenantSettings(db, 'stmarys', { settings: { escalation } }, 'admin');
 */
export async function updateTenantSettings(
  db: Kysely<Database>,
  slug: string,
  change: unknown,
  actor: string,
): Promise<Tenant> {
  const checked = TenantPatchSchema.safeParse(change);
  if (!checked.success) throw schemaFailure(checked.error.issues);
  const body = checked.data;
  return db.transaction().execute(async (trx) => {
    const tenant = await findTenantBySlug(trx, slug);
    if (!tenant) throw new AppError('not_found', `there is no tenant ${slug}`);
    const settings = { ...tenant.settings, ...(body.settings ?? {}) };
    const row = await trx
      .updateTable('tenants')
      .set({ name: body.name ?? tenant.name, settings: JSON.stringify(settings) })
      .where('id', '=', tenant.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await appendAudit(trx, {
      tenantId: tenant.id,
      actor,
      action: 'tenant.updated',
      subject: `tenant/${tenant.id}`,
      details: { ...body },
    });
    return row;
  });
}
