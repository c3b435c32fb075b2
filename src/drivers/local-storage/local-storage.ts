import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { watch, type FSWatcher } from 'chokidar';
import type { FileStat, JobOutcome, ScannedFile } from '../../../machines/reports.js';
import type { JobCommand } from '../protocol.js';
import { type Driver, type DriverContext, DriverRefusal, StaleJob } from '../driver.js';
import { INTERNAL_PREFIX, isInternalName, resolveInside, UnsafePathError } from '../../paths.js';
import { conflictName } from '../conflict-name.js';

/** How long an unlink waits for the add of the same inode that would make it a rename. */
const RENAME_WINDOW_MS = 150;
/** How long the echo of one of our own writes is expected from the watcher. */
const ECHO_WINDOW_MS = 10_000;
/** How long after a new folder appears (and after its last news) it is listed again. */
const NEW_FOLDER_RELIST_MS = 250;
/** How long after the last event about a file it is looked at again (a write may still be going on). */
const RECHECK_MS = 50;

/** Files this large are copied as a stream into a partial file that survives a crash, and resumed. */
export const RESUMABLE_MIN = 32 << 20;
/**
 * Files up to this size are uploaded with synchronous metadata calls (lstat, stat, utimes,
 * rename, and the read-back of both copies): each takes microseconds on a local disk, against
 * tens for a round trip through libuv's thread pool. The copy itself stays asynchronous, so
 * that the reads of several files from a cold disk still overlap.
 */
export const SMALL_FILE_MAX = 64 << 10;
/** How often a streamed copy reports its progress. */
const PROGRESS_MS = 250;
/** Partial files of interrupted copies older than this are removed on start. */
const PARTIAL_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** The marker each root gets on first use: a root without it, that held files, is not the same disk. */
export const MARKER = `${INTERNAL_PREFIX}entry`;

const sameStat = (a: FileStat, b: FileStat) => a.size === b.size && a.mtime === b.mtime;
const statOf = (s: fs.Stats): FileStat => ({ size: s.size, mtime: s.mtimeMs, ino: String(s.ino) });

interface PendingUnlink {
  stat: FileStat;
  timer: NodeJS.Timeout;
}

/**
 * A folder on a local disk. Watches it with chokidar, reports creations, edits, deletions and
 * renames (matched by inode), and writes every file through a hidden temporary file renamed
 * into place. Every path is resolved inside the root; symlinks are skipped, never followed.
 */
export class LocalStorage implements Driver {
  private readonly root: string;
  private watcher: FSWatcher | null = null;
  private live = false;
  private readonly scan: ScannedFile[] = [];
  /** What the watcher last saw of each file (relative path → stat). */
  private readonly known = new Map<string, FileStat>();
  private readonly byIno = new Map<string, string>();
  /** Our own writes and removals, whose watcher events are not changes from the user. */
  private readonly expected = new Map<string, { stat: FileStat | null; timer: NodeJS.Timeout }>();
  private readonly pendingUnlinks = new Map<string, PendingUnlink>();
  private readonly movedAway = new Set<string>();
  /** Conflict copies we made: reported as new files, never as a rename of the original. */
  private readonly conflictCopies = new Set<string>();
  private readonly staleTemporaries: string[] = [];
  private readonly partials: string[] = [];
  /** Streamed copies in flight, aborted on stop (their partial files stay, for a resume). */
  private readonly copies = new Set<AbortController>();
  /** New folders waiting for a second listing (absolute path → timer). */
  private readonly relists = new Map<string, NodeJS.Timeout>();
  /** Files to look at again once their events settle (absolute path → timer). */
  private readonly rechecks = new Map<string, NodeJS.Timeout>();

  constructor(private readonly ctx: DriverContext) {
    const root = ctx.options.root;
    if (typeof root !== 'string' || root === '') throw new DriverRefusal('option "root" is missing');
    this.root = path.resolve(root);
  }

  async start(): Promise<void> {
    const stat = await fsp.stat(this.root).catch(() => null);
    if (!stat) throw new DriverRefusal(`root ${this.root} does not exist`);
    if (!stat.isDirectory()) throw new DriverRefusal(`root ${this.root} is not a folder`);
    this.watcher = watch(this.root, {
      ignored: (p: string) => {
        if (p === this.root) return false;
        const name = path.basename(p);
        // Temporary files of transfers a crash interrupted: removed once the scan is done;
        // partial files of large ones are kept for a resume, unless they are old.
        if (!this.live && name.startsWith(`${INTERNAL_PREFIX}tmp-`)) this.staleTemporaries.push(p);
        if (!this.live && name.startsWith(`${INTERNAL_PREFIX}part-`)) this.partials.push(p);
        return isInternalName(name);
      },
      ignoreInitial: false,
      followSymlinks: false,
      alwaysStat: true,
      ignorePermissionErrors: true,
    });
    this.watcher.on('add', (p, s) => this.onAdd(p, s));
    this.watcher.on('change', (p, s) => this.onChange(p, s));
    this.watcher.on('unlink', (p) => this.onUnlink(p));
    this.watcher.on('addDir', (p) => this.onAddDir(p));
    this.watcher.on('unlinkDir', (p) => this.onUnlinkDir(p));
    this.watcher.on('error', (err) => this.ctx.log('warn', `watcher error: ${(err as Error).message}`));
    await new Promise<void>((resolve) => this.watcher!.once('ready', resolve));

    if (this.scan.length === 0 && this.ctx.knownFiles > 0) {
      throw new DriverRefusal(
        `root ${this.root} is empty but the store says it held ${this.ctx.knownFiles} files; ` +
          'refusing to start so that nothing is deleted elsewhere (is the disk mounted?)',
      );
    }
    await this.checkMarker();
    await Promise.all(this.staleTemporaries.splice(0).map((p) => fsp.rm(p, { force: true })));
    const now = Date.now();
    for (const p of new Set(this.partials.splice(0))) {
      const s = await fsp.stat(p).catch(() => null);
      if (s && now - s.mtimeMs > PARTIAL_MAX_AGE_MS) await fsp.rm(p, { force: true });
    }
    this.live = true;
    this.ctx.report({ type: 'entry.scanned', entry: this.ctx.entry, files: this.scan.splice(0) });
  }

  /**
   * A root that held files (the store says so) but lost its marker is not the disk it was: an
   * unmounted disk's mount point, or another folder. Refused, so that nothing is deleted elsewhere.
   * A root used for the first time gets its marker.
   */
  private async checkMarker(): Promise<void> {
    const marker = path.join(this.root, MARKER);
    if (fs.existsSync(marker)) return;
    if (this.ctx.knownFiles > 0) {
      throw new DriverRefusal(
        `root ${this.root} has lost its marker ${MARKER} but the store says it held ${this.ctx.knownFiles} files; ` +
          `refusing to start (is this the right disk, mounted?). If it is, create the file ${marker} and start again`,
      );
    }
    await fsp
      .writeFile(marker, JSON.stringify({ entry: this.ctx.entry, since: new Date().toISOString() }) + '\n', { flag: 'wx' })
      .catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') this.ctx.log('warn', `could not write the marker ${marker}: ${err.message}`);
      });
  }

  async stop(): Promise<void> {
    this.live = false;
    for (const copy of this.copies) copy.abort();
    for (const p of this.pendingUnlinks.values()) clearTimeout(p.timer);
    for (const e of this.expected.values()) clearTimeout(e.timer);
    for (const t of this.relists.values()) clearTimeout(t);
    this.relists.clear();
    for (const t of this.rechecks.values()) clearTimeout(t);
    this.rechecks.clear();
    await this.watcher?.close();
  }

  // ---- watching ----

  private relative(absolute: string): string | null {
    const rel = path.relative(this.root, absolute);
    // Outside the root is `..` or `../…`; a name of its own may begin with dots (`..notes`, `...`).
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) return null;
    return rel.split(path.sep).join('/');
  }

  private regularFile(absolute: string, stats: fs.Stats | undefined): fs.Stats | null {
    try {
      const s = stats ?? fs.lstatSync(absolute);
      if (s.isSymbolicLink()) {
        this.ctx.log('info', 'skipped a symlink', { path: absolute });
        return null;
      }
      return s.isFile() ? s : null;
    } catch {
      return null;
    }
  }

  /** True when the event is the echo of our own write or removal. */
  private consumeEcho(rel: string, stat: FileStat | null): boolean {
    const echo = this.expected.get(rel);
    if (!echo) return false;
    if (echo.stat === null ? stat !== null : stat === null || !sameStat(echo.stat, stat)) return false;
    clearTimeout(echo.timer);
    this.expected.delete(rel);
    return true;
  }

  private expect(rel: string, stat: FileStat | null): void {
    const previous = this.expected.get(rel);
    if (previous) clearTimeout(previous.timer);
    const timer = setTimeout(() => this.expected.delete(rel), ECHO_WINDOW_MS);
    timer.unref();
    this.expected.set(rel, { stat, timer });
  }

  private remember(rel: string, stat: FileStat): void {
    const old = this.known.get(rel);
    if (old?.ino && this.byIno.get(old.ino) === rel) this.byIno.delete(old.ino);
    this.known.set(rel, stat);
    if (stat.ino) this.byIno.set(stat.ino, rel);
  }

  private forget(rel: string): FileStat | undefined {
    const old = this.known.get(rel);
    this.known.delete(rel);
    if (old?.ino && this.byIno.get(old.ino) === rel) this.byIno.delete(old.ino);
    return old;
  }

  private onAdd(absolute: string, stats?: fs.Stats): void {
    const rel = this.relative(absolute);
    const s = rel && this.regularFile(absolute, stats);
    if (!rel || !s) return;
    const stat = statOf(s);
    if (!this.live) {
      this.remember(rel, stat);
      this.scan.push({ path: rel, ...stat });
      return;
    }
    this.recheckSoon(absolute);
    this.movedAway.delete(rel);
    // Deleted and made again under the same name (an atomic save, or our own copy replacing a
    // file moved aside as a conflict copy): whatever it is now, it was not deleted.
    const unlinked = this.pendingUnlinks.get(rel);
    if (unlinked) {
      clearTimeout(unlinked.timer);
      this.pendingUnlinks.delete(rel);
    }
    if (this.conflictCopies.delete(rel)) {
      this.remember(rel, stat);
      this.ctx.report({ type: 'file.changed', entry: this.ctx.entry, path: rel, stat });
      return;
    }
    if (this.consumeEcho(rel, stat)) {
      this.remember(rel, stat);
      return;
    }
    // A rename: the unlink of the same inode came first, or the old name is already gone.
    for (const [from, pending] of this.pendingUnlinks) {
      if (pending.stat.ino === stat.ino && pending.stat.size === stat.size) {
        clearTimeout(pending.timer);
        this.pendingUnlinks.delete(from);
        this.remember(rel, stat);
        this.ctx.report({ type: 'file.moved', entry: this.ctx.entry, from, path: rel, stat });
        return;
      }
    }
    const from = this.byIno.get(stat.ino!);
    const previous = from !== undefined ? this.known.get(from) : undefined;
    if (from !== undefined && from !== rel && previous?.size === stat.size && !fs.existsSync(path.join(this.root, from))) {
      this.forget(from);
      this.movedAway.add(from);
      this.remember(rel, stat);
      this.ctx.report({ type: 'file.moved', entry: this.ctx.entry, from, path: rel, stat });
      return;
    }
    this.remember(rel, stat);
    this.ctx.report({ type: 'file.changed', entry: this.ctx.entry, path: rel, stat });
  }

  /**
   * A folder removed: chokidar reports the removal of the files it tracked in it, not of those
   * the driver found itself (by listing a new folder again, below). Every file known under the
   * folder that is gone from the disk is a deletion; those already reported are known no more.
   */
  private onUnlinkDir(absolute: string): void {
    const rel = this.relative(absolute);
    if (!rel || !this.live) return;
    const prefix = `${rel}/`;
    for (const file of [...this.known.keys()]) {
      if (!file.startsWith(prefix)) continue;
      const gone = path.join(this.root, file);
      if (!fs.existsSync(gone)) this.onUnlink(gone);
    }
  }

  /**
   * chokidar lists a new folder before it starts watching it, so whatever lands there in
   * between is never reported (paulmillr/chokidar#1471): a `mkdir -p` followed at once by
   * writes loses files, or whole subfolders. The folder is listed again once things settle.
   */
  private onAddDir(absolute: string): void {
    if (!this.live || absolute === this.root) return;
    this.relistSoon(absolute);
  }

  private relistSoon(dir: string): void {
    clearTimeout(this.relists.get(dir));
    const timer = setTimeout(() => {
      this.relists.delete(dir);
      void this.relist(dir);
    }, NEW_FOLDER_RELIST_MS);
    timer.unref();
    this.relists.set(dir, timer);
  }

  /** Reports the files of `dir` the watcher missed, and has it watch the subfolders it missed. */
  private async relist(dir: string): Promise<void> {
    if (!this.live || !this.watcher) return;
    const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
    const watched = new Set(this.watcher.getWatched()[dir] ?? []);
    for (const e of entries) {
      if (!this.live) return;
      if (isInternalName(e.name)) continue;
      const absolute = path.join(dir, e.name);
      if (e.isDirectory()) {
        // The watcher reports it (addDir, then its files) and this folder is listed again in turn.
        if (!watched.has(e.name)) this.watcher.add(absolute);
      } else if (e.isFile()) {
        const rel = this.relative(absolute);
        if (rel === null || this.known.has(rel)) continue;
        const stats = await fsp.lstat(absolute).catch(() => null);
        if (stats?.isFile() && !this.known.has(rel)) this.onAdd(absolute, stats);
      }
    }
  }

  /**
   * A file is looked at again once its events stop, and a difference is a change: a write
   * right after a truncate (every `writeFile`) must not leave only the truncate reported, even
   * if a watcher drops or merges events (chokidar kept one event per file in any 5 ms).
   */
  private recheckSoon(absolute: string): void {
    clearTimeout(this.rechecks.get(absolute));
    const timer = setTimeout(() => {
      this.rechecks.delete(absolute);
      const rel = this.relative(absolute);
      const known = rel === null ? undefined : this.known.get(rel);
      if (!this.live || !known) return;
      const s = this.regularFile(absolute, undefined);
      if (s && !sameStat(known, statOf(s))) this.onChange(absolute, s);
    }, RECHECK_MS);
    timer.unref();
    this.rechecks.set(absolute, timer);
  }

  private onChange(absolute: string, stats?: fs.Stats): void {
    const rel = this.relative(absolute);
    const s = rel && this.regularFile(absolute, stats);
    if (!rel || !s || !this.live) return;
    this.recheckSoon(absolute);
    const stat = statOf(s);
    const wasEcho = this.consumeEcho(rel, stat);
    this.remember(rel, stat);
    if (!wasEcho) this.ctx.report({ type: 'file.changed', entry: this.ctx.entry, path: rel, stat });
  }

  private onUnlink(absolute: string): void {
    const rel = this.relative(absolute);
    if (!rel || !this.live) return;
    if (this.movedAway.delete(rel)) return;
    if (!this.known.has(rel)) return; // a symlink or something we never reported
    if (fs.existsSync(absolute)) return; // replaced at once (an atomic save): the add/change reports it
    const old = this.forget(rel)!;
    if (this.consumeEcho(rel, null)) return;
    const timer = setTimeout(() => {
      this.pendingUnlinks.delete(rel);
      this.ctx.report({ type: 'file.deleted', entry: this.ctx.entry, path: rel });
    }, RENAME_WINDOW_MS);
    this.pendingUnlinks.set(rel, { stat: old, timer });
  }

  // ---- jobs ----

  async run(job: JobCommand): Promise<JobOutcome> {
    try {
      switch (job.kind) {
        case 'upload':
          return { ok: true, stat: await this.upload(job) };
        case 'delete':
          await this.remove(job.path, job.expect);
          return { ok: true, stat: null };
        case 'move':
          return { ok: true, stat: await this.move(job.from, job.path, job.expect) };
      }
    } catch (err) {
      if (err instanceof StaleJob) return { ok: false, reason: 'stale', message: err.message };
      const message = err instanceof UnsafePathError ? err.message : `${(err as Error).message}`;
      return { ok: false, reason: 'error', message };
    }
  }

  private async upload(job: Extract<JobCommand, { kind: 'upload' }>): Promise<FileStat> {
    if (job.source.driver !== 'local_storage') throw new Error(`cannot read from a ${job.source.driver} entry`);
    const sourceRoot = path.resolve(String(job.source.options.root));
    const small = job.sourceStat.size <= SMALL_FILE_MAX;
    const io = small ? syncIo : asyncIo;
    const source = await confined(sourceRoot, job.path, small);
    const target = await confined(this.root, job.path, small);

    const before = await io.lstat(source);
    if (!before || !before.isFile() || !sameStat(statOf(before), job.sourceStat)) {
      throw new StaleJob(`source ${job.source.entry}:${job.path} changed`);
    }
    await io.mkdirp(path.dirname(target));
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
      await io.utimes(tmp, before.atime, before.mtime);
      const current = await io.lstat(target);
      if (current) {
        if (!current.isFile()) throw new Error(`${job.path} exists and is not a regular file`);
        const matches = job.expect !== null && sameStat(statOf(current), job.expect);
        if ((job.preserve || !matches) && !(await io.sameContent(target, tmp))) {
          await this.keepConflictCopy(job.path, target);
        }
      }
      const stat = statOf(await io.stat(tmp));
      this.expect(job.path, stat);
      await io.rename(tmp, target);
      committed = true;
      keepPartial = false;
      return stat;
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
      this.conflictCopies.add(name);
      await fsp.rename(absolute, dest);
      this.ctx.log('warn', `kept a conflicting copy as ${name}`, { path: rel, conflict: name });
      // The daemon's event stream tells of it (a `file` event of kind `conflict`).
      this.ctx.conflict?.(rel, name);
      return;
    }
  }

  private async remove(rel: string, expect: FileStat): Promise<void> {
    const target = await confined(this.root, rel);
    const current = await fsp.lstat(target).catch(() => null);
    if (!current) return;
    if (!current.isFile() || !sameStat(statOf(current), expect)) throw new StaleJob(`${rel} changed; not deleted`);
    this.expect(rel, null);
    await fsp.unlink(target);
    await this.pruneEmptyFolders(path.dirname(target));
  }

  private async move(fromRel: string, toRel: string, expect: FileStat | null): Promise<FileStat> {
    const from = await confined(this.root, fromRel);
    const to = await confined(this.root, toRel);
    const current = await fsp.lstat(from).catch(() => null);
    if (!current || !expect || !current.isFile() || !sameStat(statOf(current), expect)) {
      throw new StaleJob(`${fromRel} changed; not moved`);
    }
    if (await fsp.lstat(to).catch(() => null)) throw new StaleJob(`${toRel} exists; not moved over`);
    await fsp.mkdir(path.dirname(to), { recursive: true });
    const stat = statOf(current);
    this.movedAway.add(fromRel);
    this.expect(toRel, stat);
    await fsp.rename(from, to);
    this.forget(fromRel);
    this.remember(toRel, stat);
    await this.pruneEmptyFolders(path.dirname(from));
    return stat;
  }

  private async pruneEmptyFolders(dir: string): Promise<void> {
    while (dir !== this.root && dir.startsWith(this.root + path.sep)) {
      try {
        await fsp.rmdir(dir);
      } catch {
        return;
      }
      dir = path.dirname(dir);
    }
  }

}

/** The real path of each root met: a root is not moved under a running worker. */
const realRoots = new Map<string, string>();

/**
 * The absolute path of `rel` under `root`, refusing any path that leaves the root, directly or
 * through a symlinked folder. `sync`: resolved with synchronous calls (for small files).
 */
export async function confined(root: string, rel: string, sync = false): Promise<string> {
  const absolute = resolveInside(root, rel);
  let realRoot = realRoots.get(root);
  if (realRoot === undefined) {
    realRoot = await fsp.realpath(root);
    realRoots.set(root, realRoot);
  }
  const realpath = (dir: string): string | null | Promise<string | null> => {
    if (!sync) return fsp.realpath(dir).catch(() => null);
    try {
      return fs.realpathSync.native(dir);
    } catch {
      return null;
    }
  };
  for (let dir = path.dirname(absolute); ; dir = path.dirname(dir)) {
    const real = await realpath(dir);
    if (real === null) continue; // not created yet: its nearest existing parent decides
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
      throw new UnsafePathError(rel, 'a folder on the path leads out of the root');
    }
    return absolute;
  }
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

/** The calls of an upload, asynchronous (large files) or synchronous (small ones). */
interface UploadIo {
  lstat(p: string): Promise<fs.Stats | null> | fs.Stats | null;
  stat(p: string): Promise<fs.Stats> | fs.Stats;
  mkdirp(dir: string): Promise<unknown> | unknown;
  utimes(p: string, atime: Date, mtime: Date): Promise<void> | void;
  rename(from: string, to: string): Promise<void> | void;
  sameContent(a: string, b: string): Promise<boolean> | boolean;
}

const asyncIo: UploadIo = {
  lstat: (p) => fsp.lstat(p).catch(() => null),
  stat: (p) => fsp.stat(p),
  mkdirp: (dir) => fsp.mkdir(dir, { recursive: true }),
  utimes: (p, atime, mtime) => fsp.utimes(p, atime, mtime),
  rename: (from, to) => fsp.rename(from, to),
  sameContent,
};

const syncIo: UploadIo = {
  lstat: (p) => {
    try {
      return fs.lstatSync(p);
    } catch {
      return null;
    }
  },
  stat: (p) => fs.statSync(p),
  mkdirp: (dir) => fs.mkdirSync(dir, { recursive: true }),
  utimes: (p, atime, mtime) => fs.utimesSync(p, atime, mtime),
  rename: (from, to) => fs.renameSync(from, to),
  // Small files: both read whole and compared (a destination of another size is not read).
  sameContent: (a, b) => {
    if (fs.statSync(a).size !== fs.statSync(b).size) return false;
    const x = fs.readFileSync(a);
    const y = fs.readFileSync(b);
    return x.equals(y);
  },
};

async function sameContent(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([fsp.stat(a), fsp.stat(b)]);
  if (sa.size !== sb.size) return false;
  const [fa, fb] = await Promise.all([fsp.open(a), fsp.open(b)]);
  try {
    // Buffers as large as the file, up to 1 MiB: a small file does not allocate 2 MiB.
    const size = Math.max(1, Math.min(1 << 20, sa.size));
    const ba = Buffer.alloc(size);
    const bb = Buffer.alloc(size);
    for (let pos = 0; pos < sa.size; pos += size) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, size, pos), fb.read(bb, 0, size, pos)]);
      if (ra.bytesRead !== rb.bytesRead || !ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
    return true;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

export default (ctx: DriverContext) => new LocalStorage(ctx);
