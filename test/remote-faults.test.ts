import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { api, startDaemon, until, daemonHarness, type RunningDaemon } from './helpers.js';
import { hasS3rver, hasSshd, s3Storage, sftpStorage, startS3rver, startSshd, type RemoteStorage } from './servers.js';

/**
 * Faults of remote storage, injected for real: the servers are killed mid-transfer (SIGKILL of
 * sshd and its sessions, of s3rver), refuse connections, refuse credentials, change their host
 * key. The remote entry stays `active` with the reason in its status, its jobs wait and are
 * retried, the other entries carry on, nothing partial appears under a final name, and once
 * the server is back the entry catches up by itself.
 */

const harness = daemonHarness('ferry-remote-faults-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const rules = (...names: string[]) => [{ match: { path: '/' }, sync: names }];

async function writeSetup(entries: Record<string, unknown>, names: string[]): Promise<string> {
  for (const [name, e] of Object.entries(entries)) {
    if ((e as { driver: string }).driver === 'local_storage') await fsp.mkdir(path.join(dir, name), { recursive: true });
  }
  const file = path.join(dir, 'setup.json');
  await fsp.writeFile(file, JSON.stringify({ entries, rules: rules(...names) }, null, 2));
  return file;
}

const local = (name: string) => ({ driver: 'local_storage', options: { root: name } });
const remote = (b: RemoteStorage) => ({ driver: b.driver, options: b.options });

async function daemon(file: string): Promise<RunningDaemon> {
  const d = await startDaemon(file);
  daemons.push(d);
  return d;
}

const status = async (d: RunningDaemon, name: string) => (await api(d.api, 'GET', `/entries/${name}/status`)).body;

/** Writes a file into a local root whole (written beside it, then renamed in). */
async function drop(root: string, rel: string, content: Buffer): Promise<void> {
  const staging = path.join(dir, `staging-${randomBytes(4).toString('hex')}`);
  await fsp.writeFile(staging, content);
  await fsp.mkdir(path.dirname(path.join(dir, root, rel)), { recursive: true });
  await fsp.rename(staging, path.join(dir, root, rel));
}

const inLocal = (root: string, rel: string, content: Buffer | string) => () => {
  try {
    return fs.readFileSync(path.join(dir, root, rel)).equals(Buffer.isBuffer(content) ? content : Buffer.from(content));
  } catch {
    return false;
  }
};

/** Every size B's final name showed while `until` polled it: never anything but the whole file. */
async function watchFinal(b: RemoteStorage, rel: string, size: number, sizes: Set<number>): Promise<boolean> {
  const got = await b.read(rel);
  if (got) sizes.add(got.length);
  return got?.length === size;
}

describe.runIf(hasSshd)('an SFTP server that goes away', () => {
  it('killed mid-copy of a 64 MiB file and started again: the copy resumes, its sha256 is right, nothing partial under the final name', async () => {
    const ssh = await startSshd();
    try {
      const b = await sftpStorage(ssh, 'root');
      const d = await daemon(await writeSetup({ A: local('A'), B: remote(b), C: local('C') }, ['A', 'B', 'C']));
      const big = randomBytes(64 << 20);
      await drop('A', 'big/big.bin', big);
      // Killed once the partial file holds 8 MiB or more (and before it is whole).
      const partialDir = path.join(b.options.root as string, 'big');
      await until('a partial copy of 8 MiB or more on the server', () => {
        const names = fs.existsSync(partialDir) ? fs.readdirSync(partialDir) : [];
        const part = names.find((n) => n.startsWith('.ferry-part-'));
        return !!part && fs.statSync(path.join(partialDir, part)).size >= 8 << 20;
      }, 30_000, 2);
      await ssh.kill();
      const heldAtKill = fs.readdirSync(partialDir).filter((n) => n.startsWith('.ferry-part-'));
      expect(heldAtKill).toHaveLength(1);
      expect(fs.existsSync(path.join(partialDir, 'big.bin'))).toBe(false);

      // B stays active, and says why; the other entries carry on.
      const down = await until('B’s reason in its status', async () => {
        const s = await status(d, 'B');
        return s.reason?.includes('connection refused') ? s : null;
      }, 20_000, 100);
      expect(down.status).toBe('active');
      expect(down.reason).toMatch(new RegExp(`sftp 127\\.0\\.0\\.1:${ssh.port}: connection refused; retrying in \\d+ s`));
      await drop('A', 'during.txt', Buffer.from('written while the server was down'));
      await until('the new file in C', inLocal('C', 'during.txt', 'written while the server was down'));
      expect((await status(d, 'C')).reason).toBeUndefined();

      await ssh.start();
      const sizes = new Set<number>();
      await until('the big file whole in B', () => watchFinal(b, 'big/big.bin', big.length, sizes), 90_000, 20);
      expect([...sizes]).toEqual([big.length]);
      expect(sha((await b.read('big/big.bin'))!)).toBe(sha(big));
      const resumed = d.logs.find((l) => l.entry === 'B' && String(l.msg).startsWith('resuming the copy of big/big.bin at'));
      expect(resumed, 'a resume in the log').toBeDefined();
      expect(Number(resumed!.offset)).toBeGreaterThanOrEqual(8 << 20);
      await until('the file from while it was down in B too', async () => (await b.read('during.txt'))?.toString() === 'written while the server was down', 30_000);
      await until('no reason left in B’s status', async () => (await status(d, 'B')).reason === undefined, 30_000, 200);
      expect(await b.temporaries()).toEqual([]);
    } finally {
      await ssh.stop();
    }
  }, 180_000);

  it('refusing connections from the start: B is active with the reason, its jobs wait, and it catches up once the server listens', async () => {
    const ssh = await startSshd();
    try {
      const b = await sftpStorage(ssh, 'root');
      await ssh.kill();
      const d = await daemon(await writeSetup({ A: local('A'), B: remote(b) }, ['A', 'B']));
      await drop('A', 'queued.txt', Buffer.from('waits for B'));
      const down = await until('B’s reason', async () => {
        const s = await status(d, 'B');
        return s.reason?.includes('connection refused') ? s : null;
      }, 20_000, 100);
      expect(down.status).toBe('active');
      const metrics = await (await fetch(`${d.url}/metrics`)).text();
      expect(metrics).toMatch(/ferry_entry_connected\{entry="B",endpoint="sftp 127\.0\.0\.1:\d+"\} 0/);
      await ssh.start();
      await until('the queued file in B', async () => (await b.read('queued.txt'))?.toString() === 'waits for B', 60_000, 100);
      await until('B connected in /metrics', async () =>
        /ferry_entry_connected\{entry="B",endpoint="sftp [^"]+"\} 1/.test(await (await fetch(`${d.url}/metrics`)).text()),
      );
      const stats = (await api(d.api, 'GET', '/entries/B/stats')).body;
      expect(stats.connection).toMatchObject({ connected: true, reason: null, files_transferred: 1, bytes_transferred: 11 });
    } finally {
      await ssh.stop();
    }
  }, 120_000);

  it('wrong credentials: B says so in its status, nothing is written there, the other entries carry on', async () => {
    const ssh = await startSshd();
    try {
      const stranger = path.join(dir, 'stranger_key');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
      const b = await sftpStorage(ssh, 'root', { key_file: stranger });
      const d = await daemon(await writeSetup({ A: local('A'), B: remote(b), C: local('C') }, ['A', 'B', 'C']));
      await drop('A', 'doc.txt', Buffer.from('for everyone'));
      await until('the file in C', inLocal('C', 'doc.txt', 'for everyone'));
      const s = await until('B’s reason', async () => {
        const x = await status(d, 'B');
        return x.reason?.includes('authentication failed') ? x : null;
      }, 20_000, 100);
      expect(s.status).toBe('active');
      expect(s.reason).toMatch(/sftp 127\.0\.0\.1:\d+: authentication failed for user \S+; retrying in \d+ s/);
      expect((await status(d, 'A')).reason).toBeUndefined();
      expect((await status(d, 'C')).reason).toBeUndefined();
      expect([...(await b.files()).keys()]).toEqual([]);
    } finally {
      await ssh.stop();
    }
  }, 60_000);

  it('a changed host key refuses to connect; an unknown one refuses the start and prints the fingerprint', async () => {
    const ssh = await startSshd();
    try {
      const b = await sftpStorage(ssh, 'root');
      const emptyKnownHosts = path.join(dir, 'known_hosts');
      await fsp.writeFile(emptyKnownHosts, '');
      const { host_key: _pinned, ...unpinned } = b.options;
      const entries = {
        A: local('A'),
        B: remote(b),
        U: { driver: 'sftp', options: { ...unpinned, root: `${b.options.root}-u`, known_hosts_file: emptyKnownHosts } },
        K: { driver: 'sftp', options: { ...unpinned, root: `${b.options.root}-k`, known_hosts_file: ssh.knownHosts } },
      };
      await fsp.mkdir(`${b.options.root}-u`);
      await fsp.mkdir(`${b.options.root}-k`);
      const d = await daemon(await writeSetup(entries, ['A', 'B', 'K']));

      // Not in known_hosts and no host_key: refused, with the fingerprint to check and copy.
      const u = await status(d, 'U');
      expect(u.status).toBe('stopped');
      expect(u.reason).toContain(`the host key of 127.0.0.1:${ssh.port} is not known: it is ${ssh.fingerprint}`);
      expect(u.reason).toContain(`"host_key": "${ssh.fingerprint}"`);
      // In known_hosts: accepted.
      await drop('A', 'one.txt', Buffer.from('one'));
      await until('the file in B and K', async () => (await b.read('one.txt')) !== null && fs.existsSync(`${b.options.root}-k/one.txt`));

      const old = ssh.fingerprint;
      const fresh = await ssh.rekey();
      await ssh.kill();
      await ssh.start();
      await drop('A', 'two.txt', Buffer.from('two'));
      const s = await until('B’s reason', async () => {
        const x = await status(d, 'B');
        return x.reason?.includes('host key') ? x : null;
      }, 30_000, 100);
      expect(s.status).toBe('active');
      expect(s.reason).toContain(`the host key of 127.0.0.1:${ssh.port} is ${fresh}, not the host_key ${old} this entry expects; refusing to connect`);
      const k = await until('K’s reason', async () => {
        const x = await status(d, 'K');
        return x.reason?.includes('host key') ? x : null;
      }, 30_000, 100);
      expect(k.reason).toContain(`the host key of 127.0.0.1:${ssh.port} changed: it is now ${fresh}`);
      // Nothing went to a server that may not be the one it was.
      await new Promise((r) => setTimeout(r, 1000));
      expect(await b.read('two.txt')).toBeNull();
      // A start is refused outright.
      const restart = await api(d.api, 'PUT', '/entries/B/restart');
      expect(restart.status).toBe(409);
      expect(restart.body.reason).toContain(`is ${fresh}, not the host_key ${old}`);
      expect((await status(d, 'B')).status).toBe('stopped');
    } finally {
      await ssh.stop();
    }
  }, 90_000);
});

describe.runIf(hasSshd)('paths on an SFTP server', () => {
  it('a symlinked folder in the root that leads out of it is never written through', async () => {
    const ssh = await startSshd();
    try {
      const b = await sftpStorage(ssh, 'root');
      const outside = path.join(dir, 'outside');
      await fsp.mkdir(outside);
      await fsp.symlink(outside, path.join(b.options.root as string, 'out'));
      const d = await daemon(await writeSetup({ A: local('A'), B: remote(b) }, ['A', 'B']));
      await drop('A', 'out/secret.txt', Buffer.from('must not leave the root'));
      await drop('A', 'fine.txt', Buffer.from('fine'));
      await until('fine.txt in B', async () => (await b.read('fine.txt'))?.toString() === 'fine');
      const s = await until('the refusal in B’s status', async () => {
        const x = await status(d, 'B');
        return x.reason?.includes('a folder on the path is a symbolic link') ? x : null;
      }, 20_000, 100);
      expect(s.status).toBe('active');
      expect(fs.readdirSync(outside)).toEqual([]);
    } finally {
      await ssh.stop();
    }
  }, 60_000);
});

describe.runIf(hasS3rver)('an S3 server that goes away', () => {
  it('killed mid-multipart upload and started again: the upload resumes from its parts, and the object’s sha256 is right', async () => {
    const s3 = await startS3rver();
    try {
      const b = await s3Storage(s3, 'root');
      const d = await daemon(await writeSetup({ A: local('A'), B: remote(b) }, ['A', 'B']));
      const big = randomBytes(64 << 20);
      await drop('A', 'big/big.bin', big);
      // s3rver keeps each part of an upload as a file named by its number.
      const parts = () => {
        let n = 0;
        const walk = (p: string) => {
          for (const e of fs.readdirSync(p, { withFileTypes: true })) {
            if (e.isDirectory()) walk(path.join(p, e.name));
            else if (/^\d+$/.test(e.name)) n++;
          }
        };
        walk(s3.dir);
        return n;
      };
      await until('two parts on the server', () => parts() >= 2, 30_000, 2);
      await s3.kill();
      expect(await s3.start().then(() => b.read('big/big.bin'))).toBeNull();
      await s3.kill();
      await until('B’s reason', async () => (await status(d, 'B')).reason?.includes('retrying in') ?? false, 20_000, 100);
      expect((await status(d, 'B')).status).toBe('active');
      await s3.start();
      await until('the object in B', async () => (await b.read('big/big.bin'))?.length === big.length, 90_000, 100);
      expect(sha((await b.read('big/big.bin'))!)).toBe(sha(big));
      const resumed = d.logs.find((l) => l.entry === 'B' && String(l.msg).startsWith('resuming the upload of big/big.bin'));
      expect(resumed, 'a resume in the log').toBeDefined();
      expect(Number(resumed!.parts)).toBeGreaterThanOrEqual(1);
      await until('no partial marker left', async () => (await b.temporaries()).length === 0);
    } finally {
      await s3.stop();
    }
  }, 180_000);

  it('wrong credentials: B says so in its status, nothing is written there, A carries on', async () => {
    const s3 = await startS3rver();
    try {
      // s3rver checks the access key id (not V4 signatures): an unknown id is the wrong credential it sees.
      process.env.FERRY_TEST_WRONG_ID = 'NOBODY';
      const b = await s3Storage(s3, 'root', { access_key_id_env: 'FERRY_TEST_WRONG_ID' });
      const d = await daemon(await writeSetup({ A: local('A'), B: remote(b), C: local('C') }, ['A', 'B', 'C']));
      await drop('A', 'doc.txt', Buffer.from('for everyone'));
      await until('the file in C', inLocal('C', 'doc.txt', 'for everyone'));
      const s = await until('B’s reason', async () => {
        const x = await status(d, 'B');
        return x.reason?.includes('access denied') ? x : null;
      }, 20_000, 100);
      expect(s.status).toBe('active');
      expect(s.reason).toMatch(/s3 ferry at http:\/\/127\.0\.0\.1:\d+: access denied \(\w+\): check the credentials; retrying in \d+ s/);
      expect([...(await b.files()).keys()]).toEqual([]);
    } finally {
      await s3.stop();
    }
  }, 60_000);
});
