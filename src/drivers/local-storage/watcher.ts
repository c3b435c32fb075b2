import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { syncBuiltinESMExports } from 'node:module';
import { watch, type FSWatcher } from 'chokidar';
import type { FileStat, ScanDigest, ScannedFile } from '../../../machines/reports.js';
import { type DriverContext, DriverRefusal, type WatchState } from '../driver.js';
import { IGNORE_FILE, INTERNAL_PREFIX, isInternalName } from '../../paths.js';
import type { WatchHooks } from './transfers.js';
import { LOCAL_STORAGE_DEFAULTS } from '../registry.js';
import { FolderTree, type FileRec, folderRecOf, recOf, sameContent, split, statOfFolder, statOfRec } from './folder-tree.js';
import { childLine, listingDigest } from '../../folder-digest.js';
import { LocalIgnore } from './ignore-file.js';

/**
 * How long a vanished file waits for a new file with its inode, which makes it a rename (a file
 * moved into a folder just made may be found only by the folder's second listing).
 */
const RENAME_WINDOW_MS = 300;
/** Settling names a new file's look goes through for the old name of its rename, at most. */
const SETTLING_SCAN_MAX = 1000;
/** How long the echo of one of our own writes is expected from the watcher. */
const ECHO_WINDOW_MS = 10_000;
/** A new folder is listed at once, and again once its watch is up: checked this often… */
const NEW_FOLDER_RELIST_MS = 50;
/** …for at most this long. */
const NEW_FOLDER_WATCH_MAX_MS = 5000;
/** Partial files of interrupted copies older than this are removed on start. */
const PARTIAL_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** Files of a start-up scan sent in one report: the daemon's memory does not grow with the tree. */
const SCAN_CHUNK = 10_000;
/** Files of a first scan sent in one report as the tree is walked (see `streaming`). */
const STREAM_CHUNK = 1000;
/** The first chunk of a first scan (see `chunkSize`). */
const FIRST_STREAM_CHUNK = 100;
/** Children named by events during a start-up scan, looked at one by one after it (see scanEvent). */
const SCAN_EVENTS_MAX = 10_000;
/** Events in one folder that make a burst, listed again once it is over (see countBurst). */
const BURST_EVENTS = 1000;
/** How long a folder's burst must have been quiet before it is listed again. */
const BURST_QUIET_MS = 500;
/** Folders chokidar lists at once while it walks a tree (each an lstat of every child). */
const LISTINGS_AT_ONCE = 4;
/** The marker each root gets on first use: a root without it, that held files, is not the same disk. */
export const MARKER = `${INTERNAL_PREFIX}entry`;

const WATCH_LIMIT_FILE = '/proc/sys/fs/inotify/max_user_watches';
const INSTANCE_LIMIT_FILE = '/proc/sys/fs/inotify/max_user_instances';

interface PendingUnlink {
  rel: string;
  rec: FileRec;
  timer: NodeJS.Timeout;
}

/** An option as the setup resolved it (a driver run by hand in a test may leave it out). */
function numberOption(options: Record<string, unknown>, key: keyof typeof LOCAL_STORAGE_DEFAULTS): number {
  const v = options[key];
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : LOCAL_STORAGE_DEFAULTS[key];
}

const joinRel = (dir: string, name: string) => (dir === '' ? name : `${dir}/${name}`);

/**
 * Events of Ferry's own files (temporaries, partial copies, the marker: names that begin with
 * INTERNAL_PREFIX) never reach chokidar: a copy into a watched folder makes five events, four of
 * them its temporary's, and chokidar handles each (its folder's listener, a raw event, and a
 * resolved and a joined path to look for a watcher of the child) before the driver drops it.
 * chokidar imports `watch` from node:fs by name, so the wrapper is installed once per worker
 * and published to ES modules. A watched folder's own deletion (an event with its own name) is
 * passed on whatever its name.
 */
export function dropInternalEvents(): void {
  const native = fs.watch as typeof fs.watch & { ferryWrapped?: true };
  if (native.ferryWrapped) return;
  const wrapped = function (this: unknown, filename: fs.PathLike, ...rest: unknown[]) {
    const at = rest.findIndex((r) => typeof r === 'function');
    if (at >= 0) {
      const listener = rest[at] as (event: string, name: string | Buffer | null) => void;
      const own = path.basename(String(filename));
      rest[at] = (event: string, name: string | Buffer | null) => {
        if (typeof name === 'string' && name.startsWith(INTERNAL_PREFIX) && name !== own) return;
        listener(event, name);
      };
    }
    return (native as (...args: unknown[]) => fs.FSWatcher).call(this, filename, ...rest);
  } as typeof fs.watch & { ferryWrapped?: true };
  wrapped.ferryWrapped = true;
  fs.watch = wrapped;
  syncBuiltinESMExports();
}

/**
 * Watches a local root with one inotify watch per folder. chokidar watches the folders only
 * (files are ignored); the change of any child of a watched folder arrives as a `raw` event of
 * its folder's watch, naming the child, which is then looked at (lstat) and compared with what
 * is known of it. What the kernel cannot watch (its watch limit reached) is rescanned at an
 * interval, and every folder is rescanned at a longer one, since the kernel drops events when
 * its queue overflows and Node never says so.
 */
export class LocalWatcher implements WatchHooks {
  private watcher: FSWatcher | null = null;
  private live = false;
  /**
   * The first scan of a root the store knows nothing of (`knownFiles` 0: no digest to compare
   * a folder with) is sent as the tree is walked, in chunks: the daemon records each chunk's
   * new files at once, and the other entries copy them while the rest is walked. What it found
   * since the last chunk; null once sent, or for a scan sent at its end.
   */
  private streaming: ScannedFile[] | null = null;
  /** The start-up scan runs: the watcher is set up, and not live yet (see scanEvent). */
  private scanning = false;
  private readonly tree = new FolderTree();
  /** Our own writes and removals, whose events are not changes from the user (rel → stat, until). */
  private readonly expected = new Map<string, { stat: FileStat | null; until: number }>();
  private readonly pendingUnlinks = new Map<number, PendingUnlink>();
  private readonly movedAwaySet = new Set<string>();
  /** Conflict copies we made: reported as new files, never as a rename of the original. */
  private readonly conflictCopies = new Set<string>();
  private readonly staleTemporaries: string[] = [];
  private readonly partials: string[] = [];
  /** Children waiting to be looked at once their events settle (rel → timer). */
  private readonly settling = new Map<string, NodeJS.Timeout>();
  /** New folders waiting for a second listing (rel → timer). */
  private readonly relists = new Map<string, NodeJS.Timeout>();
  /** Folders the kernel refused to watch (rel), rescanned every poll interval, and why. */
  private readonly polled = new Map<string, string>();
  /** Folders chokidar has listed once; it lists them again on no later event (we do). */
  private readonly listedByChokidar = new Set<string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private rescanning: Promise<void> | null = null;
  private lastWatchState = '';
  private readonly settleMs: number;
  private readonly rescanMs: number;
  private readonly pollMs: number;
  /** The patterns of paths never reported (the setup's and .ferryignore's). */
  private readonly ignore: LocalIgnore;
  private ignoreTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly root: string,
    private readonly ctx: DriverContext,
  ) {
    this.ignore = new LocalIgnore(root, ctx.ignore ?? []);
    this.settleMs = numberOption(ctx.options, 'settle_ms');
    this.rescanMs = numberOption(ctx.options, 'rescan_interval') * 1000;
    this.pollMs = numberOption(ctx.options, 'poll_interval') * 1000;
  }

  // ---- what the transfers tell us ----

  expect(rel: string, stat: FileStat | null): void {
    this.expected.set(rel, { stat, until: Date.now() + ECHO_WINDOW_MS });
  }

  unexpect(rel: string): void {
    this.expected.delete(rel);
  }

  movedAway(rel: string): void {
    this.movedAwaySet.add(rel);
  }

  conflictCopy(name: string): void {
    this.conflictCopies.add(name);
  }

  /** Whether the patterns in force ignore `rel`: the transfers never write or delete it. */
  ignores(rel: string, folder = false): boolean {
    return this.ignore.ignores(rel, folder);
  }

  /** Looks at `rel` now (a restore put it in place): its report goes before anything said after. */
  lookNow(rel: string): void {
    clearTimeout(this.settling.get(rel));
    this.settling.delete(rel);
    const slash = rel.lastIndexOf('/');
    // Folders the restore made are found as new ones, then the file in them.
    if (slash > 0 && !this.tree.hasFolder(rel.slice(0, slash))) {
      let top = rel.slice(0, slash);
      for (let up = top; up.includes('/'); ) {
        up = up.slice(0, up.lastIndexOf('/'));
        if (this.tree.hasFolder(up)) break;
        top = up;
      }
      const parent = top.includes('/') ? top.slice(0, top.lastIndexOf('/')) : '';
      if (this.tree.hasFolder(parent)) this.apply(top, this.lstatOrSay(path.join(this.root, top)));
      return;
    }
    this.apply(rel, this.lstatOrSay(path.join(this.root, rel)));
  }

  moved(from: string, to: string, stat: FileStat): void {
    const rec = this.tree.getFile(from);
    this.tree.deleteFile(from);
    this.tree.setFile(to, rec ? { ...rec, size: stat.size, mtime: stat.mtime } : recFromStat(stat));
  }

  // ---- start and stop ----

  async start(): Promise<void> {
    const stat = await fsp.stat(this.root).catch(() => null);
    if (!stat) throw new DriverRefusal(`root ${this.root} does not exist`);
    if (!stat.isDirectory()) throw new DriverRefusal(`root ${this.root} is not a folder`);
    this.ignore.load();
    this.tree.addFolder('');
    this.scanning = true;
    const streamed = this.ctx.knownFiles === 0;
    // A root the store knows nothing of cannot be refused for its marker: the marker is written
    // while the tree is walked (a file's creation on a cold disk: some 15 ms), and no chunk of
    // the scan is reported before it is there.
    let marking: Promise<void> | null = null;
    if (streamed) {
      this.streaming = [];
      this.marked = false;
      marking = this.checkMarker().then(() => {
        this.marked = true;
        // Not for a start given up meanwhile (stopped): nothing of it is reported.
        if (this.scanning) this.sendChunk();
      });
      // The patterns before the first chunk, which the daemon filters with them.
      this.ctx.ignoreChanged?.(this.ignore.patterns);
    }
    dropInternalEvents();
    const watcher = watch(this.root, {
      // Folders only: a file is ignored once its stats say it is one (chokidar asks first
      // without stats, then with them). The start-up scan is taken from those stats, so that
      // the tree is walked and stat'ed once.
      ignored: (p: string, s?: fs.Stats) => this.ignored(p, s),
      ignoreInitial: true,
      followSymlinks: false,
      // atomic would hide dotfiles' events and delay unlinks: we read raw events ourselves.
      atomic: false,
      ignorePermissionErrors: true,
    });
    this.watcher = watcher;
    this.limitChokidarListings(watcher);
    this.listWithoutStats(watcher);
    watcher.on('raw', (_event, name, details) => this.onRaw(name, (details as { watchedPath?: string }).watchedPath));
    watcher.on('error', (err) => this.onError(err as NodeJS.ErrnoException));
    await new Promise<void>((resolve) => watcher.once('ready', resolve));
    // The store's digests of the entry's folders: sent by the daemon while the tree was walked.
    const known = await this.ctx.digests?.();

    const count = this.tree.fileCount;
    if (count === 0 && this.ctx.knownFiles > 0) {
      throw new DriverRefusal(
        `root ${this.root} is empty but the store says it held ${this.ctx.knownFiles} files; ` +
          'refusing to start so that nothing is deleted elsewhere (is the disk mounted?)',
      );
    }
    await (marking ?? this.checkMarker());
    await Promise.all(this.staleTemporaries.splice(0).map((p) => fsp.rm(p, { force: true })));
    const now = Date.now();
    for (const p of new Set(this.partials.splice(0))) {
      const s = await fsp.stat(p).catch(() => null);
      if (s && now - s.mtimeMs > PARTIAL_MAX_AGE_MS) await fsp.rm(p, { force: true });
    }
    this.scanning = false;
    this.live = true;
    // The patterns first: the daemon forgets what this entry held of what they now ignore before
    // it compares the scan (which leaves those out) with the store.
    if (!streamed) this.ctx.ignoreChanged?.(this.ignore.patterns);
    this.reportScan(known);
    this.lookAtScanEvents();
    this.reportWatchState();
    if (this.pollMs > 0) this.every(this.pollMs, () => this.pollUnwatched());
    if (this.rescanMs > 0) this.every(this.rescanMs, () => void this.rescan());
    this.every(ECHO_WINDOW_MS, () => this.forgetOldEchoes());
  }

  async stop(): Promise<void> {
    this.live = false;
    this.scanning = false;
    for (const t of this.timers) clearInterval(t);
    for (const p of this.pendingUnlinks.values()) clearTimeout(p.timer);
    for (const t of this.settling.values()) clearTimeout(t);
    for (const t of this.relists.values()) clearTimeout(t);
    for (const b of this.bursts.values()) if (b.timer) clearTimeout(b.timer);
    if (this.ignoreTimer) clearTimeout(this.ignoreTimer);
    this.settling.clear();
    this.relists.clear();
    await this.watcher?.close();
  }

  /** Rescans every folder by stat against what is known, and reports the differences. */
  rescan(): Promise<void> {
    this.rescanning ??= this.rescanTree().finally(() => {
      this.rescanning = null;
    });
    return this.rescanning;
  }

  /** What is watched, and what is not and why. */
  watchState(): WatchState {
    const folders = this.tree.folderCount;
    const polled = this.polled.size;
    let reason: string | null = null;
    if (polled > 0) {
      const codes = new Set(this.polled.values());
      const limits: string[] = [];
      if (codes.has('ENOSPC')) limits.push(`fs.inotify.max_user_watches (${readNumber(WATCH_LIMIT_FILE) ?? '?'}) reached`);
      if (codes.has('EMFILE')) limits.push(`fs.inotify.max_user_instances (${readNumber(INSTANCE_LIMIT_FILE) ?? '?'}) or open files reached`);
      for (const c of codes) if (c !== 'ENOSPC' && c !== 'EMFILE') limits.push(c);
      reason =
        `watching ${(folders - polled).toLocaleString('en')} of ${folders.toLocaleString('en')} folders: ${limits.join('; ')}; ` +
        `the other ${polled.toLocaleString('en')} are rescanned every ${this.pollMs / 1000} s`;
    }
    return { folders, watched: folders - polled, polled, reason };
  }

  // ---- the start-up scan ----

  /** `s`: an lstat, or (in a listing, see listWithoutStats) the child's dirent. */
  private ignored(p: string, s: fs.Stats | fs.Dirent | undefined): boolean {
    if (p === this.root) return false;
    const name = path.basename(p);
    if (isInternalName(name)) {
      // Temporary files of transfers a crash interrupted: removed once the scan is done;
      // partial files of large ones are kept for a resume, unless they are old.
      if (!this.live && s) {
        if (name.startsWith(`${INTERNAL_PREFIX}tmp-`)) this.staleTemporaries.push(p);
        if (name.startsWith(`${INTERNAL_PREFIX}part-`)) this.partials.push(p);
      }
      return true;
    }
    // Asked first without stats: a pattern for folders only (`build/`) is tested once they come.
    if (this.ignore.any && s === undefined) {
      const rel = this.relative(p);
      return rel !== null && this.ignore.ignores(rel);
    }
    if (s === undefined) return false;
    const rel = this.relative(p);
    if (rel !== null && this.ignore.ignores(rel, s.isDirectory())) return true;
    if (s.isDirectory()) {
      if (rel !== null && !this.live) {
        const stats = 'mtimeMs' in s ? s : this.lstatOrSay(p);
        const known = this.streaming !== null && this.tree.folderRec(rel) !== null;
        const rec = stats ? folderRecOf(stats) : null;
        this.tree.addFolder(rel, rec);
        if (rec && !known) this.found(rel, statOfFolder(rec));
      }
      return false;
    }
    if (!this.live) {
      const stats = rel === null ? null : 'mtimeMs' in s ? s : this.lstatOrSay(p);
      if (rel !== null && stats) {
        const rec = this.recordOf(rel, stats);
        if (rec) this.scannedFile(rel, rec);
      }
    }
    return true;
  }

  /** A file the start-up scan found: recorded, and sent with the next chunk of a first scan. */
  private scannedFile(rel: string, rec: FileRec): void {
    const known = this.streaming !== null && this.tree.getFile(rel) !== undefined;
    this.tree.setFile(rel, rec);
    if (!known) this.found(rel, statOfRec(rec));
  }

  /** Something a first scan found (see `streaming`). */
  private found(rel: string, stat: FileStat): void {
    if (this.streaming === null) return;
    this.streaming.push({ path: rel, ...stat });
    this.sendChunk();
  }

  /**
   * What a first scan found, sent once it is a chunk's worth and the root has its marker (the
   * store must not hold files of a root without one: it would refuse the next start).
   */
  private sendChunk(): void {
    if (this.streaming === null || !this.marked) return;
    for (let size = this.chunkSize; this.streaming.length >= size; size = this.chunkSize) {
      const chunk: ScannedFile[] = this.streaming.length === size ? this.streaming : this.streaming.slice(0, size);
      this.streaming = chunk === this.streaming ? [] : this.streaming.slice(size);
      this.ctx.report({ type: 'scan.chunk', entry: this.ctx.entry, files: chunk });
      this.chunkSize = Math.min(STREAM_CHUNK, size * 2);
    }
  }

  /**
   * The size of a first scan's next chunk: the first ones small, so that the first copies
   * start after a few folders of a cold disk are walked, not a thousand files; then doubled up
   * to STREAM_CHUNK.
   */
  private chunkSize = FIRST_STREAM_CHUNK;

  /** Whether the root's marker is in place (see `sendChunk`). */
  private marked = true;

  /**
   * The start-up scan: every folder (so that empty ones are synced too) and every file, by
   * folder, with a digest of each folder's listing. A folder whose digest is the one of the
   * entry's replicas there (`known`, from the daemon) is sent without its files: the store holds
   * them as they are.
   */
  private reportScan(known: ReadonlyMap<string, string> | undefined): void {
    if (this.streaming) {
      // A first scan: what is left of it (its chunks went as it was walked).
      const files = this.streaming;
      this.streaming = null;
      this.ctx.report({ type: 'entry.scanned', entry: this.ctx.entry, files });
      return;
    }
    let chunk: ScannedFile[] = [];
    const add = (file: ScannedFile) => {
      chunk.push(file);
      if (chunk.length === SCAN_CHUNK) {
        this.ctx.report({ type: 'scan.chunk', entry: this.ctx.entry, files: chunk });
        chunk = [];
      }
    };
    const digests: ScanDigest[] = [];
    for (const [folder, files, subfolders] of this.tree.listings()) {
      const lines: string[] = [];
      for (const [name, r] of files) lines.push(childLine(name, r.size, r.mtime, r.ctime, r.ino, r.mode));
      for (const [name, r] of subfolders) if (r) lines.push(childLine(name, r.size, r.mtime, r.ctime, r.ino, r.mode));
      const digest = listingDigest(lines);
      const listed = known?.get(folder) !== digest;
      digests.push({ folder, digest, listed });
      if (!listed) continue;
      const prefix = folder === '' ? '' : `${folder}/`;
      for (const [name, rec] of subfolders) if (rec) add({ path: prefix + name, ...statOfFolder(rec) });
      for (const [name, rec] of files) add({ path: prefix + name, ...statOfRec(rec) });
    }
    this.ctx.report({ type: 'entry.scanned', entry: this.ctx.entry, files: chunk, digests });
  }

  /**
   * The record of a regular file, or of a symbolic link whose target stays inside the root
   * (recreated as a link elsewhere, never followed); null for anything else, and for a link
   * leading out of the root (skipped, with a warning).
   */
  private recordOf(rel: string, s: fs.Stats): FileRec | null {
    if (s.isFile()) return recOf(s);
    if (!s.isSymbolicLink()) return null;
    let target: string;
    try {
      target = fs.readlinkSync(path.join(this.root, rel));
    } catch {
      return null;
    }
    const resolved = path.resolve(path.dirname(path.join(this.root, rel)), target);
    if (path.isAbsolute(target) || (resolved !== this.root && !resolved.startsWith(this.root + path.sep))) {
      this.warnOnce(`skipped a symlink leading out of the root: ${rel} → ${target}`);
      return null;
    }
    return recOf(s, target);
  }

  private readonly warned = new Set<string>();

  /** lstat, null when it fails; a failure other than the path being gone is said (once). */
  private lstatOrSay(p: string): fs.Stats | null {
    try {
      return fs.lstatSync(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') this.warnOnce(`watcher error: ${(err as Error).message}`);
      return null;
    }
  }

  private warnOnce(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    this.ctx.log('warn', message);
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

  /**
   * chokidar lists a folder again (readdir and an lstat of every child) after events in it, at
   * most once a second: in a folder of 30,000 files that is 30,000 lstat calls a second while
   * it changes, for nothing, since every child's change already arrives as a raw event that we
   * look at alone. Its first listing of each folder (which watches the subfolders) is kept, a
   * few folders at a time: chokidar starts them all at once, and a tree of 100,000 files would
   * have 100,000 lstat calls and their results in memory together.
   */
  private limitChokidarListings(watcher: FSWatcher): void {
    const handler = (watcher as unknown as { _nodeFsHandler?: { _handleRead?: (...args: unknown[]) => unknown } })._nodeFsHandler;
    const original = handler?._handleRead;
    if (!handler || typeof original !== 'function') {
      this.ctx.log('warn', 'chokidar has no _handleRead: folders are listed again after each change (slower in large folders)');
      return;
    }
    let running = 0;
    const waiting: (() => void)[] = [];
    const list = async (directory: unknown, rest: unknown[]) => {
      if (running >= LISTINGS_AT_ONCE) await new Promise<void>((resolve) => waiting.push(resolve));
      running++;
      try {
        return await original.call(handler, directory, ...rest);
      } finally {
        running--;
        waiting.shift()?.();
      }
    };
    // Called on every event in a watched folder (a copy into it makes five): a folder already
    // listed is answered at once, with nothing allocated (no promise, no path, no array).
    handler._handleRead = (directory: unknown, a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown, f?: unknown) => {
      if (typeof directory === 'string' && this.listedByChokidar.has(directory)) return undefined;
      const dir = path.join(String(directory), '');
      if (this.listedByChokidar.has(dir)) return undefined;
      this.listedByChokidar.add(dir);
      return list(directory, [a, b, c, d, e, f]);
    };
  }

  /**
   * chokidar lists a folder with readdirp asking for the stats of every child (an asynchronous
   * lstat each, about 10 µs of the main thread and garbage to collect, 100,000 of them for a
   * tree of 100,000 files) only to tell folders from files. The file types readdir returns tell
   * that already: the listing is asked without stats, and each entry's dirent stands in for its
   * stats (they share isFile, isDirectory and isSymbolicLink). During the start-up scan the
   * listing is ours (listForScan), which lstats each regular file synchronously; after it no
   * file is stat'ed but on its own events.
   */
  private listWithoutStats(watcher: FSWatcher): void {
    type Entry = { stats?: unknown; dirent?: unknown };
    type Filter = (entry: Entry) => boolean;
    const w = watcher as unknown as { _readdirp?: (root: string, opts: Record<string, unknown>) => unknown };
    const original = w._readdirp;
    if (typeof original !== 'function') return;
    const withDirent = (filter: unknown): Filter | undefined =>
      typeof filter === 'function'
        ? (entry) => {
            entry.stats ??= entry.dirent;
            return (filter as Filter)(entry);
          }
        : undefined;
    // During the start-up scan (listForScan) a regular file is recorded here, straight from its
    // listing: chokidar would only ask `ignored` of it (a folder-only watcher keeps no file),
    // through a chain of its own filters, for each of a large tree's files.
    const prefix = this.root.endsWith(path.sep) ? this.root : this.root + path.sep;
    type Listed = Entry & { fullPath?: string; basename?: string };
    const scanFile = (entry: Listed): boolean | null => {
      const dirent = entry.dirent as fs.Dirent | undefined;
      const full = entry.fullPath;
      if (!dirent?.isFile() || typeof full !== 'string' || !full.startsWith(prefix)) return null;
      if (isInternalName(entry.basename ?? path.basename(full))) return null;
      const rel = path.sep === '/' ? full.slice(prefix.length) : full.slice(prefix.length).split(path.sep).join('/');
      if (this.ignore.any && this.ignore.ignores(rel, false)) return false;
      const stats = this.lstatOrSay(full);
      const rec = stats && this.recordOf(rel, stats);
      if (rec) this.scannedFile(rel, rec);
      return false;
    };
    w._readdirp = (root, opts) => {
      const filter = withDirent(opts.fileFilter);
      if (!this.live) return this.listForScan(watcher, root, scanFile, filter, withDirent(opts.directoryFilter));
      return original.call(watcher, root, {
        ...opts,
        alwaysStat: false,
        fileFilter: filter,
        directoryFilter: withDirent(opts.directoryFilter),
      });
    };
  }

  /**
   * A folder's listing during the start-up scan, in place of readdirp's (depth 0, as chokidar
   * asks): one `readdir` with file types, each regular file recorded on the spot (`scanFile`: an
   * `lstat`, and no entry made for chokidar, which keeps none of them), and only what chokidar
   * would keep emitted: the subfolders it watches, and anything its filter lets through.
   * readdirp makes an entry object and a joined path for each child and runs it through
   * chokidar's filters: most of the cost of walking a large tree.
   */
  private listForScan(
    watcher: FSWatcher,
    root: string,
    scanFile: (entry: { fullPath: string; basename: string; dirent: fs.Dirent }) => boolean | null,
    fileFilter: ((entry: object) => boolean) | undefined,
    directoryFilter: ((entry: object) => boolean) | undefined,
  ): Readable {
    const stream = new Readable({ objectMode: true, read() {} });
    const streams = (watcher as unknown as { _streams?: Set<Readable> })._streams;
    streams?.add(stream);
    stream.once('close', () => streams?.delete(stream));
    const base = root.endsWith(path.sep) ? root : root + path.sep;
    fs.readdir(root, { withFileTypes: true }, (err, dirents) => {
      if (stream.destroyed) return;
      if (err) {
        // A folder gone or unreadable meanwhile lists nothing (readdirp only warns of these).
        if (['ENOENT', 'ENOTDIR', 'EPERM', 'EACCES', 'ELOOP'].includes(err.code ?? '')) stream.push(null);
        else stream.destroy(err);
        return;
      }
      for (const dirent of dirents) {
        const entry = { path: dirent.name, fullPath: base + dirent.name, basename: dirent.name, dirent, stats: dirent };
        if (dirent.isDirectory()) {
          if (!directoryFilter || directoryFilter(entry)) stream.push(entry);
        } else if ((scanFile(entry) ?? (fileFilter ? fileFilter(entry) : true)) === true) {
          stream.push(entry);
        }
      }
      stream.push(null);
    });
    return stream;
  }

  // ---- events ----

  private relative(absolute: string): string | null {
    const rel = path.relative(this.root, absolute);
    // Outside the root is `..` or `../…`; a name of its own may begin with dots (`..notes`, `...`).
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) return null;
    return rel.split(path.sep).join('/');
  }

  private folderRel(absolute: string): string | null {
    return absolute === this.root ? '' : this.relative(absolute);
  }

  /**
   * folderRel of a watched folder, as each raw event names it: remembered (path.relative
   * allocates a few strings a call, and a copy into a folder makes five events).
   */
  private watchedRel(absolute: string): string | null {
    let rel = this.watchedRels.get(absolute);
    if (rel === undefined) {
      if (this.watchedRels.size >= 10_000) this.watchedRels.clear();
      rel = this.folderRel(absolute);
      this.watchedRels.set(absolute, rel);
    }
    return rel;
  }

  private readonly watchedRels = new Map<string, string | null>();

  private onError(err: NodeJS.ErrnoException): void {
    const code = err.code ?? 'error';
    if ((code === 'ENOSPC' || code === 'EMFILE' || code === 'ENFILE') && typeof err.path === 'string') {
      const rel = this.folderRel(err.path);
      if (rel !== null && !this.polled.has(rel)) {
        this.polled.set(rel, code === 'ENFILE' ? 'EMFILE' : code);
        this.watchStateSoon();
      }
      return;
    }
    this.ctx.log('warn', `watcher error: ${err.message}`);
  }

  private onRaw(name: unknown, watchedPath: string | undefined): void {
    if (typeof name !== 'string' || name === '' || watchedPath === undefined) return;
    if (!this.live && !this.scanning) return;
    const dir = this.watchedRel(watchedPath);
    if (name === IGNORE_FILE && dir === '') {
      if (this.live) this.ignoreFileChanged();
      else this.scanEvents.ignoreFile = true;
    }
    if (isInternalName(name) || dir === null) return;
    if (!this.live) return this.scanEvent(dir, name);
    if (!this.tree.hasFolder(dir)) return;
    if (this.ignore.ignores(joinRel(dir, name))) return;
    this.settle(joinRel(dir, name));
    this.countBurst(dir);
  }

  /**
   * What events named during the start-up scan (see scanEvent): children to look at once it is
   * reported, and folders to list instead when there were too many of those.
   */
  private readonly scanEvents = { children: new Set<string>(), folders: new Set<string>(), ignoreFile: false };

  /**
   * An event during the start-up scan, in a folder already watched (so already listed, or being
   * listed): the scan may have recorded the child as it was before the change. It is looked at
   * once the scan is reported, and what differs is reported then, as any change.
   */
  private scanEvent(dir: string, name: string): void {
    const { children, folders } = this.scanEvents;
    if (folders.has(dir)) return;
    if (children.size < SCAN_EVENTS_MAX) children.add(joinRel(dir, name));
    else folders.add(dir);
  }

  /** The children and folders events named during the start-up scan, looked at now that it is reported. */
  private lookAtScanEvents(): void {
    const { children, folders, ignoreFile } = this.scanEvents;
    this.scanEvents.ignoreFile = false;
    if (ignoreFile) this.ignoreFileChanged();
    for (const rel of children) {
      const [dir] = split(rel);
      if (folders.has(dir) || !this.tree.hasFolder(dir) || this.ignore.ignores(rel)) continue;
      this.settle(rel);
    }
    for (const dir of folders) if (this.tree.hasFolder(dir)) this.listFolder(dir);
    children.clear();
    folders.clear();
  }

  /** Events in each folder since it was last listed, for folders that see many (rel → count, timer). */
  private readonly bursts = new Map<string, { events: number; timer: NodeJS.Timeout | null }>();

  /**
   * A burst of events in one folder (thousands of files written at full speed) may overflow the
   * kernel's queue, and what overflows is lost without a word. Such a folder is listed once
   * more when its burst is over: one listing for the burst, nothing for a quiet folder.
   */
  private countBurst(dir: string): void {
    let burst = this.bursts.get(dir);
    if (!burst) {
      burst = { events: 0, timer: null };
      this.bursts.set(dir, burst);
    }
    burst.events++;
    if (burst.events < BURST_EVENTS) return;
    if (burst.timer) clearTimeout(burst.timer);
    burst.timer = setTimeout(() => {
      this.bursts.delete(dir);
      if (this.live) this.listFolder(dir);
    }, BURST_QUIET_MS);
  }

  /** The child is looked at once no event about it came for settle_ms (at once when 0). */
  private settle(rel: string): void {
    const pending = this.settling.get(rel);
    if (pending) clearTimeout(pending);
    const timer = setTimeout(() => {
      this.settling.delete(rel);
      this.look(rel);
    }, this.settleMs);
    this.settling.set(rel, timer);
  }

  /** Looks at once at every settling child that no longer exists. */
  private lookAtVanished(): void {
    for (const [rel, timer] of this.settling) {
      if (fs.existsSync(path.join(this.root, rel))) continue;
      clearTimeout(timer);
      this.settling.delete(rel);
      this.look(rel);
    }
  }

  /** Looks at one child of a known folder and reports how it differs from what is known. */
  private look(rel: string): void {
    if (!this.live) return;
    const slash = rel.lastIndexOf('/');
    const dir = slash < 0 ? '' : rel.slice(0, slash);
    if (!this.tree.hasFolder(dir)) return;
    let s: fs.Stats | null;
    try {
      s = fs.lstatSync(path.join(this.root, rel));
    } catch {
      s = null;
    }
    if (s && s.isFile() && this.settleMs > 0 && Date.now() - s.mtimeMs < this.settleMs) {
      // Written within settle_ms though no event said so (events merged, or a clock step):
      // not settled yet.
      this.settle(rel);
      return;
    }
    this.apply(rel, s);
  }

  /** What `rel` is now (`s`, null when gone) against what is known of it. */
  private apply(rel: string, s: fs.Stats | null): void {
    // Never known, never reported (patterns added later made the tree forget what they match).
    if (this.ignore.ignores(rel, s?.isDirectory() ?? false)) return;
    const wasFile = this.tree.getFile(rel) !== undefined;
    const wasFolder = this.tree.hasFolder(rel);
    if (s?.isDirectory()) {
      if (wasFile) this.fileGone(rel);
      if (!wasFolder) this.folderAppeared(rel, folderRecOf(s));
      else this.folderSeen(rel, folderRecOf(s));
      return;
    }
    const rec = s ? this.recordOf(rel, s) : null;
    if (!rec) {
      if (wasFile) this.fileGone(rel);
      else if (wasFolder) this.folderGone(rel);
      else this.movedAwaySet.delete(rel);
      return;
    }
    if (wasFolder) this.folderGone(rel);
    this.fileSeen(rel, rec);
  }

  /** A known folder looked at again: only a change of its permissions is news. */
  private folderSeen(rel: string, rec: FileRec): void {
    const old = this.tree.folderRec(rel);
    this.tree.addFolder(rel, rec);
    if (old && old.mode === rec.mode) return;
    const stat = statOfFolder(rec);
    if (this.consumeEcho(rel, stat)) return;
    this.ctx.report({ type: 'file.changed', entry: this.ctx.entry, path: rel, stat });
  }

  private fileSeen(rel: string, rec: FileRec): void {
    const old = this.tree.getFile(rel);
    if (old && sameContent(old, rec)) {
      if (old.ino !== rec.ino || old.ctime !== rec.ctime) this.tree.setFile(rel, rec);
      this.consumeEcho(rel, statOfRec(rec));
      return;
    }
    this.tree.setFile(rel, rec);
    const stat = statOfRec(rec);
    if (this.conflictCopies.delete(rel)) {
      this.ctx.report({ type: 'file.changed', entry: this.ctx.entry, path: rel, stat });
      return;
    }
    if (this.consumeEcho(rel, stat)) return;
    if (!old) {
      // A rename: the old name vanished a moment ago with the same inode and size. Its own
      // event may still be settling (looked at after this one): then it is looked at now.
      const pending = this.pendingUnlinks.get(rec.ino) ?? this.oldNameSettling(rel, rec);
      if (pending && pending.rec.size === rec.size && pending.rel !== rel) {
        clearTimeout(pending.timer);
        this.pendingUnlinks.delete(rec.ino);
        this.ctx.report({ type: 'file.moved', entry: this.ctx.entry, from: pending.rel, path: rel, stat });
        return;
      }
    }
    this.ctx.report({ type: 'file.changed', entry: this.ctx.entry, path: rel, stat });
  }

  /**
   * A known file of `rec`'s inode whose event is still settling: the old name of a rename whose
   * new name came first. Looked at now: once gone, it waits for its new name (pendingUnlinks).
   * Settling names are few but in a burst; past SETTLING_SCAN_MAX they are not gone through.
   */
  private oldNameSettling(rel: string, rec: FileRec): PendingUnlink | undefined {
    if (this.settling.size > SETTLING_SCAN_MAX) return undefined;
    for (const [other, timer] of this.settling) {
      if (other === rel || this.tree.getFile(other)?.ino !== rec.ino) continue;
      clearTimeout(timer);
      this.settling.delete(other);
      this.look(other);
      return this.pendingUnlinks.get(rec.ino);
    }
    return undefined;
  }

  private fileGone(rel: string): void {
    const rec = this.tree.getFile(rel)!;
    this.tree.deleteFile(rel);
    this.vanished(rel, rec);
  }

  /** A file that was known is no more: a deletion, unless a new file with its inode appears soon (a rename). */
  private vanished(rel: string, rec: FileRec): void {
    if (this.movedAwaySet.delete(rel)) return;
    if (this.consumeEcho(rel, null)) return;
    const previous = this.pendingUnlinks.get(rec.ino);
    if (previous) {
      clearTimeout(previous.timer);
      this.reportDeleted(previous.rel);
    }
    const timer = setTimeout(() => {
      this.pendingUnlinks.delete(rec.ino);
      this.reportDeleted(rel);
    }, RENAME_WINDOW_MS);
    this.pendingUnlinks.set(rec.ino, { rel, rec, timer });
  }

  private reportDeleted(rel: string): void {
    if (this.live) this.ctx.report({ type: 'file.deleted', entry: this.ctx.entry, path: rel });
  }

  /** A folder removed (or renamed away): its files are gone, each awaiting a rename's other half. */
  private folderGone(rel: string): void {
    const removed = this.tree.removeFolder(rel);
    for (const [folder] of removed.folders) this.unwatchFolder(folder);
    for (const [file, rec] of removed.files) this.vanished(file, rec);
    // The folders themselves: deepest first, once their files are said gone.
    for (const [folder] of removed.folders.reverse()) {
      if (this.movedAwaySet.delete(folder) || this.consumeEcho(folder, null)) continue;
      this.reportDeleted(folder);
    }
    if (removed.folders.length > 0) this.watchStateSoon();
  }

  /** A folder no longer known: its watch closed, its timers dropped. */
  private unwatchFolder(folder: string): void {
    const absolute = path.join(this.root, folder);
    this.polled.delete(folder);
    this.listedByChokidar.delete(absolute);
    clearTimeout(this.relists.get(folder));
    this.relists.delete(folder);
    // Its watch closed, without unwatch(): that would also ignore the path from now on, and
    // every later ignore check would test one more pattern.
    (this.watcher as unknown as { _closePath?: (p: string) => void })?._closePath?.(absolute);
  }

  /** A new folder: watched (chokidar walks it and watches its subfolders), listed now and soon again. */
  private folderAppeared(rel: string, rec: FileRec): void {
    // Files moved into it may have vanished elsewhere with their own events still settling: those
    // are looked at first, so that a file found here with their inode is a move.
    this.lookAtVanished();
    this.folderFound(rel, rec);
    this.relistSoon(rel);
    this.watcher?.add(path.join(this.root, rel));
    this.listTree(rel);
    this.watchStateSoon();
  }

  /** A folder not known before: recorded and reported (unless we made it). */
  private folderFound(rel: string, rec: FileRec): void {
    this.tree.addFolder(rel, rec);
    const stat = statOfFolder(rec);
    if (this.consumeEcho(rel, stat)) return;
    this.ctx.report({ type: 'file.changed', entry: this.ctx.entry, path: rel, stat });
  }

  /**
   * Lists a new folder again once chokidar's watch of it is up (files written into it before
   * that have no event), however long that takes on a busy machine; at the latest after 5 s.
   */
  private relistSoon(rel: string): void {
    clearTimeout(this.relists.get(rel));
    const absolute = path.join(this.root, rel);
    const closers = (this.watcher as unknown as { _closers?: Map<string, unknown> } | null)?._closers;
    const started = Date.now();
    const tick = () => {
      if (!this.live || !this.tree.hasFolder(rel)) {
        this.relists.delete(rel);
        return;
      }
      const watched = !closers || closers.has(absolute) || this.polled.has(rel);
      if (!watched && Date.now() - started < NEW_FOLDER_WATCH_MAX_MS) {
        this.relists.set(rel, setTimeout(tick, NEW_FOLDER_RELIST_MS));
        return;
      }
      this.relists.delete(rel);
      this.listTree(rel);
    };
    this.relists.set(rel, setTimeout(tick, NEW_FOLDER_RELIST_MS));
  }

  /** Lists `rel` and every folder under it, synchronously, reporting what differs. */
  private listTree(rel: string): void {
    const queue = [rel];
    while (queue.length > 0) queue.push(...this.listFolder(queue.pop()!));
  }

  /**
   * Lists one known folder by stat and reports how it differs from what is known: new, changed
   * and vanished files, new and vanished folders. Returns its subfolders.
   */
  private listFolder(rel: string): string[] {
    if (!this.tree.hasFolder(rel)) return [];
    const absolute = path.join(this.root, rel);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(absolute, { withFileTypes: true });
    } catch (err) {
      // Gone (ENOENT, ENOTDIR): a removal. Anything else (a path longer than PATH_MAX, no
      // permission) is said, once, as chokidar's errors are.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') this.warnOnce(`watcher error: ${(err as Error).message}`);
      if (rel !== '') this.apply(rel, null);
      return [];
    }
    const seen = new Set<string>();
    for (const e of entries) if (!isInternalName(e.name)) seen.add(e.name);
    // What vanished first: a file renamed within the folder, or into a new subfolder listed next,
    // is then paired with its new name as a move (a folder listed because its events could not
    // be had, before its watch was up, has none to pair them).
    for (const name of this.tree.childNames(rel)) {
      if (seen.has(name)) continue;
      const child = joinRel(rel, name);
      if (this.settling.has(child)) continue; // its own events will say
      this.apply(child, null);
    }
    const subfolders: string[] = [];
    for (const e of entries) {
      if (isInternalName(e.name)) continue;
      const child = joinRel(rel, e.name);
      if (this.ignore.ignores(child, e.isDirectory())) continue;
      if (e.isDirectory()) {
        const stats = this.lstatOrSay(path.join(absolute, e.name));
        if (!stats?.isDirectory()) continue; // gone meanwhile: its parent's events will say
        if (this.tree.hasFolder(child)) {
          this.folderSeen(child, folderRecOf(stats));
        } else {
          // As in folderAppeared: what vanished with its events still settling (a folder renamed
          // into this one) is looked at first, so that the files listed here pair with it as moves.
          this.lookAtVanished();
          // Watched by the listing of its parent's new folder (chokidar walks down), or now.
          if (this.tree.getFile(child)) this.fileGone(child);
          this.folderFound(child, folderRecOf(stats));
          if (!this.isUnderNewFolder(child)) this.watcher?.add(path.join(this.root, child));
          this.relistSoon(child);
        }
        subfolders.push(child);
        continue;
      }
      this.apply(child, this.lstatOrSay(path.join(absolute, e.name)));
    }
    return subfolders;
  }

  /** Whether a folder being relisted above `rel` was watched as a whole (chokidar recursed). */
  private isUnderNewFolder(rel: string): boolean {
    for (let r = rel; r.includes('/'); ) {
      r = r.slice(0, r.lastIndexOf('/'));
      if (this.relists.has(r)) return true;
    }
    return false;
  }

  // ---- ignore patterns ----

  /** `.ferryignore` changed: read again once its events settle. */
  private ignoreFileChanged(): void {
    if (this.ignoreTimer) clearTimeout(this.ignoreTimer);
    this.ignoreTimer = setTimeout(() => {
      this.ignoreTimer = null;
      this.reloadIgnore();
    }, Math.max(this.settleMs, 20));
  }

  /**
   * New patterns: what they now ignore is forgotten here without a word (the daemon, told the
   * patterns, stops counting this entry as its holder and owner: nothing is deleted anywhere),
   * and what they no longer ignore is found by a rescan, reported as any new file.
   */
  private reloadIgnore(): void {
    if (!this.live || !this.ignore.load()) return;
    const patterns = this.ignore.patterns;
    this.ctx.log('info', `ignore patterns changed: ${patterns.length} in force`, { ignore: patterns });
    for (const [folder] of [...this.tree.allFolders()]) {
      if (!this.tree.hasFolder(folder) || !this.ignore.ignores(folder, true)) continue;
      for (const [gone] of this.tree.removeFolder(folder).folders) this.unwatchFolder(gone);
    }
    for (const [file] of [...this.tree.allFiles()]) if (this.ignore.ignores(file)) this.tree.deleteFile(file);
    this.ctx.ignoreChanged?.(patterns);
    this.watchStateSoon();
    void this.rescan();
  }

  private async rescanTree(): Promise<void> {
    const queue = [''];
    while (queue.length > 0 && this.live) {
      queue.push(...this.listFolder(queue.pop()!));
      // A turn of the event loop between folders: the worker keeps answering and copying.
      await new Promise((r) => setImmediate(r));
    }
  }

  private pollUnwatched(): void {
    if (!this.live) return;
    for (const rel of [...this.polled.keys()]) this.listFolder(rel);
  }

  // ---- echoes of our own writes ----

  /** True when the change is the echo of our own write or removal. */
  private consumeEcho(rel: string, stat: FileStat | null): boolean {
    const echo = this.expected.get(rel);
    if (!echo) return false;
    const matches =
      echo.stat === null ? stat === null : stat !== null && echo.stat.size === stat.size && echo.stat.mtime === stat.mtime;
    if (!matches) return false;
    this.expected.delete(rel);
    return true;
  }

  private forgetOldEchoes(): void {
    const now = Date.now();
    for (const [rel, echo] of this.expected) if (echo.until < now) this.expected.delete(rel);
    // A burst is that many events within this period: slow trickles are forgotten.
    for (const [dir, burst] of this.bursts) if (!burst.timer) this.bursts.delete(dir);
  }

  // ---- the state of watching ----

  private watchStateTimer: NodeJS.Timeout | null = null;

  private watchStateSoon(): void {
    if (!this.live || this.watchStateTimer) return;
    this.watchStateTimer = setTimeout(() => {
      this.watchStateTimer = null;
      this.reportWatchState();
    }, 100);
  }

  private reportWatchState(): void {
    const state = this.watchState();
    const key = JSON.stringify(state);
    if (key === this.lastWatchState) return;
    this.lastWatchState = key;
    if (state.reason) this.ctx.log('warn', state.reason);
    this.ctx.watchState?.(state);
  }

  private every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.timers.push(timer);
  }
}

function recFromStat(stat: FileStat): FileRec {
  return { size: stat.size, mtime: stat.mtime, ctime: stat.ctime ?? 0, ino: Number(stat.ino ?? 0), mode: stat.mode ?? 0 };
}

function readNumber(file: string): number | null {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}
