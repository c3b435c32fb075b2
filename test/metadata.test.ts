import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { beforeEach, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/store/catalogue.js';
import { api, daemonHarness, startDaemon, until, writeSetup, type RunningDaemon } from './helpers.js';

/** Permission bits travel like content (issue 9); a chmod alone is applied in place. */

const harness = daemonHarness('ferry-meta-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const at = (entry: string, rel: string) => path.join(dir, entry, rel);
const modeOf = (file: string) => fs.statSync(file).mode & 0o7777;

async function daemon(): Promise<RunningDaemon> {
  const file = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: [{ match: { path: '/' }, sync: ['A', 'B'] }] });
  const d = await startDaemon(file);
  daemons.push(d);
  return d;
}

/** The file is in B with these bytes and this mode, and the daemon lists it up to date in both. */
async function arrived(d: RunningDaemon, rel: string, content: string, mode: number): Promise<void> {
  await until(`${rel} in B with mode ${mode.toString(8)}`, () => {
    try {
      return fs.readFileSync(at('B', rel), 'utf8') === content && modeOf(at('B', rel)) === mode;
    } catch {
      return false;
    }
  });
  await until(`${rel} up to date in A and B`, async () => {
    const res = await api(d.api, 'GET', '/files?limit=1000');
    return res.body.files.find((f: { filename: string }) => f.filename === rel)?.uptodate.join() === 'A,B';
  });
}

/** Upload jobs the daemon logged as done in B for `rel`. */
const uploadsInB = (d: RunningDaemon, rel: string) =>
  d.logs.filter((l) => l.entry === 'B' && l.kind === 'upload' && typeof l.msg === 'string' && String(l.msg).startsWith(`copied ${rel} `));

describe('permission bits', () => {
  it('a chmod 600 in A reaches B; B’s copy keeps its inode (its bytes are not copied again)', async () => {
    const d = await daemon();
    await fsp.mkdir(at('A', 'dir'), { recursive: true });
    fs.writeFileSync(at('A', 'dir/secret.txt'), 'the content');
    fs.chmodSync(at('A', 'dir/secret.txt'), 0o644);
    // Whole seconds, so that the access time can be put back below (see there).
    const t = Math.floor(Date.now() / 1000) - 10;
    fs.utimesSync(at('A', 'dir/secret.txt'), t, t);
    await arrived(d, 'dir/secret.txt', 'the content', 0o644);
    const ino = fs.statSync(at('B', 'dir/secret.txt')).ino;
    const copies = uploadsInB(d, 'dir/secret.txt').length;

    // chokidar drops the event of a chmod of a file read since its last write (atime > mtime):
    // the copy to B read it. The same times again (a change of nothing but the ctime) make the
    // chmod's event arrive, whichever watcher runs.
    fs.utimesSync(at('A', 'dir/secret.txt'), t, t);
    fs.chmodSync(at('A', 'dir/secret.txt'), 0o600);
    await arrived(d, 'dir/secret.txt', 'the content', 0o600);
    expect(fs.statSync(at('B', 'dir/secret.txt')).ino).toBe(ino);
    expect(modeOf(at('A', 'dir/secret.txt'))).toBe(0o600);
    // One more upload job ran (the new version), which only set the bits.
    await until('the job logged', () => uploadsInB(d, 'dir/secret.txt').length === copies + 1);
    expect(fs.readdirSync(at('B', 'dir'))).toEqual(['secret.txt']);
  });

  it('a chmod made while the daemon was down is found by the rescan and applied in place', async () => {
    const first = await daemon();
    fs.writeFileSync(at('A', 'run.sh'), '#!/bin/sh\necho hi\n');
    fs.chmodSync(at('A', 'run.sh'), 0o644);
    await arrived(first, 'run.sh', '#!/bin/sh\necho hi\n', 0o644);
    const ino = fs.statSync(at('B', 'run.sh')).ino;
    expect(await first.stop()).toBe(0);

    fs.chmodSync(at('A', 'run.sh'), 0o755);
    const second = await daemon();
    await arrived(second, 'run.sh', '#!/bin/sh\necho hi\n', 0o755);
    expect(fs.statSync(at('B', 'run.sh')).ino).toBe(ino);
  });
});

describe('the store', () => {
  it('an older store gets the mode and ctime columns and the new layout (replicas by file, one fid index of jobs), its rows kept', () => {
    const file = path.join(dir, 'old.db');
    const old = new Database(file);
    old.exec(`CREATE TABLE replicas (entry TEXT NOT NULL, fid TEXT NOT NULL, filename TEXT NOT NULL,
      version INTEGER NOT NULL, size INTEGER NOT NULL, mtime REAL NOT NULL, ino TEXT, PRIMARY KEY (entry, fid))`);
    old.exec('CREATE INDEX replicas_by_fid ON replicas (fid)');
    old.exec(`CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT NOT NULL, fid TEXT NOT NULL, kind TEXT NOT NULL,
      from_filename TEXT, version INTEGER NOT NULL, preserve INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'queued',
      attempts INTEGER NOT NULL DEFAULT 0, not_before INTEGER NOT NULL DEFAULT 0, last_error TEXT)`);
    old.exec('CREATE UNIQUE INDEX jobs_one_per_file ON jobs (entry, fid); CREATE INDEX jobs_by_fid ON jobs (fid)');
    old.prepare("INSERT INTO replicas VALUES ('A', 'f1', 'a.txt', 1, 3, 1000, '7')").run();
    old.close();

    const store = new Catalogue(file);
    try {
      expect(store.replica('A', 'f1')).toEqual({ entry: 'A', fid: 'f1', filename: 'a.txt', version: 1, size: 3, mtime: 1000, ino: '7', mode: null, ctime: null });
      store.putReplica({ entry: 'A', fid: 'f1', filename: 'a.txt', version: 2, size: 3, mtime: 1000, ino: '7', mode: 0o600, ctime: 2000 });
      expect(store.replica('A', 'f1')).toMatchObject({ version: 2, mode: 0o600, ctime: 2000 });
      const schema = store.db.prepare("SELECT name, sql FROM sqlite_master WHERE tbl_name IN ('replicas', 'jobs') AND sql IS NOT NULL").all() as { name: string; sql: string }[];
      expect(schema.find((o) => o.name === 'replicas')?.sql).toMatch(/PRIMARY KEY \(fid, entry\)\s*\) WITHOUT ROWID/);
      expect(schema.map((o) => o.name).sort()).toEqual([
        'jobs', 'jobs_deletes', 'jobs_failing', 'jobs_moves', 'jobs_per_file', 'jobs_queue', 'jobs_queued_due', 'replicas',
        // The folder digests' triggers, made again once the table is rebuilt.
        'replicas_delete_digests', 'replicas_insert_digests', 'replicas_update_digests',
      ]);
    } finally {
      store.close();
    }
    // Opening it again finds the columns there: nothing to add.
    new Catalogue(file).close();
  });

  it("a store of the last version gets the digests' triggers that run only for an entry with a digest, and they still drop digests", () => {
    const file = path.join(dir, 'last.db');
    new Catalogue(file).close();
    // The triggers as the last version made them, under their names.
    const old = new Database(file);
    old.exec(`DROP TRIGGER replicas_insert_digests; DROP TRIGGER replicas_update_digests; DROP TRIGGER replicas_delete_digests;
      CREATE TRIGGER replicas_insert_digest AFTER INSERT ON replicas BEGIN DELETE FROM scan_digests WHERE entry = NEW.entry; END;
      CREATE TRIGGER replicas_update_digest AFTER UPDATE ON replicas BEGIN DELETE FROM scan_digests WHERE entry = OLD.entry; END;
      CREATE TRIGGER replicas_delete_digest AFTER DELETE ON replicas BEGIN DELETE FROM scan_digests WHERE entry = OLD.entry; END;`);
    old.close();

    const store = new Catalogue(file);
    try {
      const triggers = store.db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name").all() as { name: string; sql: string }[];
      expect(triggers.map((t) => t.name)).toEqual(['replicas_delete_digests', 'replicas_insert_digests', 'replicas_update_digests']);
      for (const t of triggers) expect(t.sql).toMatch(/\bWHEN EXISTS \(SELECT 1 FROM scan_digests WHERE entry/);
      const replica = { entry: 'A', fid: 'f1', filename: 'd/a.txt', version: 1, size: 3, mtime: 1000, ino: '7', mode: 0o644, ctime: 1000 };
      store.putReplica(replica);
      const digests = () => store.db.prepare("SELECT folder FROM scan_digests WHERE entry = 'A' ORDER BY folder").pluck().all();
      const put = store.db.prepare("INSERT INTO scan_digests (entry, folder, digest) VALUES ('A', ?, 'x')");
      for (const folder of ['/', 'd', 'e']) put.run(folder);
      // Written: its folder's digest and the mark of complete digests go, the other folder's stays.
      store.putReplica({ ...replica, version: 2 });
      expect(digests()).toEqual(['e']);
      put.run('d');
      store.putReplica({ ...replica, fid: 'f2', filename: 'd/b.txt' });
      expect(digests()).toEqual(['e']);
      put.run('d');
      store.deleteReplica('A', 'f2');
      expect(digests()).toEqual(['e']);
    } finally {
      store.close();
    }
  });
});
