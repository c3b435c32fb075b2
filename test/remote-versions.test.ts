import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fidOf } from '../src/paths.js';
import { api, daemonHarness, startDaemon, until, writeWhole, type RunningDaemon } from './helpers.js';
import {
  hasS3rver,
  hasSshd,
  s3Storage,
  sftpStorage,
  startS3rver,
  startSshd,
  type RemoteStorage,
  type S3Server,
  type SshServer,
} from './servers.js';

/**
 * Versions on a remote entry, B on a real SFTP server (Debian's sshd) and on a real S3 server
 * (s3rver), A a local folder: what a sync overwrites or deletes in B is kept in B's storage, under
 * `.ferry-versions/` (the SFTP root's, the S3 prefix's), listed, restored byte for byte, and
 * dropped as B's policy says; the folder is never a file of the catalogue. The equivalents of
 * versions.test.ts for local entries.
 */

const harness = daemonHarness('ferry-remote-versions-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

let ssh: SshServer | null = null;
let s3: S3Server | null = null;
beforeAll(async () => {
  if (hasSshd) ssh = await startSshd();
  if (hasS3rver) s3 = await startS3rver();
}, 30_000);
afterAll(async () => {
  await ssh?.stop();
  await s3?.stop();
});

let serial = 0;
/** A fresh root on the server for each test. */
async function storage(kind: 'sftp' | 's3'): Promise<RemoteStorage> {
  const name = `v${process.pid}-${++serial}`;
  return kind === 'sftp' ? sftpStorage(ssh!, name) : s3Storage(s3!, name);
}

const at = (rel: string) => path.join(dir, 'A', rel);
const readA = (rel: string): Buffer | null => {
  try {
    return fs.readFileSync(at(rel));
  } catch {
    return null;
  }
};
async function putA(rel: string, content: string | Buffer): Promise<void> {
  await fsp.mkdir(path.dirname(at(rel)), { recursive: true });
  await writeWhole(at(rel), content);
}
const bytes = (content: string | Buffer) => (Buffer.isBuffer(content) ? content : Buffer.from(content));
const inA = (rel: string, content: string | Buffer) => () => readA(rel)?.equals(bytes(content)) ?? false;
const inB = (b: RemoteStorage, rel: string, content: string | Buffer) => async () => (await b.read(rel))?.equals(bytes(content)) ?? false;
/** B's versions of `rel`, their contents as strings, sorted. */
const keptIn = async (b: RemoteStorage, rel: string) => [...(await b.versions(rel)).values()].map(String).sort();

interface VersionJson {
  id: number;
  entry: string;
  time: number;
  size: number;
  reason: 'overwritten' | 'deleted';
}

/** A daemon on A (local) and B (remote), everything synced to both; `versions` is B's policy. */
async function boot(b: RemoteStorage, versions?: unknown): Promise<RunningDaemon> {
  await fsp.mkdir(path.join(dir, 'A'), { recursive: true });
  const setup = path.join(dir, 'setup.json');
  await fsp.writeFile(
    setup,
    JSON.stringify({
      entries: {
        A: { driver: 'local_storage', options: { root: 'A' } },
        B: { driver: b.driver, options: b.options, ...(versions === undefined ? {} : { versions }) },
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
/** Waits until the daemon lists `n` versions of `rel`, and returns them. */
const listedVersions = async (d: RunningDaemon, rel: string, n: number) =>
  (await until(`${n} version(s) of ${rel} listed`, async () => {
    const list = await versionsOf(d, rel);
    return list.length === n ? list : null;
  }))!;

const listed = async (d: RunningDaemon) => ((await api(d.api, 'GET', '/files?limit=1000')).body.files as { filename: string }[]).map((f) => f.filename);
/** A poll of B now, answered once what it found is recorded. */
const rescanB = async (d: RunningDaemon) => expect((await api(d.api, 'PUT', '/entries/B/rescan')).status).toBe(200);

const kinds = [...(hasSshd ? (['sftp'] as const) : []), ...(hasS3rver ? (['s3'] as const) : [])];

describe.each(kinds)('versions with B on %s', (kind) => {
  it('overwrite a file in A: B keeps its old content as a version; an initial sync makes none; the folder is never listed', async () => {
    const b = await storage(kind);
    const big = randomBytes(200_000);
    await putA('f.txt', 'first\n');
    await putA('docs/big.bin', big);
    const d = await boot(b);
    await until('the initial sync', async () => (await inB(b, 'f.txt', 'first\n')()) && (await inB(b, 'docs/big.bin', big)()));
    // Nothing was overwritten or deleted: no version at all.
    expect(await b.versionKeys()).toEqual([]);
    expect(await versionsOf(d, 'f.txt')).toEqual([]);

    const t0 = Date.now() / 1000;
    const newBig = randomBytes(150_000);
    await putA('f.txt', 'second\n');
    await putA('docs/big.bin', newBig);
    await until('the edits in B', async () => (await inB(b, 'f.txt', 'second\n')()) && (await inB(b, 'docs/big.bin', newBig)()));

    const [small] = await listedVersions(d, 'f.txt', 1);
    expect(small).toEqual({ id: expect.any(Number), entry: 'B', time: expect.any(Number), size: 6, reason: 'overwritten' });
    expect(small!.time).toBeGreaterThanOrEqual(t0 - 1);
    expect(await keptIn(b, 'f.txt')).toEqual(['first\n']);
    expect([...(await b.versions('docs/big.bin')).values()]).toEqual([big]);
    expect(await versionsOf(d, 'docs/big.bin')).toEqual([expect.objectContaining({ entry: 'B', size: 200_000, reason: 'overwritten' })]);
    // Named after the file, when and why (UTC), under .ferry-versions/ of B's root or prefix.
    expect(await b.versionKeys()).toEqual([
      expect.stringMatching(/^docs\/big\.bin\/\d{8}-\d{6}-\d{3}(-\d+)?\.overwritten$/),
      expect.stringMatching(/^f\.txt\/\d{8}-\d{6}-\d{3}(-\d+)?\.overwritten$/),
    ]);
    // A, where the edits were made, kept nothing. B's polls skip its versions folder: after one,
    // the catalogue holds the files alone, and B's files are A's.
    expect(fs.existsSync(at('.ferry-versions'))).toBe(false);
    await rescanB(d);
    expect(await listed(d)).toEqual(['docs/big.bin', 'f.txt']);
    expect([...(await b.files()).keys()].sort()).toEqual(['docs/big.bin', 'f.txt']);
  });

  it('delete in A: B keeps it as a version, /trash lists it, and a restore brings it back to A and B byte for byte', async () => {
    const b = await storage(kind);
    const data = randomBytes(100_000);
    await putA('keep/data.bin', data);
    await putA('note.txt', 'a note\n');
    await putA('stays.txt', 'stays\n');
    const d = await boot(b);
    await until('the initial sync', async () => (await inB(b, 'keep/data.bin', data)()) && (await inB(b, 'note.txt', 'a note\n')()));

    await fsp.rm(at('keep/data.bin'));
    await fsp.rm(at('note.txt'));
    await until('the deletions in B', async () => (await b.read('keep/data.bin')) === null && (await b.read('note.txt')) === null);
    expect([...(await b.versions('keep/data.bin')).values()]).toEqual([data]);
    expect(await keptIn(b, 'note.txt')).toEqual(['a note\n']);

    const trash = await until('both in the trash', async () => {
      const res = await api(d.api, 'GET', '/trash');
      return res.body.files.length === 2 ? res.body.files : null;
    });
    expect(trash).toEqual([
      { fid: fidOf('keep/data.bin'), filename: 'keep/data.bin', deleted: expect.any(Number), versions: 1 },
      { fid: fidOf('note.txt'), filename: 'note.txt', deleted: expect.any(Number), versions: 1 },
    ]);
    await rescanB(d);
    expect(await listed(d)).toEqual(['stays.txt']);

    const [version] = await versionsOf(d, 'keep/data.bin');
    expect(version).toMatchObject({ entry: 'B', size: 100_000, reason: 'deleted' });
    const restored = await api(d.api, 'PUT', `/files/${fidOf('keep/data.bin')}/versions/${version!.id}/restore`);
    expect(restored).toMatchObject({
      status: 200,
      body: { status: 'ok', fid: fidOf('keep/data.bin'), filename: 'keep/data.bin', entry: 'B', id: version!.id },
    });
    // Answered once done: B holds it, and the catalogue knows it, at once.
    expect(await b.read('keep/data.bin')).toEqual(data);
    expect(await listed(d)).toContain('keep/data.bin');
    await until('the restored file in A', inA('keep/data.bin', data));
    // A version restored is the file again: no longer a version (nor in B's versions folder), no longer in the trash.
    expect(await versionsOf(d, 'keep/data.bin')).toEqual([]);
    expect(await b.versions('keep/data.bin')).toEqual(new Map());
    expect(await b.versionKeys()).toEqual([expect.stringMatching(/^note\.txt\//)]);
    expect((await api(d.api, 'GET', '/trash')).body.files.map((f: { filename: string }) => f.filename)).toEqual(['note.txt']);

    // The errors: an unknown version is a 404, and B stopped a 409.
    const note = fidOf('note.txt');
    const [noteVersion] = await versionsOf(d, 'note.txt');
    expect(await api(d.api, 'PUT', `/files/${note}/versions/999999/restore`)).toMatchObject({
      status: 404,
      body: { reason: `version 999999 of file ${note} not found`, status: 'error' },
    });
    expect((await api(d.api, 'PUT', '/entries/B/stop')).status).toBe(200);
    expect(await api(d.api, 'PUT', `/files/${note}/versions/${noteVersion!.id}/restore`)).toMatchObject({
      status: 409,
      body: { reason: 'entry B is not running', status: 'error' },
    });
    expect((await api(d.api, 'PUT', '/entries/B/start')).status).toBe(200);
    // After a restart of its worker (answered once it runs), B lists its versions from the storage: the same id, restored.
    expect((await versionsOf(d, 'note.txt')).map((v) => v.id)).toEqual([noteVersion!.id]);
    expect((await api(d.api, 'PUT', `/files/${note}/versions/${noteVersion!.id}/restore`)).status).toBe(200);
    expect(await b.read('note.txt')).toEqual(Buffer.from('a note\n'));
    await until('note.txt back in A', inA('note.txt', 'a note\n'));
    expect(await b.versionKeys()).toEqual([]);
    expect(await listed(d)).toEqual(['keep/data.bin', 'note.txt', 'stays.txt']);
  });

  it('a restore over a file that changed since keeps what it replaces as a version, and wins everywhere', async () => {
    const b = await storage(kind);
    await putA('r.txt', 'one\n');
    const d = await boot(b);
    await until('the initial sync', inB(b, 'r.txt', 'one\n'));
    // The same size: the restore must still read as a change (SFTP and S3 keep whole seconds).
    await putA('r.txt', 'two\n');
    await until('the edit in B', inB(b, 'r.txt', 'two\n'));
    const [one] = await listedVersions(d, 'r.txt', 1);
    expect((await api(d.api, 'PUT', `/files/${fidOf('r.txt')}/versions/${one!.id}/restore`)).status).toBe(200);
    expect(await b.read('r.txt')).toEqual(Buffer.from('one\n'));
    await until('one again in A', inA('r.txt', 'one\n'));
    // Both "two"s are versions now: B's (replaced by the restore) and A's (replaced by the sync).
    const versions = await listedVersions(d, 'r.txt', 2);
    expect(versions.map((v) => [v.entry, v.reason]).sort()).toEqual([
      ['A', 'overwritten'],
      ['B', 'overwritten'],
    ]);
    expect(await keptIn(b, 'r.txt')).toEqual(['two\n']);
    expect(await b.read('r.txt')).toEqual(Buffer.from('one\n'));
  });

  it('max_per_file keeps the newest; max_total drops the oldest first, with a log line; one larger is never kept', async () => {
    const b = await storage(kind);
    const d = await boot(b, { max_per_file: 2, max_total: '10KiB' });
    const content = (n: number) => Buffer.alloc(3000, n);
    await putA('k.txt', 'v0\n');
    for (const name of ['a.bin', 'b.bin', 'c.bin']) await putA(name, content(0));
    await until('the initial sync', async () => (await b.files()).size === 4);
    // k.txt: v0, v1 and v2 replaced in B; the two newest stay.
    for (const n of [1, 2, 3]) {
      await putA('k.txt', `v${n}\n`);
      await until(`v${n} in B`, inB(b, 'k.txt', `v${n}\n`));
    }
    await until('two versions of k.txt in B', async () => (await b.versions('k.txt')).size === 2);
    expect(await keptIn(b, 'k.txt')).toEqual(['v1\n', 'v2\n']);
    await listedVersions(d, 'k.txt', 2);

    // Four versions of 3,000 bytes, one after the other: with k.txt's, 12,006 bytes, over 10 KiB.
    let round = 1;
    for (const name of ['a.bin', 'b.bin', 'c.bin', 'a.bin']) {
      await putA(name, content(round));
      await until(`${name} in B`, inB(b, name, content(round)));
      round++;
    }
    // The three oldest went: k.txt's two, then a.bin's first (content 0); 9,000 bytes stay.
    await until('three versions left in B', async () => (await b.versionKeys()).length === 3);
    expect([...(await b.versions('a.bin')).values()].map((v) => v[0])).toEqual([1]);
    expect([...(await b.versions('b.bin')).values()].map((v) => v[0])).toEqual([0]);
    expect([...(await b.versions('c.bin')).values()].map((v) => v[0])).toEqual([0]);
    expect(await b.versions('k.txt')).toEqual(new Map());
    await until('the catalogue to agree', async () => {
      const all = await Promise.all(['a.bin', 'b.bin', 'c.bin', 'k.txt'].map((f) => versionsOf(d, f)));
      return all.flat().length === 3;
    });
    await until('the log line', () => d.logs.some((l) => l.entry === 'B' && /over max_total \(10\.0 KiB\): dropped the 3 oldest/.test(String(l.msg))));

    // A version alone larger than max_total is not kept (said in the log); the overwrite happens.
    await putA('huge.bin', Buffer.alloc(20_000, 1));
    await until('huge in B', inB(b, 'huge.bin', Buffer.alloc(20_000, 1)));
    await putA('huge.bin', Buffer.alloc(20_000, 2));
    await until('the new huge in B', inB(b, 'huge.bin', Buffer.alloc(20_000, 2)));
    await until('the log line', () => d.logs.some((l) => l.entry === 'B' && /not kept as a version: huge\.bin/.test(String(l.msg))));
    expect(await b.versions('huge.bin')).toEqual(new Map());
    expect(await b.versionKeys()).toHaveLength(3);
  });

  it('"off": nothing is kept, and the deletion deletes', async () => {
    const b = await storage(kind);
    await putA('o.txt', 'one\n');
    const d = await boot(b, 'off');
    await until('the initial sync', inB(b, 'o.txt', 'one\n'));
    await putA('o.txt', 'two\n');
    await until('the edit in B', inB(b, 'o.txt', 'two\n'));
    await fsp.rm(at('o.txt'));
    await until('the deletion in B', async () => (await b.read('o.txt')) === null);
    expect(await b.versionKeys()).toEqual([]);
    await until('the file forgotten', async () => (await api(d.api, 'GET', `/files/${fidOf('o.txt')}/versions`)).status === 404);
    expect((await api(d.api, 'GET', '/trash')).body.files).toEqual([]);
  });
});

describe.skipIf(!hasSshd)('versions with B on sftp, its own', () => {
  it('no byte is copied: an overwrite keeps the old file by a hard link, a deletion by a rename (the same inode)', async () => {
    const b = await storage('sftp');
    await putA('h.txt', 'linked\n');
    await putA('d.txt', 'renamed\n');
    await boot(b);
    await until('the initial sync', async () => (await inB(b, 'h.txt', 'linked\n')()) && (await inB(b, 'd.txt', 'renamed\n')()));
    const root = String(b.options.root);
    const inode = (rel: string) => fs.statSync(path.join(root, rel)).ino;
    const [h, dd] = [inode('h.txt'), inode('d.txt')];
    await putA('h.txt', 'replaced\n');
    await fsp.rm(at('d.txt'));
    await until('both versions in B', async () => (await b.versionKeys()).length === 2);
    const [dKey, hKey] = await b.versionKeys();
    expect([dKey, hKey]).toEqual([expect.stringMatching(/^d\.txt\/.*\.deleted$/), expect.stringMatching(/^h\.txt\/.*\.overwritten$/)]);
    expect(inode(`.ferry-versions/${hKey}`)).toBe(h);
    expect(inode(`.ferry-versions/${dKey}`)).toBe(dd);
    expect(inode('h.txt')).not.toBe(h);
    expect(await keptIn(b, 'h.txt')).toEqual(['linked\n']);
  });

  it('when one cannot be kept, the overwrite and the deletion do not happen, the job says why, and both go through once it can', async () => {
    const b = await storage('sftp');
    for (const name of ['w1', 'g1', 'w2', 'g2']) await putA(`${name}.txt`, `${name} old\n`);
    const d = await boot(b);
    await until('the initial sync', async () => (await b.files()).size === 4);
    const root = String(b.options.root);
    const versions = path.join(root, '.ferry-versions');
    const failed = (rel: string) =>
      d.logs.find((l) => l.entry === 'B' && String(l.msg).startsWith(`job failed: could not keep ${rel} as a version (`));
    const unchanged = async () => {
      for (const name of ['w1', 'g1', 'w2', 'g2']) expect(String(await b.read(`${name}.txt`))).toBe(`${name} old\n`);
    };

    // B's versions folder is a link out of its root: nothing is written through it.
    const outside = path.join(dir, 'outside');
    await fsp.mkdir(outside);
    await fsp.symlink(outside, versions);
    await putA('w1.txt', 'w1 new\n');
    await fsp.rm(at('g1.txt'));
    await until('both jobs to fail', () => failed('w1.txt') && failed('g1.txt'));
    expect(String(failed('w1.txt')!.msg)).toMatch(/\.ferry-versions or a folder in it is a symbolic link; not written through\); not overwritten$/);
    expect(String(failed('g1.txt')!.msg)).toMatch(/symbolic link; not written through\); not deleted$/);
    expect(fs.readdirSync(outside)).toEqual([]);

    // A file in its place: nothing can be kept in it either.
    await fsp.rm(versions);
    await fsp.writeFile(versions, 'in the way\n');
    await putA('w2.txt', 'w2 new\n');
    await fsp.rm(at('g2.txt'));
    await until('both jobs to fail', () => failed('w2.txt') && failed('g2.txt'));
    expect(String(failed('w2.txt')!.msg)).toMatch(/\(\.ferry-versions is a file, not a folder\); not overwritten$/);
    expect(String(failed('g2.txt')!.msg)).toMatch(/\(\.ferry-versions is a file, not a folder\); not deleted$/);
    // B still holds all four as they were.
    await unchanged();

    // Out of the way: the retries go through, and keep their versions.
    await fsp.rm(versions);
    await until('the overwrites and the deletions in B', async () => {
      const files = await b.files();
      return [...files.keys()].sort().join() === 'w1.txt,w2.txt' && String(files.get('w1.txt')) === 'w1 new\n' && String(files.get('w2.txt')) === 'w2 new\n';
    }, 30_000);
    for (const name of ['w1', 'g1', 'w2', 'g2']) expect(await keptIn(b, `${name}.txt`)).toEqual([`${name} old\n`]);
  }, 60_000);
});
