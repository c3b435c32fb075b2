import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { api, SPEC_RULES, startDaemon, tempDir, until, writeSetup, type RunningDaemon, daemonHarness } from './helpers.js';

/** End to end: a real daemon process syncing real folders. */

const harness = daemonHarness('ferry-sync-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const ALL_TO_A_B = [{ match: { path: '/' }, sync: ['A', 'B'] }];

const rootOf = (entry: string) => path.join(dir, entry);
const at = (entry: string, rel: string) => path.join(rootOf(entry), rel);

async function setup(rules: unknown[], entries = ['A', 'B']): Promise<string> {
  return writeSetup(dir, { entries: Object.fromEntries(entries.map((e) => [e, e])), rules });
}

async function daemon(setupFile: string): Promise<RunningDaemon> {
  const d = await startDaemon(setupFile);
  daemons.push(d);
  return d;
}

async function put(entry: string, rel: string, content: string | Buffer): Promise<void> {
  await fsp.mkdir(path.dirname(at(entry, rel)), { recursive: true });
  await fsp.writeFile(at(entry, rel), content);
}

const read = (entry: string, rel: string): Buffer | null => {
  try {
    return fs.readFileSync(at(entry, rel));
  } catch {
    return null;
  }
};

/** A file that reaches `entry` with exactly these bytes. */
const arrived = (entry: string, rel: string, content: string | Buffer) => () =>
  read(entry, rel)?.equals(Buffer.isBuffer(content) ? content : Buffer.from(content)) ?? false;

const gone = (entry: string, rel: string) => () => !fs.existsSync(at(entry, rel));

/** A PDF's worth of random bytes: binary, so that any mangling shows. */
const pdf = (size = 64 * 1024) => Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(size)]);

const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** Every file under an entry's root, Ferry's own temporaries included (not the root's marker): relative path → digest. */
function tree(entry: string): Record<string, string> {
  const base = rootOf(entry);
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (d === base && e.name === '.ferry-entry') continue;
      // The versions an entry keeps of what a sync replaced (issue 14): not part of the tree.
      if (d === base && e.name === '.ferry-versions') continue;
      if (e.isDirectory()) walk(p);
      else out[path.relative(base, p).split(path.sep).join('/')] = digest(fs.readFileSync(p));
    }
  };
  walk(base);
  return out;
}

const same = (a: Record<string, string>, b: Record<string, string>) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
const sorted = (t: Record<string, string>) => Object.fromEntries(Object.entries(t).sort(([x], [y]) => x.localeCompare(y)));

/** Waits until two roots hold the same files with the same bytes, and at least `min` of them. */
async function converged(a: string, b: string, min = 1): Promise<void> {
  await until(`${b} to hold what ${a} holds`, () => {
    const ta = tree(a);
    return Object.keys(ta).length >= min && same(ta, tree(b));
  });
  expect(sorted(tree(b))).toEqual(sorted(tree(a)));
}

/** No half-written transfer is left anywhere. */
function expectNoTemporaries(...entries: string[]): void {
  for (const entry of entries) {
    expect(Object.keys(tree(entry)).filter((f) => path.posix.basename(f).startsWith('.ferry-tmp-'))).toEqual([]);
  }
}

type Listing = Map<string, { owners: string[]; uptodate: string[]; size: number }>;

async function listed(d: RunningDaemon): Promise<Listing> {
  const res = await api(d.api, 'GET', '/files?limit=1000');
  expect(res.status).toBe(200);
  return new Map(res.body.files.map((f: { filename: string }) => [f.filename, f]));
}

/** Log lines of finished jobs, as the daemon wrote them. */
const jobLogs = (d: RunningDaemon, entry: string, kind: string) =>
  d.logs.filter((l) => l.entry === entry && l.kind === kind && typeof l.msg === 'string' && !String(l.msg).startsWith('job '));

describe('sync under the spec rules', () => {
  it('a PDF under backedup/ in A reaches B byte for byte; a .txt there does not', async () => {
    const d = await daemon(await setup(SPEC_RULES));
    const doc = pdf();
    await put('A', 'backedup/notes.txt', 'not a PDF');
    await put('A', 'backedup/doc.pdf', doc);
    await until('the PDF in B', arrived('B', 'backedup/doc.pdf', doc));
    // The .txt was written first: had it been copied, it would be there by now.
    expect(read('B', 'backedup/notes.txt')).toBeNull();
    expect(tree('B')).toEqual({ 'backedup/doc.pdf': digest(doc) });

    const files = await until('both files listed', async () => {
      const f = await listed(d);
      return f.get('backedup/doc.pdf')?.uptodate.length === 2 && f.has('backedup/notes.txt') ? f : null;
    }) as Listing;
    expect(files.get('backedup/doc.pdf')).toMatchObject({ owners: ['A', 'B'], uptodate: ['A', 'B'], size: doc.length });
    expect(files.get('backedup/notes.txt')).toMatchObject({ owners: ['A'], uptodate: ['A'] });
    expectNoTemporaries('A', 'B');
  });

  it('a PDF outside backedup/ stays in A', async () => {
    await daemon(await setup(SPEC_RULES));
    await put('A', 'elsewhere/doc.pdf', pdf(100));
    await put('A', 'backedup/later.pdf', 'later');
    await until('the later PDF in B', arrived('B', 'backedup/later.pdf', 'later'));
    expect(read('B', 'elsewhere/doc.pdf')).toBeNull();
    expectNoTemporaries('A', 'B');
  });

  it('a file written in B reaches A', async () => {
    await daemon(await setup(SPEC_RULES));
    const content = randomBytes(10_000);
    await put('B', 'from-b/data.bin', content);
    await until('the file in A', arrived('A', 'from-b/data.bin', content));
    expectNoTemporaries('A', 'B');
  });

  it('nothing reaches an entry that owns nothing', async () => {
    const d = await daemon(await setup(SPEC_RULES, ['A', 'B', 'C']));
    const doc = pdf();
    await put('A', 'plain.txt', 'for A only');
    await put('B', 'from-b.txt', 'B to A');
    await put('A', 'backedup/doc.pdf', doc);
    await until('the PDF in B', arrived('B', 'backedup/doc.pdf', doc));
    await until('B’s file in A', arrived('A', 'from-b.txt', 'B to A'));
    const files = await until('three files listed', async () => {
      const f = await listed(d);
      return f.size === 3 ? f : null;
    }) as Listing;
    for (const f of files.values()) expect(f.owners).not.toContain('C');
    expect(tree('C')).toEqual({});
    expectNoTemporaries('A', 'B', 'C');
  });

  it('an edit in A propagates', async () => {
    await daemon(await setup(SPEC_RULES));
    const v1 = pdf();
    const v2 = pdf(200_000);
    await put('A', 'backedup/doc.pdf', v1);
    await until('v1 in B', arrived('B', 'backedup/doc.pdf', v1));
    await fsp.writeFile(at('A', 'backedup/doc.pdf'), v2);
    await until('v2 in B', arrived('B', 'backedup/doc.pdf', v2));
    // A same-size edit too (only the bytes and mtime differ).
    const v3 = Buffer.from(v2);
    v3[v3.length - 1] ^= 0xff;
    await fsp.writeFile(at('A', 'backedup/doc.pdf'), v3);
    await until('v3 in B', arrived('B', 'backedup/doc.pdf', v3));
    expect(tree('B')).toEqual({ 'backedup/doc.pdf': digest(v3) });
    expectNoTemporaries('A', 'B');
  });

  it('a deletion in A propagates: B’s copy goes, and the file leaves the listing', async () => {
    const d = await daemon(await setup(SPEC_RULES));
    const doc = pdf();
    await put('A', 'backedup/doc.pdf', doc);
    await put('A', 'backedup/keep.pdf', 'keep');
    await until('the PDFs in B', () => arrived('B', 'backedup/doc.pdf', doc)() && arrived('B', 'backedup/keep.pdf', 'keep')());
    await until('both listed', async () => (await listed(d)).size === 2);

    await fsp.rm(at('A', 'backedup/doc.pdf'));
    await until('B’s copy deleted', gone('B', 'backedup/doc.pdf'));
    await until('the file out of GET /files', async () => !(await listed(d)).has('backedup/doc.pdf'));
    expect([...(await listed(d)).keys()]).toEqual(['backedup/keep.pdf']);
    expect(tree('B')).toEqual({ 'backedup/keep.pdf': digest(Buffer.from('keep')) });
    expectNoTemporaries('A', 'B');
  });

  it('a folder removed in A is removed in B, files and folder', async () => {
    const d = await daemon(await setup(SPEC_RULES));
    const names = ['a.pdf', 'b.pdf', 'sub/c.pdf', 'sub/deeper/d.pdf'];
    for (const n of names) await put('A', `backedup/gone/${n}`, n);
    await put('A', 'backedup/stays.pdf', 'stays');
    await until('every PDF in B', () => names.every((n) => arrived('B', `backedup/gone/${n}`, n)()) && arrived('B', 'backedup/stays.pdf', 'stays')());

    await fsp.rm(at('A', 'backedup/gone'), { recursive: true });
    await until('the folder gone from B', gone('B', 'backedup/gone'));
    expect(tree('B')).toEqual({ 'backedup/stays.pdf': digest(Buffer.from('stays')) });
    await until('the listing follows', async () => [...(await listed(d)).keys()].join() === 'backedup/stays.pdf');
    expectNoTemporaries('A', 'B');
  });

  it('a rename in A propagates as a rename: B’s copy keeps its inode, and a move job runs', async () => {
    const d = await daemon(await setup(SPEC_RULES));
    const doc = pdf();
    await put('A', 'backedup/old.pdf', doc);
    await until('the PDF in B', arrived('B', 'backedup/old.pdf', doc));
    // Recorded too: a rename told before B's copy is would find no copy in B to move.
    await until('B up to date in the listing', async () => (await listed(d)).get('backedup/old.pdf')?.uptodate.join() === 'A,B');
    const ino = fs.statSync(at('B', 'backedup/old.pdf')).ino;

    await fsp.rename(at('A', 'backedup/old.pdf'), at('A', 'backedup/new.pdf'));
    await until('the renamed PDF in B', () => arrived('B', 'backedup/new.pdf', doc)() && gone('B', 'backedup/old.pdf')());
    expect(fs.statSync(at('B', 'backedup/new.pdf')).ino).toBe(ino);
    const moves = await until('the move job in the log', () => {
      const m = jobLogs(d, 'B', 'move');
      return m.length > 0 ? m : null;
    }) as Record<string, unknown>[];
    expect(String(moves[0].msg)).toContain('backedup/old.pdf');
    expect(String(moves[0].msg)).toContain('backedup/new.pdf');
    expect(jobLogs(d, 'B', 'upload').filter((l) => String(l.msg).includes('new.pdf'))).toEqual([]);
    expect(tree('B')).toEqual({ 'backedup/new.pdf': digest(doc) });

    await until('the listing follows', async () => {
      const f = await listed(d);
      return !f.has('backedup/old.pdf') && f.get('backedup/new.pdf')?.uptodate.join() === 'A,B';
    });
    expectNoTemporaries('A', 'B');
  });

  it('a rename of a folder with several files propagates, each file moved', async () => {
    const d = await daemon(await setup(SPEC_RULES));
    const docs = ['one.pdf', 'two.pdf', 'sub/three.pdf'].map((name) => ({ name, bytes: pdf(5000) }));
    for (const { name, bytes } of docs) await put('A', `backedup/folder/${name}`, bytes);
    await until('every PDF in B', () => docs.every(({ name, bytes }) => arrived('B', `backedup/folder/${name}`, bytes)()));
    // Recorded too: a rename told before B's copies are would find no copy in B to move.
    await until('B up to date in the listing', async () => {
      const f = await listed(d);
      return docs.every(({ name }) => f.get(`backedup/folder/${name}`)?.uptodate.join() === 'A,B');
    });
    const inodes = new Map(docs.map(({ name }) => [name, fs.statSync(at('B', `backedup/folder/${name}`)).ino]));

    await fsp.rename(at('A', 'backedup/folder'), at('A', 'backedup/renamed'));
    await until('the renamed folder in B', () =>
      docs.every(({ name, bytes }) => arrived('B', `backedup/renamed/${name}`, bytes)()) && gone('B', 'backedup/folder')(),
    );
    for (const { name } of docs) expect(fs.statSync(at('B', `backedup/renamed/${name}`)).ino, name).toBe(inodes.get(name));
    await until('a move job per file in the log', () => jobLogs(d, 'B', 'move').length === docs.length);
    expect(jobLogs(d, 'B', 'upload').filter((l) => String(l.msg).includes('renamed/'))).toEqual([]);
    await converged('A', 'B', docs.length);
    expectNoTemporaries('A', 'B');
  });

  it('names with spaces and accents, and empty files, go through', async () => {
    await daemon(await setup(SPEC_RULES));
    const doc = pdf(2000);
    await put('A', 'backedup/dossier é/naïve résumé (1).pdf', doc);
    await put('A', 'backedup/empty.pdf', '');
    await put('B', 'from b/ünïcödé 文件.txt', 'ü');
    await until('the accented PDF in B', arrived('B', 'backedup/dossier é/naïve résumé (1).pdf', doc));
    await until('the empty PDF in B', arrived('B', 'backedup/empty.pdf', ''));
    await until('the unicode file in A', arrived('A', 'from b/ünïcödé 文件.txt', 'ü'));
    expectNoTemporaries('A', 'B');
  });

  it('a big file never appears half-written under its name', async () => {
    await daemon(await setup(SPEC_RULES));
    const big = pdf(24 * 1024 * 1024);
    // Written beside the root, then renamed in: A only ever holds it whole.
    await fsp.writeFile(path.join(dir, 'staging.pdf'), big);
    await fsp.mkdir(at('A', 'backedup'));
    await fsp.rename(path.join(dir, 'staging.pdf'), at('A', 'backedup/big.pdf'));
    const sizes = new Set<number>();
    await until('the big PDF in B', () => {
      const size = fs.statSync(at('B', 'backedup/big.pdf'), { throwIfNoEntry: false })?.size;
      if (size !== undefined) sizes.add(size);
      return size === big.length;
    }, 30_000, 2);
    expect([...sizes]).toEqual([big.length]);
    expect(read('B', 'backedup/big.pdf')!.equals(big)).toBe(true);
    expectNoTemporaries('A', 'B');
  });

  it('nested folders are created', async () => {
    await daemon(await setup(SPEC_RULES));
    const doc = pdf(1000);
    await put('A', 'backedup/a/b/c/d/e/deep.pdf', doc);
    await until('the deep PDF in B', arrived('B', 'backedup/a/b/c/d/e/deep.pdf', doc));
    await put('B', 'x/y/z/from-b.txt', 'deep in B');
    await until('the deep file in A', arrived('A', 'x/y/z/from-b.txt', 'deep in B'));
    expectNoTemporaries('A', 'B');
  });
});

describe('a stopped entry', () => {
  it('is left alone while stopped, and catches up exactly when started', async () => {
    const d = await daemon(await setup(ALL_TO_A_B));
    await put('A', 'keep.txt', 'keep');
    await put('A', 'edit.txt', 'before the edit');
    await put('A', 'dir/remove.txt', 'to be removed');
    await converged('A', 'B', 3);

    expect((await api(d.api, 'PUT', '/entries/B/stop')).status).toBe(200);
    expect((await api(d.api, 'GET', '/entries/B/status')).body.status).toBe('stopped');
    const bWhileStopped = tree('B');

    await put('A', 'new/created.txt', 'created while B was stopped');
    await fsp.writeFile(at('A', 'edit.txt'), 'after the edit, longer');
    await fsp.rm(at('A', 'dir/remove.txt'));
    await fsp.rename(at('A', 'keep.txt'), at('A', 'kept.txt'));
    // Once the daemon has recorded every change, B would have been touched if it were to be.
    await until('the changes recorded', async () => {
      const f = await listed(d);
      return (
        f.get('new/created.txt')?.uptodate.join() === 'A' &&
        f.get('edit.txt')?.uptodate.join() === 'A' &&
        f.get('edit.txt')?.size === 22 &&
        f.has('kept.txt') &&
        !f.has('keep.txt') &&
        !f.has('dir/remove.txt')
      );
    });
    const files = await listed(d);
    expect(files.get('new/created.txt')).toMatchObject({ owners: ['A', 'B'], uptodate: ['A'] });
    expect(tree('B')).toEqual(bWhileStopped);

    expect((await api(d.api, 'PUT', '/entries/B/start')).status).toBe(200);
    await converged('A', 'B', 3);
    expect(Object.keys(tree('B')).sort()).toEqual(['edit.txt', 'kept.txt', 'new/created.txt']);
    await until('B up to date in the listing', async () =>
      [...(await listed(d)).values()].every((f) => f.uptodate.join() === 'A,B'),
    );
    expectNoTemporaries('A', 'B');
  });
});

describe('a daemon that was down', () => {
  it('catches up on start with what changed in A meanwhile: creations, edits, deletions, renames', async () => {
    const file = await setup(ALL_TO_A_B);
    const first = await daemon(file);
    await put('A', 'edit.txt', 'v1');
    await put('A', 'remove.txt', 'to be removed');
    await put('A', 'dir/rename-me.txt', 'moving content');
    await put('A', 'still.txt', 'unchanged');
    await converged('A', 'B', 4);
    const renamedIno = fs.statSync(at('B', 'dir/rename-me.txt')).ino;
    expect(await first.stop('SIGTERM')).toBe(0);

    await put('A', 'created/while-down.txt', 'created while down');
    await fsp.writeFile(at('A', 'edit.txt'), 'v2, edited while down');
    await fsp.rm(at('A', 'remove.txt'));
    await fsp.mkdir(at('A', 'other'));
    await fsp.rename(at('A', 'dir/rename-me.txt'), at('A', 'other/renamed.txt'));

    const second = await daemon(file);
    await converged('A', 'B', 4);
    expect(Object.keys(tree('B')).sort()).toEqual(['created/while-down.txt', 'edit.txt', 'other/renamed.txt', 'still.txt']);
    expect(read('B', 'edit.txt')!.toString()).toBe('v2, edited while down');
    // Found by inode at the rescan: moved in B too, not copied again.
    expect(fs.statSync(at('B', 'other/renamed.txt')).ino).toBe(renamedIno);
    await until('the listing follows', async () => {
      const f = await listed(second);
      return f.size === 4 && [...f.values()].every((x) => x.uptodate.join() === 'A,B');
    });
    expectNoTemporaries('A', 'B');
  });

  it('catches up with what changed in B meanwhile', async () => {
    const file = await setup(ALL_TO_A_B);
    const first = await daemon(file);
    await put('A', 'edit.txt', 'v1');
    await put('A', 'remove.txt', 'to be removed');
    await put('A', 'still.txt', 'unchanged');
    await converged('A', 'B', 3);
    expect(await first.stop('SIGTERM')).toBe(0);

    await put('B', 'b-new/created.txt', 'created in B while down');
    await fsp.writeFile(at('B', 'edit.txt'), 'v2 from B');
    await fsp.rm(at('B', 'remove.txt'));
    await fsp.rename(at('B', 'still.txt'), at('B', 'b-new/moved.txt'));

    await daemon(file);
    await converged('B', 'A', 3);
    expect(Object.keys(tree('A')).sort()).toEqual(['b-new/created.txt', 'b-new/moved.txt', 'edit.txt']);
    expect(read('A', 'edit.txt')!.toString()).toBe('v2 from B');
    expectNoTemporaries('A', 'B');
  });

  it('remembers the copies it made just before it was stopped', async () => {
    const file = await setup(ALL_TO_A_B);
    const first = await daemon(file);
    const names = Array.from({ length: 30 }, (_, i) => `batch/f${i}.txt`);
    for (const n of names) await put('A', n, `content of ${n}`);
    // Stopped the moment the copies are on disk, whether or not the daemon has heard back yet.
    await until('every file in B', () => names.every((n) => arrived('B', n, `content of ${n}`)()), 15_000, 2);
    expect(await first.stop('SIGTERM')).toBe(0);

    // While it is down, some of B's copies are deleted (fewer than the mass-deletion rail
    // stops at): deletions the next run must propagate to A, not undo.
    const deleted = names.slice(-9);
    for (const n of deleted) await fsp.rm(at('B', n));
    await put('B', 'sentinel.txt', 'after the deletions');

    const second = await daemon(file);
    await until('the sentinel in A', arrived('A', 'sentinel.txt', 'after the deletions'));
    await until('the deletions in A', () => deleted.every((n) => gone('A', n)()));
    await converged('A', 'B', 22);
    expect(Object.keys(tree('B')).sort()).toEqual([...names.slice(0, -9), 'sentinel.txt'].sort());
    // Nothing B already held was copied to it again.
    expect(jobLogs(second, 'B', 'upload')).toEqual([]);
    expectNoTemporaries('A', 'B');
  });

  it('keeps both versions of a file edited in A and in B while it was down', async () => {
    const file = await setup(ALL_TO_A_B);
    const first = await daemon(file);
    await put('A', 'doc.txt', 'v1');
    await converged('A', 'B', 1);
    expect(await first.stop('SIGTERM')).toBe(0);

    await fsp.writeFile(at('A', 'doc.txt'), 'edited in A');
    await fsp.writeFile(at('B', 'doc.txt'), 'edited in B, differently');

    await daemon(file);
    await until('A and B to agree on two files', () => {
      const a = tree('A');
      return Object.keys(a).length === 2 && same(a, tree('B'));
    });
    const names = Object.keys(tree('A')).sort();
    expect(names[0]).toMatch(/^doc\.sync-conflict-\d{8}-\d{6}-[AB]\.txt$/);
    expect(names[1]).toBe('doc.txt');
    expect(names.map((n) => read('A', n)!.toString()).sort()).toEqual(['edited in A', 'edited in B, differently']);
    expectNoTemporaries('A', 'B');
  });
});

describe('two edits neither entry saw of the other: the newer keeps the name (as Syncthing)', () => {
  // B is stopped, doc.txt is edited in both entries with explicit modification times, B starts.
  // The newer edit ends under doc.txt in both; the older one is the conflict copy, made in the
  // entry it came from and named after it.
  const cases = [
    { older: 'B', newer: 'A', what: 'the older edit in the stopped entry' },
    { older: 'A', newer: 'B', what: 'the newer edit in the stopped entry' },
  ] as const;
  for (const { older, newer, what } of cases) {
    it(`${what}: ${newer}'s newer text under doc.txt in both, ${older}'s as doc.sync-conflict-…-${older}.txt in both`, async () => {
      const d = await daemon(await setup(ALL_TO_A_B));
      await put('A', 'doc.txt', 'v1');
      await converged('A', 'B', 1);
      expect((await api(d.api, 'PUT', '/entries/B/stop')).status).toBe(200);

      const now = Date.now() / 1000;
      const text = { [older]: `the older edit, made in ${older}`, [newer]: `the newer edit, made in ${newer}, longer` };
      const mtime = { [older]: now - 120, [newer]: now - 60 };
      // B's edit first (it is stopped), then A's, each with its time set explicitly.
      for (const entry of ['B', 'A']) {
        await fsp.writeFile(at(entry, 'doc.txt'), text[entry]!);
        fs.utimesSync(at(entry, 'doc.txt'), mtime[entry]!, mtime[entry]!);
      }
      await until('A’s edit recorded', async () => {
        const f = (await listed(d)).get('doc.txt');
        return f?.size === text.A!.length && f.uptodate.join() === 'A';
      });
      expect((await api(d.api, 'PUT', '/entries/B/start')).status).toBe(200);

      await until('A and B to agree on two files', () => {
        const a = tree('A');
        return Object.keys(a).length === 2 && same(a, tree('B'));
      });
      const names = Object.keys(tree('A')).sort();
      expect(names[1]).toBe('doc.txt');
      expect(names[0]).toMatch(new RegExp(`^doc\\.sync-conflict-\\d{8}-\\d{6}-${older}\\.txt$`));
      for (const entry of ['A', 'B']) {
        expect(read(entry, 'doc.txt')!.toString(), `doc.txt in ${entry}`).toBe(text[newer]);
        expect(read(entry, names[0]!)!.toString(), `the conflict copy in ${entry}`).toBe(text[older]);
      }
      // The newer edit keeps its modification time; the conflict copy has the older one.
      expect(Math.floor(fs.statSync(at('B', 'doc.txt')).mtimeMs / 1000)).toBe(Math.floor(mtime[newer]!));
      await until('both files up to date in A and B', async () => {
        const f = await listed(d);
        return f.size === 2 && [...f.values()].every((x) => x.uptodate.join() === 'A,B');
      });
      expectNoTemporaries('A', 'B');
    });
  }
});

describe('rules', () => {
  it('a rules reload spreads the existing files to a new owner', async () => {
    const file = await setup([{ match: { path: '/' }, sync: ['A'] }], ['A', 'C']);
    const d = await daemon(file);
    await put('A', 'one.txt', 'one');
    await put('A', 'deep/two.bin', randomBytes(3000));
    await until('both listed', async () => (await listed(d)).size === 2);
    expect(tree('C')).toEqual({});

    const rules = [{ match: { path: '/' }, sync: ['A', 'C'] }];
    expect((await api(d.api, 'PUT', '/rules', { rules })).status).toBe(200);
    expect((await api(d.api, 'PUT', '/rules/reload')).status).toBe(200);
    await converged('A', 'C', 2);
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).rules).toEqual(rules);
    await until('C up to date in the listing', async () =>
      [...(await listed(d)).values()].every((f) => f.owners.join() === 'A,C' && f.uptodate.join() === 'A,C'),
    );
    expectNoTemporaries('A', 'C');
  });
});

describe('the first start on roots that already hold files', () => {
  it('does not duplicate a file already identical in both roots', async () => {
    await setup(ALL_TO_A_B);
    const bytes = randomBytes(20_000);
    await put('A', 'same.bin', bytes);
    await put('B', 'same.bin', bytes);
    await put('A', 'only-a.txt', 'only in A');
    const d = await daemon(path.join(dir, 'setup.json'));
    await until('both up to date', async () => {
      const f = await listed(d);
      return f.get('same.bin')?.uptodate.join() === 'A,B' && f.get('only-a.txt')?.uptodate.join() === 'A,B';
    });
    // Anything still owed for same.bin would come before this later change.
    await put('A', 'later.txt', 'later');
    await until('later.txt in B', arrived('B', 'later.txt', 'later'));
    await converged('A', 'B', 3);
    expect(Object.keys(tree('A')).sort()).toEqual(['later.txt', 'only-a.txt', 'same.bin']);
    expect(read('A', 'same.bin')).toEqual(bytes);
    expectNoTemporaries('A', 'B');
  });

  it('keeps both versions of a file that differs in A and B: one as a sync-conflict copy', async () => {
    await setup(ALL_TO_A_B);
    await put('A', 'doc.txt', 'the version in A');
    await put('B', 'doc.txt', 'the version in B, longer');
    await daemon(path.join(dir, 'setup.json'));
    await until('A and B to agree on two files', () => {
      const a = tree('A');
      return Object.keys(a).length === 2 && same(a, tree('B'));
    });
    const names = Object.keys(tree('A')).sort();
    expect(names[0]).toMatch(/^doc\.sync-conflict-\d{8}-\d{6}-[AB]\.txt$/);
    expect(names[1]).toBe('doc.txt');
    const contents = names.map((n) => read('A', n)!.toString()).sort();
    expect(contents).toEqual(['the version in A', 'the version in B, longer']);
    expectNoTemporaries('A', 'B');
  });
});
