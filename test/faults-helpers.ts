import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { alive, api, CLI, running, startDaemon, tempDir, until, writeSetup, type RunningDaemon } from './helpers.js';

/**
 * Shared plumbing of the fault-injection tests (test/faults-*.test.ts): a temporary folder, the
 * daemons started in it, and a stack of undo steps (umount, chattr -i, kill, chmod) run after
 * every test, failed or not.
 */
export interface FaultContext {
  dir: string;
  daemons: RunningDaemon[];
  /** Undo steps, run last-in first-out after the test. */
  undo: (() => void | Promise<void>)[];
}

export function faultHarness(prefix: string): FaultContext {
  const ctx = { dir: '', daemons: [], undo: [] } as FaultContext;
  beforeEach(async () => {
    ctx.dir = await tempDir(prefix);
    ctx.daemons = [];
    ctx.undo = [];
  });
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') {
      for (const d of ctx.daemons) {
        console.error(d.logs.slice(-300).map((l) => JSON.stringify(l)).join('\n') + d.stderr());
      }
    }
    for (const step of ctx.undo.reverse()) {
      try {
        await step();
      } catch (err) {
        console.error(`cleanup step failed: ${(err as Error).message}`);
      }
    }
    for (const d of ctx.daemons) {
      const code = await Promise.race([d.stop(), new Promise((r) => setTimeout(() => r('timeout'), 15_000))]);
      if (code === 'timeout') d.process.kill('SIGKILL');
    }
    await fsp.rm(ctx.dir, { recursive: true, force: true });
  });
  return ctx;
}

export const ALL = (...entries: string[]) => [{ match: { path: '/' }, sync: entries }];

export async function setupIn(ctx: FaultContext, entries: string[] | Record<string, string>, rules?: unknown[]) {
  const map = Array.isArray(entries) ? Object.fromEntries(entries.map((e) => [e, e])) : entries;
  return writeSetup(ctx.dir, { entries: map, rules: rules ?? ALL(...Object.keys(map)) });
}

export async function daemonIn(ctx: FaultContext, setupFile: string, args: string[] = []): Promise<RunningDaemon> {
  const d = await startDaemon(setupFile, args);
  ctx.daemons.push(d);
  return d;
}

export async function status(d: RunningDaemon, entry: string): Promise<{ status: string; reason?: string }> {
  const res = await api(d.api, 'GET', `/entries/${entry}/status`);
  expect(res.status).toBe(200);
  return res.body;
}

/** The entry's worker pid from GET stats, or null while it does not run. */
export async function workerPid(d: RunningDaemon, entry: string): Promise<number | null> {
  const res = await api(d.api, 'GET', `/entries/${entry}/stats`);
  return res.status === 200 ? (res.body.info.pid as number) : null;
}

export { running };

/** The live (non-zombie) child processes of `pid`, as `ps -o pid= --ppid` lists them. */
export function childrenOf(pid: number): number[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  } catch {
    return []; // ps exits 1 when there is none
  }
  return out
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0 && running(n));
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Content of `mib` MiB, different for every `seed`: a random MiB with a counter in each. */
export function bigContent(mib: number, seed = randomBytes(8).toString('hex')): Buffer {
  const chunk = createHash('sha512').update(seed).digest();
  const block = Buffer.alloc(1 << 20);
  for (let i = 0; i < block.length; i += chunk.length) chunk.copy(block, i);
  const all = Buffer.alloc(mib << 20);
  for (let i = 0; i < mib; i++) {
    block.writeUInt32BE(i, 0);
    block.copy(all, i << 20);
  }
  // Random bytes too, so that no two runs (or versions) share blocks.
  randomBytes(4096).copy(all, 4);
  return all;
}

/**
 * Writes `content` outside the roots, then renames it to `target` at once: the watcher sees
 * one complete file. Returns its sha256.
 */
export async function dropBig(ctx: FaultContext, target: string, content: Buffer): Promise<string> {
  const staging = path.join(ctx.dir, `staging-${randomBytes(4).toString('hex')}.bin`);
  await fsp.writeFile(staging, content);
  await fsp.mkdir(path.dirname(target), { recursive: true });
  await fsp.rename(staging, target);
  return sha256(content);
}

export const PARTIAL = /^\.ferry-part-/;
export const TEMPORARY = /^\.ferry-(tmp|part)-/;

/** The temporaries (`.ferry-tmp-*`, `.ferry-part-*`) in a folder, with their sizes. */
export function temporaries(folder: string, pattern = TEMPORARY): { name: string; size: number }[] {
  let names: string[] = [];
  try {
    names = fs.readdirSync(folder);
  } catch {
    return [];
  }
  return names
    .filter((n) => pattern.test(n))
    .map((name) => ({ name, size: fs.statSync(path.join(folder, name), { throwIfNoEntry: false })?.size ?? -1 }))
    .filter((t) => t.size >= 0);
}

/**
 * Watches `file` every millisecond until stopped: whenever it exists, it must be complete (its
 * size is `size`); each new inode seen is hashed once after the watch (it must be `expected`).
 */
export function watchFinalName(file: string, accept: (size: number) => boolean) {
  const seen: { ino: number; size: number }[] = [];
  const torn: string[] = [];
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const s = fs.statSync(file, { throwIfNoEntry: false });
      if (s && !accept(s.size)) torn.push(`${file} seen with ${s.size} bytes`);
      if (s && !seen.some((x) => x.ino === s.ino && x.size === s.size)) seen.push({ ino: s.ino, size: s.size });
      await new Promise((r) => setTimeout(r, 1));
    }
  })();
  return {
    seen,
    torn,
    async stop() {
      stop = true;
      await loop;
    },
  };
}

/** Log lines whose message matches. */
export function logged(d: RunningDaemon, pattern: RegExp, entry?: string): Record<string, unknown>[] {
  return d.logs.filter((l) => typeof l.msg === 'string' && pattern.test(l.msg) && (entry === undefined || l.entry === entry));
}

/**
 * Log lines whose message matches, once there are at least `min` of them: a line can reach the
 * test after the API answer it preceded (both come through pipes).
 */
export async function waitLogged(
  d: RunningDaemon,
  pattern: RegExp,
  entry?: string,
  min = 1,
  timeout = 10_000,
): Promise<Record<string, unknown>[]> {
  return (await until(
    `${min} log line(s) /${pattern.source}/${entry ? ` of ${entry}` : ''}`,
    () => {
      const lines = logged(d, pattern, entry);
      return lines.length >= min ? lines : null;
    },
    timeout,
  ))!;
}

/** Runs the built `ferry` command; resolves with its exit code and output. */
export function ferry(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeout = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ferry ${args.join(' ')} did not exit within ${timeout} ms; stderr: ${stderr}`));
    }, timeout);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a command as root (mount, umount, chattr); throws with its stderr on failure. */
export function sh(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Whether this process may inject storage faults: mount a tmpfs, bind-mount read-only, and
 * `chattr +i` (root on Linux, with the tools). The tests that need it are skipped otherwise.
 */
export const STORAGE_FAULTS: { mount: boolean; chattr: boolean } = (() => {
  const result = { mount: false, chattr: false };
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return result;
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-probe-'));
  try {
    try {
      sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe]);
      sh('umount', [probe]);
      result.mount = true;
    } catch {
      // not permitted here
    }
    const file = path.join(probe, 'f');
    fs.writeFileSync(file, '');
    try {
      sh('chattr', ['+i', file]);
      sh('chattr', ['-i', file]);
      result.chattr = true;
    } catch {
      // no chattr, or a file system without the attribute
    }
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
  return result;
})();

/** Whether strace (with syscall fault injection) can be used to make a process's writes slow. */
export const CAN_SLOW_WRITES: boolean = (() => {
  try {
    const [major, minor] = /version (\d+)\.(\d+)/.exec(sh('strace', ['-V']))!.slice(1).map(Number);
    return process.platform === 'linux' && process.getuid?.() === 0 && (major > 5 || (major === 5 && minor >= 3));
  } catch {
    return false;
  }
})();

const tracerOf = (pid: number) => {
  try {
    return Number(/^TracerPid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  } catch {
    return -1;
  }
};

/**
 * A slow disk for one process: every write syscall of `pid` (all its threads) is held
 * `delayUs` µs by strace's fault injection, so that a large copy takes seconds however fast or
 * busy the machine is, and can be cut short in its middle. If strace starves, the writes only
 * wait longer. Undone after the test; a no-op where strace is not available (best effort).
 */
export async function slowWrites(ctx: FaultContext, pid: number, delayUs = 10_000): Promise<() => Promise<void>> {
  if (!CAN_SLOW_WRITES) return async () => {};
  const calls = 'write,pwrite64,writev,pwritev,pwritev2';
  const strace = spawn('strace', ['-f', '-qq', '-o', '/dev/null', '-e', `trace=${calls}`, '-e', `inject=${calls}:delay_exit=${delayUs}`, '-p', String(pid)], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => strace.once('exit', () => resolve()));
  const stop = async () => {
    if (strace.exitCode === null && strace.signalCode === null) strace.kill('SIGTERM');
    await exited;
  };
  ctx.undo.push(stop);
  await until(`strace attached to ${pid}`, () => tracerOf(pid) === strace.pid, 10_000);
  return stop;
}

/** Whether `dir` is a mount point (in /proc/self/mountinfo). */
export function isMountPoint(dir: string): boolean {
  const real = fs.realpathSync(dir);
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === real);
}

/** Unmounts everything mounted on `dir` (stacked mounts included); lazily if busy. */
export function unmountAll(dir: string): void {
  for (let i = 0; i < 5 && fs.existsSync(dir) && isMountPoint(dir); i++) {
    try {
      sh('umount', [dir]);
    } catch {
      sh('umount', ['-l', dir]);
    }
  }
}

export { api, until, type RunningDaemon };
