import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, type SFTPWrapper, type Stats } from 'ssh2';
import type { ScannedFile } from '../../../machines/reports.js';
import { INTERNAL_PREFIX, isInternalName, unsafeReason, UnsafePathError } from '../../paths.js';
import { DriverRefusal, StaleJob } from '../driver.js';
import { type CopyLimits, FOLDER_STAT, type Listing, type RemoteBackend, type RemoteStat, TargetExists, type UploadPlan } from '../remote/backend.js';
import { MARKER } from '../remote/remote-driver.js';
import { plain } from '../remote/poller.js';
import { partialId, RESUMABLE_MIN } from '../remote/partials.js';
import { HostKeyRefusal, hostKeyProblem } from './host-key.js';
import { borrow, giveBack } from '../buffer-pool.js';
import { requestSize, SftpWriteStream, sftpReadStream } from './streams.js';
import { VERSIONS_FOLDER } from '../../versions/names.js';

export interface SftpOptions {
  host: string;
  port: number;
  username: string;
  root: string;
  key_file?: string;
  password_env?: string;
  /** Inline in the setup (discouraged: the start warns). */
  password?: string;
  host_key?: string;
  known_hosts_file?: string;
}

/** How long a connection may take before it counts as failed. */
const CONNECT_TIMEOUT_MS = 10_000;
/** Folders listed at once by a listing. */
const LISTINGS_AT_ONCE = 8;
/** Files up to this size are read whole (a buffer reused from copy to copy), and written with one round of requests. */
const SMALL_MAX = 8 << 20;

const posix = path.posix;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

interface Session {
  client: Client;
  sftp: SFTPWrapper;
  posixRename: boolean;
  /** Whether the server makes hard links (`hardlink@openssh.com`): a version of a file a copy replaces costs no copy. */
  hardlink: boolean;
  /**
   * Rejects when the connection is lost. ssh2 never answers a request in flight when its
   * connection drops (nor one made after), so every call races this.
   */
  lost: Promise<never>;
  /** Holds what is written to the socket in this turn of the event loop, to go in one system call. */
  batch: () => void;
}

type Callback<T> = (err: Error | null | undefined, value?: T) => void;

/** One SFTP request as a promise, failed at once if the session's connection is lost. */
function call<T>(s: Session, fn: (cb: Callback<T>) => void): Promise<T> {
  return Promise.race([new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T)))), s.lost]);
}

const lostError = () => Object.assign(new Error('connection lost'), { code: 'ECONNRESET' });

const sftpCode = (err: unknown) => (err as { code?: unknown } | null)?.code;
/** SFTP status 2: no such file. */
const isMissing = (err: unknown) => sftpCode(err) === 2 || sftpCode(err) === 'ENOENT';

function statOf(attrs: Stats): RemoteStat {
  if (((attrs.mode ?? 0) & S_IFMT) === S_IFDIR) return { ...FOLDER_STAT };
  // SFTP gives whole seconds; every stat of this driver says the same.
  return { size: attrs.size, mtime: attrs.mtime * 1000, ino: null };
}

/** An SFTP server through ssh2: one connection (one SFTP session) per backend, made again when lost. */
export class SftpBackend implements RemoteBackend {
  readonly endpoint: string;
  readonly renameKeepsMtime = true;
  /**
   * One session carries every copy: many small copies keep its requests in flight (a small
   * copy is a few round trips); large ones fill its window with a few files at a time.
   */
  readonly copyLimits: CopyLimits = { files: 32, bytes: 32 << 20 };
  onFolderMade?: (rel: string, stat: RemoteStat) => void;
  private session: Promise<Session> | null = null;
  private closed = false;
  /** Folders known to exist (made or seen), so that each copy does not ask again. */
  private readonly folders = new Set<string>();
  private readonly root: string;
  /** The root as the server resolves it (symbolic links followed), once asked. */
  private realRoot: string | null = null;

  constructor(private readonly options: SftpOptions) {
    this.endpoint = `sftp ${options.host}:${options.port}`;
    this.root = posix.normalize(options.root).replace(/\/+$/, '') || '/';
  }

  // ---- the connection ----

  async connect(): Promise<void> {
    this.closed = false;
    const s = await this.sftp();
    const { sftp } = s;
    // The root must be there: a missing one is the wrong server or an unmounted disk.
    const st = await call<Stats>(s, (cb) => sftp.stat(this.root, cb)).catch((err) => {
      if (isMissing(err)) throw new DriverRefusal(`root ${this.root} does not exist on ${this.endpoint}`);
      throw err;
    });
    if (((st.mode ?? 0) & S_IFMT) !== S_IFDIR) throw new DriverRefusal(`root ${this.root} on ${this.endpoint} is not a folder`);
  }

  async close(): Promise<void> {
    this.closed = true;
    const s = this.session;
    this.session = null;
    if (s) await s.then((x) => x.client.end()).catch(() => {});
  }

  private sftp(): Promise<Session> {
    if (this.session) return this.session;
    const session = this.dial();
    this.session = session;
    session.catch(() => {
      if (this.session === session) this.session = null;
    });
    return session;
  }

  private credentials(): { privateKey?: Buffer; password?: string } {
    const o = this.options;
    if (o.key_file) {
      try {
        return { privateKey: fs.readFileSync(o.key_file) };
      } catch (err) {
        throw new DriverRefusal(`key_file ${o.key_file} cannot be read: ${(err as Error).message}`);
      }
    }
    if (o.password_env) {
      const password = process.env[o.password_env];
      if (password === undefined) throw new DriverRefusal(`password_env: the environment variable ${o.password_env} is not set`);
      return { password };
    }
    if (o.password !== undefined) return { password: o.password };
    throw new DriverRefusal('no credentials: give key_file or password_env');
  }

  private dial(): Promise<Session> {
    const o = this.options;
    const credentials = this.credentials();
    const knownHosts = o.known_hosts_file ?? path.join(os.homedir(), '.ssh', 'known_hosts');
    return new Promise<Session>((resolve, reject) => {
      const client = new Client();
      let keyProblem: string | null = null;
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        client.end();
        reject(keyProblem !== null ? new HostKeyRefusal(keyProblem) : err);
      };
      let batchOf: () => void = () => {};
      let markLost: (err: Error) => void = () => {};
      const lost = new Promise<never>((_, reject) => (markLost = reject));
      lost.catch(() => {});
      client.once('ready', () => {
        client.sftp((err, sftp) => {
          if (err) return fail(err);
          settled = true;
          const extensions = (sftp as unknown as { _extensions?: Record<string, string> })._extensions ?? {};
          resolve({
            client,
            sftp,
            posixRename: 'posix-rename@openssh.com' in extensions,
            hardlink: 'hardlink@openssh.com' in extensions,
            lost,
            batch: batchOf,
          });
        });
      });
      client.on('end', () => markLost(lostError()));
      client.on('error', (err) => {
        markLost(lostError());
        if (!settled) fail(err);
        else this.dropSession(client);
      });
      client.on('close', () => {
        markLost(lostError());
        if (!settled) fail(lostError());
        this.dropSession(client);
      });
      // The socket is ours, so that what ssh2 writes in one turn of the event loop (the packets of
      // a copy's writes, those a window adjustment releases) goes in one writev: loopback TCP in
      // 32 KiB packets, one system call each, cost the worker a quarter of its time on large copies.
      const sock = net.connect({ host: o.host, port: o.port });
      let corked = false;
      batchOf = () => {
        if (corked) return;
        corked = true;
        sock.cork();
        setImmediate(() => {
          corked = false;
          sock.uncork();
        });
      };
      sock.on('data', batchOf);
      client.connect({
        sock,
        host: o.host,
        port: o.port,
        username: o.username,
        ...credentials,
        readyTimeout: CONNECT_TIMEOUT_MS,
        keepaliveInterval: 5000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          keyProblem = hostKeyProblem(key, { host: o.host, port: o.port }, o.host_key ?? null, knownHosts);
          return keyProblem === null;
        },
      });
    });
  }

  private dropSession(client: Client): void {
    const s = this.session;
    if (!s) return;
    void s.then((x) => {
      if (x.client === client && this.session === s) {
        this.session = null;
        this.folders.clear();
      }
    }, () => {});
  }

  connectionError(err: unknown): string | null {
    if (err instanceof HostKeyRefusal) return err.message;
    if (err instanceof DriverRefusal) return err.message;
    const e = err as { code?: unknown; level?: unknown; message?: unknown } | null;
    if (!e) return null;
    if (e.level === 'client-authentication') return `authentication failed for user ${this.options.username}`;
    if (e.level === 'client-timeout' || e.code === 'ETIMEDOUT') return 'timed out';
    switch (e.code) {
      case 'ECONNREFUSED':
        return 'connection refused';
      case 'ECONNRESET':
      case 'EPIPE':
        return 'connection lost';
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return 'host not found';
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
        return 'host unreachable';
    }
    const message = typeof e.message === 'string' ? e.message : '';
    if (/No response from server|Not connected|connection lost|Channel|socket|keepalive/i.test(message)) return 'connection lost';
    if (e.level === 'client-socket') return 'connection lost';
    return null;
  }

  // ---- paths ----

  /** The server's path of `rel`: checked (no `..`, absolute, NUL, backslash), then joined to the root (which may be relative to the user's home). */
  private abs(rel: string): string {
    const reason = unsafeReason(rel);
    if (reason) throw new UnsafePathError(rel, reason);
    return this.root === '/' ? `/${rel}` : `${this.root}/${rel}`;
  }

  private relOf(abs: string): string {
    return this.root === '/' ? abs.slice(1) : abs.slice(this.root.length + 1);
  }

  /**
   * Makes `dir` and its parents. `quiet`: a folder of the versions folder, neither cached (the
   * listings never see it) nor told as a folder the copy made.
   */
  private async mkdirp(s: Session, dir: string, quiet = false): Promise<void> {
    if (dir === this.root || this.folders.has(dir)) return;
    await this.mkdirp(s, posix.dirname(dir), quiet);
    const made = await call(s, (cb) => s.sftp.mkdir(dir, cb)).then(
      () => true,
      async (err) => {
        // lstat: a symbolic link to a folder is never written through (it may lead out of the root).
        const st = await call<Stats>(s, (cb) => s.sftp.lstat(dir, cb)).catch(() => null);
        if (st && ((st.mode ?? 0) & S_IFMT) === S_IFLNK) {
          throw new UnsafePathError(this.relOf(dir), 'a folder on the path is a symbolic link');
        }
        if (st) {
          if (((st.mode ?? 0) & S_IFMT) !== S_IFDIR) throw new Error(`${this.relOf(dir)} is a file, not a folder`, { cause: err });
        } else throw err;
        return false;
      },
    );
    if (quiet) return;
    this.folders.add(dir);
    if (made) this.onFolderMade?.(this.relOf(dir), { ...FOLDER_STAT });
  }

  // ---- the read side ----

  async stat(rel: string): Promise<RemoteStat | null> {
    const s = await this.sftp();
    const st = await call<Stats>(s, (cb) => s.sftp.lstat(this.abs(rel), cb)).catch((err) => {
      if (isMissing(err)) return null;
      throw err;
    });
    const type = (st?.mode ?? 0) & S_IFMT;
    return st && (type === S_IFREG || type === S_IFDIR) ? statOf(st) : null;
  }

  async folderStat(rel: string): Promise<RemoteStat | null> {
    const st = await this.stat(rel);
    return st && st.mode === S_IFDIR ? st : null;
  }

  async makeFolder(rel: string): Promise<RemoteStat> {
    const s = await this.sftp();
    await this.mkdirp(s, this.abs(rel));
    return { ...FOLDER_STAT };
  }

  async removeFolder(rel: string): Promise<void> {
    const s = await this.sftp();
    const dir = this.abs(rel);
    await call(s, (cb) => s.sftp.rmdir(dir, cb)).catch(async (err) => {
      const still = await call<Stats>(s, (cb) => s.sftp.lstat(dir, cb)).catch(() => null);
      if (!still) return;
      // Its contents go first (their own jobs): until then it stays, and the job is tried again.
      if (((still.mode ?? 0) & S_IFMT) === S_IFDIR) throw new StaleJob(`${rel} is not empty yet; not deleted`);
      throw err;
    });
    this.folders.delete(dir);
  }

  async open(rel: string, offset: number): Promise<Readable> {
    const s = await this.sftp();
    return this.openAbs(s, this.abs(rel), offset);
  }

  private async openAbs(s: Session, file: string, offset: number): Promise<Readable> {
    const handle = await call<Buffer>(s, (cb) => s.sftp.open(file, 'r', cb));
    const st = await call<Stats>(s, (cb) => s.sftp.fstat(handle, cb)).catch(async (err) => {
      await call(s, (cb) => s.sftp.close(handle, cb)).catch(() => {});
      throw err;
    });
    return sftpReadStream(s.sftp, handle, offset, st.size, () => s.sftp.close(handle, () => {}), s.lost);
  }

  async list(): Promise<ScannedFile[]> {
    const { files } = await this.listing();
    return [...files].map(([rel, st]) => ({ path: rel, ...plain(st) }));
  }

  async listing(): Promise<Listing> {
    const s = await this.sftp();
    const { sftp } = s;
    const files = new Map<string, RemoteStat>();
    const internal: Listing['internal'] = [];
    const readdir = (dir: string) =>
      call<{ filename: string; attrs: Stats }[]>(s, (cb) => sftp.readdir(dir, cb)).catch((err) => {
        if (dir === this.root && isMissing(err)) throw new DriverRefusal(`root ${this.root} does not exist on ${this.endpoint}`);
        // A folder removed while the tree was listed: its files are gone.
        if (isMissing(err)) return [];
        throw err;
      });
    const take = (dir: string, entries: { filename: string; attrs: Stats }[], queue: string[]) => {
      for (const { filename, attrs } of entries) {
        if (filename === '.' || filename === '..') continue;
        const abs = dir === '/' ? `/${filename}` : `${dir}/${filename}`;
        const type = (attrs.mode ?? 0) & S_IFMT;
        if (isInternalName(filename)) {
          if (type === S_IFREG) internal.push({ rel: this.relOf(abs), mtime: attrs.mtime * 1000 });
          continue;
        }
        // Symbolic links are never followed (nor listed), as in a local root.
        if (type === S_IFDIR) {
          this.folders.add(abs);
          files.set(this.relOf(abs), statOf(attrs));
          queue.push(abs);
        } else if (type === S_IFREG) files.set(this.relOf(abs), statOf(attrs));
      }
    };
    // The folders seen are the ones that exist: one removed on the server is made again by the next copy.
    this.folders.clear();
    await this.walk(this.root, readdir, take);
    return { files, internal };
  }

  /** Lists the folders under `start` (each folder `take` queues), several at once over the one session. */
  private async walk<E>(
    start: string,
    readdir: (dir: string) => Promise<E>,
    take: (dir: string, entries: E, queue: string[]) => void,
  ): Promise<void> {
    const queue = [start];
    await new Promise<void>((resolve, reject) => {
      let active = 0;
      let failed = false;
      const pump = () => {
        if (failed) return;
        if (queue.length === 0 && active === 0) return resolve();
        while (queue.length > 0 && active < LISTINGS_AT_ONCE) {
          const dir = queue.pop()!;
          active++;
          readdir(dir).then(
            (entries) => {
              active--;
              take(dir, entries, queue);
              pump();
            },
            (err) => {
              failed = true;
              reject(err);
            },
          );
        }
      };
      pump();
    });
  }

  // ---- the write side ----

  async upload(plan: UploadPlan): Promise<RemoteStat> {
    const s = await this.sftp();
    const { sftp, posixRename } = s;
    const target = this.abs(plan.rel);
    const dir = posix.dirname(target);
    await this.mkdirp(s, dir);
    // A large file goes through a partial file named after the version it copies: a copy cut
    // short (server, connection or worker gone) resumes from what the server holds.
    const resumable = plan.size >= RESUMABLE_MIN;
    const tmp = posix.join(
      dir,
      resumable ? `${INTERNAL_PREFIX}part-${partialId(plan.rel, plan.size, plan.mtime)}` : `${INTERNAL_PREFIX}tmp-${randomBytes(8).toString('hex')}`,
    );
    let offset = 0;
    if (resumable) {
      const existing = await call<Stats>(s, (cb) => sftp.stat(tmp, cb)).catch(() => null);
      if (existing && existing.size <= plan.size) offset = existing.size;
      else if (existing) await call(s, (cb) => sftp.unlink(tmp, cb)).catch(() => {});
    }
    let keep = resumable;
    let committed = false;
    try {
      // A small file is read whole first: its copy is then one round of requests (writes, mtime,
      // size, close) sent at once, without a stream.
      const small = plan.size <= SMALL_MAX ? borrow(plan.size) : null;
      const read = small ? await plan.read(small.subarray(0, plan.size)) : 0;
      // Fewer bytes: the source shrank (more would change its stat, which the commit checks).
      if (small && read !== plan.size) throw new StaleJob(`source ${plan.rel} has ${read} bytes, expected ${plan.size}`);
      const body = small?.subarray(0, plan.size);
      // A resumed copy reads the source from its first byte, to check end to end what the
      // partial file already holds: a digest of the source against one of the finished copy.
      const sourceHash = offset > 0 ? createHash('sha256') : null;
      if (offset > 0) plan.log('info', `resuming the copy of ${plan.rel} at ${offset} of ${plan.size} bytes`, { path: plan.rel, offset });
      const openTmp = () => call<Buffer>(s, (cb) => sftp.open(tmp, offset > 0 ? 'r+' : 'w', cb));
      const handle = await openTmp().catch(async (err) => {
        if (!isMissing(err)) throw err;
        // The folder went since it was made or seen (removed on the server): made again.
        this.folders.clear();
        await this.mkdirp(s, dir);
        return openTmp();
      });
      const sent: Promise<unknown>[] = [];
      if (body) {
        const piece = requestSize(sftp, '_maxWriteLen');
        s.batch();
        for (let at = 0; at < body.length; at += piece) {
          const len = Math.min(piece, body.length - at);
          sent.push(call(s, (cb) => sftp.write(handle, body, at, len, at, cb)));
        }
        // ssh2 copies each write into its packet as it is made: the buffer serves the next copy.
        giveBack(small!);
      } else {
        try {
          const source = await plan.open(0 + (sourceHash ? 0 : offset));
          let skip = sourceHash ? offset : 0;
          plan.progress(offset);
          const writer = new SftpWriteStream(sftp, handle, offset, (n) => plan.progress(n), s.lost, s.batch);
          await pipeline(
            source,
            new Transform({
              transform(chunk: Buffer, _enc, done) {
                sourceHash?.update(chunk);
                if (skip >= chunk.length) {
                  skip -= chunk.length;
                  return done();
                }
                const rest = skip > 0 ? chunk.subarray(skip) : chunk;
                skip = 0;
                done(null, rest);
              },
            }),
            writer,
            { signal: plan.signal },
          );
        } catch (err) {
          await call(s, (cb) => sftp.close(handle, cb)).catch(() => {});
          throw err;
        }
      }
      // The mtime, the size the server holds and the close go at once, after the last write:
      // requests on one handle are answered as if sent one at a time (each sees the writes before it).
      const seconds = Math.floor(plan.mtime / 1000);
      sent.push(call(s, (cb) => sftp.futimes(handle, seconds, seconds, cb)));
      const fstat = call<Stats>(s, (cb) => sftp.fstat(handle, cb));
      const close = call(s, (cb) => sftp.close(handle, cb));
      const settled = await Promise.allSettled([...sent, fstat, close]);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      if (body) plan.progress(body.length);
      const written = await fstat;
      if (written.size !== plan.size) {
        keep = false;
        throw new Error(`copy of ${plan.rel} has ${written.size} bytes, expected ${plan.size}; not committed`);
      }
      if (sourceHash) {
        const copy = createHash('sha256');
        for await (const chunk of await this.openAbs(s, tmp, 0)) copy.update(chunk as Buffer);
        if (copy.digest('hex') !== sourceHash.digest('hex')) {
          keep = false;
          plan.log('warn', `integrity check failed for ${plan.rel}: the resumed copy differs from the source; copying again`);
          throw new Error(`integrity check failed for ${plan.rel}; not committed`);
        }
      }
      try {
        await plan.verifySource();
      } catch (err) {
        keep = false;
        throw err;
      }
      // What the file holds is kept as a version (a hard link) just before the rename replaces it.
      await plan.beforeCommit?.();
      if (plan.ifAbsent) {
        // A plain rename replaces nothing (SFTP v3; OpenSSH links, then unlinks): a file that
        // appeared there since the last listing is kept, and asked about by the driver.
        await call(s, (cb) => sftp.rename(tmp, target, cb)).catch(async (err) => {
          const there = await call<Stats>(s, (cb) => sftp.lstat(target, cb)).catch(() => null);
          throw there ? new TargetExists(plan.rel) : err;
        });
      } else if (posixRename) await call(s, (cb) => sftp.ext_openssh_rename(tmp, target, cb));
      else {
        await call(s, (cb) => sftp.unlink(target, cb)).catch(() => {});
        await call(s, (cb) => sftp.rename(tmp, target, cb));
      }
      committed = true;
      // A rename keeps size and mtime: the copy's stat is the file's (one round trip saved per file).
      return statOf(written);
    } catch (err) {
      if (err instanceof StaleJob) keep = false;
      throw err;
    } finally {
      if (!keep && !committed) await call(s, (cb) => sftp.unlink(tmp, cb)).catch(() => {});
    }
  }

  async remove(rel: string): Promise<void> {
    const s = await this.sftp();
    const { sftp } = s;
    const file = this.abs(rel);
    await call(s, (cb) => sftp.unlink(file, cb)).catch((err) => {
      if (!isMissing(err)) throw err;
    });
  }

  async rename(from: string, to: string): Promise<void> {
    const s = await this.sftp();
    const { sftp, posixRename } = s;
    const a = this.abs(from);
    const b = this.abs(to);
    await this.mkdirp(s, posix.dirname(b));
    if (posixRename) await call(s, (cb) => sftp.ext_openssh_rename(a, b, cb));
    else await call(s, (cb) => sftp.rename(a, b, cb));
  }

  async removeInternal(rel: string): Promise<void> {
    const s = await this.sftp();
    const { sftp } = s;
    await call(s, (cb) => sftp.unlink(this.abs(rel), cb)).catch((err) => {
      if (!isMissing(err)) throw err;
    });
  }

  // ---- versions ----

  /** The server's path of a version: under `.ferry-versions/` of the root. */
  private versionPath(key: string): string {
    const reason = unsafeReason(key);
    if (reason) throw new UnsafePathError(key, reason);
    return this.abs(`${VERSIONS_FOLDER}/${key}`);
  }

  async listVersions(): Promise<{ key: string; size: number }[]> {
    const s = await this.sftp();
    const base = this.abs(VERSIONS_FOLDER);
    const found: { key: string; size: number }[] = [];
    // A versions folder that is not a folder (a link elsewhere) holds no version of this entry's:
    // never listed (nor pruned); keeping one into it is refused (see versionFolder).
    const st = await call<Stats>(s, (cb) => s.sftp.lstat(base, cb)).catch((err) => {
      if (isMissing(err)) return null;
      throw err;
    });
    if (!st || ((st.mode ?? 0) & S_IFMT) !== S_IFDIR) return found;
    await this.walk(
      base,
      (dir) =>
        call<{ filename: string; attrs: Stats }[]>(s, (cb) => s.sftp.readdir(dir, cb)).catch((err) => {
          // No versions folder (nothing kept yet), or a folder removed meanwhile.
          if (isMissing(err)) return [];
          throw err;
        }),
      (dir, entries, queue) => {
        for (const { filename, attrs } of entries) {
          if (filename === '.' || filename === '..') continue;
          const abs = `${dir}/${filename}`;
          const type = (attrs.mode ?? 0) & S_IFMT;
          if (type === S_IFDIR) queue.push(abs);
          else if (type === S_IFREG) found.push({ key: abs.slice(base.length + 1), size: attrs.size });
        }
      },
    );
    return found;
  }

  async versionSize(key: string): Promise<number | null> {
    const s = await this.sftp();
    const st = await call<Stats>(s, (cb) => s.sftp.lstat(this.versionPath(key), cb)).catch((err) => {
      if (isMissing(err)) return null;
      throw err;
    });
    return st && ((st.mode ?? 0) & S_IFMT) === S_IFREG ? st.size : null;
  }

  /** A hard link (no byte copied); where the server makes none, a copy through this connection. */
  async copyToVersion(rel: string, key: string): Promise<void> {
    const s = await this.sftp();
    const from = this.abs(rel);
    const to = this.versionPath(key);
    await this.versionFolder(s, posix.dirname(to));
    if (s.hardlink) {
      const linked = await this.intoVersions(s, to, () => call(s, (cb) => s.sftp.ext_openssh_hardlink(from, to, cb))).then(
        () => true,
        (err) => {
          // A file system without hard links: copied instead. A missing file is no version to keep.
          if (isMissing(err) || this.connectionError(err) !== null) throw err;
          return false;
        },
      );
      if (linked) return;
    }
    await this.intoVersions(s, to, () => this.copyWithin(s, from, to));
  }

  /** A rename, which never replaces a version (SFTP's rename refuses an existing name). */
  async moveToVersion(rel: string, key: string): Promise<void> {
    const s = await this.sftp();
    const from = this.abs(rel);
    const to = this.versionPath(key);
    await this.versionFolder(s, posix.dirname(to));
    await this.intoVersions(s, to, () => call(s, (cb) => s.sftp.rename(from, to, cb)));
  }

  async restoreVersion(key: string, rel: string, replacing: RemoteStat | null): Promise<RemoteStat> {
    const s = await this.sftp();
    const { sftp, posixRename } = s;
    const from = this.versionPath(key);
    const to = this.abs(rel);
    await this.versionFolder(s, posix.dirname(from));
    // Now, in whole seconds as SFTP keeps them; never what the file it replaces has (which the
    // daemon would take for the same file), so a second later than that where it is as new.
    let seconds = Math.floor(Date.now() / 1000);
    if (replacing && replacing.mtime >= seconds * 1000) seconds = Math.floor(replacing.mtime / 1000) + 1;
    await call(s, (cb) => sftp.setstat(from, { atime: seconds, mtime: seconds }, cb));
    await this.mkdirp(s, posix.dirname(to));
    if (posixRename) await call(s, (cb) => sftp.ext_openssh_rename(from, to, cb));
    else {
      if (replacing) await call(s, (cb) => sftp.unlink(to, cb)).catch(() => {});
      await call(s, (cb) => sftp.rename(from, to, cb));
    }
    await this.removeEmptyVersionFolders(s, posix.dirname(from));
    const st = await call<Stats>(s, (cb) => sftp.lstat(to, cb));
    return statOf(st);
  }

  async removeVersion(key: string): Promise<void> {
    const s = await this.sftp();
    const file = this.versionPath(key);
    await this.versionFolder(s, posix.dirname(file));
    await call(s, (cb) => s.sftp.unlink(file, cb)).catch((err) => {
      if (!isMissing(err)) throw err;
    });
    await this.removeEmptyVersionFolders(s, posix.dirname(file));
  }

  /**
   * Refuses a folder of the versions folder that the server resolves elsewhere (a symbolic link on
   * the way, which could lead out of the root): a version is never written, read or removed
   * through one. One request (the server's realpath, which resolves every name that exists).
   */
  private async versionFolder(s: Session, dir: string): Promise<void> {
    const realpath = (p: string) => call<string>(s, (cb) => s.sftp.realpath(p, cb));
    this.realRoot ??= await realpath(this.root);
    const real = await realpath(dir).catch((err) => {
      // A folder missing further up (servers that resolve only what exists): made by the keep, checked then.
      if (isMissing(err)) return null;
      throw err;
    });
    const expected = posix.join(this.realRoot, posix.relative(this.root, dir));
    if (real !== null && real !== expected) {
      throw new UnsafePathError(this.relOf(dir), `${VERSIONS_FOLDER} or a folder in it is a symbolic link; not written through`);
    }
  }

  /** Runs `place` (which writes `to`), making the folders of `to` first when they are missing. */
  private async intoVersions(s: Session, to: string, place: () => Promise<unknown>): Promise<void> {
    try {
      await place();
    } catch (err) {
      if (!isMissing(err)) throw err;
      // The first version of this file: its folder is made (never reported: `.ferry-` names are Ferry's own).
      // Where it cannot be made (a file or a link in the way), that is the reason.
      await this.mkdirp(s, posix.dirname(to), true);
      await place();
    }
  }

  /** A copy of `from` as the new file `to` (never over one), with its mtime, through this connection. */
  private async copyWithin(s: Session, from: string, to: string): Promise<void> {
    const { sftp } = s;
    const st = await call<Stats>(s, (cb) => sftp.lstat(from, cb));
    const source = await this.openAbs(s, from, 0);
    const handle = await call<Buffer>(s, (cb) => sftp.open(to, 'wx', cb)).catch((err) => {
      source.destroy();
      throw err;
    });
    let done = false;
    try {
      try {
        await pipeline(source, new SftpWriteStream(sftp, handle, 0, () => {}, s.lost));
        await call(s, (cb) => sftp.futimes(handle, st.atime, st.mtime, cb));
      } finally {
        await call(s, (cb) => sftp.close(handle, cb)).catch(() => {});
      }
      done = true;
    } finally {
      if (!done) await call(s, (cb) => sftp.unlink(to, cb)).catch(() => {});
    }
  }

  /** The folders of the versions folder that `dir` and its parents leave empty (not the versions folder itself). */
  private async removeEmptyVersionFolders(s: Session, dir: string): Promise<void> {
    const base = this.abs(VERSIONS_FOLDER);
    for (let d = dir; d.startsWith(`${base}/`); d = posix.dirname(d)) {
      const removed = await call(s, (cb) => s.sftp.rmdir(d, cb)).then(
        () => true,
        () => false,
      );
      if (!removed) return;
    }
  }

  async writeMarker(): Promise<void> {
    const s = await this.sftp();
    const { sftp } = s;
    const handle = await call<Buffer>(s, (cb) => sftp.open(this.abs(MARKER), 'w', cb));
    await call(s, (cb) => sftp.close(handle, cb));
  }
}

