import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../../api/temporal-dev.ts';

export interface TestPostgres {
  /** A superuser URL to the `postgres` database of the server. */
  adminUrl: string;
  stop(): Promise<void>;
}

/**
 * The real Postgres the tests run against: TEST_DATABASE_URL when set (CI sets it to Debian's
 * cluster), else a throw-away server started from Debian's `postgresql` binaries in a temp folder.
 */
export async function startTestPostgres(options: { durable?: boolean } = {}): Promise<TestPostgres> {
  // Tests trade durability for speed; a benchmark of durable ACKs must not.
  const durability = options.durable ? 'on' : 'off';
  if (process.env.TEST_DATABASE_URL) return { adminUrl: process.env.TEST_DATABASE_URL, stop: async () => {} };
  const versions = existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))
    : [];
  const bin = versions
    .map((v) => `/usr/lib/postgresql/${v}/bin`)
    .find((d) => existsSync(path.join(d, 'initdb')));
  if (!bin) {
    throw new Error(
      "the tests need a real Postgres: set TEST_DATABASE_URL, or install Debian's postgresql (bash scripts/install-tools.sh --test does)",
    );
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'labrelay-pg-'));
  chmodSync(dir, 0o777);
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) =>
    (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]) as [string, string[]];
  const dataDir = path.join(dir, 'data');
  execFileSync(
    ...run(path.join(bin, 'initdb'), [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '-E',
      'UTF8',
      '--no-sync',
    ]),
    { stdio: 'ignore' },
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    ...run(path.join(bin, 'postgres'), [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `fsync=${durability}`,
      '-c',
      `synchronous_commit=${durability}`,
      '-c',
      `full_page_writes=${durability}`,
      '-c',
      'max_connections=300',
    ]),
    { stdio: 'ignore' },
  );
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.end();
      break;
    } catch (error) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`test Postgres did not start: ${(error as Error).message}`, { cause: error });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return {
    adminUrl,
    async stop() {
      // pg_ctl signals the postmaster itself (runuser does not pass signals on to it).
      const exited = child.exitCode === null ? new Promise((r) => child.once('exit', r)) : Promise.resolve();
      execFileSync(...run(path.join(bin, 'pg_ctl'), ['-D', dataDir, 'stop', '-m', 'immediate']), {
        stdio: 'ignore',
      });
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh, empty database on the test server; returns its URL. */
export async function createTestDatabase(adminUrl: string): Promise<string> {
  const name = `labrelay_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`create database ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
