import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { fidOf } from '../src/paths.js';
import { api, daemonHarness, startDaemon, until, writeWhole, type RunningDaemon } from './helpers.js';

/**
 * Versions on real folders and a real daemon (the built `ferry start`): what a sync overwrites or
 * deletes in an entry is kept there, listed, restored byte for byte, and dropped as its policy
 * says.
 */

const harness = daemonHarness('ferry-versions-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const at = (entry: string, rel: string) => path.join(dir, entry, rel);
const read = (entry: string, rel: string): Buffer | null => {
  try {
    return fs.readFileSync(at(entry, rel));
  } catch {
    return null;
  }
};
async function put(entry: string, rel: string, content: string | Buffer): Promise<void> {
  await fsp.mkdir(path.dirname(at(entry, rel)), { recursive: true });
  await writeWhole(at(entry, rel), content);
}

/** Every version B (or `entry`) holds on disk for `rel`: name → content. */
function versionsOnDisk(entry: string, rel: string): Map<string, Buffer> {
  const folder = at(entry, path.join('.ferry-versions', rel));
  const found = new Map<string, Buffer>();
  try {
    for (const name of fs.readdirSync(folder)) {
      const file = path.join(folder, name);
      if (fs.statSync(file).isFile()) found.set(name, fs.readFileSync(file));
    }
  } catch {
    // none
  }
  return found;
}

interface VersionJson {
  id: number;
  entry: string;
  time: number;
  size: number;
  reason: 'overwritten' | 'deleted';
}

/** A daemon on entries A and B, everything synced to both; `versions` is B's policy (A keeps the default). */
async function boot(versions?: unknown): Promise<RunningDaemon> {
  await fsp.mkdir(path.join(dir, 'A'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'B'), { recursive: true });
  const setup = path.join(dir, 'setup.json');
  await fsp.writeFile(
    setup,
    JSON.stringify({
      entries: {
        A: { driver: 'local_storage', options: { root: 'A' } },
        B: { driver: 'local_storage', options: { root: 'B' }, ...(versions === undefined ? {} : { versions }) },
      },
      rules: [{ match: { path: '/' }, sync: ['A', 'B'] }],
    }),
  );
  const d = await startDaemon(setup);
  daemons.push(d);
  return d;
}

const versionsOf = async (d: RunningDaemon, rel: string): Promise<VersionJson[]> => {
  const res = await api(d.api, 'GET', `/files/${fidOf(rel)}/versions`);
  expect(res.status).toBe(200);
  return res.body.versions as VersionJson[];
};

const listed = async (d: RunningDaemon) => ((await api(d.api, 'GET', '/files?limit=1000')).body.files as { filename: string }[]).map((f) => f.filename);

const holds = (entry: string, rel: string, content: string | Buffer) => () => read(entry, rel)?.equals(Buffer.from(content)) ?? false;

describe('versions', () => {
  it('overwrite a file in A: B keeps its old content as a version; an initial sync makes none', async () => {
    await put('A', 'f.txt', 'first\n');
    await put('A', 'docs/big.bin', randomBytes(200_000));
    const d = await boot();
    await until('the initial sync', holds('B', 'f.txt', 'first\n'));
    await until('the big file in B', () => read('B', 'docs/big.bin')?.length === 200_000);
    // Nothing was overwritten or deleted: no version work, not even the folder.
    expect(fs.existsSync(at('B', '.ferry-versions'))).toBe(false);
    expect(fs.existsSync(at('A', '.ferry-versions'))).toBe(false);
    expect(await versionsOf(d, 'f.txt')).toEqual([]);

    const t0 = Date.now() / 1000;
    await put('A', 'f.txt', 'second\n');
    const oldBig = read('A', 'docs/big.bin')!;
    const newBig = randomBytes(150_000);
    await put('A', 'docs/big.bin', newBig);
    await until('the edits in B', () => holds('B', 'f.txt', 'second\n')() && holds('B', 'docs/big.bin', newBig)());

    const small = (await until('the version of f.txt listed', async () => {
      const list = await versionsOf(d, 'f.txt');
      return list.length === 1 ? list : null;
    }))!;
    expect(small[0]).toEqual({ id: expect.any(Number), entry: 'B', time: expect.any(Number), size: 6, reason: 'overwritten' });
    expect(small[0]!.time).toBeGreaterThanOrEqual(t0 - 1);
    expect([...versionsOnDisk('B', 'f.txt').values()].map(String)).toEqual(['first\n']);
    expect([...versionsOnDisk('B', 'docs/big.bin').values()]).toEqual([oldBig]);
    expect(await versionsOf(d, 'docs/big.bin')).toEqual([expect.objectContaining({ entry: 'B', size: 200_000, reason: 'overwritten' })]);
    // A, where the edits were made, kept nothing; the versions folder is never a file of the catalogue.
    expect(fs.existsSync(at('A', '.ferry-versions'))).toBe(false);
    expect(await listed(d)).toEqual(['docs/big.bin', 'f.txt']);

    // Unknown file: 404; a file with no versions: an empty list.
    expect(await api(d.api, 'GET', `/files/${fidOf('nope.txt')}/versions`)).toMatchObject({
      status: 404,
      body: { reason: `file ${fidOf('nope.txt')} not found`, status: 'error' },
    });
  });

  it('delete in A: B keeps it as a version, /trash lists it, and a restore brings it back to A and B byte for byte', async () => {
    const bytes = randomBytes(100_000);
    await put('A', 'keep/data.bin', bytes);
    await put('A', 'note.txt', 'a note\n');
    await put('A', 'stays.txt', 'stays\n');
    const d = await boot();
    await until('the initial sync', () => holds('B', 'keep/data.bin', bytes)() && holds('B', 'note.txt', 'a note\n')());

    await fsp.rm(at('A', 'keep/data.bin'));
    await fsp.rm(at('A', 'note.txt'));
    await until('the deletions in B', () => read('B', 'keep/data.bin') === null && read('B', 'note.txt') === null);
    expect([...versionsOnDisk('B', 'keep/data.bin').values()]).toEqual([bytes]);

    const trash = await until('both in the trash', async () => {
      const res = await api(d.api, 'GET', '/trash');
      return res.body.files.length === 2 ? res.body.files : null;
    });
    expect(trash).toEqual([
      { fid: fidOf('keep/data.bin'), filename: 'keep/data.bin', deleted: expect.any(Number), versions: 1 },
      { fid: fidOf('note.txt'), filename: 'note.txt', deleted: expect.any(Number), versions: 1 },
    ]);
    // Paged like /files.
    expect((await api(d.api, 'GET', '/trash?offset=1&limit=1')).body.files.map((f: { filename: string }) => f.filename)).toEqual(['note.txt']);
    expect((await api(d.api, 'GET', '/trash?limit=-1')).status).toBe(400);
    expect(await listed(d)).toEqual(['stays.txt']);

    const [version] = await versionsOf(d, 'keep/data.bin');
    expect(version).toMatchObject({ entry: 'B', size: 100_000, reason: 'deleted' });
    const restored = await api(d.api, 'PUT', `/files/${fidOf('keep/data.bin')}/versions/${version!.id}/restore`);
    expect(restored).toMatchObject({
      status: 200,
      body: { status: 'ok', fid: fidOf('keep/data.bin'), filename: 'keep/data.bin', entry: 'B', id: version!.id, time: expect.any(Number) },
    });
    // Answered once done: B holds it, and the catalogue knows it, at once.
    expect(read('B', 'keep/data.bin')).toEqual(bytes);
    expect(await listed(d)).toContain('keep/data.bin');
    await until('the restored file in A', holds('A', 'keep/data.bin', bytes));
    expect(read('A', 'keep/data.bin')).toEqual(bytes);
    // A version restored is the file again: no longer a version, no longer in the trash.
    expect(await versionsOf(d, 'keep/data.bin')).toEqual([]);
    expect((await api(d.api, 'GET', '/trash')).body.files.map((f: { filename: string }) => f.filename)).toEqual(['note.txt']);

    // The errors: an unknown version or file is a 404, a bad id a 400, and B stopped a 409.
    const note = fidOf('note.txt');
    const [noteVersion] = await versionsOf(d, 'note.txt');
    expect(await api(d.api, 'PUT', `/files/${note}/versions/999999/restore`)).toMatchObject({
      status: 404,
      body: { reason: `version 999999 of file ${note} not found`, status: 'error' },
    });
    expect(await api(d.api, 'PUT', `/files/${fidOf('never.txt')}/versions/${noteVersion!.id}/restore`)).toMatchObject({ status: 404 });
    expect((await api(d.api, 'PUT', `/files/${note}/versions/x/restore`)).status).toBe(400);
    expect((await api(d.api, 'PUT', '/entries/B/stop')).status).toBe(200);
    expect(await api(d.api, 'PUT', `/files/${note}/versions/${noteVersion!.id}/restore`)).toMatchObject({
      status: 409,
      body: { reason: 'entry B is not running', status: 'error' },
    });
    expect((await api(d.api, 'PUT', '/entries/B/start')).status).toBe(200);
    // After a restart of its worker, B still lists the version under the same id, and restores it.
    expect((await versionsOf(d, 'note.txt')).map((v) => v.id)).toEqual([noteVersion!.id]);
    expect((await api(d.api, 'PUT', `/files/${note}/versions/${noteVersion!.id}/restore`)).status).toBe(200);
    await until('note.txt back in A', holds('A', 'note.txt', 'a note\n'));
  });

  it('a restore over a file that changed since keeps what it replaces as a version, and wins everywhere', async () => {
    await put('A', 'r.txt', 'one\n');
    const d = await boot();
    await until('the initial sync', holds('B', 'r.txt', 'one\n'));
    await put('A', 'r.txt', 'two\n');
    await until('the edit in B', holds('B', 'r.txt', 'two\n'));
    const [one] = (await until('a version', async () => {
      const list = await versionsOf(d, 'r.txt');
      return list.length === 1 ? list : null;
    }))!;
    expect((await api(d.api, 'PUT', `/files/${fidOf('r.txt')}/versions/${one!.id}/restore`)).status).toBe(200);
    await until('one again in A and B', () => holds('A', 'r.txt', 'one\n')() && holds('B', 'r.txt', 'one\n')());
    // Both "two"s are versions now: B's (replaced by the restore) and A's (replaced by the sync).
    const versions = (await until('two versions of "two"', async () => {
      const list = await versionsOf(d, 'r.txt');
      return list.length === 2 ? list : null;
    }))!;
    expect(versions.map((v) => [v.entry, v.reason]).sort()).toEqual([
      ['A', 'overwritten'],
      ['B', 'overwritten'],
    ]);
    expect([...versionsOnDisk('A', 'r.txt').values()].map(String)).toEqual(['two\n']);
    expect([...versionsOnDisk('B', 'r.txt').values()].map(String)).toEqual(['two\n']);
  });

  it('keep "2s" drops a version once it is older, and max_per_file keeps the newest', async () => {
    await put('A', 'k.txt', 'v0\n');
    const d = await boot({ keep: '2s', max_per_file: 2 });
    await until('the initial sync', holds('B', 'k.txt', 'v0\n'));
    for (const n of [1, 2, 3]) {
      await put('A', 'k.txt', `v${n}\n`);
      await until(`v${n} in B`, holds('B', 'k.txt', `v${n}\n`));
    }
    // v0, v1 and v2 were replaced in B: the two newest are kept, v0 was dropped as v2 came.
    const kept = (await until('two versions', async () => {
      const list = await versionsOf(d, 'k.txt');
      return list.length === 2 && versionsOnDisk('B', 'k.txt').size === 2 ? list : null;
    }))!;
    expect([...versionsOnDisk('B', 'k.txt').values()].map(String).sort()).toEqual(['v1\n', 'v2\n']);
    expect(kept[0]!.time).toBeGreaterThanOrEqual(kept[1]!.time);
    // Two seconds on, the policy drops them, on disk and in the catalogue; the file stays.
    await until('the versions to age out', async () => versionsOnDisk('B', 'k.txt').size === 0 && (await versionsOf(d, 'k.txt')).length === 0, 15_000);
    expect(Date.now() / 1000 - kept[0]!.time).toBeGreaterThanOrEqual(2);
    expect(read('B', 'k.txt')!.toString()).toBe('v3\n');
    // The folders they leave empty go too.
    expect(fs.readdirSync(at('B', '.ferry-versions'))).toEqual([]);
  });

  it('max_total is honoured: the oldest versions go first, with a log line; one larger is never kept', async () => {
    const d = await boot({ max_total: '10KiB' });
    const content = (n: number) => Buffer.alloc(3000, n);
    for (const name of ['a.bin', 'b.bin', 'c.bin']) await put('A', name, content(0));
    await until('the initial sync', () => ['a.bin', 'b.bin', 'c.bin'].every((f) => read('B', f)?.length === 3000));
    // Five versions of 3,000 bytes, one after the other: 15,000 bytes, over 10 KiB.
    let round = 1;
    for (const name of ['a.bin', 'b.bin', 'c.bin', 'a.bin', 'b.bin']) {
      await put('A', name, content(round));
      await until(`${name} in B`, holds('B', name, content(round)));
      round++;
    }
    const onDisk = () => ['a.bin', 'b.bin', 'c.bin'].flatMap((f) => [...versionsOnDisk('B', f).values()]);
    await until('three versions left (9,000 bytes)', () => onDisk().length === 3);
    // The two oldest went: the first versions of a.bin and b.bin (content 0).
    expect(onDisk().map((b) => b[0]).sort()).toEqual([0, 1, 2]);
    expect(versionsOnDisk('B', 'c.bin').size).toBe(1);
    expect([...versionsOnDisk('B', 'a.bin').values()].map((b) => b[0])).toEqual([1]);
    await until('the catalogue to agree', async () => {
      const all = await Promise.all(['a.bin', 'b.bin', 'c.bin'].map((f) => versionsOf(d, f)));
      return all.flat().length === 3;
    });
    await until('the log line', () => d.logs.some((l) => l.entry === 'B' && /over max_total \(10\.0 KiB\): dropped the 1 oldest/.test(String(l.msg))));

    // A version alone larger than max_total is not kept (said in the log); the overwrite happens.
    await put('A', 'huge.bin', Buffer.alloc(20_000, 1));
    await until('huge in B', () => read('B', 'huge.bin')?.length === 20_000);
    await put('A', 'huge.bin', Buffer.alloc(20_000, 2));
    await until('the new huge in B', holds('B', 'huge.bin', Buffer.alloc(20_000, 2)));
    await until('the log line', () => d.logs.some((l) => /not kept as a version: huge\.bin/.test(String(l.msg))));
    expect(versionsOnDisk('B', 'huge.bin').size).toBe(0);
  });

  it('"off": nothing is kept, and the deletion unlinks', async () => {
    await put('A', 'o.txt', 'one\n');
    const d = await boot('off');
    await until('the initial sync', holds('B', 'o.txt', 'one\n'));
    await put('A', 'o.txt', 'two\n');
    await until('the edit in B', holds('B', 'o.txt', 'two\n'));
    expect(await versionsOf(d, 'o.txt')).toEqual([]);
    await fsp.rm(at('A', 'o.txt'));
    await until('the deletion in B', () => read('B', 'o.txt') === null);
    expect(fs.existsSync(at('B', '.ferry-versions'))).toBe(false);
    // Gone everywhere, with nothing kept: the file is not known any more.
    await until('the file forgotten', async () => (await api(d.api, 'GET', `/files/${fidOf('o.txt')}/versions`)).status === 404);
    expect((await api(d.api, 'GET', '/trash')).body.files).toEqual([]);
  });
});
