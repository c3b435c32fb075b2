import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { api, daemonHarness, startDaemon, until, writeSetup, type RunningDaemon } from './helpers.js';

/**
 * The store's disk fills up, for real: the data dir is a small tmpfs, filled by syncing. The
 * daemon must stay up and say why nothing moves, and once the disk has room again, everything
 * reaches its owners with nothing lost. Mounting needs root; the mount is undone in a `finally`.
 * A kernel test (vitest.config.ts runs these alone, after every other file): it mounts.
 */

const root = process.getuid?.() === 0;
const haveMount = fs.existsSync('/usr/bin/mount') || fs.existsSync('/bin/mount');
const runnable = root && haveMount;
if (!runnable) {
  console.warn(
    `store-full: skipped: putting the data dir on a small tmpfs needs root and mount(8) (uid ${process.getuid?.()}, mount ${haveMount ? 'found' : 'missing'})`,
  );
}

const FILES = 4000;
const FULL = "the store's disk is full";

const harness = daemonHarness('ferry-store-full-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** The tmpfs mounted by the running test, if any. */
let mounted: string | null = null;

/** Unmounts the tmpfs; lazily if something (a daemon not yet stopped) still holds it. */
function unmount(): void {
  if (mounted === null) return;
  try {
    run('umount', [mounted]);
  } catch {
    run('umount', ['-l', mounted]);
  }
  mounted = null;
}

// A test that timed out never reaches its finally: the mount is undone here too, before the
// harness removes the folder (after hooks run in reverse order of registration).
afterEach(() => unmount());

/** Files under a folder (relative paths), Ferry's temporaries left out. */
function filesIn(folder: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const d of fs.readdirSync(path.join(folder, rel), { withFileTypes: true })) {
      if (d.name.startsWith('.ferry')) continue;
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out.sort();
}

describe.skipIf(!runnable)("the store's disk full", () => {
  it('pauses every entry with the reason while every route answers, and loses nothing once there is room', async () => {
    const dataDir = path.join(dir, 'data');
    await fsp.mkdir(dataDir);
    run('mount', ['-t', 'tmpfs', '-o', 'size=600k', 'tmpfs', dataDir]);
    mounted = dataDir;
    let d: RunningDaemon | undefined;
    try {
      const setupFile = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: [{ match: { path: '/' }, sync: ['A', 'B'] }] });
      d = await startDaemon(setupFile, ['--data-dir', dataDir]);
      daemons.push(d);
      const pid = d.process.pid;

      // Dropped into A while the daemon runs, B empty: recording them fills the store's disk.
      for (let f = 0; f < FILES / 100; f++) {
        await fsp.mkdir(path.join(dir, 'A', `d${f}`));
        // Each written under a name of Ferry's own and renamed into place: a copy of a file seen
        // half written, whose record the full disk then lost, would be B's own different
        // content at the rescan, kept as a conflict copy (rightly: the store cannot tell).
        await Promise.all(
          Array.from({ length: 100 }, async (_, i) => {
            const tmp = path.join(dir, 'A', `d${f}`, `.ferry-test-${i}`);
            await fsp.writeFile(tmp, `file ${f}/${i} `.repeat(8));
            await fsp.rename(tmp, path.join(dir, 'A', `d${f}`, `file-${i}.txt`));
          }),
        );
      }

      // Both entries say why nothing moves.
      for (const name of ['A', 'B']) {
        await until(
          `${name}'s status to say the store's disk is full`,
          async () => {
            const r = await api(d!.api, 'GET', `/entries/${name}/status`);
            return r.status === 200 && typeof r.body.reason === 'string' && r.body.reason.includes(FULL);
          },
          60_000,
        );
      }
      // Started again after their back-off, the entries meet the full disk again: still paused.
      const failures = () => d!.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes(FULL)).length;
      await until('a second attempt to meet the full disk', () => failures() >= 2, 60_000);

      // The daemon is up, and every route answers.
      expect(d.process.exitCode).toBeNull();
      for (const route of [
        '/entries',
        '/entries/A',
        '/entries/A/status',
        '/entries/B/status',
        '/files',
        '/files?limit=10',
        '/rules',
        '/transfers',
        '/debug/machines',
      ]) {
        const r = await api(d.api, 'GET', route);
        expect(r.status, `${route}: ${JSON.stringify(r.body)}`).toBe(200);
      }
      const status = await api(d.api, 'GET', '/entries/A/status');
      expect(['active', 'restarting']).toContain(status.body.status);
      expect(status.body.reason).toContain(FULL);
      // No actor failed: the failure was an event, handled.
      expect(d.logs.some((l) => typeof l.msg === 'string' && /^actor .* failed/.test(l.msg))).toBe(false);

      // Room again: the entries start again after their back-off, rescan, and catch up.
      run('mount', ['-o', 'remount,size=64m', dataDir]);
      await until(`all ${FILES} files in B`, () => filesIn(path.join(dir, 'B')).length === FILES, 120_000, 250);
      const inA = filesIn(path.join(dir, 'A'));
      expect(inA).toHaveLength(FILES);
      expect(filesIn(path.join(dir, 'B'))).toEqual(inA);
      for (const rel of inA) {
        expect(fs.readFileSync(path.join(dir, 'B', rel), 'utf8'), rel).toBe(fs.readFileSync(path.join(dir, 'A', rel), 'utf8'));
      }
      // The same daemon all along, and both entries running.
      expect(d.process.pid).toBe(pid);
      expect(d.process.exitCode).toBeNull();
      for (const name of ['A', 'B']) {
        await until(`${name} active`, async () => (await api(d!.api, 'GET', `/entries/${name}/status`)).body.status === 'active');
      }
      const listed = await api(d.api, 'GET', `/files?limit=${FILES + 10}`);
      expect(listed.status).toBe(200);
    } finally {
      await d?.stop();
      unmount();
    }
  }, 240_000);
});
