import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeEach, describe, expect, it } from 'vitest';
import { api, CLI, daemonHarness, startDaemon, until, type RunningDaemon } from './helpers.js';

/**
 * What the watcher cannot see, said and covered, with the kernel's inotify limits lowered for
 * real. These change machine-wide settings, so they run in a project of their own after every
 * other test file (vitest.config.ts) and restore each setting in a `finally`.
 */

const WATCHES = '/proc/sys/fs/inotify/max_user_watches';
const QUEUE = '/proc/sys/fs/inotify/max_queued_events';
const root = process.getuid?.() === 0;
const canWrite = (file: string) => {
  try {
    fs.accessSync(file, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
};
const runnable = root && canWrite(WATCHES) && canWrite(QUEUE);
if (!runnable) {
  console.warn(`kernel-limits: skipped: lowering ${WATCHES} and ${QUEUE} needs root (uid ${process.getuid?.()}) and a writable /proc/sys`);
}

const harness = daemonHarness('ferry-kernel-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const readNumber = (file: string) => Number(fs.readFileSync(file, 'utf8').trim());

/** Sets a /proc/sys value for the length of `body`, restored even when it throws. */
async function withSetting<T>(file: string, value: number, body: () => Promise<T>): Promise<T> {
  const before = readNumber(file);
  fs.writeFileSync(file, String(value));
  try {
    return await body();
  } finally {
    fs.writeFileSync(file, String(before));
  }
}

/** inotify watches held by every process (all run as this user here). */
function watchesInUse(): number {
  let n = 0;
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fdinfo`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        n += fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
      } catch {
        // gone meanwhile
      }
    }
  }
  return n;
}

async function writeSetup(options: Record<string, unknown>): Promise<string> {
  const entries: Record<string, unknown> = {};
  for (const name of ['A', 'B']) {
    await fsp.mkdir(path.join(dir, name), { recursive: true });
    entries[name] = { driver: 'local_storage', options: { root: name, ...options } };
  }
  const file = path.join(dir, 'setup.json');
  await fsp.writeFile(file, JSON.stringify({ entries, rules: [{ match: { path: '/' }, sync: ['A', 'B'] }] }, null, 2));
  return file;
}

async function daemon(setupFile: string): Promise<RunningDaemon> {
  const d = await startDaemon(setupFile);
  daemons.push(d);
  return d;
}

const inB = (rel: string, content: string) => () => {
  try {
    return fs.readFileSync(path.join(dir, 'B', rel), 'utf8') === content;
  } catch {
    return false;
  }
};

/** Files in a folder, Ferry's own temporaries left out. */
const countIn = (folder: string) => {
  try {
    return fs.readdirSync(folder).filter((n) => !n.startsWith('.ferry-')).length;
  } catch {
    return 0;
  }
};

async function workerPid(d: RunningDaemon, entry: string): Promise<number> {
  const stats = await until(`${entry}'s worker`, async () => {
    const r = await api(d.api, 'GET', `/entries/${entry}/stats`);
    return r.status === 200 ? r.body : null;
  });
  return stats.info.pid as number;
}

describe.skipIf(!runnable)('inotify limits', () => {
  it('rescans the folders the kernel refused to watch, and says so in status', async () => {
    const folders = 40;
    for (let i = 0; i < folders; i++) {
      await fsp.mkdir(path.join(dir, 'A', `d${i}`), { recursive: true });
      await fsp.writeFile(path.join(dir, 'A', `d${i}`, 'f.txt'), `v1 ${i}`);
    }
    const setupFile = await writeSetup({ poll_interval: 1 });
    // Room for about half of A's 41 folders; B's new folders find none either.
    const limit = watchesInUse() + 20;
    await withSetting(WATCHES, limit, async () => {
      const d = await daemon(setupFile);
      const status = await until('a status naming the limit', async () => {
        const r = await api(d.api, 'GET', '/entries/A/status');
        return typeof r.body.reason === 'string' && r.body.reason.includes('max_user_watches') ? r.body : null;
      });
      expect(status.status).toBe('active');
      expect(status.reason).toMatch(
        new RegExp(`^watching \\d+ of 41 folders: fs\\.inotify\\.max_user_watches \\(${limit}\\) reached; the other \\d+ are rescanned every 1 s$`),
      );
      const [, watched, , polled] = /watching (\d+) of (\d+) folders.*the other (\d+)/.exec(status.reason)!;
      expect(Number(watched) + Number(polled)).toBe(41);
      expect(Number(polled)).toBeGreaterThan(0);
      const metrics = await (await fetch(`${d.url}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`ferry_polled_folders\\{entry="A"\\} ${polled}`));
      expect(metrics).toMatch(new RegExp(`ferry_watched_folders\\{entry="A"\\} ${watched}`));

      for (let i = 0; i < folders; i++) await until(`d${i}/f.txt in B`, inB(`d${i}/f.txt`, `v1 ${i}`));
      // An edit in every folder, watched or not, reaches B within the poll interval (and a margin).
      for (let i = 0; i < folders; i++) await fsp.writeFile(path.join(dir, 'A', `d${i}`, 'f.txt'), `v2 ${i}`);
      for (let i = 0; i < folders; i++) await until(`the edit of d${i}/f.txt in B`, inB(`d${i}/f.txt`, `v2 ${i}`), 10_000);

      // A rename in every folder, watched or not, is a rename in B too: B's copy keeps its inode.
      // (A polled folder's listing pairs the name gone with the new one of the same inode.)
      await until('the edits recorded in B', async () => {
        const r = await api(d.api, 'GET', '/files?limit=1000');
        const files = r.body.files as { filename: string; uptodate: string[] }[];
        return files.filter((f) => /^d\d+\/f\.txt$/.test(f.filename) && f.uptodate.join() === 'A,B').length === folders;
      });
      const inodes = Array.from({ length: folders }, (_, i) => fs.statSync(path.join(dir, 'B', `d${i}`, 'f.txt')).ino);
      for (let i = 0; i < folders; i++) await fsp.rename(path.join(dir, 'A', `d${i}`, 'f.txt'), path.join(dir, 'A', `d${i}`, 'g.txt'));
      for (let i = 0; i < folders; i++) {
        await until(`the rename in d${i} in B`, () => inB(`d${i}/g.txt`, `v2 ${i}`)() && !fs.existsSync(path.join(dir, 'B', `d${i}`, 'f.txt')), 10_000);
        expect(fs.statSync(path.join(dir, 'B', `d${i}`, 'g.txt')).ino, `d${i}`).toBe(inodes[i]);
      }
    });
  });

  it('finds what the kernel dropped when its queue overflowed: on demand, and by the periodic rescan', async () => {
    for (const [label, options, rescanBy] of [
      ['on demand', { rescan_interval: 3600 }, 'cli'],
      ['periodic', { rescan_interval: 2 }, 'interval'],
    ] as const) {
      await fsp.rm(path.join(dir, 'A'), { recursive: true, force: true });
      await fsp.rm(path.join(dir, 'B'), { recursive: true, force: true });
      await fsp.rm(path.join(dir, '.ferry'), { recursive: true, force: true });
      await fsp.mkdir(path.join(dir, 'A', 'many'), { recursive: true });
      await fsp.writeFile(path.join(dir, 'A', 'many', 'first.txt'), 'first');
      const setupFile = await writeSetup(options);
      // The queue's length is taken when a worker's inotify instance is made: at its start.
      const d = await withSetting(QUEUE, 64, () => daemon(setupFile));
      await until(`${label}: first.txt in B`, inB('many/first.txt', 'first'));
      const pid = await workerPid(d, 'A');
      const count = 600;
      process.kill(pid, 'SIGSTOP');
      try {
        for (let i = 0; i < count; i++) fs.writeFileSync(path.join(dir, 'A', 'many', `f${i}.txt`), `file ${i}`);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      const many = path.join(dir, 'B', 'many');
      if (rescanBy === 'cli') {
        // The kernel kept 64 events of the 1,200 or more: most files went unseen.
        await new Promise((r) => setTimeout(r, 1500));
        expect(countIn(many)).toBeLessThan(count / 2);
        const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'entries', 'rescan', 'A', '--api', d.url]);
        expect(stdout).toBe('A: rescanned\n');
      }
      await until(`${label}: all ${count} files in B`, () => countIn(many) === count + 1, 30_000);
      for (let i = 0; i < count; i += 97) expect(inB(`many/f${i}.txt`, `file ${i}`)()).toBe(true);
      await d.stop();
    }
  });
});
