/**
 * PostgreSQL for the provisioning tests. With `DATABASE_URL` set (a CI service, a developer's own
 * server) the tests use that server, each process in a schema of its own that is dropped at the
 * end. Otherwise a throwaway cluster is made from Debian's binaries (`/usr/lib/postgresql/<ver>/
 * bin/initdb` and `pg_ctl`) in a temporary directory, listening on a free port on 127.0.0.1 with its
 * unix socket in that directory, and removed afterwards.
 *
 * PostgreSQL refuses to run as root, and CI runs as root: there the binaries run as the
 * unprivileged `postgres` user that Debian's package creates (`runuser -u postgres --`), in a
 * directory handed to that user. A machine with neither `DATABASE_URL` nor the binaries fails the
 * tests with the command that installs them; the PostgreSQL tests never skip.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { unusedPort } from '../support/ports';

const run = promisify(execFile);

const POSTGRES_LIB = '/usr/lib/postgresql';

export interface TestPostgres {
  /** Where the tests connect (search_path pinned to this run's schema when DATABASE_URL is used). */
  readonly connectionString: string;
  readonly source: 'DATABASE_URL' | 'throwaway cluster';
  /** Stops what was started for the tests (drops the schema, or stops and removes the cluster). */
  stop(): Promise<void>;
}

/** The newest installed server's bin directory, or undefined. */
export function findPostgresBin(lib = POSTGRES_LIB): string | undefined {
  if (!existsSync(lib)) return undefined;
  const versions = readdirSync(lib)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = path.join(lib, v, 'bin');
    if (existsSync(path.join(bin, 'initdb')) && existsSync(path.join(bin, 'pg_ctl'))) return bin;
  }
  return undefined;
}

function missingPostgres(): Error {
  return new Error(
    'The PostgreSQL provisioning tests need a PostgreSQL server: set DATABASE_URL to one, or install ' +
      "Debian's postgresql (`bash scripts/setup.sh --postgres`, or `apt-get update && apt-get install -y " +
      `postgresql\`) so a throwaway cluster can be started from ${POSTGRES_LIB}/<version>/bin.`,
  );
}

/** How to run a server binary: directly, or as `postgres` when this process is root. */
function asServerUser(): { prefix: string[]; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  } catch {
    throw new Error(
      'Running as root, and PostgreSQL refuses to run as root, but there is no `postgres` user to run ' +
        "it as. Debian's postgresql package creates one: `apt-get install -y postgresql`.",
    );
  }
  return { prefix: ['runuser', '-u', 'postgres', '--'], uid, gid };
}

async function runAs(prefix: string[], file: string, args: string[]): Promise<void> {
  const [cmd, ...rest] = prefix.length > 0 ? [...prefix, file, ...args] : [file, ...args];
  try {
    await run(cmd ?? file, rest, { timeout: 120_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${path.basename(file)} failed: ${e.stderr || e.stdout || e.message}`, { cause: err });
  }
}

async function startCluster(lib: string): Promise<TestPostgres> {
  const bin = findPostgresBin(lib);
  if (bin === undefined) throw missingPostgres();
  const user = asServerUser();
  const prefix = user?.prefix ?? [];
  // /tmp when there is one: the `postgres` user can reach it, and the socket path stays below the
  // 107 bytes a unix socket name may have (a long TMPDIR would break both).
  const dir = mkdtempSync(path.join(existsSync('/tmp') ? '/tmp' : tmpdir(), 'provisioning-pg-'));
  if (user) chownSync(dir, user.uid, user.gid);
  const data = path.join(dir, 'data');
  const pgCtl = path.join(bin, 'pg_ctl');
  let started = false;
  const stopSync = (): void => {
    if (started) {
      spawnSync(
        prefix[0] ?? pgCtl,
        [
          ...prefix.slice(1),
          ...(prefix.length > 0 ? [pgCtl] : []),
          '-D',
          data,
          '-m',
          'immediate',
          '-w',
          'stop',
        ],
        {
          stdio: 'ignore',
        },
      );
      started = false;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // mocha --exit ends the process without after-hooks of files still running: never leave a server.
  process.once('exit', stopSync);
  try {
    await runAs(prefix, path.join(bin, 'initdb'), [
      '-D',
      data,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--no-sync',
    ]);
    let port = 0;
    for (let attempt = 1; ; attempt += 1) {
      port = await unusedPort();
      try {
        await runAs(prefix, pgCtl, [
          '-D',
          data,
          '-l',
          path.join(dir, 'server.log'),
          '-w',
          '-t',
          '120',
          '-o',
          `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`,
          'start',
        ]);
        started = true;
        break;
      } catch (err) {
        // Another process may have taken the port between the probe and the start.
        if (attempt >= 3) {
          const log = existsSync(path.join(dir, 'server.log'))
            ? readFileSync(path.join(dir, 'server.log'), 'utf8')
            : '';
          throw new Error(`could not start the throwaway PostgreSQL cluster:\n${log}`, { cause: err });
        }
      }
    }
    return {
      connectionString: `postgresql://postgres@127.0.0.1:${port}/postgres`,
      source: 'throwaway cluster',
      async stop(): Promise<void> {
        process.off('exit', stopSync);
        if (started) {
          await runAs(prefix, pgCtl, ['-D', data, '-m', 'fast', '-w', 'stop']);
          started = false;
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    process.off('exit', stopSync);
    stopSync();
    throw err;
  }
}

async function useSchema(databaseUrl: string): Promise<TestPostgres> {
  const schema = `provisioning_test_${process.pid}_${Date.now().toString(36)}`;
  const admin = new Client({ connectionString: databaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await admin.end();
  }
  const url = new URL(databaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    connectionString: url.toString(),
    source: 'DATABASE_URL',
    async stop(): Promise<void> {
      const c = new Client({ connectionString: databaseUrl });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA ${schema} CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * A PostgreSQL server for this test file: DATABASE_URL's, or a throwaway cluster from the newest
 * server under `postgresLib` (Debian's `/usr/lib/postgresql`).
 */
export function startTestPostgres(
  databaseUrl = process.env.DATABASE_URL,
  postgresLib = POSTGRES_LIB,
): Promise<TestPostgres> {
  return databaseUrl ? useSchema(databaseUrl) : startCluster(postgresLib);
}
