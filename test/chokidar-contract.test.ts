import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createRequire } from 'node:module';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { watch, type FSWatcher } from 'chokidar';
import { tempDir, until } from './helpers.js';
import { dropInternalEvents } from '../src/drivers/local-storage/watcher.js';

/**
 * What the local_storage watcher relies on in chokidar 5.0.0 beyond its documented API: with
 * files ignored it holds one inotify watch per folder, and every change of a file inside a
 * watched folder still arrives as a `raw` event naming the child (documented as internal). It
 * also replaces `_nodeFsHandler._handleRead` and calls `_closePath`. An upgrade that changes any
 * of this fails here, loudly, rather than leaving edits unseen.
 */

let dir: string;
let watcher: FSWatcher | null;
let raw: [string, string, string][];

/** inotify watches this process holds (lines `inotify wd:` of its inotify fds). */
function ownWatches(): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fdinfo')) {
    try {
      n += fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

async function folderWatcher(root: string): Promise<FSWatcher> {
  const w = watch(root, {
    ignored: (_p: string, s?: fs.Stats) => s !== undefined && !s.isDirectory(),
    ignoreInitial: true,
    atomic: false,
    followSymlinks: false,
  });
  w.on('raw', (event, name, details) => raw.push([event, String(name), (details as { watchedPath: string }).watchedPath]));
  await new Promise<void>((resolve) => w.once('ready', resolve));
  watcher = w;
  return w;
}

const sawChild = (folder: string, name: string) => () => raw.some(([, n, w]) => n === name && w === folder);

beforeEach(async () => {
  dir = await tempDir('ferry-chokidar-');
  watcher = null;
  raw = [];
});

afterEach(async () => {
  await watcher?.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('chokidar 5.0.0 watching folders only', () => {
  it('is the exact version the watcher was written against', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(createRequire(import.meta.url).resolve('chokidar')), 'package.json'), 'utf8'));
    expect(pkg.version).toBe('5.0.0');
  });

  it('holds one inotify watch per folder, none per file', async () => {
    for (const d of ['a', 'b', 'b/c']) {
      await fsp.mkdir(path.join(dir, d), { recursive: true });
      for (let i = 0; i < 50; i++) await fsp.writeFile(path.join(dir, d, `f${i}`), 'x');
    }
    const before = ownWatches();
    const w = await folderWatcher(dir);
    expect(ownWatches() - before).toBe(4); // the root, a, b and b/c
    expect(Object.keys(w.getWatched()).length).toBeGreaterThan(0);
  });

  it('reports an append, a create, a delete and a rename inside a folder as raw events naming the child', async () => {
    const a = path.join(dir, 'a');
    await fsp.mkdir(a);
    await fsp.writeFile(path.join(a, 'f1'), 'one');
    await fsp.writeFile(path.join(a, 'g2'), 'two');
    await fsp.writeFile(path.join(a, 'f3'), 'three');
    await folderWatcher(dir);

    await fsp.appendFile(path.join(a, 'f1'), 'more');
    await until('the append of f1', sawChild(a, 'f1'));
    await fsp.writeFile(path.join(a, 'new'), 'new');
    await until('the creation of new', sawChild(a, 'new'));
    await fsp.unlink(path.join(a, 'g2'));
    await until('the deletion of g2', sawChild(a, 'g2'));
    await fsp.rename(path.join(a, 'f3'), path.join(a, 'f3-renamed'));
    await until('the rename of f3', sawChild(a, 'f3'));
    await until('the rename to f3-renamed', sawChild(a, 'f3-renamed'));
    await fsp.chmod(path.join(a, 'f1'), 0o600);
    raw.length = 0;
    await fsp.chmod(path.join(a, 'f1'), 0o640);
    await until('the chmod of f1', sawChild(a, 'f1'));
    // A new folder is named in its parent's events.
    await fsp.mkdir(path.join(a, 'sub'));
    await until('the new folder sub', sawChild(a, 'sub'));
  });

  it('has the private members the watcher wraps or reads', async () => {
    const w = await folderWatcher(dir);
    const handler = (w as unknown as { _nodeFsHandler: { _handleRead: unknown } })._nodeFsHandler;
    expect(typeof handler._handleRead).toBe('function');
    expect(typeof (w as unknown as { _closePath: unknown })._closePath).toBe('function');
    // Its folder listings are asked without stats through this (see listWithoutStats).
    expect(typeof (w as unknown as { _readdirp: unknown })._readdirp).toBe('function');
    // A folder's watch is up once its closer is registered (the watcher relists new folders then).
    expect((w as unknown as { _closers: unknown })._closers).toBeInstanceOf(Map);
    expect((w as unknown as { _closers: Map<string, unknown> })._closers.has(dir)).toBe(true);
  });

  it("hears no event of Ferry's own names once the driver wraps fs.watch, which chokidar uses; every other name as before", async () => {
    dropInternalEvents();
    const a = path.join(dir, 'a');
    await fsp.mkdir(a);
    await folderWatcher(dir);
    // A copy as the driver makes it: a temporary, written, renamed into place.
    await fsp.writeFile(path.join(a, '.ferry-tmp-1'), 'x');
    await fsp.rename(path.join(a, '.ferry-tmp-1'), path.join(a, 'f1'));
    await fsp.writeFile(path.join(a, '.ferryignore'), '*.log\n');
    // inotify reports in order: the temporary's events came before these.
    await until('the rename into f1', sawChild(a, 'f1'));
    await until('the ignore file', sawChild(a, '.ferryignore'));
    expect(raw.filter(([, n]) => n.startsWith('.ferry-'))).toEqual([]);
    // A watched folder of such a name still hears its own removal.
    const own = path.join(dir, '.ferry-own');
    await fsp.mkdir(own);
    const heard: string[] = [];
    const w = fs.watch(own, (_event, name) => void heard.push(String(name)));
    try {
      await fsp.rmdir(own);
      await until("the folder's own removal", () => heard.includes('.ferry-own'));
    } finally {
      w.close();
    }
  });
});
