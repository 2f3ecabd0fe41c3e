// The process entry point: `npm start` (everything, embedded defaults), `npm run start:api` and
// `npm run start:worker` (separate processes for production).
import { ConfigError } from './config.ts';
import { startLabRelay, type Role } from './runtime.ts';

const roleArg = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length) ?? 'all';
if (!['all', 'api', 'worker'].includes(roleArg)) {
  console.error(`unknown --role=${roleArg} (all, api or worker)`);
  process.exit(2);
}
const role = roleArg as Role;

try {
  const labrelay = await startLabRelay({
    role,
    onFatal: () => {
      process.stdout.write('stopping LabRelay after a fatal error\n');
      void labrelay.stop().finally(() => process.exit(1));
    },
    seedDemo: role === 'all' && process.env.LABRELAY_SEED_DEMO !== 'false',
  });
  const { config } = labrelay;
  const lines = [`LabRelay is running (${role}).`];
  if (labrelay.httpPort !== null) {
    lines.push(`  Console and API:  http://localhost:${labrelay.httpPort}/`);
    lines.push(`  MLLP listener:    port ${labrelay.mllpPort}`);
  }
  lines.push(`  Temporal:         ${labrelay.temporal.address} (namespace ${labrelay.temporal.namespace})`);
  lines.push(
    `  Database:         ${config.databaseUrl ? 'Postgres (DATABASE_URL)' : `embedded PGlite in ${config.dataDir}`}`,
  );
  if (labrelay.httpPort !== null && config.adminTokenGenerated) {
    lines.push(`  Admin token (this start only; set LABRELAY_ADMIN_TOKEN to keep one): ${config.adminToken}`);
  }
  if (labrelay.firstAdmin) {
    lines.push(`  Console sign-in:  ${labrelay.firstAdmin.email}`);
    if (labrelay.firstAdmin.password)
      lines.push(
        `    Password (shown this once; set LABRELAY_ADMIN_PASSWORD to choose one): ${labrelay.firstAdmin.password}`,
      );
  }
  if (labrelay.demo?.apiKey) {
    lines.push(`  Demo tenant "${labrelay.demo.slug}" created. Its credential is shown this once:`);
    lines.push(`    API key:        ${labrelay.demo.apiKey}`);
    lines.push(`    Signing secret: ${labrelay.demo.signingSecret}`);
    lines.push(`    MLLP messages with MSH-4 = ${labrelay.demo.mllpSendingFacility} go to it.`);
  }
  lines.push('Press Ctrl-C to stop.');
  process.stdout.write(lines.join('\n') + '\n');

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      process.stdout.write('stopping already; press Ctrl-C again in a few seconds to force\n');
      process.once(signal, () => process.exit(130));
      return;
    }
    stopping = true;
    process.stdout.write(`\n${signal} received: stopping LabRelay...\n`);
    labrelay.stop().then(
      () => {
        process.stdout.write('stopped.\n');
        process.exit(0);
      },
      (error: unknown) => {
        console.error('error while stopping', error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`LabRelay cannot start: ${error.message}`);
    process.exit(2);
  }
  console.error('LabRelay failed to start:', error);
  process.exit(1);
}
