/**
 * Real servers for the remote drivers' tests, on loopback ports: Debian's OpenSSH server (sshd
 * with its own config, host key and a generated user key in a temporary folder) and s3rver (as a
 * child process, so that a test can kill it). Each can be killed and started again on the same
 * port and data, to inject a fault.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Not from helpers.ts: the benchmark uses these servers too, outside vitest.
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function until(what: string, check: () => Promise<boolean>, timeout: number, every: number): Promise<void> {
  // On the monotonic clock, as helpers.ts's until.
  const deadline = performance.now() + timeout;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export const SSHD = '/usr/sbin/sshd';
export const hasSshd = fs.existsSync(SSHD) && fs.existsSync('/usr/bin/ssh-keygen');
const S3RVER = path.join(REPO, 'node_modules/s3rver/bin/s3rver.js');
export const hasS3rver = fs.existsSync(S3RVER);
/** s3rver's fixed credentials. */
export const S3RVER_KEY = 'S3RVER';

/** A free TCP port on 127.0.0.1 (free when asked; the server takes it right after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Every process whose parent chain leads to `pid` (from /proc), deepest last. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of parents.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

function killTree(child: ChildProcess | null, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // The listener and every session it forked (each connection's sshd and its sftp-server).
  for (const pid of [child.pid!, ...descendants(child.pid!)]) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
  return exited;
}

export interface SshServer {
  host: string;
  port: number;
  /** The folder SFTP entries keep (the root option): under the server's temporary folder. */
  dir: string;
  /** The user's private key (key_file) and the user name. */
  keyFile: string;
  username: string;
  /** The host key's fingerprint as `ssh-keygen -l` prints it. */
  fingerprint: string;
  /** A known_hosts file that holds the host key. */
  knownHosts: string;
  /** sshd's stderr so far (-e). */
  log(): string;
  /** Kills sshd and every session it runs (SIGKILL): connections drop mid-transfer. */
  kill(): Promise<void>;
  /** Starts it again on the same port, keys and folder. */
  start(): Promise<void>;
  /** Gives the server a new host key (takes effect at the next start). */
  rekey(): Promise<string>;
  stop(): Promise<void>;
}

function keygen(file: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ferry-test', '-f', file]);
  const printed = execFileSync('ssh-keygen', ['-l', '-f', `${file}.pub`], { encoding: 'utf8' });
  return printed.split(/\s+/)[1];
}

/** Starts sshd on a free loopback port with its own keys, config and a data folder. */
export async function startSshd(): Promise<SshServer> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'ferry-sshd-'));
  const dir = path.join(base, 'data');
  await fsp.mkdir(dir);
  const hostKey = path.join(base, 'host_key');
  let fingerprint = keygen(hostKey);
  const userKey = path.join(base, 'user_key');
  keygen(userKey);
  await fsp.copyFile(`${userKey}.pub`, path.join(base, 'authorized_keys'));
  const port = await freePort();
  const knownHosts = path.join(base, 'known_hosts');
  const writeKnownHosts = async () => {
    const pub = (await fsp.readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/);
    await fsp.writeFile(knownHosts, `[127.0.0.1]:${port} ${pub[0]} ${pub[1]}\n`);
  };
  await writeKnownHosts();
  const config = path.join(base, 'sshd_config');
  await fsp.writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${path.join(base, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(base, 'authorized_keys')}`,
      'PermitRootLogin yes',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxStartups 100',
      'MaxSessions 100',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  await fsp.mkdir('/run/sshd', { recursive: true });
  let child: ChildProcess | null = null;
  let stderr = '';
  const start = async () => {
    child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d) => (stderr += d));
    const c = child;
    await until('sshd listening', async () => {
      if (c.exitCode !== null) throw new Error(`sshd exited: ${stderr}`);
      return listening(port);
    }, 10_000, 20);
  };
  await start();
  return {
    host: '127.0.0.1',
    port,
    dir,
    keyFile: userKey,
    username: os.userInfo().username,
    get fingerprint() {
      return fingerprint;
    },
    knownHosts,
    log: () => stderr,
    kill: () => killTree(child),
    start,
    async rekey() {
      await fsp.rm(hostKey, { force: true });
      await fsp.rm(`${hostKey}.pub`, { force: true });
      fingerprint = keygen(hostKey);
      return fingerprint;
    },
    async stop() {
      await killTree(child);
      await fsp.rm(base, { recursive: true, force: true });
    },
  };
}

export interface S3Server {
  endpoint: string;
  port: number;
  bucket: string;
  /** s3rver's data folder: the bucket's objects and multipart uploads, as files. */
  dir: string;
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts s3rver as a child process on a free loopback port, with one bucket. */
export async function startS3rver(bucket = 'ferry'): Promise<S3Server> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ferry-s3rver-'));
  const port = await freePort();
  let child: ChildProcess | null = null;
  let stderr = '';
  /** Whether s3rver is meant to be down (killed by a test, or stopped). */
  let down = false;
  const start = async () => {
    down = false;
    stderr = '';
    child = spawn(
      process.execPath,
      // s3rver makes its listings' continuation tokens with DES, which OpenSSL 3 keeps in its
      // legacy provider: without it any listing of more than 1,000 keys fails (InternalError).
      ['--openssl-legacy-provider', S3RVER, '-d', dir, '-a', '127.0.0.1', '-p', String(port), '--silent', '--configure-bucket', bucket],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr!.on('data', (d) => (stderr += d));
    const c = child;
    // s3rver can die of a race of its own: a DeleteObject removes the key's folder once it
    // looks empty, while a PutObject under the same prefix has just made it, and the write
    // stream's error ends the process. A real S3 has no such folders. Started again, on the
    // same port and data, with what it said: every test after it would fail on a refused
    // connection otherwise.
    c.once('exit', (code, signal) => {
      if (down || child !== c) return;
      console.error(`s3rver exited (code ${code}, signal ${signal}); started again. Its stderr:\n${stderr.slice(-2000)}`);
      void start().catch((err: Error) => console.error(`s3rver could not be started again: ${err.message}`));
    });
    await until('s3rver listening', async () => {
      if (c.exitCode !== null) throw new Error(`s3rver exited: ${stderr}`);
      return listening(port);
    }, 15_000, 20);
  };
  await start();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    bucket,
    dir,
    kill: () => {
      down = true;
      return killTree(child);
    },
    start,
    async stop() {
      down = true;
      await killTree(child);
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

/** One remote entry's storage as a test sees it (behind Ferry's back): what a user would do there. */
export interface RemoteStorage {
  driver: 'sftp' | 's3';
  /** The entry's options (secrets by reference). */
  options: Record<string, unknown>;
  put(rel: string, content: string | Buffer): Promise<void>;
  read(rel: string): Promise<Buffer | null>;
  remove(rel: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Every file (Ferry's own names left out but temporaries): relative path → content. */
  files(): Promise<Map<string, Buffer>>;
  /** Ferry's temporary and partial names found in the storage. */
  temporaries(): Promise<string[]>;
  /** Every folder (S3: every `name/` marker object), sorted. */
  folders(): Promise<string[]>;
  makeFolder(rel: string): Promise<void>;
  /** The versions kept of `rel` (under `.ferry-versions/rel/`): name → content. */
  versions(rel: string): Promise<Map<string, Buffer>>;
  /** Every file under `.ferry-versions/` (its key there), sorted. */
  versionKeys(): Promise<string[]>;
}

/** A fresh folder `sub` on the SFTP server as an entry's root: the test reaches it through the file system. */
export async function sftpStorage(server: SshServer, sub: string, extra: Record<string, unknown> = {}): Promise<RemoteStorage> {
  const root = path.join(server.dir, sub);
  await fsp.mkdir(root, { recursive: true });
  const at = (rel: string) => path.join(root, rel);
  const walk = async (dir: string, rel: string, out: Map<string, Buffer>, internal: string[]) => {
    for (const e of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      // The versions Ferry keeps are neither the entry's files nor temporaries (see versions()).
      if (e.isDirectory() && e.name === '.ferry-versions') continue;
      if (e.isDirectory()) await walk(path.join(dir, e.name), r, out, internal);
      else if (e.name.startsWith('.ferry-')) internal.push(r);
      else out.set(r, await fsp.readFile(path.join(dir, e.name)));
    }
  };
  return {
    driver: 'sftp',
    options: {
      host: server.host,
      port: server.port,
      username: server.username,
      root,
      key_file: server.keyFile,
      host_key: server.fingerprint,
      poll_interval: 0.5,
      ...extra,
    },
    async put(rel, content) {
      await fsp.mkdir(path.dirname(at(rel)), { recursive: true });
      await fsp.writeFile(at(rel), content);
    },
    read: (rel) => fsp.readFile(at(rel)).catch(() => null),
    remove: (rel) => fsp.rm(at(rel)),
    async rename(from, to) {
      await fsp.mkdir(path.dirname(at(to)), { recursive: true });
      await fsp.rename(at(from), at(to));
    },
    async files() {
      const out = new Map<string, Buffer>();
      await walk(root, '', out, []);
      return out;
    },
    async temporaries() {
      const internal: string[] = [];
      await walk(root, '', new Map(), internal);
      return internal.filter((n) => n !== '.ferry-entry');
    },
    async folders() {
      const out: string[] = [];
      const dirs = async (dir: string, rel: string) => {
        for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
          if (!e.isDirectory() || e.name === '.ferry-versions') continue;
          const r = rel ? `${rel}/${e.name}` : e.name;
          out.push(r);
          await dirs(path.join(dir, e.name), r);
        }
      };
      await dirs(root, '');
      return out.sort();
    },
    async makeFolder(rel) {
      await fsp.mkdir(at(rel), { recursive: true });
    },
    async versions(rel) {
      const out = new Map<string, Buffer>();
      const folder = at(path.join('.ferry-versions', rel));
      for (const e of await fsp.readdir(folder, { withFileTypes: true }).catch(() => [])) {
        if (e.isFile()) out.set(e.name, await fsp.readFile(path.join(folder, e.name)));
      }
      return out;
    },
    async versionKeys() {
      const base = at('.ferry-versions');
      const names = (await fsp.readdir(base, { recursive: true }).catch(() => [])) as string[];
      const files = [];
      for (const n of names) if ((await fsp.stat(path.join(base, n))).isFile()) files.push(n.split(path.sep).join('/'));
      return files.sort();
    },
  };
}

/** A fresh prefix in s3rver's bucket as an entry's storage: the test reaches it with its own S3 client. */
export async function s3Storage(server: S3Server, prefix: string, extra: Record<string, unknown> = {}): Promise<RemoteStorage> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const s3 = await import('@aws-sdk/client-s3');
  process.env.FERRY_TEST_S3_ID = S3RVER_KEY;
  process.env.FERRY_TEST_S3_SECRET = S3RVER_KEY;
  const client = new s3.S3Client({
    region: 'us-east-1',
    endpoint: server.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const Bucket = server.bucket;
  const key = (rel: string) => `${prefix}/${rel}`;
  const all = async () => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(new s3.ListObjectsV2Command({ Bucket, Prefix: `${prefix}/`, ContinuationToken: token }));
      for (const o of page.Contents ?? []) keys.push(o.Key!.slice(prefix.length + 1));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys;
  };
  const read = async (rel: string) => {
    try {
      const got = await client.send(new s3.GetObjectCommand({ Bucket, Key: key(rel) }));
      return Buffer.from(await got.Body!.transformToByteArray());
    } catch {
      return null;
    }
  };
  return {
    driver: 's3',
    options: {
      bucket: Bucket,
      prefix,
      endpoint: server.endpoint,
      force_path_style: true,
      access_key_id_env: 'FERRY_TEST_S3_ID',
      secret_access_key_env: 'FERRY_TEST_S3_SECRET',
      poll_interval: 0.5,
      ...extra,
    },
    async put(rel, content) {
      const Body = Buffer.isBuffer(content) ? content : Buffer.from(content);
      await client.send(new s3.PutObjectCommand({ Bucket, Key: key(rel), Body, ContentLength: Body.length }));
    },
    read,
    async remove(rel) {
      await client.send(new s3.DeleteObjectCommand({ Bucket, Key: key(rel) }));
    },
    async rename(from, to) {
      await client.send(new s3.CopyObjectCommand({ Bucket, Key: key(to), CopySource: `${Bucket}/${key(from)}` }));
      await client.send(new s3.DeleteObjectCommand({ Bucket, Key: key(from) }));
    },
    async files() {
      const out = new Map<string, Buffer>();
      for (const rel of await all()) {
        if (rel.endsWith('/') || rel.split('/').some((s) => s.startsWith('.ferry-'))) continue;
        const b = await read(rel);
        if (b) out.set(rel, b);
      }
      return out;
    },
    async temporaries() {
      return (await all()).filter((rel) => rel.split('/').pop()!.startsWith('.ferry-') && rel !== '.ferry-entry');
    },
    async folders() {
      return (await all())
        .filter((rel) => rel.endsWith('/'))
        .map((rel) => rel.slice(0, -1))
        .sort();
    },
    async makeFolder(rel) {
      await client.send(new s3.PutObjectCommand({ Bucket, Key: `${key(rel)}/`, Body: Buffer.alloc(0), ContentLength: 0 }));
    },
    async versions(rel) {
      const out = new Map<string, Buffer>();
      const folder = `.ferry-versions/${rel}/`;
      for (const k of await all()) {
        if (!k.startsWith(folder) || k.slice(folder.length).includes('/')) continue;
        const b = await read(k);
        if (b) out.set(k.slice(folder.length), b);
      }
      return out;
    },
    async versionKeys() {
      return (await all())
        .filter((k) => k.startsWith('.ferry-versions/'))
        .map((k) => k.slice('.ferry-versions/'.length))
        .sort();
    },
  };
}
