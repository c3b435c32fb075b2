import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Set (to true) by esbuild in the daemon's bundle (scripts/build-daemon.mjs). */
declare const __FERRY_BUNDLED__: boolean | undefined;
const here = fileURLToPath(import.meta.url);
const fromSource = here.endsWith('.ts');
/**
 * The worker's entry point: in the bundle, beside this module's chunk; built by tsc, in
 * drivers/; under a TypeScript runner (tests) it runs through tsx.
 */
export const WORKER_SCRIPT =
  typeof __FERRY_BUNDLED__ !== 'undefined'
    ? path.join(path.dirname(here), 'worker-host.js')
    : path.join(path.dirname(here), 'drivers', fromSource ? 'worker-host.ts' : 'worker-host.js');
/**
 * Extra node options for every worker, space-separated (e.g. `--cpu-prof --cpu-prof-dir=DIR`,
 * which NODE_OPTIONS refuses): how the benchmark profiles the workers.
 */
const EXTRA_EXEC_ARGV = (process.env.FERRY_WORKER_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean);
/**
 * A worker allocates little that lives long but its maps of the files it watches: a small
 * young generation (2 MiB semi-spaces instead of 16) keeps some 20 MiB of RSS off each worker
 * at 100,000 files, for a few more (cheap) scavenges; and V8 told to favour memory over speed
 * collects a scan's garbage sooner instead of growing the heap (some 30 MiB less peak RSS per
 * worker at 100,000 files).
 */
const WORKER_V8_OPTIONS = ['--max-semi-space-size=2', '--optimize-for-size'];
const WORKER_EXEC_ARGV = [...(fromSource ? ['--import', 'tsx'] : []), ...WORKER_V8_OPTIONS, ...EXTRA_EXEC_ARGV];
/**
 * A remote entry's worker watches nothing, and allocates much that dies young (a request's
 * objects in the AWS SDK or ssh2, a copy's buffers): V8's defaults, where 2 MiB semi-spaces cost
 * an S3 worker a tenth of its time in scavenges, and its memory stays small without them.
 */
const REMOTE_WORKER_EXEC_ARGV = [...(fromSource ? ['--import', 'tsx'] : []), ...EXTRA_EXEC_ARGV];

/**
 * Forks a worker for an entry of `driver`: it loads that driver's code at once, and waits for
 * its `init`. Its own process group, killed as a whole.
 */
export function forkWorker(driver: string, script = WORKER_SCRIPT): ChildProcess {
  const local = driver === 'local_storage';
  return fork(script, [driver], {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: local ? WORKER_EXEC_ARGV : REMOTE_WORKER_EXEC_ARGV,
    env: local ? withoutExtraCaCerts(process.env) : process.env,
  });
}

/**
 * A local entry's worker makes no TLS connection, so it is started without
 * NODE_EXTRA_CA_CERTS: node parses that file's certificates before it runs any code, which
 * took 50 ms of every start here for a bundle of 140 (the remote drivers' workers keep it: an
 * S3 endpoint may need it).
 */
function withoutExtraCaCerts(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (env.NODE_EXTRA_CA_CERTS === undefined) return env;
  const { NODE_EXTRA_CA_CERTS: _, ...rest } = env;
  return rest;
}

/** Workers forked ahead of need, for the entries to take (see `ferry start`). */
export interface SpareWorkers {
  /** A live worker forked for `driver`, if one is left. */
  take(driver: string): ChildProcess | undefined;
  /** Ends those no entry took. */
  release(): void;
}

/** Most workers forked ahead: a setup of many entries forks the rest when they start. */
const MOST_SPARES = 8;

/**
 * One worker per entry of the setup, forked before the daemon's own code is loaded: they start
 * node and load their driver while the daemon loads, opens its store and binds its port. They
 * touch no storage until the daemon gives them an entry (`init`); a refused start leaves none
 * (a worker exits when the daemon goes away).
 */
export function forkSpares(drivers: readonly string[], script: string): SpareWorkers {
  const idle = new Map<string, ChildProcess[]>();
  for (const driver of drivers.slice(0, MOST_SPARES)) {
    const child = forkWorker(driver, script);
    child.on('error', () => {}); // a fork that failed is not taken
    const list = idle.get(driver) ?? [];
    list.push(child);
    idle.set(driver, list);
  }
  return {
    take(driver) {
      const list = idle.get(driver) ?? [];
      for (let child = list.shift(); child; child = list.shift()) {
        if (child.connected && child.exitCode === null && child.signalCode === null) return child;
      }
      return undefined;
    },
    release() {
      for (const list of idle.values()) for (const child of list.splice(0)) child.kill();
    },
  };
}
