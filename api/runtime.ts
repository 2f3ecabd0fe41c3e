import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { pino, type Logger } from 'pino';
import { createMailer } from '../adapters/mail/mailer.ts';
import { openDatabase, migrateToLatest, type DatabaseHandle } from '../db/connect.ts';
import { createApp } from './app.ts';
import { loadConfig, ConfigError, type Config } from './config.ts';
import { CONSOLE_BUILD_DIR, loadConsole } from './console.ts';
import type { Services } from './env.ts';
import { RateLimiter } from './security/rate-limit.ts';
import { createMetrics } from './metrics.ts';
import { startMllpListener } from './mllp.ts';
import { seedDemoTenant, type DemoSeed } from './seed-demo.ts';
import { readTemporalDevSettings, startTemporalDevServer, type DevServer } from './temporal-dev.ts';
import {
  ensureSearchAttributes,
  lazyTemporalClient,
  startWorker,
  temporalTargetFromEnv,
  waitForNamespace,
  type TemporalTarget,
  type WorkerHandle,
} from './temporal.ts';
import { createWorkflowStarter } from './workflow-starter.ts';
import { runPullers } from './intake/pull.ts';
import { resendDelivery } from './deliveries.ts';
import { createConsoleAuth } from './console-auth.ts';
import { AppError } from './errors.ts';
import { findTenantBySlug } from '../db/tenants.ts';

export type Role = 'all' | 'api' | 'worker';

export interface StartOptions {
  role: Role;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Create the `demo` tenant on first start (the embedded default does). */
  seedDemo?: boolean;
  /** Serve the built console (default: when it has been built). */
  console?: boolean;
  /** How often the relay looks for inbox rows whose workflow did not start. */
  relayIntervalMs?: number;
  /** How often the pull connections are checked for a due poll (default 5 s). */
  pullTickMs?: number;
  /** Called when a part stops on its own (the worker failed); `npm start` exits. */
  onFatal?: (error: unknown) => void;
}

export interface LabRelay {
  config: Config;
  services: Services | null;
  httpPort: number | null;
  mllpPort: number | null;
  temporal: TemporalTarget;
  demo: DemoSeed | null;
  /** The console's first administrator when this start made one; the password only when generated. */
  firstAdmin: { email: string; password: string | null } | null;
  stop(): Promise<void>;
}

let temporalRuntimeInstalled = false;

/**
 * Starts LabRelay in one process: with role `all` everything (embedded Temporal dev server and
 * PGlite unless TEMPORAL_ADDRESS / DATABASE_URL say otherwise), with `api` the HTTP and MLLP
 * listeners and the relay, with `worker` the Temporal worker. `stop()` shuts down in reverse order.
 */
export async function startLabRelay(options: StartOptions): Promise<LabRelay> {
  const env = options.env ?? process.env;
  const config = await loadConfig(env);
  const logger =
    options.logger ?? pino({ level: config.logLevel, base: { service: 'labrelay', role: options.role } });
  if (!temporalRuntimeInstalled) {
    try {
      Runtime.install({ logger: new DefaultLogger('WARN') });
    } catch {
      // Already installed by the embedding process (a test environment): keep its runtime.
    }
    temporalRuntimeInstalled = true;
  }
  if (options.role !== 'all' && !config.databaseUrl) {
    throw new ConfigError(
      `the ${options.role} role runs beside other processes and needs a shared database: set DATABASE_URL`,
    );
  }
  if (options.role !== 'all' && !config.temporalAddress) {
    throw new ConfigError(
      `the ${options.role} role needs a Temporal server shared with the other processes: set TEMPORAL_ADDRESS`,
    );
  }

  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) {
      try {
        await s();
      } catch (error) {
        logger.error({ err: error }, 'error while stopping');
      }
    }
    stops.length = 0;
  };

  try {
    const database: DatabaseHandle = await openDatabase({
      url: config.databaseUrl,
      pgliteDir: path.join(config.dataDir, 'pglite'),
    });
    stops.push(() => database.close());
    await migrateToLatest(database.db);

    const devSettings = readTemporalDevSettings();
    const settings = { ...devSettings, taskQueue: config.taskQueue ?? devSettings.taskQueue };
    let devServer: DevServer | null = null;
    let target: TemporalTarget;
    if (config.temporalAddress) {
      target = temporalTargetFromEnv(env, config.temporalAddress, settings.namespace, settings.taskQueue);
    } else {
      logger.info('starting the embedded Temporal dev server');
      devServer = await startTemporalDevServer({
        settings,
        dbFile: path.join(config.dataDir, settings.dbFile),
        logFile: path.join(config.dataDir, 'temporal.log'),
        pidFile: path.join(config.dataDir, 'temporal.pid'),
      });
      stops.push(() => devServer!.stop());
      target = { address: devServer.address, namespace: devServer.namespace, taskQueue: settings.taskQueue };
    }

    const client = lazyTemporalClient(target);
    stops.push(() => client.connection.close());
    let searchAttributes = true;
    if (devServer) await waitForNamespace(client);
    else searchAttributes = await ensureSearchAttributes(client, settings.searchAttributes, logger);

    const metrics = createMetrics();
    const starter = createWorkflowStarter({
      db: database.db,
      client: () => client,
      taskQueue: target.taskQueue,
      logger,
      metrics,
      searchAttributes,
    });
    const services: Services = {
      config,
      db: database.db,
      logger,
      starter,
      metrics,
      temporal: () => client,
      rateLimiter: new RateLimiter(),
      consoleAuth: createConsoleAuth(database.db, logger),
    };
    stops.push(() => starter.drain());

    let worker: WorkerHandle | null = null;
    if (options.role !== 'api') {
      const mailer = createMailer(config.smtpUrl, config.mailFrom);
      stops.push(async () => mailer.close());
      worker = await startWorker(target, {
        db: database.db,
        logger,
        mailer,
        masterKey: config.masterKey,
        publicUrl: config.publicUrl,
      });
      stops.push(() => worker!.shutdown());
      worker.running.catch((error: unknown) => {
        logger.fatal({ err: error }, 'the Temporal worker stopped unexpectedly');
        options.onFatal?.(error);
      });
    }

    let httpPort: number | null = null;
    let mllpPort: number | null = null;
    let demo: DemoSeed | null = null;
    let firstAdmin: { email: string; password: string | null } | null = null;
    if (options.role !== 'worker') {
      if (options.seedDemo) demo = await seedDemoTenant(database.db, config.masterKey);
      firstAdmin = await services.consoleAuth.ensureFirstAdmin(env);
      const relay = starter.runRelay(options.relayIntervalMs ?? 2000);
      stops.push(() => relay.stop());
      const pullers = runPullers(services, options.pullTickMs ?? 5000);
      stops.push(() => pullers.stop());

      const wantConsole = options.console ?? true;
      let fallback;
      if (wantConsole) {
        try {
          fallback = await loadConsole({
            db: database.db,
            app: services,
            auth: services.consoleAuth,
            endpoints: () => ({
              publicUrl: config.publicUrl,
              mllpPort,
              mllpTls: Boolean(config.mllpTls),
              selfUrl: `http://127.0.0.1:${httpPort}`,
            }),
            async resendDelivery(slug, id, actor, reason) {
              const tenant = await findTenantBySlug(database.db, slug);
              if (!tenant) throw new AppError('not_found', `there is no tenant ${slug}`);
              await resendDelivery(services, tenant, id, actor, reason);
            },
          });
        } catch (error) {
          if (options.console === true) throw error;
          logger.warn(`console not served: ${(error as Error).message} (${CONSOLE_BUILD_DIR})`);
        }
      }
      const app = createApp(services, fallback ? { fallback } : {});
      const server: ServerType = await new Promise((resolve, reject) => {
        const failed = (error: NodeJS.ErrnoException) =>
          reject(
            error.code === 'EADDRINUSE'
              ? new ConfigError(`HTTP port ${config.port} is in use: set PORT to a free one`)
              : error,
          );
        const s = serve({ fetch: app.fetch, port: config.port, hostname: '0.0.0.0' }, () => {
          s.off('error', failed);
          resolve(s);
        });
        s.once('error', failed);
      });
      httpPort = (server.address() as AddressInfo).port;
      stops.push(
        () =>
          new Promise<void>((resolve) => {
            // Requests in progress (an HL7 POST mid-transaction) finish; idle keep-alives close now.
            const http = server as { closeIdleConnections?: () => void; closeAllConnections?: () => void };
            const force = setTimeout(() => http.closeAllConnections?.(), 5000);
            server.close(() => {
              clearTimeout(force);
              resolve();
            });
            http.closeIdleConnections?.();
          }),
      );

      const mllp = await startMllpListener(services, {
        port: config.mllpPort,
        tls: config.mllpTls,
        ...config.mllpLimits,
      });
      mllpPort = mllp.port;
      stops.push(() => mllp.close());
    }

    return { config, services, httpPort, mllpPort, temporal: target, demo, firstAdmin, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
