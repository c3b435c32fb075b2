import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { api, daemonHarness, startDaemon, until, writeSetup, type RunningDaemon } from './helpers.js';

/**
 * A worker's start-up scan sent in chunks (`scan.chunk` … `entry.scanned`), on real folders and
 * real daemons: chunks of 7 files here (FERRY_SCAN_CHUNK, which the workers inherit), so that a
 * few dozen files make several chunks.
 */

beforeAll(() => {
  process.env.FERRY_SCAN_CHUNK = '7';
});

const harness = daemonHarness('ferry-chunks-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const at = (entry: string, rel: string) => path.join(dir, entry, rel);
const NAMES = Array.from({ length: 40 }, (_, i) => `d${i % 4}/f${i}.txt`);

/** Every file under a root but Ferry's own: relative path → content. */
function tree(entry: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.ferry')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(path.join(dir, entry), p).split(path.sep).join('/')] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(path.join(dir, entry));
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

async function start(file: string): Promise<RunningDaemon> {
  const d = await startDaemon(file);
  daemons.push(d);
  return d;
}

async function fortyEverywhere(): Promise<{ file: string; d: RunningDaemon }> {
  const file = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: [{ match: { path: '/' }, sync: ['A', 'B'] }] });
  for (const n of NAMES) {
    await fsp.mkdir(path.dirname(at('A', n)), { recursive: true });
    await fsp.writeFile(at('A', n), `content of ${n}`);
  }
  const d = await start(file);
  await until('the forty files in B', () => JSON.stringify(tree('B')) === JSON.stringify(tree('A')) && Object.keys(tree('B')).length === 40);
  return { file, d };
}

describe('a start-up scan in chunks', () => {
  it('finds what changed while the daemon was down, across chunks: creations, edits, deletions, renames (as renames)', async () => {
    const { file, d } = await fortyEverywhere();
    const renamedIno = fs.statSync(at('B', NAMES[10]!)).ino;
    expect(await d.stop()).toBe(0);

    await fsp.writeFile(at('A', 'one.txt'), 'created while down');
    await fsp.mkdir(at('A', 'new'), { recursive: true });
    await fsp.writeFile(at('A', 'new/two.txt'), 'created while down, too');
    await fsp.writeFile(at('A', NAMES[0]!), 'edited while down');
    await fsp.writeFile(at('A', NAMES[39]!), 'edited while down, at the end');
    for (const n of NAMES.slice(20, 23)) await fsp.rm(at('A', n));
    await fsp.rename(at('A', NAMES[10]!), at('A', 'new/renamed.txt'));

    const again = await start(file);
    await until('B to hold what A holds', () => JSON.stringify(tree('B')) === JSON.stringify(tree('A')));
    // 39 files and 5 folders in A (folders are synced items too): six chunks of 7 and the final
    // report with the last 2.
    const scans = again.logs.filter((l) => l.entry === 'A' && typeof l.msg === 'string' && l.msg.startsWith('scanned A:'));
    expect(scans.map((l) => l.msg)).toEqual(['scanned A: 44 files (in 7 parts)']);
    // New: one.txt, new/two.txt and the folder new.
    // Other: the two edits, and the three folders whose entries changed (a new ctime, recorded).
    expect(scans[0]).toMatchObject({ new: 3, moved: 1, gone: 3, other: 5 });
    expect(Object.keys(tree('B'))).toHaveLength(40 + 2 - 3);
    expect(tree('B')[NAMES[0]!]).toBe('edited while down');
    expect(tree('B')['new/renamed.txt']).toBe(`content of ${NAMES[10]}`);
    // Found by inode across chunks: moved in B too, not copied again.
    expect(fs.statSync(at('B', 'new/renamed.txt')).ino).toBe(renamedIno);
    await until('the listing follows', async () => {
      const res = await api(again.api, 'GET', '/files?limit=1000');
      return res.body.files.length === 39 && res.body.files.every((f: { uptodate: string[] }) => f.uptodate.join() === 'A,B');
    });
  });

  it('refuses a chunked scan that finds most files gone: nothing deleted anywhere until a forced start', async () => {
    const { d } = await fortyEverywhere();
    expect((await api(d.api, 'PUT', '/entries/B/stop')).status).toBe(200);
    for (const n of NAMES.slice(0, 30)) await fsp.rm(at('B', n));
    const refused = await api(d.api, 'PUT', '/entries/B/start');
    expect(refused.status).toBe(409);
    expect(refused.body.reason).toMatch(/the rescan of B finds 30 of its 44 files gone; refusing/);
    expect(Object.keys(tree('A'))).toHaveLength(40);

    // A later start without force is refused the same way: the refused scan left nothing behind.
    expect((await api(d.api, 'PUT', '/entries/B/start')).body.reason).toMatch(/finds 30 of its 44 files gone/);
    expect((await api(d.api, 'PUT', '/entries/B/start?force=true')).status).toBe(200);
    await until('the deletions applied in A', () => Object.keys(tree('A')).length === 10);
    expect(tree('A')).toEqual(tree('B'));
  });
});

describe('a start-up scan that leaves out unchanged folders (folder digests)', () => {
  const scanLine = (d: RunningDaemon, entry: string) =>
    d.logs.filter((l) => l.entry === entry && typeof l.msg === 'string' && l.msg.startsWith(`scanned ${entry}:`)).map((l) => l.msg);

  it('a start where nothing changed lists no file; what changed while down is listed by its folders alone, and reaches B', async () => {
    const file = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: [{ match: { path: '/' }, sync: ['A', 'B'] }] });
    const names = Array.from({ length: 60 }, (_, i) => `d${i % 6}/f${i}.txt`);
    for (const n of names) {
      await fsp.mkdir(path.dirname(at('A', n)), { recursive: true });
      await fsp.writeFile(at('A', n), `content of ${n}`);
    }
    const first = await start(file);
    await until('the sixty files in B', () => Object.keys(tree('B')).length === 60);
    expect(await first.stop()).toBe(0);
    // The stop made the digests the next start compares with: every folder of A and of B has
    // one, and the mark that they are complete holds each entry's count (60 files, 6 folders).
    const store = new Database(path.join(dir, '.ferry', 'ferry.db'), { readonly: true });
    try {
      const kept = store.prepare("SELECT entry, folder, digest FROM scan_digests ORDER BY entry, folder").all() as { entry: string; folder: string; digest: string }[];
      expect(kept.filter((k) => k.folder === '/')).toEqual([
        { entry: 'A', folder: '/', digest: '66' },
        { entry: 'B', folder: '/', digest: '66' },
      ]);
      expect(kept.filter((k) => k.entry === 'A' && k.folder !== '/').map((k) => k.folder)).toEqual(['', 'd0', 'd1', 'd2', 'd3', 'd4', 'd5']);
    } finally {
      store.close();
    }
    // The first start listed every file (the store knew none); the next, none: every folder's
    // digest on disk is its replicas' (B's too, written by jobs). B's top folder is listed
    // once: its six folders were made by jobs before their files, which changed their ctimes.
    expect(scanLine(first, 'A')).toEqual(['scanned A: 66 files (in 10 parts)']);
    const second = await start(file);
    expect(scanLine(second, 'A')).toEqual(['scanned A: 0 files (in 1 part), 7 unchanged folders left out']);
    expect(scanLine(second, 'B')).toEqual(['scanned B: 6 files (in 1 part), 6 unchanged folders left out']);
    expect(await second.stop()).toBe(0);
    const third = await start(file);
    expect(scanLine(third, 'B')).toEqual(['scanned B: 0 files (in 1 part), 7 unchanged folders left out']);
    expect(await third.stop()).toBe(0);

    // While down: an edit in d0, a deletion in d1, a creation in d2, a rename from d2 to a new
    // folder, and a chmod in d3. d4 and d5 are untouched.
    await fsp.writeFile(at('A', names[0]!), 'edited while down');
    await fsp.rm(at('A', names[1]!));
    await fsp.writeFile(at('A', 'd2/created.txt'), 'created while down');
    await fsp.mkdir(at('A', 'new'));
    await fsp.rename(at('A', names[8]!), at('A', 'new/renamed.txt'));
    await fsp.chmod(at('A', names[3]!), 0o600);
    const fourth = await start(file);
    await until('B to hold what A holds', () => JSON.stringify(tree('B')) === JSON.stringify(tree('A')));
    // Listed: the top folder (its folders' records changed), d0, d1, d2, d3 and new.
    // Left out: d4 and d5.
    expect(scanLine(fourth, 'A')).toEqual(['scanned A: 47 files (in 7 parts), 2 unchanged folders left out']);
    expect(tree('B')[names[0]!]).toBe('edited while down');
    expect(tree('B')[names[1]!]).toBeUndefined();
    expect(tree('B')['d2/created.txt']).toBe('created while down');
    expect(tree('B')['new/renamed.txt']).toBe(`content of ${names[8]}`);
    await until('the chmod in B', () => (fs.statSync(at('B', names[3]!)).mode & 0o777) === 0o600);
    expect(await fourth.stop()).toBe(0);

    // An edit B's store does not know of, in a folder whose digest B recorded: found.
    await fsp.writeFile(at('B', names[5]!), 'edited in B while down');
    await start(file);
    await until('the edit in A', () => tree('A')[names[5]!] === 'edited in B while down');
    expect(tree('A')).toEqual(tree('B'));
  });
});
