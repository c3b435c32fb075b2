import { afterEach, beforeEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The built command; `npm test` builds it first. */
export const CLI = path.join(REPO, 'dist/src/cli.js');

/** A fresh temporary folder, removed by the returned cleanup. */
export async function tempDir(prefix = 'ferry-test-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

let wholeWrites = 0;

/**
 * Writes `content` to `file` whole in one step: under a name of Ferry's own (never reported) beside
 * it, then renamed into place. A plain writeFile truncates, then writes: a loaded machine lets the
 * watcher see the file empty or half written (settle_ms is 2 ms) and sync that state too, which
 * makes a version of its own when the whole file comes.
 */
export async function writeWhole(file: string, content: string | Buffer): Promise<void> {
  const tmp = path.join(path.dirname(file), `.ferry-test-${process.pid}-${wholeWrites++}`);
  await fsp.writeFile(tmp, content);
  await fsp.rename(tmp, file);
}

/**
 * Polls `check` until it returns a truthy value, or fails after `timeout` ms with `what`. The
 * deadline is on the monotonic clock: a step of the wall clock (a virtual machine resumed, its
 * time set again) neither cuts a wait short nor stretches it.
 */
export async function until<T>(what: string, check: () => T | Promise<T>, timeout = 15_000, every = 25): Promise<T> {
  const deadline = performance.now() + timeout;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export interface SetupSpec {
  entries: Record<string, string>; // name → root folder (relative to the setup's folder)
  rules: unknown[];
}

/** Writes a setup file with local_storage entries and creates their roots. */
export async function writeSetup(dir: string, spec: SetupSpec): Promise<string> {
  const entries: Record<string, unknown> = {};
  for (const [name, root] of Object.entries(spec.entries)) {
    entries[name] = { driver: 'local_storage', options: { root } };
    await fsp.mkdir(path.resolve(dir, root), { recursive: true });
  }
  const file = path.join(dir, 'setup.json');
  await fsp.writeFile(file, JSON.stringify({ name: 'test', entries, rules: spec.rules }, null, 2));
  return file;
}

/** The spec's example rules: everything to A, PDFs under /backedup/ to B as well. */
export const SPEC_RULES = [
  { match: { path: '/' }, sync: ['A'] },
  { match: { path: '/backedup/', mime: ['application/pdf'] }, sync: ['B'] },
];

export interface RunningDaemon {
  process: ChildProcess;
  url: string;
  api: string;
  /** Every JSON log line the daemon printed so far. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs the built `ferry start` as a real process on a free port; resolves once it listens. */
export async function startDaemon(setupFile: string, extraArgs: string[] = []): Promise<RunningDaemon> {
  const child = spawn(process.execPath, [CLI, 'start', '--setup', setupFile, '--port', '0', '--log-level', 'debug', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let buffer = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      buffer += d.toString();
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === 'ferry is running') resolve(entry.url as string);
        } catch {
          // not JSON
        }
      }
    });
    void exited.then((code) => reject(new Error(`daemon exited with ${code} before listening: ${stderr}`)));
    setTimeout(() => reject(new Error(`daemon did not listen within 30 s: ${stderr}`)), 30_000).unref();
  });
  return {
    process: child,
    url,
    api: `${url}/api/v1.0`,
    logs,
    stderr: () => stderr,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

/** JSON of an API call. */
export async function api(base: string, method: string, route: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(base + route, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

export function readIfExists(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** Alive and not a zombie waiting for its parent to reap it. */
export function running(pid: number): boolean {
  if (!alive(pid)) return false;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Whether a process with this pid is alive. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A fresh temporary folder for each test and the daemons a test starts in it: after each test
 * the daemons are stopped (their logs printed when it failed) and the folder removed.
 */
export function daemonHarness(prefix: string): { dir: string; daemons: RunningDaemon[] } {
  const ctx = { dir: '', daemons: [] as RunningDaemon[] };
  beforeEach(async () => {
    ctx.dir = await tempDir(prefix);
    ctx.daemons = [];
  });
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') {
      // What the daemons said, to see why.
      for (const d of ctx.daemons) console.error(d.logs.map((l) => JSON.stringify(l)).join('\n') + d.stderr());
    }
    for (const d of ctx.daemons) await d.stop();
    await fsp.rm(ctx.dir, { recursive: true, force: true });
  });
  return ctx;
}
