import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import createLocalStorage from '../src/drivers/local-storage/local-storage.js';
import { childLine, listingDigest } from '../src/folder-digest.js';
import { DriverRefusal, type Driver } from '../src/drivers/driver.js';
import type { JobCommand } from '../src/drivers/protocol.js';
import { isFolderStat, type FileStat, type WorkerReport } from '../machines/reports.js';
import { statOf as driverStatOf } from '../src/drivers/local-storage/stat.js';
import { tempDir, until } from './helpers.js';

/** The local_storage driver in-process, on a real temp tree: what it reports and what its jobs do. */

let dir: string;
let root: string;
let source: string;
let outside: string;
let reports: WorkerReport[];
/** Conflict copies the driver said it made: [path, conflict name]. */
let conflicts: [string, string][];
let drivers: Driver[];
let nextJobId: number;

beforeEach(async () => {
  dir = await tempDir('ferry-ls-');
  root = path.join(dir, 'root');
  source = path.join(dir, 'source');
  outside = path.join(dir, 'outside');
  for (const d of [root, source, outside]) await fsp.mkdir(d);
  reports = [];
  conflicts = [];
  drivers = [];
  nextJobId = 1;
});

afterEach(async () => {
  await Promise.all(drivers.map((d) => d.stop().catch(() => {})));
  await fsp.rm(dir, { recursive: true, force: true });
});

function driverOn(driverRoot: string, knownFiles = 0, digests?: ReadonlyMap<string, string>, options: Record<string, unknown> = {}): Driver {
  const driver = createLocalStorage({
    entry: 'A',
    options: { root: driverRoot, ...options },
    knownFiles,
    digests: async () => digests ?? new Map(),
    report: (r) => void reports.push(r),
    log: () => {},
    progress: () => {},
    conflict: (rel, name) => void conflicts.push([rel, name]),
  });
  drivers.push(driver);
  return driver;
}

async function put(base: string, rel: string, content: string | Buffer): Promise<void> {
  const file = path.join(base, rel);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, content);
}

function statOf(file: string): FileStat {
  const s = fs.lstatSync(file);
  return { size: s.size, mtime: s.mtimeMs, ino: String(s.ino), mode: s.mode & 0o7777, ctime: s.ctimeMs };
}

/** Reports about `rel` (as path or as the origin of a move). */
const about = (rel: string) =>
  reports.filter((r) => ('path' in r && r.path === rel) || (r.type === 'file.moved' && r.from === rel));

const has = (type: WorkerReport['type'], rel: string) => () =>
  reports.find((r) => r.type === type && 'path' in r && r.path === rel);

/**
 * Every report the watcher still owes for what happened before this call: a sentinel file is
 * created, then deleted, and its deletion (which waits out the rename window and chokidar's
 * atomic delay) is awaited. Events are delivered in order, so anything earlier has arrived.
 */
async function settle(base = root): Promise<void> {
  const name = `sentinel-${nextJobId++}-${Math.random().toString(36).slice(2)}`;
  await put(base, name, 'x');
  await until(`report of ${name}`, has('file.changed', name));
  await fsp.rm(path.join(base, name));
  await until(`deletion of ${name}`, has('file.deleted', name));
}

function upload(rel: string, opts: { expect?: FileStat | null; preserve?: boolean; from?: string } = {}): JobCommand {
  const sourceRoot = opts.from ?? source;
  return {
    id: nextJobId++,
    kind: 'upload',
    path: rel,
    source: { entry: 'S', driver: 'local_storage', options: { root: sourceRoot } },
    sourceStat: statOf(path.join(sourceRoot, rel)),
    expect: opts.expect ?? null,
    preserve: opts.preserve ?? false,
  };
}

/** Every file under `base` (relative path → content), symlinks shown as `-> target`; not the root's marker. */
function tree(base: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (d === base && e.name === '.ferry-entry') continue;
      const rel = path.relative(base, p).split(path.sep).join('/');
      if (e.isSymbolicLink()) out[rel] = `-> ${fs.readlinkSync(p)}`;
      else if (e.isDirectory()) walk(p);
      else out[rel] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(base);
  return out;
}

describe('local_storage: the scan', () => {
  it('reports one entry.scanned listing every file with its size', async () => {
    await put(root, 'a.txt', 'abc');
    await put(root, 'sub/deeper/b.bin', Buffer.alloc(1000, 7));
    await put(root, 'empty', '');
    await driverOn(root).start();

    expect(reports).toHaveLength(1);
    const scanned = reports[0];
    expect(scanned.type).toBe('entry.scanned');
    if (scanned.type !== 'entry.scanned') return;
    expect(scanned.entry).toBe('A');
    const files = scanned.files
      .map((f) => ({ path: f.path, size: f.size, folder: isFolderStat(f) }))
      .sort((a, b) => a.path.localeCompare(b.path));
    // Folders are listed too (their mode says so; size and mtime 0), so that empty ones sync.
    expect(files).toEqual([
      { path: 'a.txt', size: 3, folder: false },
      { path: 'empty', size: 0, folder: false },
      { path: 'sub', size: 0, folder: true },
      { path: 'sub/deeper', size: 0, folder: true },
      { path: 'sub/deeper/b.bin', size: 1000, folder: false },
    ]);
    for (const f of scanned.files) {
      const s = fs.statSync(path.join(root, f.path));
      expect(f.ino).toBe(String(s.ino));
      expect(f.mode).toBe(s.isDirectory() ? s.mode & 0o177777 : s.mode & 0o7777);
      expect(f.mtime).toBe(s.isDirectory() ? 0 : s.mtimeMs);
    }
  });

  it('leaves its own temporaries out of the scan and removes them', async () => {
    await put(root, 'real.txt', 'real');
    await put(root, 'sub/.ferry-tmp-0123456789abcdef', 'half a transfer');
    await driverOn(root).start();
    const scanned = reports[0];
    expect(scanned.type === 'entry.scanned' && scanned.files.map((f) => f.path).sort()).toEqual(['real.txt', 'sub']);
    expect(fs.existsSync(path.join(root, 'sub/.ferry-tmp-0123456789abcdef'))).toBe(false);
  });

  it('rejects start() with a DriverRefusal when the root does not exist', async () => {
    const driver = driverOn(path.join(dir, 'missing'));
    const started = driver.start();
    await expect(started).rejects.toBeInstanceOf(DriverRefusal);
    await expect(started).rejects.toThrow(/does not exist/);
    expect(reports).toEqual([]);
  });

  it('rejects start() when the root is a file', async () => {
    await put(dir, 'plain', 'not a folder');
    await expect(driverOn(path.join(dir, 'plain')).start()).rejects.toBeInstanceOf(DriverRefusal);
  });

  it('rejects start() when the root is empty but the store says it held files', async () => {
    const started = driverOn(root, 3).start();
    await expect(started).rejects.toBeInstanceOf(DriverRefusal);
    await expect(started).rejects.toThrow(/empty/);
    expect(reports.filter((r) => r.type === 'entry.scanned')).toEqual([]);
  });

  it('starts on an empty root the store knows nothing of', async () => {
    await driverOn(root, 0).start();
    expect(reports).toEqual([{ type: 'entry.scanned', entry: 'A', files: [] }]);
  });

  it('sends the first scan of a root the store knows nothing of in chunks as it walks it, each thing once, with no digests', async () => {
    for (let f = 0; f < 6; f++) {
      await fsp.mkdir(path.join(root, `d${f}`));
      for (let i = 0; i < 400; i++) await fsp.writeFile(path.join(root, `d${f}`, `f${i}.txt`), `${f}/${i}`);
    }
    await driverOn(root, 0).start();
    const scan = reports.filter((r) => r.type === 'scan.chunk' || r.type === 'entry.scanned');
    // 2,406 things (6 folders, 2,400 files): chunks of 100, 200, 400 and 800 (the first ones
    // small, so that the first copies start early), the rest at the end (less than 1,000).
    expect(scan.map((r) => `${r.type} ${'files' in r ? r.files.length : ''}`)).toEqual([
      'scan.chunk 100',
      'scan.chunk 200',
      'scan.chunk 400',
      'scan.chunk 800',
      'entry.scanned 906',
    ]);
    const files = scan.flatMap((r) => ('files' in r ? r.files : []));
    expect(new Set(files.map((f) => f.path)).size).toBe(2406);
    expect(isFolderStat(files.find((f) => f.path === 'd3')!)).toBe(true);
    expect(files.find((f) => f.path === 'd5/f399.txt')).toMatchObject({ size: 5 });
    const last = scan[4];
    expect(last?.type === 'entry.scanned' && last.digests).toBeUndefined();
  });

  it("reports a first scan's chunks only once the root has its marker", async () => {
    for (let f = 0; f < 3; f++) {
      await fsp.mkdir(path.join(root, `d${f}`));
      for (let i = 0; i < 700; i++) await fsp.writeFile(path.join(root, `d${f}`, `f${i}.txt`), `${f}/${i}`);
    }
    const marker = path.join(root, '.ferry-entry');
    const seen: [string, number, boolean][] = [];
    const driver = createLocalStorage({
      entry: 'A',
      options: { root },
      knownFiles: 0,
      digests: async () => new Map(),
      report: (r) => void (r.type === 'scan.chunk' || r.type === 'entry.scanned' ? seen.push([r.type, r.files.length, fs.existsSync(marker)]) : null),
      log: () => {},
      progress: () => {},
      conflict: () => {},
    });
    drivers.push(driver);
    await driver.start();
    // 2,103 things: chunks of 100, 200, 400 and 800 whenever the marker came, the rest at the end.
    expect(seen).toEqual([
      ['scan.chunk', 100, true],
      ['scan.chunk', 200, true],
      ['scan.chunk', 400, true],
      ['scan.chunk', 800, true],
      ['entry.scanned', 603, true],
    ]);
  });

  it('leaves out the files of each folder whose digest is the one given, and lists the others', async () => {
    await put(root, 'a.txt', 'abc');
    await put(root, 'same/b.txt', 'b');
    await put(root, 'same/c.txt', 'c');
    await put(root, 'other/d.txt', 'd');
    const line = (rel: string) => {
      const s = fs.lstatSync(path.join(root, rel));
      return childLine(path.basename(rel), s.isDirectory() ? 0 : s.size, s.isDirectory() ? 0 : s.mtimeMs, s.ctimeMs, s.ino, s.isDirectory() ? s.mode & 0o177777 : s.mode & 0o7777);
    };
    const given = new Map([
      ['same', listingDigest([line('same/b.txt'), line('same/c.txt')])],
      // Not what other holds now (d.txt's mtime differs).
      ['other', listingDigest([childLine('d.txt', 1, 1, 1, fs.lstatSync(path.join(root, 'other/d.txt')).ino, 0o644)])],
      ['', listingDigest([line('a.txt'), line('same'), line('other')])],
    ]);
    // (A root the store knows: its marker, and the files it held.)
    await put(root, '.ferry-entry', '{}');
    await driverOn(root, 4, given).start();
    const scanned = reports[0];
    if (scanned?.type !== 'entry.scanned') throw new Error('no scan');
    expect(scanned.files.map((f) => f.path).sort()).toEqual(['other/d.txt']);
    expect(scanned.digests!.map((d) => [d.folder, d.listed]).sort()).toEqual([['', false], ['other', true], ['same', false]]);
    expect(scanned.digests!.find((d) => d.folder === 'same')!.digest).toBe(given.get('same'));
  });
});

describe('local_storage: watching', () => {
  it('reports what changed while its start-up scan ran, once the scan is reported', async () => {
    await put(root, '.ferry-entry', '{}');
    await put(root, 'docs/a.txt', 'before');
    await put(root, 'b.txt', 'b');
    const driver = createLocalStorage({
      entry: 'A',
      options: { root },
      knownFiles: 2,
      // Asked once the tree is walked and watched, before the scan is reported: the changes made
      // now come while the scan runs, after it listed those files.
      digests: async () => {
        await fsp.writeFile(path.join(root, 'docs/a.txt'), 'after, longer');
        await fsp.rm(path.join(root, 'b.txt'));
        await new Promise((r) => setTimeout(r, 300));
        return new Map();
      },
      report: (r) => void reports.push(r),
      log: () => {},
      progress: () => {},
      conflict: () => {},
    });
    drivers.push(driver);
    await driver.start();
    const scanned = reports.find((r) => r.type === 'entry.scanned');
    if (scanned?.type !== 'entry.scanned') throw new Error('no scan');
    // The scan says what it listed, before the changes…
    expect(scanned.files.find((f) => f.path === 'docs/a.txt')).toMatchObject({ size: 6 });
    expect(scanned.files.map((f) => f.path)).toContain('b.txt');
    // …and the changes follow it, as changes.
    await until('the edit reported', () => reports.find((r) => r.type === 'file.changed' && r.path === 'docs/a.txt' && r.stat.size === 13));
    await until('the deletion reported', has('file.deleted', 'b.txt'));
    expect(reports.findIndex((r) => r.type === 'file.changed' && r.path === 'docs/a.txt')).toBeGreaterThan(reports.indexOf(scanned));
  });

  it('reports a creation, an edit and a deletion', async () => {
    await driverOn(root).start();
    reports.length = 0;

    await put(root, 'dir/new.txt', 'hello');
    // Its final state: a loaded machine may let the watcher see it once between its creation and
    // its write (settle_ms is 2 ms), and report it again once written.
    const created = await until('file.changed of a new file', () =>
      reports.find((r) => r.type === 'file.changed' && r.path === 'dir/new.txt' && r.stat.size === 5),
    );
    expect(created).toMatchObject({ entry: 'A', stat: { size: 5 } });

    await fsp.appendFile(path.join(root, 'dir/new.txt'), ', world');
    const edited = await until('file.changed of an edit', () =>
      reports.find((r) => r.type === 'file.changed' && r.path === 'dir/new.txt' && r.stat.size === 12),
    );
    expect(edited).toMatchObject({ stat: { size: 12, ino: String(fs.statSync(path.join(root, 'dir/new.txt')).ino) } });

    await fsp.rm(path.join(root, 'dir/new.txt'));
    await until('file.deleted', has('file.deleted', 'dir/new.txt'));
    expect(about('dir/new.txt').map((r) => r.type).at(-1)).toBe('file.deleted');
  });

  it('reports a rename as ONE file.moved, with no deletion or change for either name', async () => {
    await put(root, 'old.txt', 'moving content');
    const ino = String(fs.statSync(path.join(root, 'old.txt')).ino);
    await driverOn(root).start();
    reports.length = 0;

    await fsp.rename(path.join(root, 'old.txt'), path.join(root, 'new.txt'));
    await until('file.moved', has('file.moved', 'new.txt'));
    await settle();

    expect(about('old.txt')).toEqual([
      { type: 'file.moved', entry: 'A', from: 'old.txt', path: 'new.txt', stat: expect.objectContaining({ ino, size: 14 }) },
    ]);
    expect(about('new.txt')).toHaveLength(1);
  });

  it('reports a rename as a move when its new name is looked at before its old one', async () => {
    await put(root, 'old.txt', 'moving content');
    // Events settle for 100 ms here, so that the test sees the old name settling.
    const driver = driverOn(root, 0, undefined, { settle_ms: 100 });
    await driver.start();
    reports.length = 0;
    // The old name's event settles after the new name's (as under load, when its look comes
    // later): its timer is armed again, longer, right after the rename.
    const watcher = (driver as unknown as { watcher: { settling: Map<string, NodeJS.Timeout>; look(rel: string): void } }).watcher;
    await fsp.rename(path.join(root, 'old.txt'), path.join(root, 'new.txt'));
    await until('the old name settling', () => watcher.settling.has('old.txt'));
    clearTimeout(watcher.settling.get('old.txt'));
    watcher.settling.set('old.txt', setTimeout(() => {
      watcher.settling.delete('old.txt');
      watcher.look('old.txt');
    }, 250));
    await until('file.moved', has('file.moved', 'new.txt'));
    await settle();
    expect(about('old.txt')).toEqual([expect.objectContaining({ type: 'file.moved', from: 'old.txt', path: 'new.txt' })]);
    expect(about('new.txt')).toHaveLength(1);
  });

  it('reports a rename into another folder as a move', async () => {
    await put(root, 'a/one.txt', 'one');
    await driverOn(root).start();
    reports.length = 0;

    await fsp.mkdir(path.join(root, 'b'));
    await fsp.rename(path.join(root, 'a/one.txt'), path.join(root, 'b/one.txt'));
    await until('file.moved', has('file.moved', 'b/one.txt'));
    await settle();
    expect(about('a/one.txt')).toEqual([expect.objectContaining({ type: 'file.moved', from: 'a/one.txt', path: 'b/one.txt' })]);
  });

  it('reports the final state of each edit, even when the truncate and the write come together', async () => {
    await put(root, 'edited.bin', 'v0');
    await driverOn(root).start();
    for (let i = 1; i <= 20; i++) {
      const content = Buffer.alloc(1000 + i * 37, i);
      await fsp.writeFile(path.join(root, 'edited.bin'), content); // truncate, then write
      await until(`edit ${i} reported with its final size`, () =>
        reports.find((r) => r.type === 'file.changed' && r.path === 'edited.bin' && r.stat.size === content.length),
      );
    }
  });

  it('reports every file written at once into freshly made nested folders (mkdir -p, then write)', async () => {
    await driverOn(root).start();
    reports.length = 0;
    // chokidar lists a new folder before it watches it; files landing in between must not be lost.
    const names: string[] = [];
    for (let i = 0; i < 20; i++) {
      for (const rel of [`n${i}/a/one.pdf`, `n${i}/a/two.pdf`, `n${i}/a/sub/three.pdf`, `n${i}/a/sub/deeper/four.pdf`]) {
        await put(root, rel, `content of ${rel}`);
        names.push(rel);
      }
    }
    await until('every file reported', () => names.every((n) => has('file.changed', n)()));
    await fsp.writeFile(path.join(root, 'n0/a/sub/deeper/four.pdf'), 'edited later');
    await until('an edit in a folder found late', () =>
      reports.find((r) => r.type === 'file.changed' && r.path === 'n0/a/sub/deeper/four.pdf' && r.stat.size === 12),
    );
  });

  it('reports every file of a removed folder deleted, those it found by listing a new folder too', async () => {
    await driverOn(root).start();
    reports.length = 0;
    // Written at once into new folders: chokidar misses some, which the driver finds itself and
    // chokidar then never reports the removal of.
    const names: string[] = [];
    for (let i = 0; i < 20; i++) {
      for (const rel of [`gone/n${i}/a.pdf`, `gone/n${i}/sub/b.pdf`]) {
        await put(root, rel, `content of ${rel}`);
        names.push(rel);
      }
    }
    await until('every file reported', () => names.every((n) => has('file.changed', n)()));
    await fsp.rm(path.join(root, 'gone'), { recursive: true });
    await until('every file reported deleted', () => names.every((n) => has('file.deleted', n)()));
    await settle();
    for (const n of names) expect(reports.filter((r) => r.type === 'file.deleted' && r.path === n), n).toHaveLength(1);
  });

  it('does not report a symlink inside the root pointing outside, nor what it leads to', async () => {
    await put(outside, 'secret.txt', 'secret');
    await put(outside, 'folder/inner.txt', 'inner');
    await fsp.symlink(path.join(outside, 'secret.txt'), path.join(root, 'link-at-scan'));
    await put(root, 'real.txt', 'real');
    await driverOn(root).start();
    const scanned = reports[0];
    expect(scanned.type === 'entry.scanned' && scanned.files.map((f) => f.path)).toEqual(['real.txt']);
    reports.length = 0;

    await fsp.symlink(path.join(outside, 'secret.txt'), path.join(root, 'link-live'));
    await fsp.symlink(path.join(outside, 'folder'), path.join(root, 'folder-link'));
    await settle();
    expect(reports.filter((r) => !('path' in r) || !r.path.startsWith('sentinel-'))).toEqual([]);
  });
});

describe('local_storage: jobs', () => {
  it('runs an upload, a move and a delete without reporting them back (no echo)', async () => {
    const driver = driverOn(root);
    await driver.start();
    reports.length = 0;
    /** A folder a job made, as its outcome names it (and as the watcher would have reported it). */
    // (Its ctime as it was made: the file written in it since moved the folder's.)
    const made = (...rels: string[]) =>
      rels.map((rel) => ({ path: rel, stat: { ...driverStatOf(fs.lstatSync(path.join(root, rel))), ctime: expect.any(Number) } }));

    await put(source, 'docs/report.pdf', Buffer.from('%PDF-1.4 some bytes'));
    const up = await driver.run(upload('docs/report.pdf'));
    // The folder made on the way is the job's: named in its outcome, never reported by the watcher.
    expect(up).toEqual({ ok: true, stat: statOf(path.join(root, 'docs/report.pdf')), folders: made('docs') });
    expect(fs.readFileSync(path.join(root, 'docs/report.pdf'))).toEqual(fs.readFileSync(path.join(source, 'docs/report.pdf')));
    // The copy keeps the source's modification time (to the millisecond a Date holds).
    const drift = statOf(path.join(root, 'docs/report.pdf')).mtime - statOf(path.join(source, 'docs/report.pdf')).mtime;
    expect(Math.abs(drift)).toBeLessThan(2);
    await settle();
    expect(about('docs/report.pdf')).toEqual([]);
    expect(about('docs')).toEqual([]);

    const before = statOf(path.join(root, 'docs/report.pdf'));
    const moved = await driver.run({ id: nextJobId++, kind: 'move', from: 'docs/report.pdf', path: 'archive/2024/report.pdf', expect: before });
    // As it is after the move (the rename changed its ctime only).
    expect(moved).toEqual({ ok: true, stat: statOf(path.join(root, 'archive/2024/report.pdf')), folders: made('archive', 'archive/2024') });
    expect(moved.ok && moved.stat).toMatchObject({ size: before.size, mtime: before.mtime, ino: before.ino, mode: before.mode });
    expect(fs.existsSync(path.join(root, 'docs/report.pdf'))).toBe(false);
    // Folders are items of their own: one a move emptied stays (the store decides its fate).
    expect(fs.existsSync(path.join(root, 'docs'))).toBe(true);
    expect(statOf(path.join(root, 'archive/2024/report.pdf')).ino).toBe(before.ino);
    await settle();
    expect(about('docs/report.pdf')).toEqual([]);
    expect(about('archive/2024/report.pdf')).toEqual([]);
    expect([...about('archive'), ...about('archive/2024')]).toEqual([]);

    const del = await driver.run({ id: nextJobId++, kind: 'delete', path: 'archive/2024/report.pdf', expect: before });
    expect(del).toEqual({ ok: true, stat: null });
    expect(tree(root)).toEqual({});
    await settle();
    expect(about('archive/2024/report.pdf')).toEqual([]);
  });

  it('overwrites a file it expects, without a conflict copy and without an echo', async () => {
    await put(root, 'note.txt', 'old');
    const driver = driverOn(root);
    await driver.start();
    reports.length = 0;

    await put(source, 'note.txt', 'new content');
    const outcome = await driver.run(upload('note.txt', { expect: statOf(path.join(root, 'note.txt')) }));
    expect(outcome.ok).toBe(true);
    await settle();
    expect(tree(root)).toEqual({ 'note.txt': 'new content' });
    expect(about('note.txt')).toEqual([]);
  });

  it('keeps an unexpected different file at the destination as a sync-conflict copy', async () => {
    await put(root, 'dir/note.txt', 'local edits nobody has seen');
    const driver = driverOn(root);
    await driver.start();
    reports.length = 0;

    await put(source, 'dir/note.txt', 'the other version');
    const outcome = await driver.run(upload('dir/note.txt', { expect: null }));
    expect(outcome.ok).toBe(true);

    const files = tree(root);
    expect(files['dir/note.txt']).toBe('the other version');
    const copies = Object.keys(files).filter((f) => f !== 'dir/note.txt');
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatch(/^dir\/note\.sync-conflict-\d{8}-\d{6}-A\.txt$/);
    expect(files[copies[0]]).toBe('local edits nobody has seen');
    expect(conflicts).toEqual([['dir/note.txt', copies[0]]]);
    // The conflict copy is a new file for the others to get.
    await until('the conflict copy reported', has('file.changed', copies[0]));
    await settle();
    expect(about('dir/note.txt')).toEqual([]);
  });

  it('keeps the destination as a conflict copy when it changed since the job was made (stat differs)', async () => {
    await put(root, 'note.txt', 'as the store knows it');
    const known = statOf(path.join(root, 'note.txt'));
    const driver = driverOn(root);
    await driver.start();
    await fsp.writeFile(path.join(root, 'note.txt'), 'edited just now, not synced yet');

    await put(source, 'note.txt', 'incoming');
    const outcome = await driver.run(upload('note.txt', { expect: known }));
    expect(outcome.ok).toBe(true);
    const files = tree(root);
    expect(Object.values(files).sort()).toEqual(['edited just now, not synced yet', 'incoming']);
    expect(files['note.txt']).toBe('incoming');
  });

  it('does not make a conflict copy of an identical file', async () => {
    await put(root, 'same.txt', 'identical');
    const driver = driverOn(root);
    await driver.start();
    await put(source, 'same.txt', 'identical');
    expect((await driver.run(upload('same.txt', { expect: null }))).ok).toBe(true);
    expect(tree(root)).toEqual({ 'same.txt': 'identical' });
    expect(conflicts).toEqual([]);
  });

  it('answers stale for an upload whose source changed, a delete or a move of a file that changed', async () => {
    await put(root, 'kept.txt', 'kept');
    const driver = driverOn(root);
    await driver.start();

    await put(source, 's.txt', 'v1');
    const job = upload('s.txt');
    await fsp.writeFile(path.join(source, 's.txt'), 'version two');
    expect(await driver.run(job)).toMatchObject({ ok: false, reason: 'stale' });
    expect(fs.existsSync(path.join(root, 's.txt'))).toBe(false);

    // Grown past what a small copy reads (the job's size and one byte more), and made a folder.
    await put(source, 'grown.txt', 'small');
    const grown = upload('grown.txt');
    await fsp.writeFile(path.join(source, 'grown.txt'), Buffer.alloc(1 << 20, 1));
    expect(await driver.run(grown)).toMatchObject({ ok: false, reason: 'stale' });
    await put(source, 'folder.txt', 'a file');
    const folder = upload('folder.txt');
    await fsp.rm(path.join(source, 'folder.txt'));
    await fsp.mkdir(path.join(source, 'folder.txt'));
    expect(await driver.run(folder)).toMatchObject({ ok: false, reason: 'stale' });
    expect(fs.existsSync(path.join(root, 'grown.txt')) || fs.existsSync(path.join(root, 'folder.txt'))).toBe(false);

    const wrong = { size: 999, mtime: 1, ino: '1' };
    expect(await driver.run({ id: nextJobId++, kind: 'delete', path: 'kept.txt', expect: wrong })).toMatchObject({ ok: false, reason: 'stale' });
    expect(await driver.run({ id: nextJobId++, kind: 'move', from: 'kept.txt', path: 'moved.txt', expect: wrong })).toMatchObject({ ok: false, reason: 'stale' });
    expect(tree(root)).toEqual({ 'kept.txt': 'kept' });
  });

  it('does not move over an existing file', async () => {
    await put(root, 'a.txt', 'a');
    await put(root, 'b.txt', 'b');
    const driver = driverOn(root);
    await driver.start();
    const outcome = await driver.run({ id: nextJobId++, kind: 'move', from: 'a.txt', path: 'b.txt', expect: statOf(path.join(root, 'a.txt')) });
    expect(outcome.ok).toBe(false);
    expect(tree(root)).toEqual({ 'a.txt': 'a', 'b.txt': 'b' });
  });
});

describe('local_storage: hostile paths in jobs', () => {
  const hostile = ['../x', '../outside/x', '/etc/passwd', 'a\\b', 'a\0b', 'x'.repeat(300), 'a/../../x', './x', 'a//b', ''];

  it.each(hostile.map((p) => [JSON.stringify(p).slice(0, 40), p]))('refuses %s in every kind of job', async (_shown, bad) => {
    await put(root, 'inside.txt', 'inside');
    await put(outside, 'x', 'outside file');
    const driver = driverOn(root);
    await driver.start();
    const rootBefore = tree(root);
    const dirBefore = tree(dir);
    const passwd = fs.readFileSync('/etc/passwd', 'utf8');
    const inside = statOf(path.join(root, 'inside.txt'));

    const sourceStat = { size: 6, mtime: inside.mtime, ino: null };
    const jobs: JobCommand[] = [
      {
        id: nextJobId++,
        kind: 'upload',
        path: bad,
        source: { entry: 'S', driver: 'local_storage', options: { root: source } },
        sourceStat,
        expect: null,
        preserve: false,
      },
      { id: nextJobId++, kind: 'delete', path: bad, expect: inside },
      { id: nextJobId++, kind: 'move', from: 'inside.txt', path: bad, expect: inside },
      { id: nextJobId++, kind: 'move', from: bad, path: 'pulled-in.txt', expect: inside },
    ];
    for (const job of jobs) {
      const outcome = await driver.run(job);
      expect(outcome, `${job.kind} of ${JSON.stringify(bad)}`).toMatchObject({ ok: false });
    }
    expect(tree(root)).toEqual(rootBefore);
    expect(tree(dir)).toEqual(dirBefore);
    expect(fs.readFileSync('/etc/passwd', 'utf8')).toBe(passwd);
  });

  it('refuses a path through a symlinked folder that points outside the root', async () => {
    await put(outside, 'victim.txt', 'must survive');
    await fsp.symlink(outside, path.join(root, 'link'));
    await put(root, 'inside.txt', 'inside');
    // The source holds a real folder of that name: only the destination's side is hostile.
    await put(source, 'link/evil.txt', 'evil');
    await put(source, 'link/victim.txt', 'overwrite attempt');
    await put(source, 'link/new/deeper.txt', 'into a folder not created yet');
    const driver = driverOn(root);
    await driver.start();
    const inside = statOf(path.join(root, 'inside.txt'));
    const victim = statOf(path.join(outside, 'victim.txt'));

    const outcomes = [
      await driver.run(upload('link/evil.txt')),
      await driver.run(upload('link/victim.txt', { expect: victim })),
      await driver.run(upload('link/new/deeper.txt')),
      await driver.run({ id: nextJobId++, kind: 'delete', path: 'link/victim.txt', expect: victim }),
      await driver.run({ id: nextJobId++, kind: 'move', from: 'inside.txt', path: 'link/moved.txt', expect: inside }),
      await driver.run({ id: nextJobId++, kind: 'move', from: 'link/victim.txt', path: 'stolen.txt', expect: victim }),
    ];
    for (const outcome of outcomes) expect(outcome).toMatchObject({ ok: false, reason: 'error' });
    expect(tree(outside)).toEqual({ 'victim.txt': 'must survive' });
    expect(tree(root)).toEqual({ 'inside.txt': 'inside', link: `-> ${outside}` });
  });

  it('refuses to read the source through a symlinked folder that points outside its root', async () => {
    await put(outside, 'secret.txt', 'secret');
    await fsp.symlink(outside, path.join(source, 'link'));
    const driver = driverOn(root);
    await driver.start();
    const outcome = await driver.run({
      id: nextJobId++,
      kind: 'upload',
      path: 'link/secret.txt',
      source: { entry: 'S', driver: 'local_storage', options: { root: source } },
      sourceStat: statOf(path.join(outside, 'secret.txt')),
      expect: null,
      preserve: false,
    });
    expect(outcome).toMatchObject({ ok: false });
    expect(tree(root)).toEqual({});
  });
});
