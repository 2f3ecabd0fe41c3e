import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Kysely, PGliteDialect, PostgresDialect } from 'kysely';
import { FileMigrationProvider, Migrator } from 'kysely/migration';
import type { Database } from './schema.ts';

export type DatabaseKind = 'postgres' | 'pglite';

export interface DatabaseHandle {
  db: Kysely<Database>;
  kind: DatabaseKind;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** A `postgres://` URL: real Postgres through `pg`. */
  url?: string | undefined;
  /** Folder for embedded PGlite; `memory://` (or nothing) keeps it in memory. */
  pgliteDir?: string | undefined;
}

/**
 * Opens the database: real Postgres when a URL is given, else embedded PGlite. Everything above
 * Kysely is the same code path for both.
 *
 * @example const { db, close } = await openDatabase({ pgliteDir: '.data/pglite' });
 */
export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  if (options.url) {
    const { default: pg } = await import('pg');
    // Keep jsonb parsed and timestamptz as Date (pg's defaults); bigint (int8) as string.
    const pool = new pg.Pool({ connectionString: options.url, max: 10 });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { db, kind: 'postgres', close: () => db.destroy() };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const dir = options.pgliteDir && options.pgliteDir !== 'memory://' ? options.pgliteDir : undefined;
  if (dir) await fs.mkdir(dir, { recursive: true });
  const pglite = dir ? new PGlite(dir) : new PGlite();
  await pglite.waitReady;
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }) });
  return {
    db,
    kind: 'pglite',
    close: async () => {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

const MIGRATIONS_DIR = path.join(import.meta.dirname, '..', 'migrations');

/** Applies every migration not yet applied; throws with the failing migration's name. */
export async function migrateToLatest(db: Kysely<Database>): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_DIR }),
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(
      `database migration ${failed?.migrationName ?? ''} failed: ${String((error as Error | undefined)?.message ?? error)}`,
      {
        cause: error,
      },
    );
  }
}
