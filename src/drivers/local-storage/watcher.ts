import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { FileStat, ScannedFile } from '../../../machines/reports.js';
import { type DriverContext, DriverRefusal } from '../driver.js';
import { INTERNAL_PREFIX, isInternalName } from '../../paths.js';
import type { WatchHooks } from './transfers.js';
import { sameStat, statOf } from './stat.js';

/** How long an unlink waits for the add of the same inode that would make it a rename. */
const RENAME_WINDOW_MS = 150;
/** How long the echo of one of our own writes is expected from the watcher. */
const ECHO_WINDOW_MS = 10_000;
/** How long after a new folder appears (and after its last news) it is listed again. */
const NEW_FOLDER_RELIST_MS = 250;
/** How long after the last event about a file it is looked at again (a write may still be going on). */
const RECHECK_MS = 50;
/** Partial files of interrupted copies older than this are removed on start. */
const PARTIAL_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** The marker each root gets on first use: a root without it, that held files, is not the same disk. */
export const MARKER = `${INTERNAL_PREFIX}entry`;

interface PendingUnlink {
  stat: FileStat;
  timer: NodeJS.Timeout;
}

/**
 * A folder on a local disk. Watches it with chokidar, reports creations, edits, deletions and
 * renames (matched by inode), and writes every file through a hidden temporary file renamed
 * into place. Every path is resolved inside the root; symlinks are skipped, never followed.
 */
export class LocalWatcher implements WatchHooks {
  private watcher: FSWatcher | null = null;
  private live = false;
  private readonly scan: ScannedFile[] = [];
  /** What the watcher last saw of each file (relative path → stat). */
  private readonly known = new Map<string, FileStat>();
  private readonly byIno = new Map<string, string>();
  /** Our own writes and removals, whose watcher events are not changes from the user. */
  private readonly expected = new Map<string, { stat: FileStat | null; timer: NodeJS.Timeout }>();
  private readonly pendingUnlinks = new Map<string, PendingUnlink>();
  private readonly movedAwaySet = new Set<string>();
  /** Conflict copies we made: reported as new files, never as a rename of the original. */
  private readonly conflictCopies = new Set<string>();
  private readonly staleTemporaries: string[] = [];
  private readonly partials: string[] = [];
  /** New folders waiting for a second listing (absolute path → timer). */
  private readonly relists = new Map<string, NodeJS.Timeout>();
  /** Files to look at again once their events settle (absolute path → timer). */
  private readonly rechecks = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly root: string,
    private readonly ctx: DriverContext,
  ) {}

  movedAway(rel: string): void {
    this.movedAwaySet.add(rel);
  }

  conflictCopy(name: string): void {
    this.conflictCopies.add(name);
  }

  moved(from: string, to: string, stat: FileStat): void {
    this.forget(from);
    this.remember(to, stat);
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

  expect(rel: string, stat: FileStat | null): void {
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
    this.movedAwaySet.delete(rel);
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
      this.movedAwaySet.add(from);
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
    if (this.movedAwaySet.delete(rel)) return;
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
}
