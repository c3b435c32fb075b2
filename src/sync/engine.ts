import type { Logger } from 'pino';
import type { Rule } from '../../machines/rules.js';
import { isFolderStat, type FileStat, type ScanDigest, type ScannedFile, type WorkerReport } from '../../machines/reports.js';
import type { Catalogue, DispatchRow, FileRecord, FinishedRow, JobKind, JobRecord, ReplicaRecord, ScanDiffRow } from '../store/catalogue.js';
import type { JobCommand, SourceRef } from '../drivers/protocol.js';
import { fidOf, hasInternalSegment, unsafeReason } from '../paths.js';
import type { EntryConfig } from '../entry-config.js';
import { computeOwners } from '../rules/owners.js';
import type { FerryEvent } from '../observe/event-log.js';
import { EntryIgnores } from './entry-ignores.js';

type FileEvent = Extract<FerryEvent, { type: 'file' }>;

export type { EntryConfig } from '../entry-config.js';

/** Fewer deletions than this never count as a mass deletion. */
export const MASS_DELETION_MIN = 10;

/**
 * A rescan found most of an entry's files gone (an unmounted disk, a wrong root): applying it
 * would delete them everywhere. The entry is stopped with this reason until started with force.
 */
export class MassDeletionRefused extends Error {
  constructor(
    readonly entry: string,
    readonly missing: number,
    readonly total: number,
  ) {
    super(
      `the rescan of ${entry} finds ${missing} of its ${total} files gone; refusing to delete them elsewhere ` +
        `(check the storage, then start it with --force to apply the deletions)`,
    );
    this.name = 'MassDeletionRefused';
  }
}

/**
 * A start-up scan left out the files of folders whose digests were unchanged, but the store
 * changed some of those folders since it gave the worker their digests: the scan cannot be
 * compared with the store. Nothing of it is recorded; the entry starts again, and its next
 * scan lists every file.
 */
export class ScanStale extends Error {
  constructor(
    readonly entry: string,
    readonly folders: number,
  ) {
    super(`the scan of ${entry} left out ${folders} folders the store changed meanwhile; starting it again to list every file`);
    this.name = 'ScanStale';
  }
}

/** For each file whose owners a set of rules would change: the entries it gains and loses. */
export type RulesDiff = { fid: string; filename: string; gain: string[]; lose: string[] }[];

type Stat = Pick<ReplicaRecord, 'size' | 'mtime' | 'ino' | 'mode' | 'ctime'>;
/** The same content as far as a stat tells. */
const sameStat = (a: Stat, b: Stat) => a.size === b.size && a.mtime === b.mtime;
/** Permission bits that both sides know and that differ: a change of the file (a chmod). */
const modeChanged = (known: Stat, now: Stat) => known.mode != null && now.mode != null && known.mode !== now.mode;
/** What a stat says beyond the content and the mode, recorded without being a change: the inode, the ctime, a mode learnt. */
const detailsChanged = (known: Stat, now: Stat) =>
  known.ino !== now.ino || (now.ctime != null && known.ctime !== now.ctime) || (now.mode != null && known.mode == null);
const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
/** A replica's stat as a job carries it (the ctime stays in the store). */
const statOf = (r: ReplicaRecord): FileStat =>
  r.mode == null ? { size: r.size, mtime: r.mtime, ino: r.ino } : { size: r.size, mtime: r.mtime, ino: r.ino, mode: r.mode };

type JobFinished = Extract<WorkerReport, { type: 'job.finished' }>;
type JobOutcome = JobFinished['outcome'];
/** A file the store never knew, as a scan lists it. */
type NewFileRow = Pick<ScanDiffRow, 'path' | 'size' | 'mtime' | 'ino' | 'mode' | 'ctime'>;
const DONE = { upload: 'copied', delete: 'deleted', move: 'moved' } as const;
/** Rows of a rescan's comparison read at a time. */
const SCAN_PAGE = 1000;
/** The rows of a dispatch's first page of queued jobs; each next page is 4 times larger. */
const FIRST_DISPATCH_PAGE = 16;

/** A scanned file's stat as a report gives it (what the store lacks is left out). */
function scannedStat(row: ScanDiffRow): FileStat {
  const stat: FileStat = { size: row.size, mtime: row.mtime, ino: row.ino };
  if (row.mode !== null) stat.mode = row.mode;
  if (row.ctime !== null) stat.ctime = row.ctime;
  return stat;
}

function withMode(stat: FileStat, mode: number | null): FileStat {
  if (mode !== null) stat.mode = mode;
  return stat;
}

/** Delay before retrying a failed job: 1 s, 2 s, 4 s … capped at 60 s. */
export function retryDelay(attempts: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, attempts - 1));
}

/**
 * The sync logic over the catalogue. It records what workers report, computes each file's
 * owners from the active rules, and keeps one job per (entry, file) queued for what must happen.
 * Every public method returns the names of the entries that have new work.
 */
export class SyncEngine {
  private rules: Rule[];
  /** The share of an entry's files a rescan or a reload may delete before the entry is paused. */
  maxDeleteShare = 0.5;
  /** Each entry's ignore patterns: the last its worker reported, else the setup's. */
  readonly ignoring: EntryIgnores;

  constructor(
    private readonly store: Catalogue,
    private readonly entries: ReadonlyMap<string, EntryConfig>,
    rules: Rule[],
    private readonly log: Logger,
    /** Told of every change recorded and every job done, for the event stream. */
    private readonly notify: (event: FileEvent) => void = () => {},
  ) {
    this.rules = rules;
    this.ignoring = new EntryIgnores([...entries.values()].map((e) => [e.name, store.ignores.get(e.name) ?? e.ignore ?? []]));
  }

  get activeRules(): Rule[] {
    return this.rules;
  }

  /**
   * Records one report in its own transaction and returns the entries with new work. A scan
   * that would delete most of the entry's files throws MassDeletionRefused and changes nothing.
   */
  handle(report: WorkerReport): string[] {
    const touched = new Set<string>();
    try {
      this.store.transaction(() => this.apply(report, touched));
    } catch (err) {
      if (err instanceof MassDeletionRefused || err instanceof ScanStale) this.store.scanEnd(err.entry);
      throw err;
    } finally {
      this.logDone();
    }
    return [...touched];
  }

  /**
   * Records the reports of one worker message in one transaction, in order; the finished jobs
   * among them in a few set-based statements. A report that fails (a refused scan) is rolled
   * back alone: the others are recorded. Returns the entries with new work, and the refusal.
   */
  handleBatch(reports: readonly WorkerReport[]): { touched: string[]; refused: MassDeletionRefused | null; stale: ScanStale | null } {
    const touched = new Set<string>();
    let refused: MassDeletionRefused | null = null;
    let stale: ScanStale | null = null;
    this.store.transaction(() => {
      let finished: JobFinished[] = [];
      const flush = () => {
        if (finished.length === 0) return;
        const batch = finished;
        finished = [];
        this.finishedBatch(batch[0]!.entry, batch, touched);
      };
      for (const report of reports) {
        if (report.type === 'job.finished') {
          if (finished.length > 0 && finished[0]!.entry !== report.entry) flush();
          finished.push(report);
          continue;
        }
        flush();
        try {
          this.store.transaction(() => this.apply(report, touched));
        } catch (err) {
          if (!(err instanceof MassDeletionRefused || err instanceof ScanStale)) throw err;
          this.store.scanEnd(err.entry);
          if (err instanceof ScanStale) stale = err;
          else refused = err;
        }
      }
      flush();
    });
    this.logDone();
    return { touched: [...touched], refused, stale };
  }

  private apply(report: WorkerReport, touched: Set<string>): void {
    switch (report.type) {
      case 'file.changed':
        this.changed(report.entry, report.path, report.stat, touched);
        break;
      case 'file.deleted':
        this.deleted(report.entry, report.path, touched);
        break;
      case 'file.moved':
        this.moved(report.entry, report.from, report.path, report.stat, touched);
        break;
      case 'scan.chunk':
        this.scanAdd(report.entry, report.files, touched);
        break;
      case 'entry.scanned':
        this.scanned(report.entry, report.files, report.force === true, touched, report.digests);
        break;
      case 'job.finished':
        this.finished(report.entry, report.jobId, report.outcome, touched);
        break;
    }
  }

  /** Entries whose next scan lists every file: their last one left out folders that changed meanwhile. */
  private readonly listEverything = new Set<string>();

  /**
   * The digest of each folder of `entry`'s replicas, for its worker's start-up scan to leave out
   * the files of every folder it finds the same (see folder-digest.ts). None after a scan that
   * could not be compared (ScanStale): the next one lists every file.
   */
  folderDigests(entry: string): [string, string][] {
    if (this.listEverything.delete(entry)) return [];
    return this.store.folderDigests(entry);
  }

  /**
   * A worker of `entry` starts: whatever part of a scan its previous worker sent is forgotten,
   * and the jobs it was running and never reported (a message lost when the store could not
   * record it, a worker killed) go back to the queue.
   */
  workerStarted(entry: string): void {
    this.store.scanEnd(entry);
    this.scanParts.delete(entry);
    this.earlyNew.delete(entry);
    this.store.requeueRunning(entry);
  }

  /** Makes `rules` the active rules and recomputes every known file under them. */
  applyRules(rules: Rule[]): string[] {
    const touched = new Set<string>();
    this.store.transaction(() => {
      this.rules = rules;
      this.store.putRules('active', rules);
      for (const fid of this.store.allFids()) this.reconcile(fid, touched);
    });
    return [...touched];
  }

  /**
   * What applying `rules` would change, without changing anything: for each file whose owners
   * would differ from its current ones, the entries it would gain and lose.
   */
  diff(rules: Rule[]): RulesDiff {
    const changes: RulesDiff = [];
    for (const file of this.store.listFiles(0, Number.MAX_SAFE_INTEGER)) {
      const holders = new Set(this.store.replicasOf(file.fid).map((r) => r.entry));
      for (const job of this.store.jobsOf(file.fid)) if (job.kind === 'move') holders.add(job.entry);
      const next = this.ignoring.without(
        computeOwners(file.filename, holders, rules).filter((n) => this.entries.has(n)),
        file.filename,
      );
      const gain = next.filter((n) => !file.owners.includes(n));
      const lose = file.owners.filter((n) => !next.includes(n));
      if (gain.length || lose.length) changes.push({ fid: file.fid, filename: file.filename, gain, lose });
    }
    return changes;
  }

  private accept(entry: string, path: string, folder = false): boolean {
    const reason = unsafeReason(path) ?? (hasInternalSegment(path) ? "it is one of Ferry's own names" : null);
    if (reason) this.log.warn({ entry, path }, `ignored a reported path: ${reason}`);
    // A report that crossed the entry's new patterns on its way: the entry no longer holds it.
    return reason === null && !this.ignoring.ignores(entry, path, folder);
  }

  /**
   * An entry's ignore patterns in force, as its worker reports them (at start, before its scan,
   * and when they change): for every file whose fate there they change, the entry stops (or
   * starts) counting as its holder and owner. Its copy of a file now ignored stays where it is,
   * forgotten by the store: nothing is deleted anywhere because of it, and a file no other entry
   * holds leaves the catalogue. Returns the entries with new work.
   */
  setIgnore(entry: string, patterns: readonly string[]): string[] {
    const touched = new Set<string>();
    const stored = this.store.ignores.get(entry);
    const change = this.ignoring.set(entry, patterns);
    if (!change && stored !== null) return [];
    this.store.transaction(() => {
      this.store.ignores.put(entry, patterns);
      if (!change) return;
      const { before, after } = change;
      for (const { fid, filename, folder } of this.store.allNames()) {
        const was = before?.ignores(filename, folder) ?? false;
        const is = after?.ignores(filename, folder) ?? false;
        if (was === is) continue;
        if (is) {
          this.store.deleteReplica(entry, fid);
          const job = this.store.job(entry, fid);
          if (job && job.state === 'queued') this.store.deleteJob(job.id);
          if (this.store.replicasOf(fid).length === 0) {
            // No entry holds it any more: it leaves the catalogue, as if never found.
            for (const j of this.store.jobsOf(fid)) if (j.state === 'queued') this.store.deleteJob(j.id);
            if (this.store.jobsOf(fid).length === 0) this.store.deleteFile(fid);
            continue;
          }
        }
        this.reconcile(fid, touched);
      }
    });
    if (change) this.log.debug({ entry, ignore: patterns }, `${entry} ignores ${patterns.length} pattern${patterns.length === 1 ? '' : 's'}`);
    return [...touched];
  }

  private changed(entry: string, path: string, stat: FileStat, touched: Set<string>): void {
    if (!this.accept(entry, path, isFolderStat(stat))) return;
    const fid = fidOf(path);
    const file = this.store.file(fid);
    const replica = this.store.replica(entry, fid);
    if (replica && sameStat(replica, stat) && !modeChanged(replica, stat)) {
      // The same file: a new inode (an atomic save of the same bytes, a copy of ours) or ctime
      // is recorded, nothing more.
      if (detailsChanged(replica, stat)) this.store.putReplica({ ...replica, ...stat });
      return;
    }
    // A folder with the name of a file another entry holds: the file wins (it is what a user
    // wrote); the folder is not synced (its contents are, and fail where the file is).
    if (isFolderStat(stat) && file && !file.deleted && !file.folder) {
      if (!replica) this.log.warn({ entry, path }, `the folder ${path} in ${entry} has the name of a file held elsewhere; the folder is not synced`);
      return;
    }
    // A folder found where the store knows that folder already (made here by a copy's mkdir, or
    // by the same mkdir in two entries): this entry holds the latest version, nothing to do.
    if (isFolderStat(stat) && file?.folder && !file.deleted && (!replica || replica.version < file.version)) {
      this.store.putReplica({ entry, fid, filename: path, version: file.version, ...stat });
      this.reconcile(fid, touched, false, file);
      return;
    }
    // An edit of a copy that was behind, or a file made here while another entry made its own
    // (both roots held it at the first start): two changes neither entry saw of the other.
    const concurrent = !!(file && !file.deleted && (!replica || replica.version < file.version));
    if (concurrent && !this.newerThanLatest(entry, stat, file!)) {
      // The latest version is the newer one: it keeps the name everywhere, and this entry's edit
      // becomes the conflict copy, made in this entry (the upload moves it aside first).
      this.store.putReplica({ entry, fid, filename: path, version: replica?.version ?? 0, ...stat });
      this.notify({ type: 'file', kind: 'changed', entry, path });
      this.reconcile(fid, touched, entry, file);
      return;
    }
    const version = (file?.version ?? 0) + 1;
    const record: FileRecord = {
      fid,
      filename: path,
      size: stat.size,
      version,
      owners: file?.owners ?? [],
      uptodate: [entry],
      deleted: false,
      ...(isFolderStat(stat) ? { folder: true } : {}),
    };
    this.store.putFile(record);
    this.store.putReplica({ entry, fid, filename: path, version, ...stat });
    this.notify({ type: 'file', kind: 'changed', entry, path });
    // The version the others hold is kept as a conflict copy where it is replaced.
    this.reconcile(fid, touched, concurrent, record);
  }

  /**
   * Of two changes neither entry saw of the other, whether `entry`'s (with `stat`) is the newer
   * one: the later modification time wins (as Syncthing decides), compared with the latest
   * version's as an entry holding it has it; on a tie the smaller entry name wins, so that the
   * outcome does not depend on which change was reported first. A latest version no entry
   * holds any more loses to any change.
   */
  private newerThanLatest(entry: string, stat: FileStat, file: FileRecord): boolean {
    // Replicas come in entry order: the first holder of the latest version is the smallest name.
    const holder = this.store.replicasOf(file.fid).find((r) => r.version === file.version && r.entry !== entry);
    if (!holder) return true;
    // Whole milliseconds: a copy's mtime is set from the source's to the millisecond.
    const mine = Math.floor(stat.mtime);
    const theirs = Math.floor(holder.mtime);
    if (mine !== theirs) return mine > theirs;
    return entry < holder.entry;
  }

  private deleted(entry: string, path: string, touched: Set<string>): void {
    if (!this.accept(entry, path)) return;
    const fid = fidOf(path);
    const replica = this.store.replica(entry, fid);
    const file = this.store.file(fid);
    if (!replica || !file) return;
    this.store.deleteReplica(entry, fid);
    if (!file.deleted && replica.version === file.version) {
      this.store.putFile({ ...file, version: file.version + 1, deleted: true });
      this.notify({ type: 'file', kind: 'deleted', entry, path });
    }
    // A deleted copy that was behind is not a deletion of the latest version: it is replaced.
    this.reconcile(fid, touched);
  }

  private moved(entry: string, from: string, to: string, stat: FileStat, touched: Set<string>): void {
    if (!this.accept(entry, from) || !this.accept(entry, to)) return;
    const fromFid = fidOf(from);
    const toFid = fidOf(to);
    const replica = this.store.replica(entry, fromFid);
    const source = this.store.file(fromFid);
    const target = this.store.file(toFid);
    const clean =
      replica && source && !source.deleted && replica.version === source.version && replica.size === stat.size;
    if (!clean || (target && !target.deleted)) {
      // Not a plain rename of the latest version onto a free name: a deletion and a change.
      this.deleted(entry, from, touched);
      this.changed(entry, to, stat, touched);
      return;
    }
    const version = (target?.version ?? 0) + 1;
    this.store.putFile({
      fid: toFid,
      filename: to,
      size: stat.size,
      version,
      owners: [],
      uptodate: [entry],
      deleted: false,
    });
    this.store.putReplica({ entry, fid: toFid, filename: to, version, ...stat });
    this.store.deleteReplica(entry, fromFid);
    this.store.putFile({ ...source, version: source.version + 1, deleted: true });
    this.notify({ type: 'file', kind: 'moved', entry, path: to, from });
    for (const other of this.store.replicasOf(fromFid)) {
      if (other.version !== source.version) continue;
      // An entry that ignores the new name gets no copy of it: its old one is deleted, as a version.
      if (this.ignoring.ignores(other.entry, to)) continue;
      if (this.store.replica(other.entry, toFid)) continue;
      this.putJob(other.entry, toFid, 'move', version, false, touched, from);
    }
    this.reconcile(fromFid, touched);
    this.reconcile(toFid, touched);
  }

  /** Whether deleting `count` of an entry's `total` files is enough to stop and ask. */
  isMassDeletion(count: number, total: number): boolean {
    return count >= MASS_DELETION_MIN && count > total * this.maxDeleteShare;
  }

  /** Reports of each entry's running scan so far (for its log line). */
  private readonly scanParts = new Map<string, number>();

  /**
   * Per entry whose scan runs: how many files its chunks recorded at once as new (see
   * addEarly), or null when they cannot be (the entry held files when the scan began).
   */
  private readonly earlyNew = new Map<string, number | null>();

  /**
   * Adds files to the entry's running scan (in the store, not in memory). With `touched` (a
   * chunk before the scan's end), those the store never knew are recorded at once (addEarly).
   */
  private scanAdd(entry: string, files: readonly ScannedFile[], touched?: Set<string>): void {
    this.scanParts.set(entry, (this.scanParts.get(entry) ?? 0) + 1);
    let safe = true;
    for (const f of files) safe &&= unsafeReason(f.path) === null && !hasInternalSegment(f.path);
    if (safe && this.ignoring.any) for (const f of files) safe &&= !this.ignoring.ignores(entry, f.path, isFolderStat(f));
    const accepted = safe ? files : files.filter((f) => this.accept(entry, f.path, isFolderStat(f)));
    this.store.scanAdd(entry, accepted);
    if (touched) this.addEarly(entry, accepted, touched);
  }

  /**
   * A chunk of the scan of an entry that held nothing when its scan began (its first sync):
   * the files in it that the store never knew are recorded now, as the scan's end would record
   * them, so that the other entries copy them while the rest of the tree is walked. Nothing of
   * such a scan can be gone or moved, nor refused, and the end's comparison finds these as
   * they are; the files the store knows (from another entry) wait for it.
   */
  private addEarly(entry: string, files: readonly ScannedFile[], touched: Set<string>): void {
    let added = this.earlyNew.get(entry);
    if (added === undefined) {
      added = this.store.holdsAny(entry) ? null : 0;
      this.earlyNew.set(entry, added);
    }
    if (added === null) return;
    const rows: NewFileRow[] = [];
    for (const f of files) {
      if (this.store.knowsName(f.path)) continue;
      rows.push({ path: f.path, size: f.size, mtime: f.mtime, ino: f.ino, mode: f.mode ?? null, ctime: f.ctime ?? null });
    }
    this.addNewFiles(entry, rows, touched);
    this.earlyNew.set(entry, added + rows.length);
  }

  /**
   * The end of a scan: what the entry holds (every chunk and these last files) compared with
   * what the store says it holds, in set-based SQL. A start where nothing changed costs one
   * pass over the replicas, and no work per file.
   *
   * With `digests`, the worker left out the files of each folder whose digest was the one of
   * the entry's replicas there (`listed` false; see folderDigests): none of their replicas is
   * compared or gone.
   */
  private scanned(
    entry: string,
    files: readonly ScannedFile[],
    force: boolean,
    touched: Set<string>,
    digests?: readonly ScanDigest[],
  ): void {
    this.scanAdd(entry, files);
    const parts = this.scanParts.get(entry) ?? 1;
    this.scanParts.delete(entry);
    const early = this.earlyNew.get(entry) ?? 0;
    this.earlyNew.delete(entry);
    const same = digests?.filter((d) => !d.listed) ?? [];
    /** Whether every folder that holds a replica of the entry was left out: then none is gone. */
    let everyFolderSame = false;
    if (same.length > 0) {
      // Each digest must still be the replicas': a write to a replica in its folder since the
      // worker was given it dropped it (a trigger).
      const stored = new Map(this.store.scanDigests(entry));
      const stale = same.filter((d) => stored.get(d.folder) !== d.digest).length;
      if (stale > 0) {
        this.listEverything.add(entry);
        throw new ScanStale(entry, stale);
      }
      this.store.scanSame(entry, same.map((d) => d.folder));
      // The digests are complete (no replica written since they were all computed): each folder
      // holding a replica has one.
      everyFolderSame = same.length === stored.size && this.store.digestsComplete(entry);
    }
    const listed = this.store.scanSize(entry);
    let fresh = early;
    let differ = 0;
    let moves = 0;
    // What the store says the entry held but is gone: moved (same inode and size) or deleted.
    const { gone, moved } = everyFolderSame ? { gone: 0, moved: 0 } : this.store.scanGoneCounts(entry);
    if (gone > 0) {
      const total = this.store.countReplicas(entry);
      if (!force && this.isMassDeletion(gone - moved, total)) throw new MassDeletionRefused(entry, gone - moved, total);
      const targets = new Set<string>();
      const deletions: string[] = [];
      for (const row of this.store.scanGone(entry)) {
        if (row.movedTo !== null && !targets.has(row.movedTo)) {
          targets.add(row.movedTo);
          const to = this.store.scanned(entry, row.movedTo);
          if (to) {
            this.moved(entry, row.filename, row.movedTo, to, touched);
            moves++;
            continue;
          }
        }
        deletions.push(row.filename);
      }
      for (const filename of deletions) this.deleted(entry, filename, touched);
      differ += deletions.length;
    }
    // Then every listed file that differs from the entry's replica, or that it did not hold.
    for (let after = ''; ; ) {
      const page = this.store.scanDiff(entry, after, SCAN_PAGE);
      const batch: ScanDiffRow[] = [];
      for (const row of page) {
        after = row.path;
        const stat = scannedStat(row);
        if (row.rfid === null) {
          // New to this entry: a file the store never knew is recorded with others in a batch.
          if (row.fid === null) batch.push(row);
          else this.changed(entry, row.path, stat, touched);
          continue;
        }
        const held: Stat = { size: row.rsize!, mtime: row.rmtime!, ino: row.rino, mode: row.rmode, ctime: row.rctime };
        if (!sameStat(held, stat) || modeChanged(held, stat)) this.changed(entry, row.path, stat, touched);
        else {
          this.store.putReplica({
            entry,
            fid: row.rfid,
            filename: row.path,
            version: row.rversion!,
            ...stat,
            mode: stat.mode ?? row.rmode,
            ctime: stat.ctime ?? row.rctime,
          });
        }
      }
      this.addNewFiles(entry, batch, touched);
      fresh += batch.length;
      differ += page.length - batch.length;
      if (page.length < SCAN_PAGE) break;
    }
    this.store.scanEnd(entry);
    const unchanged = same.length > 0 ? `, ${same.length} unchanged folders left out` : '';
    this.log.info(
      { entry, files: listed, parts, unchangedFolders: same.length, new: fresh, moved: moves, gone: gone - moves, other: differ - (gone - moves) },
      `scanned ${entry}: ${listed} files (in ${parts} part${parts === 1 ? '' : 's'})${unchanged}`,
    );
  }

  /**
   * Files the store did not know at all, found in `entry`: what `changed` would record for each
   * (version 1, held by the entry, an upload to every other owner), in a few statements.
   */
  private addNewFiles(entry: string, rows: readonly NewFileRow[], touched: Set<string>): void {
    if (rows.length === 0) return;
    const files: unknown[][] = [];
    const replicas: unknown[][] = [];
    const uploads: [string, string][] = [];
    for (const row of rows) {
      const fid = fidOf(row.path);
      const owners = this.ownersOfNew(row.path, entry, isFolderStat(row));
      // The deleted column says what it is: 0 a file, 2 a folder (see the catalogue).
      files.push([fid, row.path, row.size, owners.json, owners.uptodate, isFolderStat(row) ? 2 : 0]);
      replicas.push([fid, row.path, 1, row.size, row.mtime, row.ino, row.mode, row.ctime]);
      for (const name of owners.others) {
        uploads.push([name, fid]);
        touched.add(name);
      }
      this.notify({ type: 'file', kind: 'changed', entry, path: row.path });
    }
    this.store.insertNewFiles(entry, files, replicas, uploads);
  }

  /** The owners of a file only `entry` holds (as JSON), its up-to-date entries, the owners that need it. */
  private ownersOfNew(filename: string, entry: string, folder: boolean): { json: string; uptodate: string; others: string[] } {
    const owners = this.ignoring.without(
      computeOwners(filename, [entry], this.rules).filter((n) => this.entries.has(n)),
      filename,
      folder,
    );
    const json = JSON.stringify(owners);
    const key = `${entry}\n${json}`;
    let cached = this.newOwners.get(key);
    if (!cached) {
      if (this.newOwners.size > 1000) this.newOwners.clear();
      cached = {
        json,
        uptodate: JSON.stringify(owners.includes(entry) ? [entry] : []),
        others: owners.filter((n) => n !== entry),
      };
      this.newOwners.set(key, cached);
    }
    return cached;
  }

  private readonly newOwners = new Map<string, { json: string; uptodate: string; others: string[] }>();

  private finished(
    entry: string,
    jobId: number,
    outcome: Extract<WorkerReport, { type: 'job.finished' }>['outcome'],
    touched: Set<string>,
  ): void {
    const job = this.store.jobById(jobId);
    if (!job || job.entry !== entry) {
      // Folders the job made are there all the same: told as its watcher would have told them.
      for (const made of outcome.folders ?? []) this.changed(entry, made.path, made.stat, touched);
      return;
    }
    for (const made of outcome.folders ?? []) this.folderMade(entry, job.fid, made.path, made.stat, touched);
    const file = this.store.file(job.fid);
    if (!outcome.ok) {
      const attempts = job.attempts + 1;
      // Stale: the storage changed under the job and its watcher is about to say how; the job
      // waits briefly, and is replaced as soon as that report changes what must be done.
      const stale = outcome.reason === 'stale';
      if (stale) this.log.debug({ entry, job: job.id, kind: job.kind }, `job stale: ${outcome.message}`);
      else this.log.warn({ entry, job: job.id, kind: job.kind, attempts }, `job failed: ${outcome.message}`);
      this.store.updateJob({
        ...job,
        state: 'queued',
        attempts,
        notBefore: Date.now() + (stale ? Math.min(2000, 100 * attempts) : retryDelay(attempts)),
        // A stale job is not a failure of the storage: only errors are reported as failing.
        lastError: stale ? job.lastError : outcome.message,
      });
      if (stale) this.reconcile(job.fid, touched);
      return;
    } else {
      this.store.deleteJob(job.id);
      this.jobDone(entry, job.kind, file?.filename ?? job.fid, job.fromFilename, file?.folder === true);
      if (job.kind === 'delete') {
        this.store.deleteReplica(entry, job.fid);
      } else if (file && outcome.stat) {
        this.store.putReplica({ entry, fid: job.fid, filename: file.filename, version: job.version, ...outcome.stat });
        if (job.kind === 'move' && job.fromFilename !== null) this.store.deleteReplica(entry, fidOf(job.fromFilename));
      }
    }
    // The file's row is as read above: only jobs and replicas changed since.
    this.reconcile(job.fid, touched, false, file);
    if (job.kind === 'move' && job.fromFilename !== null) this.reconcile(fidOf(job.fromFilename), touched);
    touched.add(entry);
  }

  /**
   * A folder a job of `entry` made on the way to the job's file (`fid`). Where the folder is not
   * removed elsewhere, it is recorded as the watcher's report of it would have been: as this
   * entry's copy of the folder, or as a new folder. Where the folder was removed meanwhile (or
   * the store never knew it and the job's file is gone), it is recorded as this entry's copy of
   * a removed folder, which is then removed here too, once its contents are.
   */
  private folderMade(entry: string, fid: string, path: string, stat: FileStat, touched: Set<string>): void {
    if (!this.accept(entry, path, true)) return;
    const folderFid = fidOf(path);
    let folder = this.store.file(folderFid);
    if (!folder) {
      const wanted = this.store.file(fid);
      if (wanted && !wanted.deleted) return this.changed(entry, path, stat, touched);
      folder = { fid: folderFid, filename: path, size: 0, version: 1, owners: [], uptodate: [], deleted: true, folder: true };
      this.store.putFile(folder);
    } else if (!folder.deleted) {
      return this.changed(entry, path, stat, touched);
    }
    if (this.store.replica(entry, folderFid)) return;
    this.store.putReplica({ entry, fid: folderFid, filename: path, version: folder.version - 1, ...stat });
    this.reconcile(folderFid, touched, false, folder);
  }

  /**
   * Jobs of one worker message that finished, in a few set-based statements: the common case,
   * an upload of the latest version to an owner while another owner holds it (nothing changes
   * but the job, the entry's replica and the file's up-to-date entries). Any other goes through
   * `finished`, first.
   */
  private finishedBatch(entry: string, reports: readonly JobFinished[], touched: Set<string>): void {
    const simple = (row: FinishedRow | undefined, outcome: JobOutcome): boolean => {
      if (row === undefined || !outcome.ok || outcome.stat === null || outcome.folders) return false;
      const [, jobEntry, , kind, version, filename, fversion, deleted, owners, uptodate] = row;
      return (
        jobEntry === entry &&
        kind === 'upload' &&
        filename !== null &&
        deleted === 0 &&
        version === fversion &&
        uptodate !== '[]' &&
        this.parsed(owners!).includes(entry)
      );
    };
    let rows = new Map(this.store.finishedRows(reports.map((r) => r.jobId)).map((r) => [r[0], r]));
    const rest: JobFinished[] = [];
    for (const report of reports) {
      if (simple(rows.get(report.jobId), report.outcome)) rest.push(report);
      else this.finished(entry, report.jobId, report.outcome, touched);
    }
    if (rest.length === 0) return;
    // The others may have changed files these share (a move's old name): read them again.
    if (rest.length < reports.length) rows = new Map(this.store.finishedRows(rest.map((r) => r.jobId)).map((r) => [r[0], r]));
    const ids: number[] = [];
    const replicas: unknown[][] = [];
    const uptodate: [string, string][] = [];
    for (const report of rest) {
      const row = rows.get(report.jobId);
      if (!simple(row, report.outcome)) {
        this.finished(entry, report.jobId, report.outcome, touched);
        continue;
      }
      const [id, , fid, , version, filename, , , owners, current] = row!;
      const stat = (report.outcome as Extract<JobOutcome, { ok: true }>).stat!;
      ids.push(id);
      replicas.push([fid, filename, version, stat.size, stat.mtime, stat.ino, stat.mode ?? null, stat.ctime ?? null]);
      uptodate.push([fid, this.withUptodate(owners!, current!, entry)]);
      this.jobDone(entry, 'upload', filename!, null);
    }
    this.store.deleteJobs(ids);
    this.store.putReplicas(entry, replicas);
    this.store.setUptodate(uptodate);
    if (ids.length > 0) touched.add(entry);
  }

  /** A list of entries as stored (JSON), parsed once per distinct value. */
  private parsed(json: string): string[] {
    let list = this.lists.get(json);
    if (!list) {
      if (this.lists.size > 1000) this.lists.clear();
      list = JSON.parse(json) as string[];
      this.lists.set(json, list);
    }
    return list;
  }

  private readonly lists = new Map<string, string[]>();

  /** A file's up-to-date entries (JSON) once `entry` holds the latest version too: in the owners' order. */
  private withUptodate(owners: string, uptodate: string, entry: string): string {
    const key = `${owners}\n${uptodate}\n${entry}`;
    let next = this.uptodates.get(key);
    if (next === undefined) {
      if (this.uptodates.size > 1000) this.uptodates.clear();
      const current = this.parsed(uptodate);
      next = JSON.stringify(this.parsed(owners).filter((n) => n === entry || current.includes(n)));
      this.uptodates.set(key, next);
    }
    return next;
  }

  private readonly uptodates = new Map<string, string>();

  /** Jobs done since the last summary, per entry and kind. */
  private readonly done = new Map<string, { upload: number; delete: number; move: number; folders: number }>();

  /** A job done: logged (at debug), told to the event stream, counted for the summary. */
  private jobDone(entry: string, kind: JobKind, path: string, from: string | null, folder = false): void {
    if (this.log.isLevelEnabled('debug')) {
      const what = kind === 'move' ? `${from} → ${path}` : path;
      this.log.debug({ entry, kind }, `${DONE[kind]} ${what} in ${entry}`);
    }
    const event = kind === 'upload' ? 'transferred' : kind === 'delete' ? 'deleted' : 'moved';
    this.notify({ type: 'file', kind: event, entry, path, ...(kind === 'move' && from ? { from } : {}) });
    let counts = this.done.get(entry);
    if (!counts) this.done.set(entry, (counts = { upload: 0, delete: 0, move: 0, folders: 0 }));
    // Folders made or removed are counted apart: `copied` counts files.
    if (folder) counts.folders++;
    else counts[kind]++;
  }

  /** One info line per entry for the jobs of a batch: a line per file would cost more than the copy. */
  private logDone(): void {
    for (const [entry, counts] of this.done) {
      const parts = (['upload', 'move', 'delete'] as const).filter((k) => counts[k] > 0).map((k) => `${counts[k]} ${DONE[k]}`);
      if (counts.folders > 0) parts.push(`${counts.folders} folder(s) made or removed`);
      this.log.info(
        { entry, copied: counts.upload, moved: counts.move, deleted: counts.delete, folders: counts.folders },
        `${entry}: ${parts.join(', ')}`,
      );
    }
    this.done.clear();
  }

  /**
   * Recomputes a file's owners and up-to-date entries from what each entry holds, and queues
   * what each entry must do: fetch the latest version, delete its copy, or nothing.
   * `preserve`: the copies replaced keep their content as conflict copies (true: every entry's;
   * a name: that entry's only). `known`: the file's row as the caller just read or wrote it
   * (saves reading it again).
   */
  reconcile(fid: string, touched: Set<string>, preserve: boolean | string = false, known?: FileRecord): void {
    const file = known ?? this.store.file(fid);
    if (!file) return;
    // An entry that ignores the file does not hold it, whatever its storage has there.
    const replicas = this.ignoring.any
      ? this.store.replicasOf(fid).filter((r) => !this.ignoring.ignores(r.entry, file.filename, file.folder))
      : this.store.replicasOf(fid);
    const jobs = new Map(this.store.jobsOf(fid).map((j) => [j.entry, j]));

    if (file.deleted) {
      // Queued uploads go first: a holder's queued upload becomes its delete just below, and
      // must not be dropped afterwards as the upload it was.
      for (const job of jobs.values()) {
        if (job.kind === 'upload' && job.state === 'queued') {
          this.store.deleteJob(job.id);
          jobs.delete(job.entry);
        }
      }
      for (const r of replicas) {
        if (this.store.moveFrom(r.entry, file.filename)) continue; // leaves with its move
        this.putJob(r.entry, fid, 'delete', file.version, false, touched, null, jobs.get(r.entry) ?? null);
      }
      if (replicas.length === 0 && jobs.size === 0) {
        this.store.deleteFile(fid);
      } else {
        this.store.putFile({ ...file, owners: [], uptodate: [] });
      }
      return;
    }

    let latest = file;
    let uptodate = replicas.filter((r) => r.version === file.version);
    if (uptodate.length === 0 && replicas.length > 0) {
      // The latest version was lost before it reached anyone else (a conflict copy kept it):
      // the newest version still held becomes the latest.
      const newest = replicas.reduce((a, b) => (b.version > a.version ? b : a));
      latest = { ...file, version: newest.version, size: newest.size };
      uptodate = replicas.filter((r) => r.version === newest.version);
      this.log.warn({ fid, filename: file.filename, version: newest.version }, 'latest version lost; using the newest held');
    }
    const holders = new Set(replicas.map((r) => r.entry));
    for (const job of jobs.values()) if (job.kind === 'move') holders.add(job.entry);
    const owners = this.ignoring.without(
      computeOwners(file.filename, holders, this.rules).filter((n) => this.entries.has(n)),
      file.filename,
      file.folder,
    );
    const ownerSet = new Set(owners);
    const current = new Set(uptodate.map((r) => r.entry));

    for (const name of owners) {
      const job = jobs.get(name);
      if (current.has(name)) {
        // Holds the latest version already: nothing left to do there.
        if (job && job.state === 'queued') this.store.deleteJob(job.id);
        continue;
      }
      if (job?.kind === 'move') continue;
      const keep = preserve === true || preserve === name;
      this.putJob(name, fid, 'upload', latest.version, keep, touched, null, job ?? null);
    }
    const ownerHasLatest = owners.some((n) => current.has(n));
    for (const r of replicas) {
      if (ownerSet.has(r.entry)) continue;
      // A copy banned from an entry goes only once an owner holds the latest version.
      if (ownerHasLatest) this.putJob(r.entry, fid, 'delete', latest.version, false, touched, null, jobs.get(r.entry) ?? null);
    }
    for (const job of jobs.values()) {
      if (!ownerSet.has(job.entry) && !holders.has(job.entry) && job.state === 'queued') this.store.deleteJob(job.id);
    }
    const next = { ...latest, owners, uptodate: owners.filter((n) => current.has(n)) };
    // Written only when it changed; its name and deletion never change here.
    if (
      next.version !== file.version ||
      next.size !== file.size ||
      !sameList(next.owners, file.owners) ||
      !sameList(next.uptodate, file.uptodate)
    ) {
      this.store.updateFileState(next);
    }
  }

  /** Queues (or updates the queued) job of `entry` for `fid`; a running one is left to finish. */
  private putJob(
    entry: string,
    fid: string,
    kind: JobKind,
    version: number,
    preserve: boolean,
    touched: Set<string>,
    fromFilename: string | null = null,
    /** The entry's job for the file as the caller read it (null: none); looked up when absent. */
    known?: JobRecord | null,
  ): void {
    const existing = known === undefined ? this.store.job(entry, fid) : (known ?? undefined);
    if (!existing) {
      this.store.insertJob({ entry, fid, kind, fromFilename, version, preserve });
      touched.add(entry);
      return;
    }
    if (existing.state === 'running') return;
    if (existing.kind === kind && existing.version === version && existing.fromFilename === fromFilename) {
      if (preserve && !existing.preserve) this.store.updateJob({ ...existing, preserve: true });
      return;
    }
    this.store.updateJob({
      ...existing,
      kind,
      version,
      fromFilename,
      preserve: preserve || (existing.kind === 'upload' && existing.preserve),
      attempts: 0,
      notBefore: 0,
      lastError: null,
    });
    touched.add(entry);
  }

  /**
   * Takes up to `limit` due jobs of `entry` and marks them running, as commands for its worker.
   * An upload waits while no entry holding the latest version is running to serve as source.
   * Uploads stop being taken once they add up to `maxBytes` (the first job is always taken).
   */
  takeJobs(
    entry: string,
    limit: number,
    isRunning: (name: string) => boolean,
    exclude: Set<number>,
    maxBytes = Number.POSITIVE_INFINITY,
  ): JobCommand[] {
    const commands: JobCommand[] = [];
    const touched = new Set<string>();
    // The entries that may serve as sources: running, and not this one.
    const running = [...this.entries.keys()].filter((n) => n !== entry && isRunning(n));
    this.store.transaction(() => {
      // At most this many queued jobs are looked at (some wait for a source), read a page at a
      // time: most pumps want a job or two, not the whole window.
      let budget = limit + exclude.size + 64;
      const now = Date.now();
      let after = 0;
      let bytes = 0;
      // Pages grow from a few rows: a pump bounded by bytes (a large file finished, one more is
      // taken) reads a few rows, not the whole queue each time.
      let pageRows = FIRST_DISPATCH_PAGE;
      const taken: [number, number][] = [];
      while (commands.length < limit && budget > 0 && bytes < maxBytes) {
        // Jobs in `exclude` are running (not queued) but for a moment: a page need not allow for them.
        const want = Math.min(budget, limit - commands.length + 4, pageRows);
        pageRows *= 4;
        const page = this.store.dispatchPage(entry, now, after, want, running);
        budget -= page.length;
        for (const row of page) {
          const id = row[0];
          after = id;
          if (commands.length >= limit || bytes >= maxBytes) break;
          if (exclude.has(id)) continue;
          const command = this.dispatch(row, isRunning, touched);
          if (!command) continue;
          taken.push([id, command.version]);
          commands.push(command.command);
          if (command.command.kind === 'upload') bytes += command.command.sourceStat.size;
        }
        if (page.length < want) break; // no more queued jobs
      }
      this.store.markRunningMany(taken);
    });
    return commands;
  }

  /**
   * The command for a queued job read with its file, destination and source (`dispatchPage`),
   * and the version it is for; null when it must wait or is no longer needed (then dropped).
   */
  private dispatch(row: DispatchRow, isRunning: (name: string) => boolean, touched: Set<string>): { command: JobCommand; version: number } | null {
    const [id, kind, preserve, filename, fversion, deleted, dSize, dMtime, dIno, dMode, sEntry, sSize, sMtime, sIno, sMode] = row;
    if (kind === 'upload' && filename !== null && deleted === 0) {
      // The common case, from the row alone: an upload of the latest version from a running source.
      if (sEntry === null) return null;
      return {
        version: fversion!,
        command: {
          id,
          kind: 'upload',
          path: filename,
          source: this.sourceRef(sEntry),
          sourceStat: withMode({ size: sSize!, mtime: sMtime!, ino: sIno }, sMode),
          expect: dSize === null ? null : withMode({ size: dSize, mtime: dMtime!, ino: dIno }, dMode),
          preserve: preserve === 1,
        },
      };
    }
    const job = this.store.jobById(id);
    if (!job) return null;
    const command = this.command(job, isRunning, touched);
    return command && { command, version: job.version };
  }

  private command(job: JobRecord, isRunning: (name: string) => boolean, touched: Set<string>): JobCommand | null {
    const file = this.store.file(job.fid);
    const dest = this.store.replica(job.entry, job.fid);
    switch (job.kind) {
      case 'upload': {
        if (!file || file.deleted) {
          this.store.deleteJob(job.id);
          this.reconcile(job.fid, touched);
          return null;
        }
        const source = this.store
          .replicasOf(job.fid)
          .find((r) => r.version === file.version && r.entry !== job.entry && isRunning(r.entry));
        if (!source) return null;
        job.version = file.version;
        return {
          id: job.id,
          kind: 'upload',
          path: file.filename,
          source: this.sourceRef(source.entry),
          sourceStat: statOf(source),
          expect: dest ? statOf(dest) : null,
          preserve: job.preserve,
        };
      }
      case 'delete': {
        if (!dest) {
          this.store.deleteJob(job.id);
          this.reconcile(job.fid, touched);
          return null;
        }
        return { id: job.id, kind: 'delete', path: dest.filename, expect: statOf(dest) };
      }
      case 'move': {
        const fromFid = job.fromFilename ? fidOf(job.fromFilename) : null;
        const from = fromFid ? this.store.replica(job.entry, fromFid) : undefined;
        // The old name must still be the deleted one: if it changed since, it is a file of its own.
        const fromFile = fromFid ? this.store.file(fromFid) : undefined;
        if (!file || !from || !fromFile?.deleted || from.version >= fromFile.version) {
          this.store.deleteJob(job.id);
          this.reconcile(job.fid, touched);
          return null;
        }
        return { id: job.id, kind: 'move', from: from.filename, path: file.filename, expect: statOf(from) };
      }
    }
  }

  private sourceRef(name: string): SourceRef {
    const config = this.entries.get(name)!;
    return { entry: name, driver: config.driver, options: config.resolved };
  }

  /** Jobs a worker did not finish go back to the queue. */
  requeue(jobIds: Iterable<number>): void {
    this.store.transaction(() => {
      for (const id of jobIds) {
        const job = this.store.jobById(id);
        if (job?.state === 'running') this.store.updateJob({ ...job, state: 'queued' });
      }
    });
  }
}

