import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createActivities, type ActivityDeps } from '../activities/index.ts';

export interface TemporalTarget {
  address: string;
  namespace: string;
  taskQueue: string;
  /** Temporal Cloud API key (TEMPORAL_API_KEY). */
  apiKey?: string | undefined;
  /** mTLS client certificate and key files (TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY); TEMPORAL_TLS=true for server-only TLS. */
  tls?: { certFile?: string | undefined; keyFile?: string | undefined } | undefined;
}

/** Reads the production Temporal target from the environment (TEMPORAL_ADDRESS and friends). */
export function temporalTargetFromEnv(
  env: NodeJS.ProcessEnv,
  address: string,
  fallbackNamespace: string,
  taskQueue: string,
): TemporalTarget {
  const wantsTls = env.TEMPORAL_TLS === 'true' || !!env.TEMPORAL_TLS_CERT || !!env.TEMPORAL_API_KEY;
  return {
    address,
    namespace: env.TEMPORAL_NAMESPACE || fallbackNamespace,
    taskQueue,
    apiKey: env.TEMPORAL_API_KEY || undefined,
    tls: wantsTls ? { certFile: env.TEMPORAL_TLS_CERT, keyFile: env.TEMPORAL_TLS_KEY } : undefined,
  };
}

function tlsOptions(target: TemporalTarget) {
  if (!target.tls) return undefined;
  if (target.tls.certFile && target.tls.keyFile) {
    return {
      clientCertPair: { crt: readFileSync(target.tls.certFile), key: readFileSync(target.tls.keyFile) },
    };
  }
  return true as const;
}

/**
 * A client whose connection is made on first use, so the API starts (and keeps accepting messages
 * into the database) even while Temporal is unreachable; the relay starts their workflows later.
 */
export function lazyTemporalClient(target: TemporalTarget): Client {
  const tls = tlsOptions(target);
  const connection = Connection.lazy({
    address: target.address,
    ...(tls ? { tls } : {}),
    ...(target.apiKey ? { apiKey: target.apiKey } : {}),
  });
  return new Client({ connection, namespace: target.namespace });
}

/** Waits until the namespace answers (the dev server creates it a moment after its port opens). */
export async function waitForNamespace(client: Client, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await client.connection.withDeadline(Date.now() + 5000, () =>
        client.workflowService.describeNamespace({ namespace: client.options.namespace }),
      );
      return;
    } catch (error) {
      if (Date.now() > deadline)
        throw new Error(
          `Temporal namespace ${client.options.namespace} is not reachable: ${(error as Error).message}`,
          { cause: error },
        );
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export const WORKFLOWS_PATH = path.join(import.meta.dirname, '..', 'workflows', 'index.ts');

export interface WorkerHandle {
  worker: Worker;
  /** Resolves when the worker has stopped (after `shutdown`). */
  running: Promise<void>;
  shutdown(): Promise<void>;
}

/** Starts a worker running every LabRelay workflow and the activities, bound to `db`. */
export async function startWorker(
  target: TemporalTarget,
  deps: ActivityDeps,
  extra: Partial<Pick<WorkerOptions, 'workflowBundle' | 'shutdownGraceTime'>> = {},
): Promise<WorkerHandle> {
  const tls = tlsOptions(target);
  const connection = await NativeConnection.connect({
    address: target.address,
    ...(tls ? { tls } : {}),
    ...(target.apiKey ? { apiKey: target.apiKey } : {}),
  });
  let worker: Worker;
  try {
    worker = await Worker.create({
      connection,
      namespace: target.namespace,
      taskQueue: target.taskQueue,
      ...(extra.workflowBundle
        ? { workflowBundle: extra.workflowBundle }
        : { workflowsPath: WORKFLOWS_PATH }),
      activities: createActivities(deps),
      shutdownGraceTime: extra.shutdownGraceTime ?? '10s',
    });
  } catch (error) {
    await connection.close();
    throw error;
  }
  const running = worker.run().finally(() => connection.close());
  return {
    worker,
    running,
    async shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}

const INDEXED_VALUE_TYPE: Record<string, number> = {
  Text: 1,
  Keyword: 2,
  Int: 3,
  Double: 4,
  Bool: 5,
  Datetime: 6,
  KeywordList: 7,
};

/**
 * Registers the custom search attributes our workflows set, on a cluster that lacks them. Where the
 * operator API is not allowed (e.g. Temporal Cloud), says so: they must then be added by hand.
 */
export async function ensureSearchAttributes(
  client: Client,
  attributes: Record<string, string>,
  logger: Logger,
): Promise<boolean> {
  const namespace = client.options.namespace;
  try {
    const existing = await client.connection.withDeadline(Date.now() + 10_000, () =>
      client.connection.operatorService.listSearchAttributes({ namespace }),
    );
    const missing = Object.entries(attributes).filter(
      ([name]) => !(name in (existing.customAttributes ?? {})),
    );
    if (missing.length === 0) return true;
    await client.connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(
        missing.map(([name, type]) => [name, INDEXED_VALUE_TYPE[type] ?? 2]),
      ),
    });
    logger.info({ attributes: missing.map(([n]) => n) }, 'registered Temporal search attributes');
    return true;
  } catch (error) {
    logger.warn(
      { err: error, attributes: Object.keys(attributes) },
      `could not check or register Temporal search attributes in ${namespace}; workflows start without them (create them with temporal operator search-attribute create)`,
    );
    return false;
  }
}
