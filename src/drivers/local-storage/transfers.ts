import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isFolderStat, isLinkStat, S_IFDIR, type FileStat, type JobOutcome, type MadeFolder } from '../../../machines/reports.js';
import type { JobCommand } from '../protocol.js';
import { type DriverContext, StaleJob } from '../driver.js';
import { INTERNAL_PREFIX, resolveInside, UnsafePathError } from '../../paths.js';
import { conflictName } from '../../conflict-name.js';
import { confined } from './confine.js';
import { sameStat, statOf } from './stat.js';
import type { LocalVersions } from './versions.js';
import { uploadFromReader } from './from-reader.js';
import { borrow, giveBack } from '../buffer-pool.js';

/** Files this large are copied as a stream into a partial file that survives a crash, and resumed. */
export const RESUMABLE_MIN = 32 << 20;
/**
 * Files up to this size are uploaded with synchronous calls (open, stat, write, the read-back,
 * utimes, rename): each takes microseconds on a local disk, against tens for a round trip
 * through libuv's thread pool. Only the read of the source goes there (see uploadSmall).
 */
export const SMALL_FILE_MAX = 64 << 10;
/** How often a streamed copy reports its progress. */
const PROGRESS_MS = 250;

/**
 * What the transfers tell the watcher of the same root, so that their own writes are not
 * reported back as changes from the user.
 */
export interface WatchHooks {
  /** `rel` is about to be written with `stat` (null: removed) by us. */
  expect(rel: string, stat: FileStat | null): void;
  /** `rel` is about to be renamed away by us. */
  movedAway(rel: string): void;
  /** `name` is a conflict copy we are about to make: a new file, not a rename of the original. */
  conflictCopy(name: string): void;
  /** What `expect` announced did not happen after all (the removal failed). */
  unexpect(rel: string): void;
  /** We renamed `from` to `to`. */
  moved(from: string, to: string, stat: FileStat): void;
  /** Whether the entry's ignore patterns cover `rel`: it is never written or deleted. */
  ignores?(rel: string, folder?: boolean): boolean;
}

/**
 * The write side of a local root: jobs run against it. Every write goes through a hidden
 * temporary file, verified, then renamed into place.
 */
export class LocalTransfers {
  /** Streamed copies in flight, aborted on stop (their partial files stay, for a resume). */
  private readonly copies = new Set<AbortController>();

  constructor(
    private readonly root: string,
    private readonly ctx: DriverContext,
    private readonly watch: WatchHooks,
    /** Where the content a job overwrites or deletes is kept (null: versions are off). */
    private readonly versions: LocalVersions | null = null,
  ) {}

  stop(): void {
    for (const copy of this.copies) copy.abort();
  }

  async run(job: JobCommand): Promise<JobOutcome> {
    const folders: MadeFolder[] = [];
    this.made.set(job, folders);
    try {
      const outcome = await this.runJob(job);
      return folders.length > 0 ? { ...outcome, folders } : outcome;
    } finally {
      this.made.delete(job);
    }
  }

  /** The folders each running job made on the way to its file (see makeParents). */
  private readonly made = new Map<JobCommand, MadeFolder[]>();

  /**
   * Makes the folders missing on the way to `rel`, top first, each told to the watcher as ours:
   * the job's outcome names them instead of the watcher. Reported as the user's new folders,
   * they could reach the daemon after the folder's removal elsewhere, and be copied back there.
   */
  private makeParents(job: JobCommand, rel: string): void {
    const missing: string[] = [];
    for (let dir = path.posix.dirname(rel); dir !== '.' && dir !== '/'; dir = path.posix.dirname(dir)) {
      if (fs.lstatSync(path.join(this.root, dir), { throwIfNoEntry: false })) break;
      missing.unshift(dir);
    }
    for (const dir of missing) {
      const absolute = path.join(this.root, dir);
      this.watch.expect(dir, { size: 0, mtime: 0, ino: null, mode: S_IFDIR });
      try {
        fs.mkdirSync(absolute);
      } catch (err) {
        this.watch.unexpect(dir);
        // Made meanwhile by someone else: theirs, reported by the watcher.
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      this.made.get(job)?.push({ path: dir, stat: statOf(fs.lstatSync(absolute)) });
    }
  }

  private async runJob(job: JobCommand): Promise<JobOutcome> {
    try {
      // Patterns that changed after the job was queued: the daemon drops it once it hears of them.
      const folder = job.kind === 'upload' && isFolderStat(job.sourceStat);
      if (this.watch.ignores?.(job.path, folder) || (job.kind === 'move' && this.watch.ignores?.(job.from))) {
        throw new StaleJob(`${job.path} is ignored here; not written`);
      }
      switch (job.kind) {
        case 'upload':
          return { ok: true, stat: await this.upload(job) };
        case 'delete':
          await this.remove(job.path, job.expect);
          return { ok: true, stat: null };
        case 'move':
          return { ok: true, stat: await this.move(job, job.expect) };
      }
    } catch (err) {
      if (err instanceof StaleJob) return { ok: false, reason: 'stale', message: err.message };
      const message = err instanceof UnsafePathError ? err.message : `${(err as Error).message}`;
      return { ok: false, reason: 'error', message };
    }
  }

  private async upload(job: Extract<JobCommand, { kind: 'upload' }>): Promise<FileStat> {
    if (isFolderStat(job.sourceStat)) return this.makeFolder(job);
    if (job.source.driver !== 'local_storage') {
      // Another driver's storage (SFTP, S3): read through that driver's reader.
      return uploadFromReader(job, {
        root: this.root,
        ctx: this.ctx,
        watch: this.watch,
        keepConflictCopy: (rel, absolute) => this.keepConflictCopy(rel, absolute),
        copies: this.copies,
        versions: this.versions,
        makeParents: (rel) => this.makeParents(job, rel),
      });
    }
    const sourceRoot = path.resolve(String(job.source.options.root));
    if (isLinkStat(job.sourceStat)) return this.makeLink(job, sourceRoot);
    if (job.sourceStat.size <= SMALL_FILE_MAX) return this.uploadSmall(job, sourceRoot);
    return largeCopies.run(() => this.uploadLarge(job, sourceRoot));
  }

  /** A file larger than SMALL_FILE_MAX: copied by the kernel, or streamed when resumable. */
  private async uploadLarge(job: Extract<JobCommand, { kind: 'upload' }>, sourceRoot: string): Promise<FileStat> {
    const io = asyncIo;
    const source = await confined(sourceRoot, job.path);
    const target = await confined(this.root, job.path);

    const before = await io.lstat(source);
    if (!before || !before.isFile() || !sameStat(statOf(before), job.sourceStat)) {
      throw new StaleJob(`source ${job.source.entry}:${job.path} changed`);
    }
    // The target already has these bytes, only its permission bits differ (a chmod was the
    // change): they are set in place, and the target keeps its inode.
    const held = await io.lstat(target);
    if (held?.isFile() && sameVersion(statOf(held), job.sourceStat)) {
      const known = !job.preserve && job.expect !== null && sameStat(statOf(held), job.expect);
      if (known || (await io.sameContent(source, target))) return this.setMode(job, target, held, io);
    }
    this.makeParents(job, job.path);
    // A large file goes through a partial file named after the version it copies: a copy cut
    // short (worker or daemon killed) resumes where it stopped while the source is unchanged.
    const resumable = job.sourceStat.size >= RESUMABLE_MIN;
    const tmp = resumable
      ? path.join(path.dirname(target), partialName(job.path, job.sourceStat))
      : path.join(path.dirname(target), `${INTERNAL_PREFIX}tmp-${randomBytes(8).toString('hex')}`);
    let keepPartial = resumable;
    let committed = false;
    try {
      let digest: string | null = null;
      if (resumable) digest = await this.streamCopy(job.id, job.path, source, tmp, job.sourceStat.size);
      // The kernel's copy: the bytes go from disk to disk, never through the daemon.
      else await fsp.copyFile(source, tmp);
      const after = await io.lstat(source);
      if (!after || !sameStat(statOf(after), job.sourceStat)) {
        keepPartial = false;
        throw new StaleJob(`source ${job.source.entry}:${job.path} changed during the copy`);
      }
      const written = await io.stat(tmp);
      if (written.size !== job.sourceStat.size) {
        keepPartial = false;
        throw new Error(`copy of ${job.path} has ${written.size} bytes, expected ${job.sourceStat.size}; not committed`);
      }
      // End to end: what was written is read back and checked against what was read.
      const intact = digest !== null ? (await hashFile(tmp)) === digest : await io.sameContent(source, tmp);
      if (!intact) {
        keepPartial = false;
        this.ctx.log('error', `integrity check failed for ${job.path}: the written copy differs from the source; retrying`);
        throw new Error(`integrity check failed for ${job.path}; not committed`);
      }
      if (job.sourceStat.mode != null) await io.chmod(tmp, job.sourceStat.mode);
      // In seconds as a number: to the microsecond (a Date would keep milliseconds).
      await io.utimes(tmp, before.atimeMs / 1000, before.mtimeMs / 1000);
      const current = await io.lstat(target);
      let replaced = current;
      if (current) {
        if (!current.isFile()) throw new Error(`${job.path} exists and is not a regular file`);
        const matches = job.expect !== null && sameStat(statOf(current), job.expect);
        if ((job.preserve || !matches) && !(await io.sameContent(target, tmp))) {
          await this.keepConflictCopy(job.path, target);
          replaced = null;
        }
      }
      const stat = statOf(await io.stat(tmp));
      // What the rename replaces is kept as a version (a hard link, made just before it).
      if (replaced) this.versions?.keepOverwritten(job.path, target, replaced.size);
      this.watch.expect(job.path, stat);
      await io.rename(tmp, target);
      committed = true;
      keepPartial = false;
      // The rename changed the ctime: as it is now, if the file is still ours and unchanged.
      const placed = await io.lstat(target);
      return placed && String(placed.ino) === stat.ino && sameStat(statOf(placed), stat) ? statOf(placed) : stat;
    } catch (err) {
      // A full disk: kept, the partial file would hold it full and block every other file.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') keepPartial = false;
      throw err;
    } finally {
      // Once renamed into place there is nothing left to remove.
      if (!keepPartial && !committed) await fsp.rm(tmp, { force: true });
    }
  }

  /**
   * A small file, with as few calls as can be, all synchronous but the read of the source
   * (metadata calls take microseconds on a local disk, against tens for a round trip through
   * libuv's thread pool; the read goes there, so that the reads of several files from a cold disk
   * overlap). The source is read once, whole, through a descriptor whose stat, taken after the
   * read, says that the bytes are this version's; a temporary file is created with those bytes,
   * read back and compared with them (a damaged or short write is caught before the rename), and
   * given the source's mode and times. Then it is renamed into place.
   */
  private async uploadSmall(job: Extract<JobCommand, { kind: 'upload' }>, sourceRoot: string): Promise<FileStat> {
    const source = this.confinedSync(sourceRoot, job.path).absolute;
    const { absolute: target, dirExists } = this.confinedSync(this.root, job.path);
    // The source is read once, through a descriptor whose stat is this job's version: a job for
    // a version the source no longer has is stale before anything is written (the watcher's
    // report of the change replaces it; an error here would count as a failure).
    let fd: number;
    try {
      fd = fs.openSync(source, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch {
      throw new StaleJob(`source ${job.source.entry}:${job.path} changed`);
    }
    let from: fs.Stats;
    let bytes: Buffer;
    try {
      // The read itself in libuv's pool: from a cold disk, the reads of several files overlap.
      // The job's size and one byte more are asked for, and the descriptor's stat is taken
      // after the read: a write before or during it changes the mtime or the size, so a stat
      // that is still the job's version says that the bytes read are that version's.
      bytes = await readWholeAsync(fd, job.sourceStat.size).catch((err: unknown) => {
        // A folder or another kind of file where the job saw a file: stale, as below.
        if (!fs.fstatSync(fd).isFile()) throw new StaleJob(`source ${job.source.entry}:${job.path} changed`);
        throw err;
      });
      from = fs.fstatSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (!from.isFile() || !sameStat(statOf(from), job.sourceStat) || bytes.length !== from.size) {
      throw new StaleJob(`source ${job.source.entry}:${job.path} changed`);
    }
    // A file the store says the target does not hold is looked for once, after the copy (below).
    const held = job.expect === null ? null : lstatOrNull(target);
    if (held && !held.isFile()) throw new Error(`${job.path} exists and is not a regular file`);
    if (!dirExists) this.makeParents(job, job.path);
    const tmp = path.join(path.dirname(target), tmpName());
    let committed = false;
    try {
      const mode = from.mode & 0o7777;
      // The target already holds these bytes, only its permission bits differ (a chmod was the
      // change): they are set in place, and the target keeps its inode.
      if (held && sameVersion(statOf(held), job.sourceStat) && sameBytes(target, bytes)) {
        return this.setMode(job, target, held, syncIo);
      }
      // Written from what was read (a few KiB at most: one write, on this thread, cheaper
      // than a round trip through libuv's pool for the kernel's copy), with the source's mode.
      const out = fs.openSync(tmp, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
      try {
        for (let written = 0; written < bytes.length; ) written += fs.writeSync(out, bytes, written, bytes.length - written, written);
        // End to end: what was written is read back and checked against what was read.
        const back = readWhole(out, bytes.length);
        if (!back.equals(bytes)) {
          this.ctx.log('error', `integrity check failed for ${job.path}: the written copy differs from the source; retrying`);
          throw new Error(`integrity check failed for ${job.path}; not committed`);
        }
        fs.futimesSync(out, from.atimeMs / 1000, from.mtimeMs / 1000);
        let made = fs.fstatSync(out);
        // Created with the mode of the version read, less what the umask takes: set whole.
        if ((made.mode & 0o7777) !== mode) {
          fs.fchmodSync(out, mode);
          made = fs.fstatSync(out);
        }
        const written = statOf(made);
        // The target as it is now, after the copy (it may have been edited meanwhile): content
        // the store does not know is kept as a conflict copy.
        const current = lstatOrNull(target);
        let replaced = current;
        if (current) {
          if (!current.isFile()) throw new Error(`${job.path} exists and is not a regular file`);
          const matches = job.expect !== null && sameStat(statOf(current), job.expect);
          if ((job.preserve || !matches) && !sameBytes(target, bytes)) {
            await this.keepConflictCopy(job.path, target);
            replaced = null;
          }
        }
        // What the rename replaces is kept as a version (a hard link): only when there is one,
        // and it holds other bytes.
        if (replaced && this.versions && !(replaced.size === bytes.length && sameBytes(target, bytes))) {
          this.versions.keepOverwritten(job.path, target, replaced.size);
        }
        this.watch.expect(job.path, written);
        fs.renameSync(tmp, target);
        committed = true;
        // The rename changed the ctime: as it is now, if nobody wrote to it since.
        const placed = statOf(fs.fstatSync(out));
        return sameStat(placed, written) ? placed : written;
      } finally {
        fs.closeSync(out);
      }
    } finally {
      if (!committed) fs.rmSync(tmp, { force: true });
    }
  }

  /** Real paths of the roots met (a root is not moved under a running worker). */
  private readonly realRoots = new Map<string, string>();

  /**
   * `rel` under `root`, refusing a path that leaves the root, directly or through a symlinked
   * folder (as `confined` does, synchronously); and whether its folder exists.
   */
  private confinedSync(root: string, rel: string): { absolute: string; dirExists: boolean } {
    const absolute = resolveInside(root, rel);
    // The folders below the root, from the top: each a folder and not a link, the path cannot
    // leave the root (the root itself was resolved once). One lstat a level, where a realpath
    // costs one per level of the whole absolute path; a link on the way is resolved as before.
    const folders = rel.split('/');
    folders.pop();
    let dir = root;
    let linked = false;
    for (const name of folders) {
      dir = path.join(dir, name);
      let s: fs.Stats | undefined;
      try {
        s = fs.lstatSync(dir, { throwIfNoEntry: false });
      } catch {
        s = undefined; // a file on the way: the write fails on it
      }
      if (s === undefined || !(s.isDirectory() || s.isSymbolicLink())) return { absolute, dirExists: false };
      if (s.isSymbolicLink()) {
        linked = true;
        break;
      }
    }
    if (!linked) return { absolute, dirExists: true };
    let realRoot = this.realRoots.get(root);
    if (realRoot === undefined) {
      realRoot = fs.realpathSync.native(root);
      this.realRoots.set(root, realRoot);
    }
    for (let dir = path.dirname(absolute); ; dir = path.dirname(dir)) {
      let real: string;
      try {
        real = fs.realpathSync.native(dir);
      } catch {
        continue; // not created yet: its nearest existing parent decides
      }
      if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
        throw new UnsafePathError(rel, 'a folder on the path leads out of the root');
      }
      return { absolute, dirExists: dir === path.dirname(absolute) };
    }
  }

  /** Gives the target (which holds the source's bytes) the source's permission bits. */
  private async setMode(job: Extract<JobCommand, { kind: 'upload' }>, target: string, held: fs.Stats, io: ModeIo): Promise<FileStat> {
    const mode = job.sourceStat.mode;
    if (mode == null || (held.mode & 0o7777) === mode) return statOf(held);
    this.watch.expect(job.path, { ...statOf(held), mode });
    await io.chmod(target, mode);
    return statOf(await io.stat(target));
  }

  /**
   * Copies `source` into `partial` as a stream, from where an earlier copy stopped, and
   * returns the sha256 of the whole source as read. Progress is reported as it goes.
   */
  private async streamCopy(jobId: number, rel: string, source: string, partial: string, size: number): Promise<string> {
    const hash = createHash('sha256');
    let offset = 0;
    const existing = await fsp.stat(partial).catch(() => null);
    if (existing && existing.isFile() && existing.size <= size) {
      offset = existing.size;
      if (offset > 0) {
        // The digest covers the source from its first byte: a partial file whose bytes differ
        // from the source's (a torn write) fails the check at the end instead of being trusted.
        await pipeline(fs.createReadStream(source, { end: offset - 1, highWaterMark: 1 << 20 }), async function* (chunks) {
          for await (const chunk of chunks) hash.update(chunk as Buffer);
        });
        this.ctx.log('info', `resuming the copy of ${rel} at ${offset} of ${size} bytes`, { path: rel, offset });
      }
    } else if (existing) {
      await fsp.rm(partial, { force: true });
    }
    let bytes = offset;
    const abort = new AbortController();
    this.copies.add(abort);
    const timer = setInterval(() => this.ctx.progress?.(jobId, bytes), PROGRESS_MS);
    try {
      await pipeline(
        fs.createReadStream(source, { start: offset, highWaterMark: 1 << 20 }),
        new Transform({
          transform(chunk: Buffer, _encoding, done) {
            hash.update(chunk);
            bytes += chunk.length;
            done(null, chunk);
          },
        }),
        fs.createWriteStream(partial, { flags: offset > 0 ? 'r+' : 'w', start: offset, highWaterMark: 1 << 20 }),
        { signal: abort.signal },
      );
    } finally {
      clearInterval(timer);
      this.copies.delete(abort);
    }
    this.ctx.progress?.(jobId, bytes);
    return hash.digest('hex');
  }

  /** Moves the entry's current copy aside under a conflict name; the watcher reports it as a new file. */
  private async keepConflictCopy(rel: string, absolute: string): Promise<void> {
    const now = new Date();
    for (let n = 0; ; n++) {
      const name = conflictName(rel, this.ctx.entry, now, n);
      const dest = await confined(this.root, name);
      if (fs.existsSync(dest)) continue;
      this.watch.conflictCopy(name);
      await fsp.rename(absolute, dest);
      this.ctx.log('warn', `kept a conflicting copy as ${name}`, { path: rel, conflict: name });
      // The daemon's event stream tells of it (a `file` event of kind `conflict`).
      this.ctx.conflict?.(rel, name);
      return;
    }
  }

  /**
   * A folder: made (with its permission bits), or given them. Its missing parents are made
   * too, as the job's (see makeParents).
   */
  private makeFolder(job: Extract<JobCommand, { kind: 'upload' }>): FileStat {
    const { absolute: target } = this.confinedSync(this.root, job.path);
    const perms = (job.sourceStat.mode ?? 0o755) & 0o7777;
    const held = lstatOrNull(target);
    if (held && !held.isDirectory()) throw new Error(`${job.path} exists and is not a folder`);
    if (!held) {
      this.makeParents(job, job.path);
      this.watch.expect(job.path, { size: 0, mtime: 0, ino: null, mode: perms | S_IFDIR });
      fs.mkdirSync(target, { mode: perms });
    }
    const made = fs.lstatSync(target);
    if ((made.mode & 0o7777) !== perms) {
      this.watch.expect(job.path, { ...statOf(made), mode: perms | S_IFDIR });
      fs.chmodSync(target, perms);
    }
    return statOf(fs.lstatSync(target));
  }

  /**
   * A symbolic link: made anew pointing where the source's points (never followed), through a
   * temporary name renamed into place, with the source's mtime. A target leading out of the root
   * is refused (the source's watcher never reports one, but a store can be tampered with).
   */
  private makeLink(job: Extract<JobCommand, { kind: 'upload' }>, sourceRoot: string): FileStat {
    const source = this.confinedSync(sourceRoot, job.path).absolute;
    const { absolute: target, dirExists } = this.confinedSync(this.root, job.path);
    const before = lstatOrNull(source);
    if (!before?.isSymbolicLink() || !sameStat(statOf(before), job.sourceStat)) {
      throw new StaleJob(`source ${job.source.entry}:${job.path} changed`);
    }
    const pointsTo = fs.readlinkSync(source);
    const resolved = path.resolve(path.dirname(target), pointsTo);
    if (path.isAbsolute(pointsTo) || (resolved !== this.root && !resolved.startsWith(this.root + path.sep))) {
      throw new UnsafePathError(job.path, `a link to ${pointsTo} would lead out of the root`);
    }
    const current = lstatOrNull(target);
    if (current?.isDirectory()) throw new Error(`${job.path} exists and is a folder`);
    if (!dirExists) this.makeParents(job, job.path);
    const tmp = path.join(path.dirname(target), tmpName());
    let committed = false;
    try {
      fs.symlinkSync(pointsTo, tmp);
      fs.lutimesSync(tmp, before.atimeMs / 1000, before.mtimeMs / 1000);
      // A regular file the store does not know is kept as a conflict copy, as for any upload.
      if (current?.isFile()) {
        const matches = job.expect !== null && sameStat(statOf(current), job.expect);
        if (job.preserve || !matches) fs.renameSync(target, this.conflictPathSync(job.path));
        else this.versions?.keepOverwritten(job.path, target, current.size);
      }
      const stat = statOf(fs.lstatSync(tmp));
      this.watch.expect(job.path, stat);
      fs.renameSync(tmp, target);
      committed = true;
      return statOf(fs.lstatSync(target));
    } finally {
      if (!committed) fs.rmSync(tmp, { force: true });
    }
  }

  /** A free conflict name for `rel`, told to the watcher and the daemon as `keepConflictCopy` does. */
  private conflictPathSync(rel: string): string {
    const now = new Date();
    for (let n = 0; ; n++) {
      const name = conflictName(rel, this.ctx.entry, now, n);
      const dest = this.confinedSync(this.root, name).absolute;
      if (fs.existsSync(dest)) continue;
      this.watch.conflictCopy(name);
      this.ctx.log('warn', `kept a conflicting copy as ${name}`, { path: rel, conflict: name });
      this.ctx.conflict?.(rel, name);
      return dest;
    }
  }

  /**
   * Removes a file, a link or a folder that still is what the store knows. Folders are items of
   * their own: none is removed because it became empty (another entry may keep it), and a folder
   * is removed only once its own contents are gone (until then the job is stale, and retried).
   */
  private async remove(rel: string, expect: FileStat): Promise<void> {
    const target = await confined(this.root, rel);
    const current = await fsp.lstat(target).catch(() => null);
    if (!current) return;
    if (isFolderStat(expect)) {
      if (!current.isDirectory()) throw new StaleJob(`${rel} is no longer a folder; not deleted`);
      this.watch.expect(rel, null);
      await fsp.rmdir(target).catch((err: NodeJS.ErrnoException) => {
        this.watch.unexpect(rel);
        if (err.code === 'ENOTEMPTY' || err.code === 'EEXIST') throw new StaleJob(`${rel} is not empty yet; not deleted`);
        throw err;
      });
      return;
    }
    if (!(current.isFile() || current.isSymbolicLink()) || !sameStat(statOf(current), expect)) {
      throw new StaleJob(`${rel} changed; not deleted`);
    }
    this.watch.expect(rel, null);
    try {
      // A file's content is kept as a version: moved into the versions folder, not unlinked.
      if (this.versions && current.isFile()) this.versions.keepDeleted(rel, target, current.size);
      else await fsp.unlink(target);
    } catch (err) {
      this.watch.unexpect(rel);
      throw err;
    }
  }

  private async move(job: Extract<JobCommand, { kind: 'move' }>, expect: FileStat | null): Promise<FileStat> {
    const { from: fromRel, path: toRel } = job;
    const from = await confined(this.root, fromRel);
    const to = await confined(this.root, toRel);
    const current = await fsp.lstat(from).catch(() => null);
    if (!current || !expect || !(current.isFile() || current.isSymbolicLink()) || !sameStat(statOf(current), expect)) {
      throw new StaleJob(`${fromRel} changed; not moved`);
    }
    if (await fsp.lstat(to).catch(() => null)) throw new StaleJob(`${toRel} exists; not moved over`);
    this.makeParents(job, toRel);
    const stat = statOf(current);
    this.watch.movedAway(fromRel);
    this.watch.expect(toRel, stat);
    await fsp.rename(from, to);
    this.watch.moved(fromRel, toRel, stat);
    // The rename changed the ctime: as it is now, if the file is still the one moved.
    const placed = await fsp.lstat(to).catch(() => null);
    return placed && String(placed.ino) === stat.ino && sameStat(statOf(placed), stat) ? statOf(placed) : stat;
  }
}

/** The file's stat, or null when it does not exist (no exception made for that: they cost). */
function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false }) ?? null;
  } catch {
    return null;
  }
}

/**
 * A name for a temporary file: unique in this process, and among processes by a random part
 * drawn once (a collision is refused by the exclusive create anyway). Removed on the next
 * start if a crash leaves it.
 */
const TMP_PREFIX = `${INTERNAL_PREFIX}tmp-${randomBytes(6).toString('hex')}-`;
let tmpCount = 0;
const tmpName = () => `${TMP_PREFIX}${(tmpCount++).toString(36)}`;

/** Up to `size` bytes from the start of `fd`, and whether there were more: a buffer of `size` + 1 is asked for. */
function readWhole(fd: number, size: number): Buffer {
  const buffer = Buffer.allocUnsafe(size + 1);
  let n = 0;
  for (;;) {
    const wanted = buffer.length - n;
    const got = fs.readSync(fd, buffer, n, wanted, n);
    n += got;
    // A regular file's read comes short only at its end: no second read to hear it.
    if (got < wanted || n === buffer.length) break;
  }
  return buffer.subarray(0, n);
}

/** readWhole, the reads in libuv's thread pool. */
async function readWholeAsync(fd: number, size: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(size + 1);
  let n = 0;
  for (;;) {
    const wanted = buffer.length - n;
    const got = await new Promise<number>((resolve, reject) =>
      fs.read(fd, buffer, n, wanted, n, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))),
    );
    n += got;
    // A regular file's read comes short only at its end: no second round trip to hear it.
    if (got < wanted || n === buffer.length) break;
  }
  return buffer.subarray(0, n);
}

/** Whether the file at `file` holds exactly `bytes` (a small file). */
function sameBytes(file: string, bytes: Buffer): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    return readWhole(fd, bytes.length).equals(bytes);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The same version of a file in two places, as far as a stat tells: the same size, and
 * modification times within 2 µs (a copy gets the source's to the microsecond; the storage
 * keeps more). The permission bits may differ.
 */
function sameVersion(a: FileStat, b: FileStat): boolean {
  return a.size === b.size && Math.abs(a.mtime - b.mtime) < 0.002;
}

/** The partial file of one version of a file: a copy of another version never resumes from it. */
function partialName(rel: string, stat: FileStat): string {
  const id = createHash('sha256').update(`${rel}\0${stat.size}\0${stat.mtime}`).digest('hex').slice(0, 24);
  return `${INTERNAL_PREFIX}part-${id}`;
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file, { highWaterMark: 1 << 20 }), async function* (chunks) {
    for await (const chunk of chunks) hash.update(chunk as Buffer);
  });
  return hash.digest('hex');
}

/** The calls of setMode: asynchronous for a large file, synchronous for a small one. */
interface ModeIo {
  stat(p: string): Promise<fs.Stats> | fs.Stats;
  chmod(p: string, mode: number): Promise<void> | void;
}

/** The calls of a large file's upload (uploadLarge), each asynchronous. */
const asyncIo = {
  lstat: (p: string) => fsp.lstat(p).catch(() => null),
  stat: (p: string) => fsp.stat(p),
  utimes: (p: string, atime: number, mtime: number) => fsp.utimes(p, atime, mtime),
  chmod: (p: string, mode: number) => fsp.chmod(p, mode),
  rename: (from: string, to: string) => fsp.rename(from, to),
  sameContent,
};

/** What setMode needs, synchronously: a small file's permission bits are set on this thread. */
const syncIo: ModeIo = {
  stat: (p) => fs.statSync(p),
  chmod: (p, mode) => fs.chmodSync(p, mode),
};

/** At most `limit` tasks at a time; the others wait their turn, in order. */
class Turns {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

/**
 * Large copies at once: as many as libuv's pool has threads. A worker is given up to 128 MiB of
 * them at once (DISPATCH_LIMITS): started together, they would interleave 32 files' reads on
 * the disk, and each one's check would wait behind the others' copies.
 */
const largeCopies = new Turns(4);

/** How many files are compared at once: as many as libuv's pool has threads to read them. */
const compares = new Turns(4);
/** Bytes read from each file per step of a comparison. */
const COMPARE_CHUNK = 1 << 20;

/**
 * Whether two files hold the same bytes: read side by side, 1 MiB at a time, into buffers kept
 * from one comparison to the next, a few files at a time (more would only queue for the same
 * threads, each holding its buffers).
 */
function sameContent(a: string, b: string): Promise<boolean> {
  return compares.run(async () => {
    // Buffers of the comparisons done, for the next: no allocation (and no zero-filling) per file.
    const buffers = [borrow(COMPARE_CHUNK), borrow(COMPARE_CHUNK)];
    try {
      const [fa, fb] = await Promise.all([fsp.open(a), fsp.open(b)]);
      try {
        const [sa, sb] = await Promise.all([fa.stat(), fb.stat()]);
        if (sa.size !== sb.size) return false;
        const [ba, bb] = buffers;
        for (let pos = 0; pos < sa.size; pos += COMPARE_CHUNK) {
          const [ra, rb] = await Promise.all([fa.read(ba, 0, COMPARE_CHUNK, pos), fb.read(bb, 0, COMPARE_CHUNK, pos)]);
          if (ra.bytesRead !== rb.bytesRead || ba.compare(bb, 0, rb.bytesRead, 0, ra.bytesRead) !== 0) return false;
          if (ra.bytesRead < COMPARE_CHUNK) break;
        }
        return true;
      } finally {
        await Promise.all([fa.close(), fb.close()]);
      }
    } finally {
      for (const b of buffers) giveBack(b);
    }
  });
}

