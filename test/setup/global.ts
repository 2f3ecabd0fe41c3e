import type { TestProject } from 'vitest/node';
import { readTemporalDevSettings, startTemporalDevServer } from '../../api/temporal-dev.ts';
import { startTestPostgres } from '../support/postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A real Temporal dev server (in memory), shared by the test files; each LabRelay uses its own task queue. */
    temporalAddress: string;
    temporalNamespace: string;
    /** Superuser URL of a real Postgres; each test creates its own database on it. */
    postgresAdminUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const [temporal, postgres] = await Promise.all([
    startTemporalDevServer({ settings: readTemporalDevSettings(), dbFile: null }),
    startTestPostgres(),
  ]);
  project.provide('temporalAddress', temporal.address);
  project.provide('temporalNamespace', temporal.namespace);
  project.provide('postgresAdminUrl', postgres.adminUrl);
  return async () => {
    await Promise.all([temporal.stop(), postgres.stop()]);
  };
}
