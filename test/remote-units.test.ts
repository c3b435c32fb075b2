import { createHash, createHmac, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { WorkerReport } from '../machines/reports.js';
import { ListingPoller, SCAN_CHUNK, type RemoteStat } from '../src/drivers/remote/poller.js';
import { fingerprint, hostKeyProblem } from '../src/drivers/sftp/host-key.js';
import { drivers, publicOptions } from '../src/drivers/registry.js';
import { CopySlots, reconnectDelay } from '../src/drivers/remote/remote-driver.js';
import { TargetExists, type UploadPlan } from '../src/drivers/remote/backend.js';
import { StatBatcher, type ListPage } from '../src/drivers/s3/stat-batcher.js';
import { SftpBackend } from '../src/drivers/sftp/sftp-backend.js';
import { Readable } from 'node:stream';
import { S3Backend } from '../src/drivers/s3/s3-backend.js';
import { hasS3rver, hasSshd, s3Storage, S3RVER_KEY, startS3rver, startSshd } from './servers.js';

/** The remote drivers' pure parts: the listing diff, the host key check, the options. */

const st = (size: number, mtime: number, etag?: string): RemoteStat => ({ size, mtime, ino: etag ?? null, ...(etag ? { etag } : {}) });

/** A backend's upload of `body` under `rel`, from a source that is always this version. */
const uploadOf = (body: Buffer, rel: string, mtime: number): UploadPlan => ({
  jobId: 1,
  rel,
  size: body.length,
  mtime,
  open: async () => Readable.from([body]),
  read: async (into: Buffer) => body.copy(into),
  verifySource: async () => {},
  progress: () => {},
  log: () => {},
  signal: new AbortController().signal,
});

function poller(renameKeepsMtime = true) {
  const reports: WorkerReport[] = [];
  return { p: new ListingPoller('B', (r) => reports.push(r), renameKeepsMtime), reports };
}

describe('the listing poller', () => {
  it('reports the start-up scan in chunks of 10,000 files, then entry.scanned', () => {
    const { p, reports } = poller();
    const files = new Map(Array.from({ length: SCAN_CHUNK * 2 + 5 }, (_, i) => [`f${i}`, st(i, 1000)] as const));
    p.scan(files);
    expect(reports.map((r) => [r.type, 'files' in r ? r.files.length : 0])).toEqual([
      ['scan.chunk', SCAN_CHUNK],
      ['scan.chunk', SCAN_CHUNK],
      ['entry.scanned', 5],
    ]);
  });

  it('reports nothing on an unchanged listing; changes, new files, deletions as such', () => {
    const { p, reports } = poller();
    p.scan(new Map([['a', st(1, 1000)], ['b', st(2, 1000)], ['c', st(3, 1000)]]));
    reports.length = 0;
    expect(p.diff(new Map([['a', st(1, 1000)], ['b', st(2, 1000)], ['c', st(3, 1000)]]), p.mark())).toBe(0);
    p.diff(new Map([['a', st(5, 2000)], ['c', st(3, 1000)], ['d', st(4, 3000)]]), p.mark());
    expect(reports).toEqual([
      { type: 'file.deleted', entry: 'B', path: 'b' },
      { type: 'file.changed', entry: 'B', path: 'a', stat: { size: 5, mtime: 2000, ino: null } },
      { type: 'file.changed', entry: 'B', path: 'd', stat: { size: 4, mtime: 3000, ino: null } },
    ]);
  });

  it('tells a rename by size and mtime where a rename keeps the mtime, by ETag elsewhere; never when ambiguous', () => {
    const sftp = poller(true);
    sftp.p.scan(new Map([['x', st(7, 1000)], ['y', st(9, 1000)], ['z', st(9, 1000)]]));
    sftp.reports.length = 0;
    sftp.p.diff(new Map([['moved/x', st(7, 1000)], ['y2', st(9, 1000)], ['z2', st(9, 1000)]]), sftp.p.mark());
    // x is alone of its size and mtime: a move. y and z are not: deletions and new files.
    expect(sftp.reports.map((r) => `${r.type} ${'from' in r ? `${r.from}→` : ''}${'path' in r ? r.path : ''}`)).toEqual([
      'file.moved x→moved/x',
      'file.deleted y',
      'file.deleted z',
      'file.changed y2',
      'file.changed z2',
    ]);

    // Folders (size and mtime 0) are never paired: one renamed is one gone and one new.
    const folders = poller(true);
    const dir = { size: 0, mtime: 0, ino: null, mode: 0o040000 };
    folders.p.scan(new Map([['old', dir]]));
    folders.reports.length = 0;
    folders.p.diff(new Map([['new', dir]]), folders.p.mark());
    expect(folders.reports.map((r) => r.type)).toEqual(['file.deleted', 'file.changed']);
    expect(folders.reports[1]).toMatchObject({ stat: { mode: 0o040000 } });

    const s3 = poller(false);
    s3.p.scan(new Map([['x', st(7, 1000, 'e1')], ['y', st(7, 1000)]]));
    s3.reports.length = 0;
    s3.p.diff(new Map([['x2', st(7, 5000, 'e1')], ['y2', st(7, 1000)]]), s3.p.mark());
    expect(s3.reports.map((r) => r.type)).toEqual(['file.moved', 'file.deleted', 'file.changed']);
  });

  it('never reports our own writes: in flight, or settled after the poll began', () => {
    const { p, reports } = poller();
    p.scan(new Map([['a', st(1, 1000)]]));
    reports.length = 0;
    p.begin('b');
    // A listing that sees b half-way (S3 completing, say) while its copy runs.
    p.diff(new Map([['a', st(1, 1000)], ['b', st(2, 2000)]]), p.mark());
    expect(reports).toEqual([]);
    // A poll that began before the copy settled, its listing without b: no deletion of b.
    const mark = p.mark();
    p.settle('b', st(2, 2000));
    p.diff(new Map([['a', st(1, 1000)]]), mark);
    expect(reports).toEqual([]);
    // The next poll sees it as we left it.
    p.diff(new Map([['a', st(1, 1000)], ['b', st(2, 2000)]]), p.mark());
    expect(reports).toEqual([]);
    // A delete of ours.
    p.begin('a');
    p.settle('a', null);
    p.diff(new Map([['b', st(2, 2000)]]), p.mark());
    expect(reports).toEqual([]);
    // A user's change after ours is reported.
    p.diff(new Map([['b', st(3, 4000)]]), p.mark());
    expect(reports.map((r) => r.type)).toEqual(['file.changed']);
  });
});

describe('the SFTP host key check', () => {
  const key = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), randomBytes(32)]);
  const other = Buffer.concat([key.subarray(0, 19), randomBytes(32)]);
  const at = { host: '127.0.0.1', port: 2222 };
  const fp = `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;

  it('takes the fingerprint ssh-keygen -l prints', () => {
    expect(fingerprint(key)).toBe(fp);
    expect(hostKeyProblem(key, at, fp, '/nonexistent')).toBeNull();
    expect(hostKeyProblem(other, at, fp, '/nonexistent')).toMatch(/^the host key of 127\.0\.0\.1:2222 is SHA256:\S+, not the host_key SHA256:/);
  });

  it('without host_key: known_hosts decides, plain or hashed names; a changed key is refused, an unknown one prints its fingerprint', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ferry-known-hosts-'));
    try {
      const file = path.join(dir, 'known_hosts');
      await fsp.writeFile(file, `# comment\nother.example ssh-ed25519 ${other.toString('base64')}\n[127.0.0.1]:2222 ssh-ed25519 ${key.toString('base64')}\n`);
      expect(hostKeyProblem(key, at, null, file)).toBeNull();
      expect(hostKeyProblem(other, at, null, file)).toContain('changed: it is now SHA256:');
      const salt = randomBytes(20);
      const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[127.0.0.1]:2222').digest('base64')}`;
      await fsp.writeFile(file, `${hashed} ssh-ed25519 ${key.toString('base64')}\n`);
      expect(hostKeyProblem(key, at, null, file)).toBeNull();
      await fsp.writeFile(file, '');
      expect(hostKeyProblem(key, at, null, file)).toBe(
        `the host key of 127.0.0.1:2222 is not known: it is ${fp}; check it (ssh-keygen -lf on the server's key), then put ` +
          `"host_key": "${fp}" in this entry's options or add the key to ${file}`,
      );
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the remote drivers’ options', () => {
  const sftp = (o: Record<string, unknown>) => drivers.sftp.resolveOptions(o, '/setup');
  const s3 = (o: Record<string, unknown>) => drivers.s3.resolveOptions(o, '/setup');

  it('sftp: defaults filled, paths resolved against the setup, unknown and missing options refused', () => {
    expect(sftp({ host: 'h', username: 'u', root: '/srv', key_file: 'keys/id' })).toEqual({
      ok: true,
      value: { host: 'h', username: 'u', root: '/srv', port: 22, key_file: '/setup/keys/id', poll_interval: 10 },
    });
    expect(sftp({ host: 'h', username: 'u', root: '/srv', key_file: 'k', hots_key: 'x' })).toEqual({
      ok: false,
      reason: expect.stringMatching(/^hots_key: unknown option \(did you mean "host_key"\?\)/),
    });
    expect(sftp({ host: 'h', username: 'u', root: '/srv' })).toMatchObject({ ok: false, reason: expect.stringMatching(/^key_file: missing/) });
    expect(sftp({ host: 'h', username: 'u', root: '/srv', key_file: 'k', port: 0 })).toMatchObject({ ok: false, reason: expect.stringMatching(/^port:/) });
    expect(sftp({ host: 'h', username: 'u', root: '/srv', key_file: 'k', host_key: 'MD5:aa' })).toMatchObject({ ok: false, reason: expect.stringMatching(/^host_key:/) });
    expect(sftp({ username: 'u', root: '/srv', key_file: 'k' })).toEqual({ ok: false, reason: 'host: missing' });
  });

  it('s3: defaults filled, a prefix made a folder, credentials in pairs', () => {
    expect(s3({ bucket: 'b', prefix: 'backup' })).toEqual({
      ok: true,
      value: { bucket: 'b', prefix: 'backup/', region: 'us-east-1', force_path_style: false, poll_interval: 10 },
    });
    expect(s3({ bucket: 'b', secret_access_key_env: 'S' })).toMatchObject({ ok: false, reason: expect.stringMatching(/^access_key_id_env: missing/) });
    expect(s3({ bucket: 'b', endpoint: 'minio:9000' })).toMatchObject({ ok: false, reason: expect.stringMatching(/^endpoint:/) });
    expect(s3({ bucket: 'b', secret_key: 'x' })).toMatchObject({ ok: false, reason: expect.stringMatching(/^secret_key: unknown option/) });
  });

  it('publicOptions masks inline secrets only', () => {
    expect(publicOptions('sftp', { host: 'h', password: 'p', password_env: 'X' })).toEqual({ host: 'h', password: '***', password_env: 'X' });
    expect(publicOptions('s3', { bucket: 'b', secret_access_key: 's', access_key_id: 'id' })).toEqual({ bucket: 'b', secret_access_key: '***', access_key_id: 'id' });
    const local = { root: 'A' };
    expect(publicOptions('local_storage', local)).toBe(local);
  });

  it('reconnects after 1 s, 2 s, 4 s … at most 60 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map(reconnectDelay)).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60]);
  });
});

describe.runIf(hasS3rver)('the S3 backend on s3rver', () => {
  it('renames keys with spaces, accents and URL characters server-side, and batches stats into listings', async () => {
    const server = await startS3rver();
    try {
      const b = new S3Backend({ bucket: server.bucket, prefix: 'units/', region: 'us-east-1', force_path_style: true, endpoint: server.endpoint, access_key_id: S3RVER_KEY, secret_access_key: S3RVER_KEY });
      await b.connect();
      const body = randomBytes(1000);
      const plan = (rel: string) => uploadOf(body, rel, 0);
      const from = 'dossier é/naïve résumé (1).pdf';
      const to = 'x/ü +&=?#.pdf';
      const put = await b.upload(plan(from));
      expect(put).toMatchObject({ size: 1000, etag: createHash('md5').update(body).digest('hex') });
      await b.rename(from, to);
      expect(await b.stat(from)).toBeNull();
      expect(await b.stat(to)).toMatchObject({ size: 1000, etag: put.etag });
      const back = Buffer.concat(await (await b.open(to, 0)).toArray());
      expect(back.equals(body)).toBe(true);
      // Many stats of one folder at once: answered together, the same as one by one.
      await Promise.all(Array.from({ length: 20 }, (_, i) => b.upload(plan(`many/f${i}.bin`))));
      const together = await Promise.all(Array.from({ length: 22 }, (_, i) => b.stat(`many/f${i}.bin`)));
      expect(together.slice(0, 20).every((s) => s?.size === 1000 && s.etag === put.etag)).toBe(true);
      expect(together.slice(20)).toEqual([null, null]);
      expect(await b.stat('many/f3.bin')).toEqual(together[3]);
      await b.close();
    } finally {
      await server.stop();
    }
  }, 30_000);

  it('a listing skips the versions folder (past it in one request), and lists every other key; the versions are listed apart', async () => {
    const server = await startS3rver();
    try {
      const storage = await s3Storage(server, 'units-v');
      const b = new S3Backend({ bucket: server.bucket, prefix: 'units-v/', region: 'us-east-1', force_path_style: true, endpoint: server.endpoint, access_key_id: S3RVER_KEY, secret_access_key: S3RVER_KEY });
      // The listings asked: from the start, from a page's token, or from past a key.
      const listings: string[] = [];
      (b as unknown as { client: { middlewareStack: { add: (m: unknown, o: unknown) => void } } }).client.middlewareStack.add(
        (next: (a: unknown) => unknown, context: { commandName?: string }) => (args: { input: { ContinuationToken?: string; StartAfter?: string } }) => {
          const { ContinuationToken: token, StartAfter: after } = args.input;
          if (context.commandName === 'ListObjectsV2Command') listings.push(token ? 'token' : after ? `after ${after}` : 'start');
          return next(args);
        },
        { step: 'initialize', name: 'countListings' },
      );
      await b.connect();
      // Keys before the versions folder ('!', '-' sort before '.') and after it, around 1,010
      // versions: the first page of 1,000 keys ends among them, the next starts past them all.
      const versions = Array.from({ length: 1010 }, (_, i) => `f${String(i).padStart(4, '0')}.txt/20260101-000000-000.deleted`);
      for (let i = 0; i < versions.length; i += 100) {
        await Promise.all(versions.slice(i, i + 100).map((k) => storage.put(`.ferry-versions/${k}`, 'v')));
      }
      for (const rel of ['!first.txt', '-dash.txt', 'a.txt', 'z/z.txt']) await storage.put(rel, rel);
      const { files } = await b.listing();
      expect([...files.keys()].sort()).toEqual(['!first.txt', '-dash.txt', 'a.txt', 'z/z.txt']);
      expect(listings).toEqual(['start', 'after units-v/.ferry-versions/\u{10FFFF}']);
      const listed = await b.listVersions();
      expect(listed.map((v) => v.key)).toEqual(versions);
      expect(listed.every((v) => v.size === 1)).toBe(true);
      await b.close();
    } finally {
      await server.stop();
    }
  }, 60_000);
});

describe.runIf(hasSshd)('the SFTP backend on sshd', () => {
  it('keeps a version by a copy where the server makes no hard links, lists, restores and removes versions', async () => {
    const server = await startSshd();
    const root = path.join(server.dir, 'units');
    await fsp.mkdir(path.join(root, 'docs'), { recursive: true });
    const b = new SftpBackend({ host: server.host, port: server.port, username: server.username, root, key_file: server.keyFile, host_key: server.fingerprint });
    try {
      await b.connect();
      const bytes = randomBytes(300_000);
      const file = path.join(root, 'docs/a.bin');
      await fsp.writeFile(file, bytes);
      await fsp.utimes(file, 1_700_000_000, 1_700_000_000);
      // As a server without hardlink@openssh.com: the bytes go through the connection.
      (await (b as unknown as { sftp(): Promise<{ hardlink: boolean }> }).sftp()).hardlink = false;
      const key = 'docs/a.bin/20260101-000000-000.overwritten';
      await b.copyToVersion('docs/a.bin', key);
      const kept = path.join(root, '.ferry-versions', key);
      expect((await fsp.readFile(kept)).equals(bytes)).toBe(true);
      expect((await fsp.stat(kept)).mtimeMs).toBe(1_700_000_000_000);
      expect((await fsp.stat(kept)).ino).not.toBe((await fsp.stat(file)).ino);
      expect((await fsp.readFile(file)).equals(bytes)).toBe(true);
      // Never over a version: the key is taken.
      await expect(b.copyToVersion('docs/a.bin', key)).rejects.toThrow();
      expect((await fsp.readFile(kept)).equals(bytes)).toBe(true);
      expect(await b.listVersions()).toEqual([{ key, size: 300_000 }]);
      expect(await b.versionSize(key)).toBe(300_000);
      expect(await b.versionSize('docs/a.bin/nope.deleted')).toBeNull();

      // Restored over a file of the same size written in a later second: a second later still.
      const other = randomBytes(300_000);
      await fsp.writeFile(file, other);
      const later = Math.floor(Date.now() / 1000) + 5;
      await fsp.utimes(file, later, later);
      const st = await b.restoreVersion(key, 'docs/a.bin', { size: 300_000, mtime: later * 1000, ino: null });
      expect(st).toEqual({ size: 300_000, mtime: (later + 1) * 1000, ino: null });
      expect((await fsp.readFile(file)).equals(bytes)).toBe(true);
      // The version's folders it left empty went; the versions folder stays.
      expect(await fsp.readdir(path.join(root, '.ferry-versions'))).toEqual([]);

      await b.moveToVersion('docs/a.bin', 'docs/a.bin/20260102-000000-000.deleted');
      expect(await fsp.stat(file).catch(() => null)).toBeNull();
      await b.removeVersion('docs/a.bin/20260102-000000-000.deleted');
      await b.removeVersion('docs/a.bin/20260102-000000-000.deleted');
      expect(await b.listVersions()).toEqual([]);
      expect(await fsp.readdir(path.join(root, '.ferry-versions'))).toEqual([]);
    } finally {
      await b.close();
      await server.stop();
    }
  }, 30_000);
});

describe('the S3 stat batcher', () => {
  /** A folder of keys f00 … f99 under d/, listed as S3 lists (sorted, from StartAfter, MaxKeys at most). */
  function fake() {
    const keys = Array.from({ length: 100 }, (_, i) => `d/f${String(i).padStart(2, '0')}`);
    const calls: string[] = [];
    const list: ListPage = async (folder, from, maxKeys) => {
      const after = from.token ?? from.startAfter ?? '';
      calls.push(`list ${folder} after=${after} max=${maxKeys}`);
      const rest = keys.filter((k) => k.startsWith(folder) && k > after);
      const items = rest.slice(0, maxKeys).map((key) => ({ key, stat: st(1, 1000, key) }));
      return { items, next: rest.length > maxKeys ? items.at(-1)!.key : undefined };
    };
    const head = async (key: string) => {
      calls.push(`head ${key}`);
      return keys.includes(key) ? st(1, 1000, key) : null;
    };
    return { calls, batcher: new StatBatcher(head, list) };
  }

  it('answers the keys of one folder asked together with one listing from just before the first of them', async () => {
    const { calls, batcher } = fake();
    const got = await Promise.all(['d/f10', 'd/f12', 'd/f11', 'd/f13'].map((k) => batcher.stat(k)));
    expect(got.map((x) => x?.etag)).toEqual(['d/f10', 'd/f12', 'd/f11', 'd/f13']);
    expect(calls).toEqual(['list d/ after=d/f1 max=36']);
  });

  it('asks one or two keys of a folder with HEAD, and a key a cut listing did not reach; a whole listing without a key says it is not there', async () => {
    const { calls, batcher } = fake();
    expect(await Promise.all([batcher.stat('d/f01'), batcher.stat('e/x')])).toEqual([st(1, 1000, 'd/f01'), null]);
    expect(calls.sort()).toEqual(['head d/f01', 'head e/x']);
    calls.length = 0;
    // f00 … f02 and f99: two pages of 36 reach f71, and f99 is asked with HEAD.
    const far = await Promise.all(['d/f00', 'd/f01', 'd/f02', 'd/f99'].map((k) => batcher.stat(k)));
    expect(far.map((x) => x?.etag)).toEqual(['d/f00', 'd/f01', 'd/f02', 'd/f99']);
    expect(calls).toEqual(['list d/ after=d/f0 max=36', 'list d/ after=d/f35 max=36', 'head d/f99']);
    calls.length = 0;
    // The folder listed to its end: d/fz is not there.
    expect(await Promise.all(['d/f90', 'd/f91', 'd/fz'].map((k) => batcher.stat(k)))).toEqual([st(1, 1000, 'd/f90'), st(1, 1000, 'd/f91'), null]);
    expect(calls).toEqual(['list d/ after=d/f9 max=35']);
  });

  it('lets a stat asked `later` wait a few milliseconds for others', async () => {
    const { calls, batcher } = fake();
    const first = batcher.stat('d/f20', true);
    await new Promise((r) => setImmediate(r));
    const rest = [batcher.stat('d/f21', true), batcher.stat('d/f22', true)];
    await Promise.all([first, ...rest]);
    expect(calls).toEqual(['list d/ after=d/f2 max=35']);
  });
});

describe('the copy slots', () => {
  it('run at most so many copies and bytes at once, in the order asked; one larger than the bytes runs alone', async () => {
    const slots = new CopySlots({ files: 2, bytes: 10 });
    const running: string[] = [];
    const log: string[] = [];
    const copy = async (name: string, size: number, done: Promise<void>) => {
      const release = await slots.take(size);
      running.push(name);
      log.push(running.join('+'));
      await done;
      running.splice(running.indexOf(name), 1);
      release();
    };
    const gates = new Map<string, () => void>();
    const gate = (name: string) => new Promise<void>((r) => gates.set(name, r));
    const all = [copy('a', 3, gate('a')), copy('b', 3, gate('b')), copy('c', 3, gate('c')), copy('big', 50, gate('big')), copy('d', 1, gate('d'))];
    const tick = () => new Promise((r) => setImmediate(r));
    await tick();
    expect(log).toEqual(['a', 'a+b']);
    gates.get('a')!();
    await tick();
    expect(log.at(-1)).toBe('b+c');
    gates.get('b')!();
    gates.get('c')!();
    await tick();
    // The large one waited for the others to finish, and runs alone; d waits behind it.
    expect(log.at(-1)).toBe('big');
    gates.get('big')!();
    await tick();
    expect(log.at(-1)).toBe('d');
    gates.get('d')!();
    await Promise.all(all);
  });
});

describe.runIf(hasSshd)('the SFTP backend on sshd', () => {
  it('commits a copy meant for an empty name without replacing what appeared there, and leaves no temporary', async () => {
    const server = await startSshd();
    try {
      const root = path.join(server.dir, 'units');
      await fsp.mkdir(root);
      const b = new SftpBackend({ host: server.host, port: server.port, username: server.username, root, key_file: server.keyFile, host_key: server.fingerprint });
      await b.connect();
      const body = randomBytes(3000);
      const plan = (rel: string, ifAbsent: boolean) => ({ ...uploadOf(body, rel, 1_700_000_000_000), ifAbsent });
      expect(await b.upload(plan('new.bin', true))).toEqual({ size: 3000, mtime: 1_700_000_000_000, ino: null });
      expect((await fsp.readFile(path.join(root, 'new.bin'))).equals(body)).toBe(true);
      await fsp.writeFile(path.join(root, 'theirs.bin'), 'made meanwhile');
      await expect(b.upload(plan('theirs.bin', true))).rejects.toBeInstanceOf(TargetExists);
      expect(await fsp.readFile(path.join(root, 'theirs.bin'), 'utf8')).toBe('made meanwhile');
      expect((await fsp.readdir(root)).sort()).toEqual(['new.bin', 'theirs.bin']);
      // Without the condition the copy replaces it (the driver has kept a conflict copy first).
      await b.upload(plan('theirs.bin', false));
      expect((await fsp.readFile(path.join(root, 'theirs.bin'))).equals(body)).toBe(true);
      await b.close();
    } finally {
      await server.stop();
    }
  }, 30_000);
});
