import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
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
/** How long after the last event about a file it is looked at again (chokidar drops some). */
const RECHECK_MS = 50;

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
        // Temporary files of transfers a crash interrupted: removed once the scan is done.
        if (!this.live && name.startsWith(`${INTERNAL_PREFIX}tmp-`)) this.staleTemporaries.push(p);
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
    this.watcher.on('error', (err) => this.ctx.log('warn', `watcher error: ${(err as Error).message}`));
    await new Promise<void>((resolve) => this.watcher!.once('ready', resolve));

    if (this.scan.length === 0 && this.ctx.knownFiles > 0) {
      throw new DriverRefusal(
        `root ${this.root} is empty but the store says it held ${this.ctx.knownFiles} files; ` +
          'refusing to start so that nothing is deleted elsewhere (is the disk mounted?)',
      );
    }
    await Promise.all(this.staleTemporaries.splice(0).map((p) => fsp.rm(p, { force: true })));
    this.live = true;
    this.ctx.report({ type: 'entry.scanned', entry: this.ctx.entry, files: this.scan.splice(0) });
  }

  async stop(): Promise<void> {
    this.live = false;
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
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return null;
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
        // chokidar reports it (addDir, then its files) and this folder is listed again in turn.
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
   * chokidar keeps one event per file in any 5 ms and drops the rest, with no trailing event:
   * a write right after a truncate (every `writeFile`) can leave only the truncate reported.
   * So a file is looked at again once its events stop, and a difference is a change.
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
    const source = await confined(sourceRoot, job.path);
    const target = await confined(this.root, job.path);

    const before = await fsp.lstat(source).catch(() => null);
    if (!before || !before.isFile() || !sameStat(statOf(before), job.sourceStat)) {
      throw new StaleJob(`source ${job.source.entry}:${job.path} changed`);
    }
    await fsp.mkdir(path.dirname(target), { recursive: true });
    const tmp = path.join(path.dirname(target), `${INTERNAL_PREFIX}tmp-${randomBytes(8).toString('hex')}`);
    try {
      // The kernel's copy: the bytes go from disk to disk, never through the daemon.
      await fsp.copyFile(source, tmp);
      const after = await fsp.lstat(source).catch(() => null);
      if (!after || !sameStat(statOf(after), job.sourceStat)) {
        throw new StaleJob(`source ${job.source.entry}:${job.path} changed during the copy`);
      }
      await fsp.utimes(tmp, before.atime, before.mtime);
      const written = await fsp.stat(tmp);
      if (written.size !== job.sourceStat.size) {
        throw new Error(`copy of ${job.path} has ${written.size} bytes, expected ${job.sourceStat.size}`);
      }
      const current = await fsp.lstat(target).catch(() => null);
      if (current) {
        if (!current.isFile()) throw new Error(`${job.path} exists and is not a regular file`);
        const matches = job.expect !== null && sameStat(statOf(current), job.expect);
        if ((job.preserve || !matches) && !(await sameContent(target, tmp))) {
          await this.keepConflictCopy(job.path, target);
        }
      }
      const stat = statOf(written);
      this.expect(job.path, stat);
      await fsp.rename(tmp, target);
      return stat;
    } finally {
      await fsp.rm(tmp, { force: true });
    }
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

/**
 * The absolute path of `rel` under `root`, refusing any path that leaves the root, directly or
 * through a symlinked folder.
 */
export async function confined(root: string, rel: string): Promise<string> {
  const absolute = resolveInside(root, rel);
  const realRoot = await fsp.realpath(root);
  for (let dir = path.dirname(absolute); ; dir = path.dirname(dir)) {
    const real = await fsp.realpath(dir).catch(() => null);
    if (real === null) continue; // not created yet: its nearest existing parent decides
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
      throw new UnsafePathError(rel, 'a folder on the path leads out of the root');
    }
    return absolute;
  }
}

async function sameContent(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([fsp.stat(a), fsp.stat(b)]);
  if (sa.size !== sb.size) return false;
  const [fa, fb] = await Promise.all([fsp.open(a), fsp.open(b)]);
  try {
    const size = 1 << 20;
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
