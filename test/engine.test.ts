import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { v5 as uuidv5 } from 'uuid';
import Database from 'better-sqlite3';
import { Catalogue } from '../src/store/catalogue.js';
import { MassDeletionRefused, ScanStale, SyncEngine, retryDelay, type EntryConfig } from '../src/sync/engine.js';
import { fidOf } from '../src/paths.js';
import type { Rule } from '../machines/rules.js';
import { S_IFDIR, type FileStat, type JobOutcome, type ScanDigest, type ScannedFile, type WorkerReport } from '../machines/reports.js';
import type { JobCommand } from '../src/drivers/protocol.js';
import { childLine, listingDigest } from '../src/folder-digest.js';
import { SPEC_RULES, tempDir } from './helpers.js';

const NAMES = ['A', 'B', 'C'] as const;
type Name = (typeof NAMES)[number];
const ALL_TO_EVERYONE: Rule[] = [{ match: { path: '/' }, sync: ['A', 'B', 'C'] }];
const ALL_TO_A_AND_B: Rule[] = [{ match: { path: '/' }, sync: ['A', 'B'] }];

const stat = (size: number, mtime: number, ino: string | null = null): FileStat => ({ size, mtime, ino });
const everyoneRuns = () => true;

let dir: string;
let store: Catalogue;

beforeEach(async () => {
  dir = await tempDir('ferry-engine-');
  store = new Catalogue(path.join(dir, 'catalogue.db'));
});

afterEach(() => {
  vi.useRealTimers();
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function entries(): Map<string, EntryConfig> {
  return new Map(
    NAMES.map((name) => [
      name,
      { name, driver: 'local_storage', options: { root: name }, resolved: { root: path.join(dir, name) } },
    ]),
  );
}

function makeEngine(rules: Rule[]) {
  const engine = new SyncEngine(store, entries(), rules, pino({ level: 'silent' }));
  const changed = (entry: Name, p: string, s: FileStat) => engine.handle({ type: 'file.changed', entry, path: p, stat: s });
  const deleted = (entry: Name, p: string) => engine.handle({ type: 'file.deleted', entry, path: p });
  const moved = (entry: Name, from: string, to: string, s: FileStat) =>
    engine.handle({ type: 'file.moved', entry, from, path: to, stat: s });
  const scanned = (entry: Name, files: ScannedFile[]) => engine.handle({ type: 'entry.scanned', entry, files });
  const finished = (entry: Name, jobId: number, outcome: JobOutcome) =>
    engine.handle({ type: 'job.finished', entry, jobId, outcome });
  const take = (entry: Name, isRunning: (name: string) => boolean = everyoneRuns, limit = 100) =>
    engine.takeJobs(entry, limit, isRunning, new Set());
  /** Runs every job of every entry to success, as workers would, until none is left. */
  const settle = () => {
    for (let round = 0; round < 20; round++) {
      let ran = 0;
      for (const name of NAMES) {
        for (const command of take(name)) {
          ran++;
          finished(name, command.id, { ok: true, stat: outcomeStat(command) });
        }
      }
      if (ran === 0) return;
    }
    throw new Error('jobs never settled');
  };
  return { engine, changed, deleted, moved, scanned, finished, take, settle };
}

/** The destination's stat after a command ran: a copy of the source, the moved file, or nothing. */
function outcomeStat(command: JobCommand): FileStat | null {
  switch (command.kind) {
    case 'upload':
      return command.sourceStat;
    case 'move':
      return command.expect;
    case 'delete':
      return null;
  }
}

const file = (p: string) => store.file(fidOf(p));
const jobs = (p: string) =>
  store
    .jobsOf(fidOf(p))
    .map((j) => ({ entry: j.entry, kind: j.kind, state: j.state, version: j.version, fromFilename: j.fromFilename, preserve: j.preserve }))
    .sort((a, b) => a.entry.localeCompare(b.entry));
const holders = (p: string) => store.replicasOf(fidOf(p)).map((r) => `${r.entry}@${r.version}`);
const listed = () => store.listFiles(0, 1000).map((f) => f.filename);

describe('fidOf', () => {
  it("is the UUID v5 of the path in Ferry's namespace", () => {
    const NAMESPACE = 'bcd336f2-d023-4856-bc92-e79dd24b64d7';
    expect(fidOf('toto')).toBe(uuidv5('toto', NAMESPACE));
    // As Python's uuid.uuid5(UUID(NAMESPACE), name) gives them, so they match the original Onitu's.
    expect(fidOf('toto')).toBe('91473751-8e49-5240-b03c-96547fcd86dc');
    expect(fidOf('photos/foo.jpg')).toBe('0fe87082-01a2-5468-83f6-6171eb061fe4');
    expect(fidOf('photos/foo.jpg')).not.toBe(fidOf('/photos/foo.jpg'));
  });

  it('keys the catalogue', () => {
    const { changed } = makeEngine(SPEC_RULES);
    changed('A', 'photos/foo.jpg', stat(5, 1000));
    expect(store.file('0fe87082-01a2-5468-83f6-6171eb061fe4')?.filename).toBe('photos/foo.jpg');
  });
});

describe('owners', () => {
  it('a PDF under /backedup/ changed in A goes to B only', () => {
    const { changed } = makeEngine(SPEC_RULES);
    const touched = changed('A', 'backedup/x.pdf', stat(100, 1000, '11'));

    expect(touched).toEqual(['B']);
    expect(file('backedup/x.pdf')).toEqual({
      fid: fidOf('backedup/x.pdf'),
      filename: 'backedup/x.pdf',
      size: 100,
      version: 1,
      owners: ['A', 'B'],
      uptodate: ['A'],
      deleted: false,
    });
    expect(jobs('backedup/x.pdf')).toEqual([
      { entry: 'B', kind: 'upload', state: 'queued', version: 1, fromFilename: null, preserve: false },
    ]);
    expect(store.replicasOf(fidOf('backedup/x.pdf'))).toEqual([
      { entry: 'A', fid: fidOf('backedup/x.pdf'), filename: 'backedup/x.pdf', version: 1, size: 100, mtime: 1000, ino: '11', mode: null, ctime: null },
    ]);
  });

  it('a text file changed in B goes to A only', () => {
    const { changed } = makeEngine(SPEC_RULES);
    expect(changed('B', 'notes.txt', stat(3, 1000))).toEqual(['A']);
    expect(file('notes.txt')?.owners).toEqual(['A', 'B']);
    expect(jobs('notes.txt').map((j) => `${j.entry}:${j.kind}`)).toEqual(['A:upload']);
  });

  it('the mime of a rule must match too: a text file under /backedup/ stays out of B', () => {
    const { changed } = makeEngine(SPEC_RULES);
    expect(changed('A', 'backedup/x.txt', stat(3, 1000))).toEqual([]);
    expect(file('backedup/x.txt')?.owners).toEqual(['A']);
    expect(jobs('backedup/x.txt')).toEqual([]);
  });

  it('a file that matches no rule stays where it is', () => {
    const { changed } = makeEngine([{ match: { path: '/docs' }, sync: ['B'] }]);
    expect(changed('C', 'docsx/other.txt', stat(3, 1000))).toEqual([]);
    expect(file('docsx/other.txt')).toMatchObject({ owners: ['C'], uptodate: ['C'] });
    expect(jobs('docsx/other.txt')).toEqual([]);
    // ... and one that does goes where the rule says, on top of where it is.
    expect(changed('C', 'docs/a.txt', stat(3, 1000))).toEqual(['B']);
    expect(file('docs/a.txt')?.owners).toEqual(['B', 'C']);
  });

  it('ban removes an owner that a rule before added', () => {
    const { changed } = makeEngine([
      { match: { path: '/' }, sync: ['A', 'B'] },
      { match: { path: '/private/' }, ban: ['B'] },
    ]);
    expect(changed('A', 'private/x.txt', stat(3, 1000))).toEqual([]);
    expect(file('private/x.txt')?.owners).toEqual(['A']);
    expect(jobs('private/x.txt')).toEqual([]);
    expect(changed('A', 'public/x.txt', stat(3, 1000))).toEqual(['B']);
  });

  it('ban removes a holder: its copy goes once an owner holds the latest version', () => {
    const { changed, take, finished } = makeEngine([
      { match: { path: '/' }, sync: ['A', 'B'] },
      { match: { path: '/private/' }, ban: ['B'] },
    ]);
    expect(changed('B', 'private/y.txt', stat(3, 1000))).toEqual(['A']);
    expect(file('private/y.txt')).toMatchObject({ owners: ['A'], uptodate: [] });
    // B holds the only copy: it is not deleted before A has it.
    expect(jobs('private/y.txt').map((j) => `${j.entry}:${j.kind}`)).toEqual(['A:upload']);

    const [upload] = take('A');
    expect(upload).toMatchObject({ kind: 'upload', source: { entry: 'B' } });
    expect(finished('A', upload!.id, { ok: true, stat: stat(3, 2000) })).toEqual(expect.arrayContaining(['A', 'B']));
    expect(file('private/y.txt')).toMatchObject({ owners: ['A'], uptodate: ['A'] });
    expect(jobs('private/y.txt').map((j) => `${j.entry}:${j.kind}`)).toEqual(['B:delete']);
  });

  it('ignores a reported path that would leave the root', () => {
    const { changed } = makeEngine(SPEC_RULES);
    for (const bad of ['../escape.txt', '/etc/passwd', 'a/../../b', 'a\\b', '']) {
      expect(changed('A', bad, stat(1, 1))).toEqual([]);
    }
    expect(store.allFids()).toEqual([]);
  });
});

describe('uploads', () => {
  it('takeJobs gives an upload from an up-to-date entry that runs', () => {
    const { changed, take } = makeEngine(ALL_TO_EVERYONE);
    changed('A', 'f.txt', stat(7, 1000, '70'));

    const commands = take('B');
    expect(commands).toEqual([
      {
        id: expect.any(Number),
        kind: 'upload',
        path: 'f.txt',
        source: { entry: 'A', driver: 'local_storage', options: { root: path.join(dir, 'A') } },
        sourceStat: stat(7, 1000, '70'),
        expect: null,
        preserve: false,
      },
    ]);
    expect(store.jobById(commands[0]!.id)?.state).toBe('running');
    // A running job is not handed out twice.
    expect(take('B')).toEqual([]);
  });

  it('an upload waits while no up-to-date entry runs', () => {
    const { changed, take } = makeEngine(ALL_TO_EVERYONE);
    changed('A', 'f.txt', stat(7, 1000));

    expect(take('B', (name) => name !== 'A')).toEqual([]);
    expect(jobs('f.txt').filter((j) => j.entry === 'B')).toMatchObject([{ kind: 'upload', state: 'queued' }]);
    // C holds nothing yet: it cannot serve as source either.
    expect(take('B', (name) => name === 'C')).toEqual([]);
    expect(take('B', (name) => name === 'A')).toHaveLength(1);
  });

  it('takes the source among the up-to-date entries that run', () => {
    const { changed, take, finished } = makeEngine(ALL_TO_EVERYONE);
    changed('A', 'f.txt', stat(7, 1000));
    const [toC] = take('C');
    finished('C', toC!.id, { ok: true, stat: stat(7, 1500, '9') });

    const [toB] = take('B', (name) => name === 'C');
    expect(toB).toMatchObject({ kind: 'upload', source: { entry: 'C' }, sourceStat: stat(7, 1500, '9') });
  });

  it('respects the limit and the excluded ids', () => {
    const { changed, engine } = makeEngine(ALL_TO_EVERYONE);
    changed('A', 'a.txt', stat(1, 1));
    changed('A', 'b.txt', stat(1, 1));
    changed('A', 'c.txt', stat(1, 1));
    const idOf = (p: string) => store.job('B', fidOf(p))!.id;

    const first = engine.takeJobs('B', 1, everyoneRuns, new Set());
    expect(first.map((c) => c.path)).toEqual(['a.txt']);
    const rest = engine.takeJobs('B', 10, everyoneRuns, new Set([idOf('b.txt')]));
    expect(rest.map((c) => c.path)).toEqual(['c.txt']);
    expect(store.job('B', fidOf('b.txt'))?.state).toBe('queued');
  });

  it('reads the queue a page at a time: a pump bounded by bytes reads a few rows, a wide one takes them all', () => {
    const { changed, engine } = makeEngine(ALL_TO_A_AND_B);
    for (let i = 0; i < 300; i++) changed('A', `f${String(i).padStart(3, '0')}.bin`, stat(4 << 20, 1000 + i));
    const rows: number[] = [];
    const page = vi.spyOn(store, 'dispatchPage');
    // One large file finished: the worker has room for 8 MiB more, so two are taken.
    const few = engine.takeJobs('B', 1024, everyoneRuns, new Set(), 8 << 20);
    for (const r of page.mock.results) rows.push((r.value as unknown[]).length);
    expect(few.map((c) => c.path)).toEqual(['f000.bin', 'f001.bin']);
    expect(rows.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(16);
    // No bound on bytes: every queued job, in order, over growing pages.
    const rest = engine.takeJobs('B', 1024, everyoneRuns, new Set());
    expect(rest.map((c) => c.path)).toEqual(Array.from({ length: 298 }, (_, i) => `f${String(i + 2).padStart(3, '0')}.bin`));
    page.mockRestore();
  });

  it('job.finished ok puts the destination among the up-to-date and removes the job', () => {
    const { changed, take, finished } = makeEngine(SPEC_RULES);
    changed('A', 'backedup/x.pdf', stat(100, 1000, '11'));
    const [command] = take('B');

    const touched = finished('B', command!.id, { ok: true, stat: stat(100, 2000, '22') });
    expect(touched).toContain('B');
    expect(store.jobById(command!.id)).toBeUndefined();
    expect(jobs('backedup/x.pdf')).toEqual([]);
    expect(file('backedup/x.pdf')).toMatchObject({ version: 1, owners: ['A', 'B'], uptodate: ['A', 'B'] });
    expect(store.replica('B', fidOf('backedup/x.pdf'))).toMatchObject({ version: 1, size: 100, mtime: 2000, ino: '22' });
  });

  it('ignores a job.finished from another entry than the job’s', () => {
    const { changed, take, finished } = makeEngine(SPEC_RULES);
    changed('A', 'backedup/x.pdf', stat(100, 1000));
    const [command] = take('B');
    expect(finished('C', command!.id, { ok: true, stat: stat(100, 2000) })).toEqual([]);
    expect(store.jobById(command!.id)?.state).toBe('running');
    expect(store.replica('C', fidOf('backedup/x.pdf'))).toBeUndefined();
  });

  it('an echo of a copy (same size and mtime) changes nothing', () => {
    const { changed, settle } = makeEngine(SPEC_RULES);
    changed('A', 'backedup/x.pdf', stat(100, 1000, '11'));
    settle();
    const before = file('backedup/x.pdf');
    const replica = store.replica('B', fidOf('backedup/x.pdf'))!;

    expect(changed('B', 'backedup/x.pdf', stat(replica.size, replica.mtime, replica.ino))).toEqual([]);
    expect(changed('A', 'backedup/x.pdf', stat(100, 1000, '11'))).toEqual([]);
    expect(file('backedup/x.pdf')).toEqual(before);
    expect(jobs('backedup/x.pdf')).toEqual([]);
  });

  it('a new change while an upload runs queues another one after it', () => {
    const { changed, take, finished } = makeEngine(SPEC_RULES);
    changed('A', 'backedup/x.pdf', stat(100, 1000));
    const [first] = take('B');

    expect(changed('A', 'backedup/x.pdf', stat(120, 3000))).toEqual([]);
    expect(file('backedup/x.pdf')).toMatchObject({ version: 2, uptodate: ['A'] });
    // The running job is left to finish.
    expect(jobs('backedup/x.pdf')).toMatchObject([{ entry: 'B', state: 'running', version: 1 }]);

    expect(finished('B', first!.id, { ok: true, stat: stat(100, 2000) })).toContain('B');
    expect(holders('backedup/x.pdf')).toEqual(['A@2', 'B@1']);
    expect(file('backedup/x.pdf')).toMatchObject({ version: 2, uptodate: ['A'] });
    expect(jobs('backedup/x.pdf')).toMatchObject([{ entry: 'B', kind: 'upload', state: 'queued', version: 2 }]);

    const [second] = take('B');
    expect(second).toMatchObject({ kind: 'upload', sourceStat: stat(120, 3000), expect: stat(100, 2000) });
    finished('B', second!.id, { ok: true, stat: stat(120, 4000) });
    expect(file('backedup/x.pdf')).toMatchObject({ version: 2, uptodate: ['A', 'B'] });
  });

  it('an edit of a copy that was behind keeps the other copies as conflicts (preserve)', () => {
    const { changed, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'doc.txt', stat(10, 1000));
    settle();
    // A edits: B is behind, its upload is queued.
    changed('A', 'doc.txt', stat(11, 2000));
    expect(jobs('doc.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 2, preserve: false }]);

    // B edits its old copy before it got A's edit.
    expect(changed('B', 'doc.txt', stat(12, 3000))).toEqual(['A']);
    expect(file('doc.txt')).toMatchObject({ version: 3, uptodate: ['B'] });
    expect(jobs('doc.txt')).toEqual([
      { entry: 'A', kind: 'upload', state: 'queued', version: 3, fromFilename: null, preserve: true },
    ]);
  });

  it('an older edit of a copy that was behind does not become the latest: it is replaced, kept as its own conflict copy', () => {
    const { changed, settle, take } = makeEngine(ALL_TO_EVERYONE);
    changed('A', 'doc.txt', stat(10, 1000));
    settle();
    changed('A', 'doc.txt', stat(11, 3000, '7')); // B and C are behind: their uploads are queued
    expect(jobs('doc.txt')).toMatchObject([
      { entry: 'B', version: 2, preserve: false },
      { entry: 'C', version: 2, preserve: false },
    ]);

    // B edits its old copy before it got A's edit, but its edit is the older of the two.
    expect(changed('B', 'doc.txt', stat(12, 2000, '8'))).toEqual([]);
    expect(file('doc.txt')).toMatchObject({ version: 2, size: 11, uptodate: ['A'] });
    // B's copy is recorded as it is now, still behind; only B's upload keeps its copy aside.
    expect(store.replica('B', fidOf('doc.txt'))).toMatchObject({ version: 1, size: 12, mtime: 2000, ino: '8' });
    expect(jobs('doc.txt')).toMatchObject([
      { entry: 'B', kind: 'upload', version: 2, preserve: true },
      { entry: 'C', kind: 'upload', version: 2, preserve: false },
    ]);
    // The upload to B expects B's copy as it is now, and replaces it with A's.
    expect(take('B')).toMatchObject([{ kind: 'upload', sourceStat: stat(11, 3000, '7'), expect: stat(12, 2000, '8'), preserve: true }]);
  });

  it('a file made in two entries before either saw the other: the newer keeps the name, whatever the order of the reports', () => {
    const { changed } = makeEngine(ALL_TO_A_AND_B);
    changed('B', 'doc.txt', stat(5, 2000)); // the newer, reported first: A's upload is queued
    expect(changed('A', 'doc.txt', stat(6, 1000))).toEqual([]);
    expect(file('doc.txt')).toMatchObject({ version: 1, size: 5, uptodate: ['B'] });
    expect(holders('doc.txt')).toEqual(['A@0', 'B@1']);
    expect(jobs('doc.txt')).toMatchObject([{ entry: 'A', kind: 'upload', version: 1, preserve: true }]);
  });

  it('equal modification times: the smaller entry name keeps the name', () => {
    const first = makeEngine(ALL_TO_A_AND_B);
    first.changed('B', 'x.txt', stat(5, 1000));
    first.changed('A', 'x.txt', stat(6, 1000)); // A < B: A's becomes the latest
    expect(file('x.txt')).toMatchObject({ version: 2, size: 6, uptodate: ['A'] });
    expect(jobs('x.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 2, preserve: true }]);

    first.changed('A', 'y.txt', stat(6, 1000));
    first.changed('B', 'y.txt', stat(5, 1000)); // B > A: A's stays the latest
    expect(file('y.txt')).toMatchObject({ version: 1, size: 6, uptodate: ['A'] });
    expect(jobs('y.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 1, preserve: true }]);
  });

  it('an edit of an up-to-date copy does not preserve', () => {
    const { changed, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'doc.txt', stat(10, 1000));
    settle();
    changed('B', 'doc.txt', stat(12, 3000));
    expect(jobs('doc.txt')).toMatchObject([{ entry: 'A', kind: 'upload', version: 2, preserve: false }]);
  });
});

describe('metadata: permission bits, inode, ctime', () => {
  const withMode = (size: number, mtime: number, ino: string, mode: number, ctime: number): FileStat => ({ size, mtime, ino, mode, ctime });

  it('a chmod (same size and mtime, other mode) is a new version that propagates, with the mode', () => {
    const { changed, settle, take } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'f.txt', withMode(10, 1000, '1', 0o644, 1000));
    settle();
    expect(changed('A', 'f.txt', withMode(10, 1000, '1', 0o600, 5000))).toEqual(['B']);
    expect(file('f.txt')).toMatchObject({ version: 2, uptodate: ['A'] });
    expect(store.replica('A', fidOf('f.txt'))).toMatchObject({ version: 2, mode: 0o600, ctime: 5000 });
    const [command] = take('B');
    expect(command).toMatchObject({ kind: 'upload', sourceStat: { size: 10, mtime: 1000, mode: 0o600 }, expect: { size: 10, mtime: 1000, mode: 0o644 } });
  });

  it('a new inode or ctime alone is recorded, nothing more', () => {
    const { changed, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'f.txt', withMode(10, 1000, '1', 0o644, 1000));
    settle();
    const before = file('f.txt');
    expect(changed('A', 'f.txt', withMode(10, 1000, '2', 0o644, 7000))).toEqual([]);
    expect(file('f.txt')).toEqual(before);
    expect(store.replica('A', fidOf('f.txt'))).toMatchObject({ version: 1, ino: '2', ctime: 7000 });
    expect(store.countJobs('A') + store.countJobs('B')).toBe(0);
  });

  it('a mode reported where the store had none (an older store) is recorded, not a change', () => {
    const { changed, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'f.txt', stat(10, 1000, '1'));
    settle();
    expect(changed('A', 'f.txt', withMode(10, 1000, '1', 0o640, 3000))).toEqual([]);
    expect(file('f.txt')).toMatchObject({ version: 1 });
    expect(store.replica('A', fidOf('f.txt'))).toMatchObject({ mode: 0o640, ctime: 3000 });
  });

  it('a rescan finds a chmod made while the entry was stopped', () => {
    const { changed, scanned, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'f.txt', withMode(10, 1000, '1', 0o644, 1000));
    changed('A', 'g.txt', withMode(10, 1000, '2', 0o644, 1000));
    settle();
    expect(scanned('A', [
      { path: 'f.txt', ...withMode(10, 1000, '1', 0o755, 2000) },
      { path: 'g.txt', ...withMode(10, 1000, '2', 0o644, 2000) },
    ])).toEqual(['B']);
    expect(file('f.txt')).toMatchObject({ version: 2 });
    expect(file('g.txt')).toMatchObject({ version: 1 });
    expect(store.replica('A', fidOf('g.txt'))).toMatchObject({ ctime: 2000 });
  });
});

describe('job failures', () => {
  it("'error' requeues the job later, with one more attempt", () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_000_000);
    const { changed, take, finished } = makeEngine(SPEC_RULES);
    changed('B', 'notes.txt', stat(3, 1000));
    const [command] = take('A', everyoneRuns);
    expect(command).toBeDefined();

    expect(finished('A', command!.id, { ok: false, reason: 'error', message: 'disk full' })).toEqual([]);
    expect(store.jobById(command!.id)).toMatchObject({
      state: 'queued',
      attempts: 1,
      notBefore: 1_000_000 + retryDelay(1),
      lastError: 'disk full',
    });
    expect(retryDelay(1)).toBe(1000);

    // Not due yet.
    expect(take('A')).toEqual([]);
    vi.setSystemTime(1_000_000 + 1000);
    const [again] = take('A');
    expect(again?.id).toBe(command!.id);

    finished('A', again!.id, { ok: false, reason: 'error', message: 'disk still full' });
    expect(store.jobById(command!.id)).toMatchObject({ attempts: 2, notBefore: 1_001_000 + 2000, lastError: 'disk still full' });
  });

  it('retry delays double up to a minute', () => {
    expect([1, 2, 3, 4, 6, 7, 20].map(retryDelay)).toEqual([1000, 2000, 4000, 8000, 32_000, 60_000, 60_000]);
  });

  it("'stale' requeues the job shortly, until the watcher's report says what to do", () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_000_000);
    const { changed, take, finished } = makeEngine(SPEC_RULES);
    changed('B', 'notes.txt', stat(3, 1000));
    const [command] = take('A');

    finished('A', command!.id, { ok: false, reason: 'stale', message: 'source changed' });
    expect(store.jobById(command!.id)).toMatchObject({
      kind: 'upload',
      state: 'queued',
      attempts: 1,
      notBefore: 1_000_100,
      // Stale is not a failure of the storage: nothing is reported as failing.
      lastError: null,
    });
    expect(take('A')).toEqual([]);

    // The source's watcher reports the change that made the job stale: the job is replaced at once.
    expect(changed('B', 'notes.txt', stat(4, 2000))).toEqual(['A']);
    expect(store.jobsOf(fidOf('notes.txt'))).toMatchObject([
      { id: command!.id, entry: 'A', kind: 'upload', state: 'queued', version: 2, attempts: 0, notBefore: 0, lastError: null },
    ]);
    expect(take('A')).toMatchObject([{ id: command!.id, sourceStat: stat(4, 2000) }]);
  });

  it("'stale' on a job that is no longer needed leaves no job", () => {
    const { changed, deleted, take, finished } = makeEngine(SPEC_RULES);
    changed('B', 'notes.txt', stat(3, 1000));
    const [command] = take('A');
    deleted('B', 'notes.txt');

    finished('A', command!.id, { ok: false, reason: 'stale', message: 'source gone' });
    expect(store.jobById(command!.id)).toBeUndefined();
    expect(store.jobsOf(fidOf('notes.txt'))).toEqual([]);
    expect(file('notes.txt')).toBeUndefined();
  });

  it('requeue puts running jobs back in the queue', () => {
    const { changed, take, engine } = makeEngine(ALL_TO_EVERYONE);
    changed('A', 'a.txt', stat(1, 1));
    changed('A', 'b.txt', stat(1, 1));
    const running = take('B');
    expect(running).toHaveLength(2);

    engine.requeue([running[0]!.id, 999_999]);
    expect(store.jobById(running[0]!.id)?.state).toBe('queued');
    expect(store.jobById(running[1]!.id)?.state).toBe('running');
    expect(take('B').map((c) => c.id)).toEqual([running[0]!.id]);
  });
});

describe('deletions', () => {
  it('a deletion in an up-to-date entry deletes the other copies, then the tombstone', () => {
    const { changed, deleted, take, finished, settle } = makeEngine(ALL_TO_EVERYONE);
    changed('A', 'doc.txt', stat(10, 1000));
    settle();
    expect(file('doc.txt')?.uptodate).toEqual(['A', 'B', 'C']);

    expect(deleted('A', 'doc.txt').sort()).toEqual(['B', 'C']);
    expect(listed()).toEqual([]);
    expect(store.countFiles()).toBe(0);
    expect(file('doc.txt')).toMatchObject({ deleted: true, version: 2, owners: [], uptodate: [] });
    expect(jobs('doc.txt')).toMatchObject([
      { entry: 'B', kind: 'delete', version: 2 },
      { entry: 'C', kind: 'delete', version: 2 },
    ]);

    const [deleteB] = take('B');
    expect(deleteB).toEqual({ id: expect.any(Number), kind: 'delete', path: 'doc.txt', expect: stat(10, 1000) });
    finished('B', deleteB!.id, { ok: true, stat: null });
    expect(holders('doc.txt')).toEqual(['C@1']);
    expect(file('doc.txt')?.deleted).toBe(true);

    const [deleteC] = take('C');
    finished('C', deleteC!.id, { ok: true, stat: null });
    expect(file('doc.txt')).toBeUndefined();
    expect(store.jobsOf(fidOf('doc.txt'))).toEqual([]);
  });

  it('a deletion before anyone got the file drops the queued uploads and the file', () => {
    const { changed, deleted } = makeEngine(ALL_TO_EVERYONE);
    changed('A', 'tmp.txt', stat(1, 1));
    expect(jobs('tmp.txt')).toHaveLength(2);
    expect(deleted('A', 'tmp.txt')).toEqual([]);
    expect(file('tmp.txt')).toBeUndefined();
    expect(store.jobsOf(fidOf('tmp.txt'))).toEqual([]);
  });

  it('a deletion while others wait for the latest version deletes their older copies too', () => {
    const { changed, deleted, settle } = makeEngine(ALL_TO_EVERYONE);
    changed('A', 'doc.txt', stat(1, 1));
    settle();
    changed('A', 'doc.txt', stat(2, 2)); // B and C now wait for version 2, holding version 1
    expect(jobs('doc.txt')).toHaveLength(2);
    deleted('A', 'doc.txt');
    // Their queued uploads became deletions of the copies they hold.
    expect(store.jobsOf(fidOf('doc.txt')).map((j) => `${j.entry}:${j.kind}`).sort()).toEqual(['B:delete', 'C:delete']);
    settle();
    expect(store.replicasOf(fidOf('doc.txt'))).toEqual([]);
    expect(file('doc.txt')).toBeUndefined();
  });

  it('a deleted copy that was behind is replaced, not propagated', () => {
    const { changed, deleted, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'doc.txt', stat(10, 1000));
    settle();
    changed('A', 'doc.txt', stat(11, 2000));
    deleted('B', 'doc.txt');
    expect(file('doc.txt')).toMatchObject({ deleted: false, version: 2, uptodate: ['A'] });
    expect(jobs('doc.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 2 }]);
    expect(listed()).toEqual(['doc.txt']);
  });

  it('a file created again after a deletion is a new version', () => {
    const { changed, deleted, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'doc.txt', stat(10, 1000));
    settle();
    deleted('A', 'doc.txt');
    changed('A', 'doc.txt', stat(5, 5000));
    expect(file('doc.txt')).toMatchObject({ deleted: false, version: 3, uptodate: ['A'] });
    // B still holds version 1: it is replaced by version 3, not deleted.
    expect(jobs('doc.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 3 }]);
  });
});

describe('folders a copy made on the way', () => {
  const dirStat = (ino: string): FileStat => ({ size: 0, mtime: 0, ino, mode: 0o755 | S_IFDIR });
  /** The entry's jobs taken to run, by path (at most `limit`, in the order they were queued). */
  const byPath = (commands: JobCommand[]) => new Map(commands.map((c) => [c.path, c]));

  it('are recorded as the entry\'s copies of the folders: a removal in A then removes them in B', () => {
    const { changed, deleted, take, finished, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'x', dirStat('1'));
    changed('A', 'x/y', dirStat('2'));
    changed('A', 'x/y/f.txt', stat(3, 1000));
    const running = byPath(take('B'));
    expect([...running.keys()]).toEqual(['x', 'x/y', 'x/y/f.txt']);
    // The file's copy ran first and made both folders on its way.
    const made = [{ path: 'x', stat: dirStat('7') }, { path: 'x/y', stat: dirStat('8') }];
    finished('B', running.get('x/y/f.txt')!.id, { ok: true, stat: stat(3, 1000, '9'), folders: made });
    expect(holders('x')).toEqual(['A@1', 'B@1']);
    expect(holders('x/y')).toEqual(['A@1', 'B@1']);
    // The folders' own jobs then find them there.
    finished('B', running.get('x')!.id, { ok: true, stat: dirStat('7') });
    finished('B', running.get('x/y')!.id, { ok: true, stat: dirStat('8') });
    expect(take('A')).toEqual([]);
    expect(store.jobsOf(fidOf('x'))).toEqual([]);
    deleted('A', 'x/y/f.txt');
    deleted('A', 'x/y');
    deleted('A', 'x');
    expect(jobs('x')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
    expect(jobs('x/y')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
    settle();
    expect(store.countFiles()).toBe(0);
    expect(file('x')).toBeUndefined();
  });

  it('made after the folder was removed in A: removed from B too, never copied back to A', () => {
    const { changed, deleted, take, finished, settle } = makeEngine(ALL_TO_A_AND_B);
    // The file reported first: its job is queued first, and taken alone.
    changed('A', 'x/f.txt', stat(3, 1000));
    changed('A', 'x', dirStat('1'));
    const [copy] = take('B', everyoneRuns, 1);
    expect(copy?.path).toBe('x/f.txt');
    // A's removal is told before B's copy, and the folder it made on the way, are: B's queued
    // job for the folder is dropped, and with it the store's last word of the folder.
    deleted('A', 'x/f.txt');
    deleted('A', 'x');
    expect(file('x')).toBeUndefined();
    finished('B', copy!.id, { ok: true, stat: stat(3, 1000, '9'), folders: [{ path: 'x', stat: dirStat('7') }] });
    expect(jobs('x')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
    expect(jobs('x/f.txt')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
    expect(take('A')).toEqual([]);
    settle();
    expect(store.countFiles()).toBe(0);
    expect(store.replicasOf(fidOf('x'))).toEqual([]);
    expect(file('x')).toBeUndefined();
  });

  it('made while the folder job ran, after its removal in A: removed from B once that job is done too', () => {
    const { changed, deleted, take, finished, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'x', dirStat('1'));
    changed('A', 'x/f.txt', stat(3, 1000));
    const running = byPath(take('B'));
    deleted('A', 'x/f.txt');
    deleted('A', 'x');
    finished('B', running.get('x/f.txt')!.id, { ok: true, stat: stat(3, 1000, '9'), folders: [{ path: 'x', stat: dirStat('7') }] });
    finished('B', running.get('x')!.id, { ok: true, stat: dirStat('7') });
    expect(jobs('x')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
    expect(take('A')).toEqual([]);
    settle();
    expect(store.countFiles()).toBe(0);
  });

  it('unknown to the store: a new folder of the entry while the job\'s file is there', () => {
    const { changed, take, finished } = makeEngine(ALL_TO_A_AND_B);
    // A source that reports no folders (an S3 bucket has none).
    changed('A', 'p/f.txt', stat(3, 1000));
    const [copy] = take('B');
    finished('B', copy!.id, { ok: true, stat: stat(3, 1000, '9'), folders: [{ path: 'p', stat: dirStat('7') }] });
    expect(file('p')).toMatchObject({ deleted: false, uptodate: ['B'] });
    expect(jobs('p')).toMatchObject([{ entry: 'A', kind: 'upload' }]);
  });

  it('by a job that failed are recorded all the same', () => {
    const { changed, take, finished } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'x/f.txt', stat(3, 1000));
    changed('A', 'x', dirStat('1'));
    const [copy] = take('B', everyoneRuns, 1);
    finished('B', copy!.id, { ok: false, reason: 'error', message: 'disk on fire', folders: [{ path: 'x', stat: dirStat('7') }] });
    expect(holders('x')).toEqual(['A@1', 'B@1']);
    expect(jobs('x')).toEqual([]);
    expect(jobs('x/f.txt')).toMatchObject([{ entry: 'B', kind: 'upload', state: 'queued' }]);
  });
});

describe('moves', () => {
  it('a rename becomes move jobs for the other up-to-date holders', () => {
    const { changed, moved, take, finished, settle } = makeEngine(ALL_TO_EVERYONE);
    changed('A', 'a.txt', stat(10, 1000, '1'));
    settle();

    expect(moved('A', 'a.txt', 'dir/b.txt', stat(10, 1000, '1')).sort()).toEqual(['B', 'C']);
    expect(listed()).toEqual(['dir/b.txt']);
    expect(file('a.txt')).toMatchObject({ deleted: true });
    expect(file('dir/b.txt')).toMatchObject({ version: 1, owners: ['A', 'B', 'C'], uptodate: ['A'] });
    expect(jobs('dir/b.txt')).toEqual([
      { entry: 'B', kind: 'move', state: 'queued', version: 1, fromFilename: 'a.txt', preserve: false },
      { entry: 'C', kind: 'move', state: 'queued', version: 1, fromFilename: 'a.txt', preserve: false },
    ]);
    // No delete of the old name behind the moves' back.
    expect(store.jobsOf(fidOf('a.txt'))).toEqual([]);

    const [moveB] = take('B');
    expect(moveB).toEqual({ id: expect.any(Number), kind: 'move', from: 'a.txt', path: 'dir/b.txt', expect: stat(10, 1000, '1') });
    finished('B', moveB!.id, { ok: true, stat: stat(10, 1000, '1') });
    expect(holders('a.txt')).toEqual(['C@1']);
    expect(file('dir/b.txt')?.uptodate).toEqual(['A', 'B']);

    const [moveC] = take('C');
    finished('C', moveC!.id, { ok: true, stat: stat(10, 1000, '1') });
    expect(file('a.txt')).toBeUndefined();
    expect(file('dir/b.txt')).toMatchObject({ owners: ['A', 'B', 'C'], uptodate: ['A', 'B', 'C'] });
    expect(holders('dir/b.txt')).toEqual(['A@1', 'B@1', 'C@1']);
    expect(store.jobsOf(fidOf('dir/b.txt'))).toEqual([]);
  });

  it('a rename onto an existing file is a deletion and a change', () => {
    const { changed, moved, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'a.txt', stat(10, 1000, '1'));
    changed('A', 'b.txt', stat(20, 1000, '2'));
    settle();

    moved('A', 'a.txt', 'b.txt', stat(10, 1000, '1'));
    expect(listed()).toEqual(['b.txt']);
    expect(file('b.txt')).toMatchObject({ version: 2, size: 10, uptodate: ['A'] });
    expect(jobs('b.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 2 }]);
    expect(jobs('a.txt')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
  });
});

describe('rescans', () => {
  it('detects new, changed, deleted and moved files against the store', () => {
    const { changed, scanned, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'keep.txt', stat(10, 1, '1'));
    changed('A', 'edit.txt', stat(20, 1, '2'));
    changed('A', 'gone.txt', stat(30, 1, '3'));
    changed('A', 'old.txt', stat(40, 1, '4'));
    settle();

    const touched = scanned('A', [
      { path: 'keep.txt', ...stat(10, 1, '1') },
      { path: 'edit.txt', ...stat(21, 2, '2') },
      { path: 'new-name.txt', ...stat(40, 1, '4') },
      { path: 'fresh.txt', ...stat(50, 1, '5') },
    ]);
    expect(touched).toEqual(['B']);
    expect(listed()).toEqual(['edit.txt', 'fresh.txt', 'keep.txt', 'new-name.txt']);
    expect(jobs('keep.txt')).toEqual([]);
    expect(jobs('edit.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 2 }]);
    expect(jobs('fresh.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 1 }]);
    expect(jobs('gone.txt')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
    expect(jobs('new-name.txt')).toMatchObject([{ entry: 'B', kind: 'move', fromFilename: 'old.txt' }]);
    expect(file('old.txt')?.deleted).toBe(true);
  });

  it("a first scan's chunks record the files the store never knew at once, for the others to copy while the rest is walked", () => {
    const { engine, changed, scanned, take } = makeEngine(ALL_TO_A_AND_B);
    // B holds one file already: the store knows its name.
    changed('B', 'known.txt', stat(5, 5, '50'));
    const chunk = (entry: Name, files: ScannedFile[]) => engine.handle({ type: 'scan.chunk', entry, files });
    expect(chunk('A', [{ path: 'd', size: 0, mtime: 0, ino: '9', mode: 0o755 | S_IFDIR }, { path: 'd/a.txt', ...stat(1, 1, '1') }, { path: 'known.txt', ...stat(6, 6, '60') }])).toEqual(['B']);
    expect(listed()).toEqual(['d/a.txt', 'known.txt']);
    expect(holders('d/a.txt')).toEqual(['A@1']);
    expect(jobs('d/a.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 1 }]);
    expect(jobs('d')).toMatchObject([{ entry: 'B', kind: 'upload', version: 1 }]);
    // A name the store knows waits for the scan's end, which compares it as before.
    expect(holders('known.txt')).toEqual(['B@1']);
    expect(take('B').map((c) => c.path).sort()).toEqual(['d', 'd/a.txt']);
    scanned('A', [{ path: 'd/b.txt', ...stat(2, 2, '2') }]);
    expect(holders('d/a.txt')).toEqual(['A@1']);
    expect(file('d/a.txt')).toMatchObject({ version: 1 });
    expect(jobs('d/b.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 1 }]);
    expect(holders('known.txt').sort()).toEqual(['A@2', 'B@1']);
  });

  it("the chunks of an entry that held files are only compared at the scan's end: moves and deletions are found whole", () => {
    const { engine, changed, scanned, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'old.txt', stat(40, 1, '4'));
    settle();
    engine.handle({ type: 'scan.chunk', entry: 'A', files: [{ path: 'new-name.txt', ...stat(40, 1, '4') }] });
    expect(file('new-name.txt')).toBeUndefined();
    expect(store.jobsOf(fidOf('new-name.txt'))).toEqual([]);
    scanned('A', []);
    expect(jobs('new-name.txt')).toMatchObject([{ entry: 'B', kind: 'move', fromFilename: 'old.txt' }]);
  });

  it('a file gone with its inode reused at another size is a deletion and a new file', () => {
    const { changed, scanned, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'old.txt', stat(40, 1, '4'));
    settle();
    scanned('A', [{ path: 'other.txt', ...stat(41, 1, '4') }]);
    expect(jobs('old.txt')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
    expect(jobs('other.txt')).toMatchObject([{ entry: 'B', kind: 'upload' }]);
  });

  it('a rescan that matches the store changes nothing', () => {
    const { changed, scanned, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'a.txt', stat(10, 1, '1'));
    changed('A', 'b/c.txt', stat(20, 1, '2'));
    settle();
    const before = store.listFiles(0, 100);

    expect(scanned('B', store.replicasOfEntry('B').map((r) => ({ path: r.filename, size: r.size, mtime: r.mtime, ino: r.ino })))).toEqual([]);
    expect(store.listFiles(0, 100)).toEqual(before);
    expect(store.countJobs('A') + store.countJobs('B')).toBe(0);
  });

  const twenty = (changed: (e: Name, p: string, s: FileStat) => unknown) => {
    for (let i = 0; i < 20; i++) changed('A', `f${i}.txt`, stat(10, 1, String(100 + i)));
  };

  it('refuses a rescan that finds most of the files gone, and changes nothing', () => {
    const { changed, scanned, settle } = makeEngine(ALL_TO_A_AND_B);
    twenty(changed);
    settle();
    const before = store.listFiles(0, 100);
    const kept = store.replicasOfEntry('B').slice(0, 9).map((r) => ({ path: r.filename, size: r.size, mtime: r.mtime, ino: r.ino }));
    expect(() => scanned('B', kept)).toThrow(MassDeletionRefused);
    expect(() => scanned('B', kept)).toThrow('the rescan of B finds 11 of its 20 files gone');
    expect(store.listFiles(0, 100)).toEqual(before);
    expect(store.countJobs('A')).toBe(0);
  });

  it('applies that rescan when the start was forced, and a small one always', () => {
    const { engine, changed, settle } = makeEngine(ALL_TO_A_AND_B);
    twenty(changed);
    settle();
    const replicas = store.replicasOfEntry('B').map((r) => ({ path: r.filename, size: r.size, mtime: r.mtime, ino: r.ino }));
    // Half of them gone is not more than half: applied without force.
    engine.handle({ type: 'entry.scanned', entry: 'B', files: replicas.slice(0, 10) });
    expect(store.countJobs('A')).toBe(10);
    settle();
    expect(listed()).toHaveLength(10);
    engine.handle({ type: 'entry.scanned', entry: 'B', files: [], force: true });
    expect(store.countJobs('A')).toBe(10);
  });

  it('fewer than ten deletions never count as a mass deletion', () => {
    const { engine } = makeEngine(ALL_TO_A_AND_B);
    expect(engine.isMassDeletion(9, 9)).toBe(false);
    expect(engine.isMassDeletion(10, 19)).toBe(true);
    expect(engine.isMassDeletion(10, 20)).toBe(false);
    engine.maxDeleteShare = 0.9;
    expect(engine.isMassDeletion(10, 19)).toBe(false);
  });
});

describe('rescans in chunks (scan.chunk … entry.scanned), compared in SQL', () => {
  const chunked = (engine: SyncEngine, entry: Name, files: ScannedFile[], size: number, force = false) => {
    const touched = new Set<string>();
    let i = 0;
    for (; files.length - i > size; i += size) {
      for (const t of engine.handle({ type: 'scan.chunk', entry, files: files.slice(i, i + size) })) touched.add(t);
    }
    for (const t of engine.handle({ type: 'entry.scanned', entry, files: files.slice(i), force })) touched.add(t);
    return [...touched].sort();
  };
  /** What the temporary scan table holds (nothing once a scan ended). */
  const scanRows = () => (store.db.prepare('SELECT count(*) FROM temp.scan').pluck().get() as number);

  it('chunks and the final report are one scan: new, changed, deleted and moved files, as one report finds them', () => {
    const { engine, changed, settle } = makeEngine(ALL_TO_A_AND_B);
    for (let i = 0; i < 10; i++) changed('A', `keep${i}.txt`, stat(10, 1, String(i)));
    changed('A', 'edit.txt', stat(20, 1, '20'));
    changed('A', 'gone.txt', stat(30, 1, '30'));
    changed('A', 'old.txt', stat(40, 1, '40'));
    settle();

    const files: ScannedFile[] = [
      ...Array.from({ length: 10 }, (_, i) => ({ path: `keep${i}.txt`, ...stat(10, 1, String(i)) })),
      { path: 'edit.txt', ...stat(21, 2, '20') },
      { path: 'new-name.txt', ...stat(40, 1, '40') },
      { path: 'fresh.txt', ...stat(50, 1, '50') },
    ];
    expect(chunked(engine, 'A', files, 3)).toEqual(['B']);
    expect(listed()).toEqual(['edit.txt', 'fresh.txt', ...Array.from({ length: 10 }, (_, i) => `keep${i}.txt`), 'new-name.txt']);
    expect(jobs('keep3.txt')).toEqual([]);
    expect(jobs('edit.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 2 }]);
    expect(jobs('fresh.txt')).toMatchObject([{ entry: 'B', kind: 'upload', version: 1 }]);
    expect(file('fresh.txt')).toMatchObject({ version: 1, owners: ['A', 'B'], uptodate: ['A'], size: 50 });
    expect(store.replica('A', fidOf('fresh.txt'))).toMatchObject({ version: 1, size: 50, mtime: 1, ino: '50' });
    expect(jobs('gone.txt')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
    expect(jobs('new-name.txt')).toMatchObject([{ entry: 'B', kind: 'move', fromFilename: 'old.txt' }]);
    expect(scanRows()).toBe(0);
  });

  it('a start where nothing changed changes nothing, and only records a new inode or ctime', () => {
    const { engine, changed, settle } = makeEngine(ALL_TO_A_AND_B);
    for (let i = 0; i < 25; i++) changed('A', `d/f${i}.txt`, { size: i, mtime: 1000 + i, ino: String(i), mode: 0o644, ctime: 5 });
    settle();
    const before = store.listFiles(0, 100);
    const files = store.replicasOfEntry('A').map((r) => ({ path: r.filename, size: r.size, mtime: r.mtime, ino: r.ino, mode: r.mode!, ctime: r.ctime! }));
    files[3] = { ...files[3]!, ino: 'new', ctime: 9 };
    expect(chunked(engine, 'A', files, 10)).toEqual([]);
    expect(store.listFiles(0, 100)).toEqual(before);
    expect(store.countJobs('A') + store.countJobs('B')).toBe(0);
    expect(store.replica('A', fidOf(files[3]!.path))).toMatchObject({ ino: 'new', ctime: 9, version: 1 });
    expect(scanRows()).toBe(0);
  });

  it('a chunk after an entry.scanned begins a new scan; a worker start forgets a scan left unfinished', () => {
    const { engine, changed, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'a.txt', stat(1, 1, '1'));
    changed('A', 'b.txt', stat(2, 1, '2'));
    settle();
    const a = { path: 'a.txt', ...stat(1, 1, '1') };
    const b = { path: 'b.txt', ...stat(2, 1, '2') };
    expect(chunked(engine, 'A', [a, b], 1)).toEqual([]);
    // A worker that listed a.txt, then died; the next one lists b.txt only: a.txt was deleted.
    engine.handle({ type: 'scan.chunk', entry: 'A', files: [a] });
    engine.workerStarted('A');
    expect(engine.handle({ type: 'entry.scanned', entry: 'A', files: [b] })).toEqual(['B']);
    expect(jobs('a.txt')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
    expect(scanRows()).toBe(0);
  });

  it('a chunked scan that finds most files gone is refused with the counts, changes nothing, and leaves nothing behind', () => {
    const { engine, changed, settle } = makeEngine(ALL_TO_A_AND_B);
    for (let i = 0; i < 30; i++) changed('A', `f${i}.txt`, stat(10, 1, String(100 + i)));
    settle();
    const before = store.listFiles(0, 100);
    const replicasBefore = store.replicasOfEntry('A');
    const kept = replicasBefore.slice(0, 12).map((r) => ({ path: r.filename, size: r.size, mtime: r.mtime, ino: r.ino }));
    // One of the gone files shows up under a new name (same inode and size): a move, not a deletion.
    const movedFrom = replicasBefore[20]!;
    kept.push({ path: 'renamed.txt', size: movedFrom.size, mtime: movedFrom.mtime, ino: movedFrom.ino });
    let refusal: unknown;
    try {
      chunked(engine, 'A', kept, 5);
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toBeInstanceOf(MassDeletionRefused);
    expect(refusal).toMatchObject({ entry: 'A', missing: 17, total: 30 });
    expect(store.listFiles(0, 100)).toEqual(before);
    expect(store.replicasOfEntry('A')).toEqual(replicasBefore);
    expect(store.countJobs('A') + store.countJobs('B')).toBe(0);
    expect(scanRows()).toBe(0);

    // Forced, it applies: the move as a move, the rest as deletions.
    chunked(engine, 'A', kept, 5, true);
    expect(jobs('renamed.txt')).toMatchObject([{ entry: 'B', kind: 'move', fromFilename: movedFrom.filename }]);
    expect(store.countJobs('B')).toBe(18);
  });

  it('a batch of reports records finished uploads set-based, as one report at a time would', () => {
    const { engine, changed, take } = makeEngine(ALL_TO_EVERYONE);
    for (let i = 0; i < 40; i++) changed('A', `f${i}.txt`, stat(i, 1000 + i, String(i)));
    const commands = take('B', everyoneRuns, 100);
    expect(commands).toHaveLength(40);
    // One finished job of them is stale: it goes back to the queue.
    const reports: WorkerReport[] = commands.map((c, i) =>
      i === 5
        ? { type: 'job.finished', entry: 'B', jobId: c.id, outcome: { ok: false, reason: 'stale', message: 'changed' } }
        : { type: 'job.finished', entry: 'B', jobId: c.id, outcome: { ok: true, stat: stat(i, 1000 + i, `b${i}`) } },
    );
    const { touched, refused } = engine.handleBatch(reports);
    expect(refused).toBeNull();
    expect(touched).toEqual(['B']);
    for (let i = 0; i < 40; i++) {
      const p = commands[i]!.path;
      if (i === 5) {
        expect(file(p)).toMatchObject({ uptodate: ['A'] });
        expect(jobs(p)).toMatchObject([{ entry: 'B', state: 'queued' }, { entry: 'C', state: 'queued' }]);
      } else {
        expect(file(p)).toMatchObject({ owners: ['A', 'B', 'C'], uptodate: ['A', 'B'] });
        expect(store.replica('B', fidOf(p))).toMatchObject({ version: 1, ino: `b${i}` });
        expect(jobs(p)).toMatchObject([{ entry: 'C', kind: 'upload' }]);
      }
    }
  });
});

describe('applyRules', () => {
  it('queues uploads for the new owners of existing files', () => {
    const { engine, changed } = makeEngine([]);
    changed('A', 'x.txt', stat(1, 1));
    changed('C', 'docs/y.txt', stat(1, 1));
    expect(file('x.txt')?.owners).toEqual(['A']);
    expect(store.countJobs('B')).toBe(0);

    const rules: Rule[] = [{ match: { path: '/docs/' }, sync: ['B'] }, { match: { path: '/' }, sync: ['A'] }];
    expect(engine.applyRules(rules).sort()).toEqual(['A', 'B']);
    expect(engine.activeRules).toEqual(rules);
    expect(store.rules('active')).toEqual(rules);
    expect(file('x.txt')?.owners).toEqual(['A']);
    expect(jobs('x.txt')).toEqual([]);
    expect(file('docs/y.txt')?.owners).toEqual(['A', 'B', 'C']);
    expect(jobs('docs/y.txt').map((j) => `${j.entry}:${j.kind}`)).toEqual(['A:upload', 'B:upload']);
  });

  it('a new ban deletes the banned copies', () => {
    const { engine, changed, settle } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'p/x.txt', stat(1, 1));
    changed('A', 'q/x.txt', stat(1, 1));
    settle();

    expect(engine.applyRules([...ALL_TO_A_AND_B, { match: { path: '/p' }, ban: ['B'] }])).toEqual(['B']);
    expect(file('p/x.txt')?.owners).toEqual(['A']);
    expect(jobs('p/x.txt')).toMatchObject([{ entry: 'B', kind: 'delete' }]);
    expect(jobs('q/x.txt')).toEqual([]);
  });
});

describe('folder digests (a start-up scan that leaves out unchanged folders)', () => {
  const digest = (folder: string, d: string, listed: boolean): ScanDigest => ({ folder, digest: d, listed });
  const scan = (engine: SyncEngine, entry: Name, files: ScannedFile[], digests: ScanDigest[]) =>
    engine.handleBatch([{ type: 'entry.scanned', entry, files, digests }]);
  const kept = (entry: Name) => Object.fromEntries(store.scanDigests(entry));
  const full = (size: number, mtime: number, ino: string, mode = 0o644, ctime = mtime): FileStat => ({ size, mtime, ino, mode, ctime });

  it('digests each folder of an entry\'s replicas as its worker digests the listing on disk, and keeps them', () => {
    const { engine, changed } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'd/x.txt', full(1, 10, '1'));
    changed('A', 'd/y.txt', full(2, 20, '2', 0o600, 21));
    changed('A', 'd', { size: 0, mtime: 0, ino: '5', mode: 0o40755, ctime: 7 });
    changed('A', 'top.txt', full(3, 30, '3'));
    changed('B', 'b.txt', full(3, 30, '3'));
    const digests = Object.fromEntries(engine.folderDigests('A'));
    // The same lines as the worker writes, in any order.
    expect(digests).toEqual({
      '': listingDigest([childLine('top.txt', 3, 30, 30, 3, 0o644), childLine('d', 0, 0, 7, 5, 0o40755)]),
      d: listingDigest([childLine('y.txt', 2, 20, 21, 2, 0o600), childLine('x.txt', 1, 10, 10, 1, 0o644)]),
    });
    expect(kept('A')).toEqual(digests);
    expect(kept('B')).toEqual({});
    // A replica without a ctime is never the same as a listing (which has one).
    expect(childLine('x.txt', 1, 10, null, '1', 0o644)).not.toBe(childLine('x.txt', 1, 10, 10, '1', 0o644));
  });

  it('drops the digest of a folder whenever a replica in it is written, whatever the names', () => {
    const { engine, changed, deleted, moved } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'é/ü/ß.txt', full(1, 10, '1'));
    changed('A', 'é/other.txt', full(1, 10, '4'));
    changed('A', 'top.txt', full(1, 10, '2'));
    changed('A', 'x/y.txt', full(1, 10, '3'));
    changed('B', 'é/ü/ß.txt', full(1, 10, '1'));
    engine.folderDigests('A');
    engine.folderDigests('B');
    expect(Object.keys(kept('A')).sort()).toEqual(['', 'x', 'é', 'é/ü']);
    changed('A', 'é/ü/ß.txt', full(2, 20, '1'));
    expect(Object.keys(kept('A')).sort()).toEqual(['', 'x', 'é']);
    expect(Object.keys(kept('B'))).toEqual(['é/ü']);
    deleted('A', 'top.txt');
    expect(Object.keys(kept('A')).sort()).toEqual(['x', 'é']);
    moved('A', 'x/y.txt', 'é/y.txt', full(1, 10, '3'));
    expect(Object.keys(kept('A'))).toEqual([]);
    // Computed again from the replicas as they are now.
    expect(Object.keys(Object.fromEntries(engine.folderDigests('A'))).sort()).toEqual(['é', 'é/ü']);
  });

  it("keeps an entry's count of files with its complete digests, and counts again once a write drops them", () => {
    const { engine, changed, deleted } = makeEngine(ALL_TO_A_AND_B);
    for (const p of ['d/a.txt', 'd/b.txt', 'e/c.txt']) changed('A', p, full(1, 10, p));
    changed('B', 'd/a.txt', full(1, 10, 'd/a.txt'));
    const complete = () => store.digestsComplete('A');
    expect(complete()).toBe(false);
    expect(store.countReplicas('A')).toBe(3);
    engine.folderDigests('A');
    expect(complete()).toBe(true);
    expect(store.countReplicas('A')).toBe(3);
    // What the count is taken from: the kept one, while it is there.
    const db = new Database(path.join(dir, 'catalogue.db'));
    try {
      store.commit();
      expect(db.prepare("SELECT digest FROM scan_digests WHERE entry = 'A' AND folder = '/'").pluck().get()).toBe('3');
      // A store of an earlier version kept no count there: the replicas are counted.
      db.prepare("UPDATE scan_digests SET digest = '' WHERE entry = 'A' AND folder = '/'").run();
      expect(store.countReplicas('A')).toBe(3);
    } finally {
      db.close();
    }
    engine.folderDigests('A');
    changed('A', 'f/new.txt', full(1, 10, 'n'));
    expect(complete()).toBe(false);
    expect(store.countReplicas('A')).toBe(4);
    engine.folderDigests('A');
    deleted('A', 'd/a.txt');
    expect(store.countReplicas('A')).toBe(3);
    engine.folderDigests('A');
    expect(store.countReplicas('A')).toBe(3);
    expect(store.countReplicas('B')).toBe(1);
  });

  it('leaves the replicas of a folder left out as they are (none gone), and compares the listed ones', () => {
    const { engine, changed } = makeEngine(ALL_TO_A_AND_B);
    for (const p of ['d/a.txt', 'd/b.txt', 'e/c.txt', 'e/gone.txt']) changed('A', p, full(1, 10, p));
    const d = Object.fromEntries(engine.folderDigests('A')).d!;
    const { refused, stale } = scan(engine, 'A', [
      { path: 'e/c.txt', ...full(1, 10, 'e/c.txt') },
      { path: 'e/new.txt', ...full(5, 50, 'n') },
    ], [digest('', 'top', true), digest('d', d, false), digest('e', 'e-2', true)]);
    expect(refused).toBeNull();
    expect(stale).toBeNull();
    // d's files were not listed and are not gone; e's missing file is.
    expect(store.replica('A', fidOf('d/a.txt'))).toBeDefined();
    expect(store.replica('A', fidOf('d/b.txt'))).toBeDefined();
    expect(store.replica('A', fidOf('e/gone.txt'))).toBeUndefined();
    expect(store.replica('A', fidOf('e/new.txt'))).toMatchObject({ size: 5 });
    expect(jobs('e/new.txt')).toMatchObject([{ entry: 'B', kind: 'upload' }]);
    expect(kept('A').d).toBe(d);
  });

  it('finds the files of a folder gone from disk gone, when every other folder was left out', () => {
    const { engine, changed } = makeEngine(ALL_TO_A_AND_B);
    for (const p of ['d/a.txt', 'e/b.txt', 'f/c.txt']) changed('A', p, full(1, 10, p));
    const given = Object.fromEntries(engine.folderDigests('A'));
    // A write in f after the digests were given drops f's (and the mark that every folder has
    // one), and f is gone from disk: the worker lists neither f nor its file, and leaves out the
    // rest. The digests kept are then exactly the folders left out, yet f's file is gone.
    changed('A', 'f/c.txt', full(2, 20, 'f/c.txt'));
    const { stale } = scan(engine, 'A', [], [digest('', 'top', true), digest('d', given.d!, false), digest('e', given.e!, false)]);
    expect(stale).toBeNull();
    expect(store.replica('A', fidOf('f/c.txt'))).toBeUndefined();
    expect(store.replica('A', fidOf('d/a.txt'))).toBeDefined();
    // Every folder left out, the digests complete: nothing is gone.
    const now = Object.fromEntries(engine.folderDigests('A'));
    scan(engine, 'A', [], [digest('', 'top', true), digest('d', now.d!, false), digest('e', now.e!, false)]);
    expect(store.replica('A', fidOf('d/a.txt'))).toBeDefined();
    expect(store.replica('A', fidOf('e/b.txt'))).toBeDefined();
  });

  it('refuses a scan that left out a folder written since its digest was given: nothing recorded, and the next scan lists every file', () => {
    const { engine, changed } = makeEngine(ALL_TO_A_AND_B);
    changed('A', 'd/a.txt', full(1, 10, '1'));
    changed('A', 'e/b.txt', full(1, 10, '2'));
    const given = Object.fromEntries(engine.folderDigests('A'));
    // A replica in d is written after the worker was given d's digest.
    changed('A', 'd/a.txt', full(2, 20, '1'));
    const before = store.listFiles(0, 100);
    const { stale } = scan(engine, 'A', [{ path: 'elsewhere.txt', ...full(1, 1, '9') }], [
      digest('', 'top', true),
      digest('d', given.d!, false),
      digest('e', given.e!, false),
    ]);
    expect(stale).toBeInstanceOf(ScanStale);
    expect(stale).toMatchObject({ entry: 'A', folders: 1 });
    expect(store.listFiles(0, 100)).toEqual(before);
    expect(store.scanSize('A')).toBe(0);
    expect(engine.folderDigests('A')).toEqual([]);
    expect(engine.folderDigests('A')).toHaveLength(2);
  });
});
