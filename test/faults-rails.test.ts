import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { fidOf } from '../src/paths.js';
import {
  api,
  bigContent,
  daemonIn,
  dropBig,
  faultHarness,
  ferry,
  logged,
  waitLogged,
  setupIn,
  sh,
  sha256File,
  STORAGE_FAULTS,
  status,
  temporaries,
  unmountAll,
  until,
  type RunningDaemon,
} from './faults-helpers.js';
import { writeWhole } from './helpers.js';

/**
 * Issue 5, the safety rails and failing storage: roots that are not the disk they were, rescans
 * and reloads that would delete most files, storage that refuses writes (a read-only mount, an
 * immutable folder, a full disk), and hostile names, through the real daemon on real folders.
 */

const ctx = faultHarness('ferry-faults-rails-');
const at = (entry: string, rel: string) => path.join(ctx.dir, entry, rel);

async function put(entry: string, rel: string, content: string | Buffer): Promise<void> {
  await fsp.mkdir(path.dirname(at(entry, rel)), { recursive: true });
  // Whole in one step: a half-written file seen and synced makes a job of its own, and the
  // attempts counted below would be two jobs' first ones.
  await writeWhole(at(entry, rel), content);
}

const read = (entry: string, rel: string) => fs.readFileSync(at(entry, rel), { encoding: 'utf8', flag: 'r' });
const holds = (entry: string, rel: string, content: string) => () => {
  try {
    return read(entry, rel) === content;
  } catch {
    return false;
  }
};

/** The user's files of a root (Ferry's own `.ferry-*` left out), relative paths, sorted. */
function userFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.ferry')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

const NAMES = Array.from({ length: 20 }, (_, i) => `f${String(i).padStart(2, '0')}.txt`);

/** A daemon over `entries` with the 20 files of NAMES written in A and synced everywhere. */
async function twentyFilesEverywhere(entries: string[], rules?: unknown[]): Promise<RunningDaemon> {
  const d = await daemonIn(ctx, await setupIn(ctx, entries, rules));
  for (const n of NAMES) await put('A', n, `content of ${n}`);
  await until('the 20 files everywhere, up to date', async () => {
    const res = await api(d.api, 'GET', '/files?limit=100');
    return res.body.files.length === 20 && res.body.files.every((f: { uptodate: string[] }) => f.uptodate.length === entries.length);
  }, 30_000);
  return d;
}

describe('safety rails: roots that are not what they were', () => {
  it('a missing root: the entry stays stopped, with the reason in GET status and in the log; it starts once the root is back', async () => {
    const file = await setupIn(ctx, ['A', 'B']);
    await fsp.rm(path.join(ctx.dir, 'B'), { recursive: true });
    const d = await daemonIn(ctx, file);
    const st = await status(d, 'B');
    expect(st.status).toBe('stopped');
    expect(st.reason).toMatch(/^root .*\/B does not exist$/);
    expect(await waitLogged(d, /^refused to start: root .* does not exist$/, 'B')).toHaveLength(1);
    expect(fs.existsSync(path.join(ctx.dir, 'B')), 'the missing root is not created').toBe(false);

    await fsp.mkdir(path.join(ctx.dir, 'B'));
    await put('A', 'x.txt', 'x');
    expect((await api(d.api, 'PUT', '/entries/B/start')).status).toBe(200);
    expect(await status(d, 'B')).toEqual(expect.objectContaining({ status: 'active' }));
    expect((await status(d, 'B')).reason).toBeUndefined();
    await until('x.txt in B', holds('B', 'x.txt', 'x'));
  });

  it('a root that lost its .ferry-entry marker while the store says it held files refuses to start; nothing is deleted', async () => {
    const d = await twentyFilesEverywhere(['A', 'B']);
    expect((await api(d.api, 'PUT', '/entries/B/stop')).status).toBe(200);
    // Another disk mounted there, or the wrong folder: the files may look alike, the marker is gone.
    await fsp.rm(at('B', '.ferry-entry'));
    const start = await api(d.api, 'PUT', '/entries/B/start');
    expect(start.status).toBe(409);
    expect(start.body.reason).toMatch(/could not start: root .* has lost its marker \.ferry-entry but the store says it held 20 files/);
    const st = await status(d, 'B');
    expect(st.status).toBe('stopped');
    expect(st.reason).toMatch(/lost its marker/);
    expect(await waitLogged(d, /^refused to start: root .* has lost its marker/, 'B')).toHaveLength(1);
    expect(userFiles(path.join(ctx.dir, 'A'))).toEqual(NAMES);

    // Put back by the user, as the message says: it starts, and syncs again.
    await fsp.writeFile(at('B', '.ferry-entry'), '{}\n');
    expect((await api(d.api, 'PUT', '/entries/B/start')).status).toBe(200);
    await put('A', 'later.txt', 'later');
    await until('later.txt in B', holds('B', 'later.txt', 'later'));
    for (const e of ['A', 'B']) expect(userFiles(path.join(ctx.dir, e))).toEqual([...NAMES, 'later.txt'].sort());
  });

  it('a rescan that would delete more than half (≥ 10 files) pauses the entry; nothing is deleted elsewhere until a forced start', async () => {
    const d = await twentyFilesEverywhere(['A', 'B', 'C']);
    expect((await api(d.api, 'PUT', '/entries/B/stop')).status).toBe(200);
    const gone = NAMES.slice(0, 15);
    for (const n of gone) await fsp.rm(at('B', n));
    const start = await api(d.api, 'PUT', '/entries/B/start');
    expect(start.status).toBe(409);
    expect(start.body.reason).toMatch(/^entry B could not start: the rescan of B finds 15 of its 20 files gone; refusing to delete them elsewhere/);
    const st = await status(d, 'B');
    expect(st.status).toBe('stopped');
    expect(st.reason).toMatch(/the rescan of B finds 15 of its 20 files gone; refusing to delete them elsewhere/);
    expect(await waitLogged(d, /^the rescan of B finds 15 of its 20 files gone/)).toHaveLength(1);
    // Anything that refusal had let through would be done before this later file reaches C.
    await put('A', 'later.txt', 'later');
    await until('later.txt in C', holds('C', 'later.txt', 'later'));
    expect(userFiles(path.join(ctx.dir, 'A'))).toEqual([...NAMES, 'later.txt'].sort());
    expect(userFiles(path.join(ctx.dir, 'C'))).toEqual([...NAMES, 'later.txt'].sort());
    expect((await status(d, 'B')).status).toBe('stopped');

    const forced = await ferry(['entries', 'start', 'B', '--force', '--api', d.url]);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/^B: /);
    const left = NAMES.slice(15);
    await until('the deletions applied everywhere', () =>
      ['A', 'B', 'C'].every((e) => JSON.stringify(userFiles(path.join(ctx.dir, e))) === JSON.stringify([...left, 'later.txt'].sort())),
    );
    expect((await status(d, 'B')).status).toBe('active');
  });

  it('a rules reload that would delete most of an entry’s files (a ban) stops that entry until a forced start', async () => {
    const d = await twentyFilesEverywhere(['A', 'B']);
    const rules = [
      { match: { path: '/' }, sync: ['A'] },
      { match: { path: '/' }, ban: ['B'] },
    ];
    expect((await api(d.api, 'PUT', '/rules', { rules })).status).toBe(200);
    expect((await api(d.api, 'PUT', '/rules/reload')).status).toBe(200);
    const st = await until('B stopped by the reload', async () => {
      const s = await status(d, 'B');
      return s.status === 'stopped' ? s : null;
    });
    expect(st!.reason).toMatch(/the rules would delete 20 of the 20 files of B; refusing/);
    await waitLogged(d, /^the rules would delete 20 of the 20 files of B/, 'B');
    // Give a wrongly let-through deletion time to show.
    await put('A', 'later.txt', 'later');
    await until('later.txt listed', async () => (await api(d.api, 'GET', '/files?limit=100')).body.files.length === 21);
    expect(userFiles(path.join(ctx.dir, 'B'))).toEqual(NAMES);
    // Unforced, the start is refused for the same reason: exit 1 with it, and B stays stopped.
    const plain = await ferry(['entries', 'start', 'B', '--api', d.url]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/^ferry: entry B could not start: the rules would delete 20 of the 20 files of B; refusing/);
    expect((await status(d, 'B')).status).toBe('stopped');
    expect(userFiles(path.join(ctx.dir, 'B'))).toEqual(NAMES);

    const forced = await ferry(['entries', 'start', 'B', '--force', '--api', d.url]);
    expect(forced.code, forced.stderr).toBe(0);
    await until('B emptied by the ban', () => userFiles(path.join(ctx.dir, 'B')).length === 0);
    expect(userFiles(path.join(ctx.dir, 'A'))).toEqual([...NAMES, 'later.txt'].sort());
    expect((await status(d, 'B')).status).toBe('active');
  });
});

/** The job-failure log lines of an entry: attempts and time. */
const failures = (d: RunningDaemon, entry: string) =>
  logged(d, /^job failed: /, entry).map((l) => ({ attempts: l.attempts as number, time: l.time as number, msg: l.msg as string }));

describe('failing storage', () => {
  const cases: { name: string; can: boolean; error: RegExp; inject: () => string; remove: () => void }[] = [
    {
      name: "B's root remounted read-only (a bind mount)",
      can: STORAGE_FAULTS.mount,
      error: /read-only file system/i,
      inject: () => {
        const root = path.join(ctx.dir, 'B');
        sh('mount', ['--bind', root, root]);
        ctx.undo.push(() => unmountAll(root));
        sh('mount', ['-o', 'remount,ro,bind', root]);
        return 'doc.txt';
      },
      remove: () => unmountAll(path.join(ctx.dir, 'B')),
    },
    {
      name: "a subfolder of B made immutable (chattr +i)",
      can: STORAGE_FAULTS.chattr,
      error: /operation not permitted/i,
      inject: () => {
        const sub = path.join(ctx.dir, 'B', 'sub');
        fs.mkdirSync(sub, { recursive: true });
        sh('chattr', ['+i', sub]);
        ctx.undo.push(() => void sh('chattr', ['-i', sub]));
        return 'sub/doc.txt';
      },
      remove: () => void sh('chattr', ['-i', path.join(ctx.dir, 'B', 'sub')]),
    },
  ];

  for (const c of cases) {
    it.skipIf(!c.can)(`${c.name}: the job is retried with back-off, status says why, the others carry on; the file arrives once fixed`, async () => {
      const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B', 'C']));
      await until('B running', async () => (await status(d, 'B')).status === 'active');
      const rel = c.inject();
      await put('A', rel, 'must reach B in the end');
      await until(`${rel} in C`, holds('C', rel, 'must reach B in the end'));
      // Two failed attempts, the second after a delay: retried, not dropped.
      const failed = await until('two failed attempts in B', () => {
        const f = failures(d, 'B');
        return f.length >= 2 ? f : null;
      }, 30_000);
      expect(failed![0].attempts).toBe(1);
      expect(failed![1].attempts).toBe(2);
      expect(failed![1].time - failed![0].time).toBeGreaterThanOrEqual(900);
      for (const f of failed!) expect(f.msg).toMatch(c.error);
      const st = await status(d, 'B');
      expect(st.status).toBe('active');
      expect(st.reason).toMatch(/^1 job\(s\) failing and retried; last error: /);
      expect(st.reason).toMatch(c.error);
      const transfers = await api(d.api, 'GET', '/transfers');
      const waiting = transfers.body.entries.find((e: { name: string }) => e.name === 'B').waiting;
      expect(waiting).toEqual([expect.objectContaining({ filename: rel, attempts: expect.any(Number), lastError: expect.stringMatching(c.error) })]);
      // The daemon and the other entries carry on.
      await put('A', 'other.txt', 'A to C during the fault');
      await until('other.txt in C', holds('C', 'other.txt', 'A to C during the fault'));
      expect((await status(d, 'A')).status).toBe('active');
      expect(temporaries(path.dirname(at('B', rel)))).toEqual([]);

      c.remove();
      await until(`${rel} in B once fixed`, holds('B', rel, 'must reach B in the end'), 40_000, 100);
      await until('B clean again', async () => (await status(d, 'B')).reason === undefined);
    });
  }

  it.skipIf(!STORAGE_FAULTS.mount)('a full disk (a tiny tmpfs): ENOSPC is retried, a file too big to fit does not block the small ones, and it arrives once there is room', async () => {
    const root = path.join(ctx.dir, 'B');
    await fsp.mkdir(root);
    sh('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', root]);
    ctx.undo.push(() => unmountAll(root));
    const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B', 'C']));
    await until('B running', async () => (await status(d, 'B')).status === 'active');

    // 48 MiB: streamed through a resumable partial file, on a disk of 40.
    const expected = await dropBig(ctx, at('A', 'big.bin'), bigContent(48));
    await until('big.bin failed in B', () => failures(d, 'B').some((f) => /no space left/i.test(f.msg)), 30_000);
    const st = await status(d, 'B');
    expect(st.status).toBe('active');
    expect(st.reason).toMatch(/no space left on device/i);
    await until('big.bin in C', () => fs.statSync(at('C', 'big.bin'), { throwIfNoEntry: false })?.size === 48 << 20, 30_000);

    // The disk is not left full of what could not fit: a small file still goes to B.
    await put('A', 'small.txt', 'small, fits');
    await until('small.txt in B', holds('B', 'small.txt', 'small, fits'), 20_000);
    expect(fs.existsSync(at('B', 'big.bin'))).toBe(false);

    sh('mount', ['-o', 'remount,size=128m', root]);
    await until('big.bin in B once there is room', () => fs.statSync(at('B', 'big.bin'), { throwIfNoEntry: false })?.size === 48 << 20, 90_000, 100);
    expect(await sha256File(at('B', 'big.bin'))).toBe(expected);
    await until('no temporary left in B', () => temporaries(root).length === 0);
  });
});

describe('hostile paths through the real daemon', () => {
  it('on real folders: a backslash name, symlinks out of the root, a path deeper than PATH_MAX are skipped with a log line; odd but legal names sync', async () => {
    const outside = path.join(ctx.dir, 'outside');
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, 'secret.txt'), 'outside the roots');
    const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B']));
    await until('B running', async () => (await status(d, 'B')).status === 'active');

    await put('A', 'a\\b.txt', 'a backslash in the name');
    await put('A', 'dir\\..\\..\\escape.txt', 'backslashes and dots');
    await fsp.symlink(path.join(outside, 'secret.txt'), at('A', 'link-to-secret.txt'));
    await fsp.symlink(outside, at('A', 'link-to-outside'));
    await fsp.symlink('../outside', at('A', 'relative-link'));
    const long = 'L'.repeat(251) + '.txt'; // 255 bytes: the longest legal name
    await put('A', long, 'a long but legal name');
    await put('A', '..dots..', 'dots, but no ".." segment');
    await put('A', 'sub/...', 'three dots');
    await put('A', 'ok.txt', 'plain');
    // A path deeper than PATH_MAX (4096 bytes), made folder by folder with relative paths.
    const segment = 'd'.repeat(200);
    sh('bash', ['-c', `cd "$1" && for i in $(seq 1 22); do mkdir ${segment} && cd ${segment}; done && echo deep > deep.txt`, '-', path.join(ctx.dir, 'A')]);
    // Node's recursive rm cannot go that deep; GNU rm can.
    for (const entry of ['A', 'B']) {
      ctx.undo.push(() => void sh('bash', ['-c', `cd "$1" && rm -rf ${segment}`, '-', path.join(ctx.dir, entry)]));
    }

    for (const [rel, content] of [[long, 'a long but legal name'], ['..dots..', 'dots, but no ".." segment'], ['sub/...', 'three dots'], ['ok.txt', 'plain']]) {
      await until(`${rel.slice(0, 20)} in B`, holds('B', rel, content));
    }
    await until('the refusals logged', () =>
      logged(d, /^ignored a reported path: path contains a backslash$/, 'A').length >= 2 &&
      logged(d, /^skipped a symlink leading out of the root: /, 'A').length >= 3 &&
      logged(d, /^watcher error: ENAMETOOLONG/, 'A').length >= 1,
      30_000,
    );
    const listed = (await api(d.api, 'GET', '/files?limit=100')).body.files.map((f: { filename: string }) => f.filename).sort();
    expect(listed).toEqual([long, '..dots..', 'ok.txt', 'sub/...'].sort());
    expect(userFiles(path.join(ctx.dir, 'B'))).toEqual([long, '..dots..', 'ok.txt', 'sub/...'].sort());
    // The folders on the way are legal (shorter than PATH_MAX) and sync like any folder; the
    // file beyond PATH_MAX does not.
    const deepInB = sh('bash', ['-c', `cd "$1" && find . -name deep.txt | wc -l`, '-', path.join(ctx.dir, 'B')]);
    expect(String(deepInB).trim()).toBe('0');
    expect((await status(d, 'A')).status).toBe('active');
    expect(fs.readdirSync(outside)).toEqual(['secret.txt']);
    expect(fs.readdirSync(ctx.dir).sort()).toEqual(['.ferry', 'A', 'B', 'outside', 'setup.json']);
  });

  it('a symlinked folder in the destination that leads out of its root is never written through', async () => {
    const outside = path.join(ctx.dir, 'outside');
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, 'victim.txt'), 'must survive');
    const file = await setupIn(ctx, ['A', 'B']);
    await fsp.symlink(outside, at('B', 'docs'));
    const d = await daemonIn(ctx, file);
    await put('A', 'docs/victim.txt', 'overwrite attempt');
    await put('A', 'docs/new.txt', 'planted outside');
    await put('A', 'fine.txt', 'fine');
    await until('fine.txt in B', holds('B', 'fine.txt', 'fine'));
    await until('both refused in B', () =>
      ['victim.txt', 'new.txt'].every((n) =>
        logged(d, new RegExp(`^job failed: refused path "docs/${n.replace('.', '\\.')}": a folder on the path leads out of the root$`), 'B').length > 0,
      ),
    );
    expect((await status(d, 'B')).reason).toMatch(/job\(s\) failing and retried; last error: refused path "docs\//);
    expect(fs.readdirSync(outside)).toEqual(['victim.txt']);
    expect(fs.readFileSync(path.join(outside, 'victim.txt'), 'utf8')).toBe('must survive');
    await waitLogged(d, /^skipped a symlink leading out of the root: /, 'B');
  });

  it('hostile names planted in the store (.., absolute, NUL, backslash, too long) are refused with a log line, never followed', async () => {
    // The bait: what each hostile name would reach from A's root, and where B's copy would land.
    const file = await setupIn(ctx, { A: 'roots/A', B: 'roots/deep/B' });
    const bait = path.join(ctx.dir, 'roots', 'bait.txt');
    await fsp.writeFile(bait, 'bait: must never be read into B nor written');
    const first = await daemonIn(ctx, file);
    await put('roots/A', 'seed.txt', 'seed');
    await until('seed in B', () => fs.existsSync(path.join(ctx.dir, 'roots/deep/B/seed.txt')));
    expect(await first.stop()).toBe(0);

    const s = fs.statSync(bait);
    const hostile = [
      '../bait.txt',
      'x/../../bait.txt',
      bait, // absolute
      'bait.txt\0../../bait.txt',
      '..\\bait.txt',
      `${'d/'.repeat(2100)}bait.txt`, // over 4096 bytes
      `${'n'.repeat(300)}/../../bait.txt`,
    ];
    const db = new Database(path.join(ctx.dir, '.ferry', 'ferry.db'));
    try {
      for (const name of hostile) {
        const fid = fidOf(name);
        db.prepare(
          `INSERT INTO files (fid, filename, size, version, owners, uptodate, deleted) VALUES (?, ?, ?, 1, '["A","B"]', '["A"]', 0)`,
        ).run(fid, name, s.size);
        // As if A held it, with the bait's very size and mtime: followed, the copy would go through.
        db.prepare(`INSERT INTO replicas (entry, fid, filename, version, size, mtime, ino) VALUES ('A', ?, ?, 1, ?, ?, ?)`).run(
          fid,
          name,
          s.size,
          s.mtimeMs,
          String(s.ino),
        );
        db.prepare(`INSERT INTO jobs (entry, fid, kind, version) VALUES ('B', ?, 'upload', 1)`).run(fid);
      }
    } finally {
      db.close();
    }
    const before = fs.readdirSync(path.join(ctx.dir, 'roots')).sort();

    const d = await daemonIn(ctx, file);
    await until('every hostile job refused by B', () => logged(d, /^job failed: refused path /, 'B').length >= hostile.length, 30_000);
    const reasons = logged(d, /^job failed: refused path /, 'B').map((l) => l.msg as string);
    expect(reasons.some((r) => /path has a "\.\." segment/.test(r))).toBe(true);
    expect(reasons.some((r) => /path is absolute/.test(r))).toBe(true);
    expect(reasons.some((r) => /path contains NUL/.test(r))).toBe(true);
    expect(reasons.some((r) => /path contains a backslash/.test(r))).toBe(true);
    expect(reasons.some((r) => /path is too long/.test(r))).toBe(true);
    // A's rescan does not find them: their deletion is refused too, with a log line, not applied.
    await waitLogged(d, /^ignored a reported path: /, 'A', hostile.length);

    // Nothing was read or written outside the roots; the daemon carries on.
    await put('roots/A', 'after.txt', 'after');
    await until('after.txt in B', () => fs.existsSync(path.join(ctx.dir, 'roots/deep/B/after.txt')));
    expect(fs.readFileSync(bait, 'utf8')).toBe('bait: must never be read into B nor written');
    expect(fs.statSync(bait).mtimeMs).toBe(s.mtimeMs);
    expect(fs.readdirSync(path.join(ctx.dir, 'roots')).sort()).toEqual(before);
    expect(fs.readdirSync(path.join(ctx.dir, 'roots', 'deep')).sort()).toEqual(['B']);
    expect(userFiles(path.join(ctx.dir, 'roots/deep/B'))).toEqual(['after.txt', 'seed.txt']);
    expect((await status(d, 'A')).status).toBe('active');
    expect((await status(d, 'B')).status).toBe('active');
  });
});
