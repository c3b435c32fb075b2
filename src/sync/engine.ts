import type { Logger } from 'pino';
import type { Rule } from '../../machines/rules.js';
import type { FileStat, ScannedFile, WorkerReport } from '../../machines/reports.js';
import type { Catalogue, FileRecord, JobKind, JobRecord, ReplicaRecord } from '../store/catalogue.js';
import type { JobCommand, SourceRef } from '../drivers/protocol.js';
import { fidOf, unsafeReason } from '../paths.js';
import { computeOwners } from '../rules/owners.js';
import type { FerryEvent } from '../observe/event-log.js';

type FileEvent = Extract<FerryEvent, { type: 'file' }>;

export interface EntryConfig {
  name: string;
  driver: string;
  /** Options as written in the setup file (shown by the API). */
  options: Record<string, unknown>;
  /** Options with paths resolved (given to the worker). */
  resolved: Record<string, unknown>;
}

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

  constructor(
    private readonly store: Catalogue,
    private readonly entries: ReadonlyMap<string, EntryConfig>,
    rules: Rule[],
    private readonly log: Logger,
    /** Told of every change recorded and every job done, for the event stream. */
    private readonly notify: (event: FileEvent) => void = () => {},
  ) {
    this.rules = rules;
  }

  get activeRules(): Rule[] {
    return this.rules;
  }

  handle(report: WorkerReport): string[] {
    const touched = new Set<string>();
    this.store.transaction(() => {
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
        case 'entry.scanned':
          this.scanned(report.entry, report.files, report.force === true, touched);
          break;
        case 'job.finished':
          this.finished(report.entry, report.jobId, report.outcome, touched);
          break;
      }
    });
    return [...touched];
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
      const next = computeOwners(file.filename, holders, rules).filter((n) => this.entries.has(n));
      const gain = next.filter((n) => !file.owners.includes(n));
      const lose = file.owners.filter((n) => !next.includes(n));
      if (gain.length || lose.length) changes.push({ fid: file.fid, filename: file.filename, gain, lose });
    }
    return changes;
  }

  private accept(entry: string, path: string): boolean {
    const reason = unsafeReason(path);
    if (reason) this.log.warn({ entry, path }, `ignored a reported path: ${reason}`);
    return reason === null;
  }

  private changed(entry: string, path: string, stat: FileStat, touched: Set<string>): void {
    if (!this.accept(entry, path)) return;
    const fid = fidOf(path);
    const file = this.store.file(fid);
    const replica = this.store.replica(entry, fid);
    if (replica && sameStat(replica, stat) && !modeChanged(replica, stat)) {
      // The same file: a new inode (an atomic save of the same bytes, a copy of ours) or ctime
      // is recorded, nothing more.
      if (detailsChanged(replica, stat)) this.store.putReplica({ ...replica, ...stat });
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

  private scanned(entry: string, files: ScannedFile[], force: boolean, touched: Set<string>): void {
    // [filename, size, mtime, ino, mode, ctime] of every file the store says the entry holds.
    const known = new Map(this.store.replicaStatsOfEntry(entry).map((r) => [r[0], r]));
    const total = known.size;
    const fresh: ScannedFile[] = [];
    for (const f of files) {
      if (!this.accept(entry, f.path)) continue;
      const replica = known.get(f.path);
      known.delete(f.path);
      if (!replica) {
        fresh.push(f);
        continue;
      }
      const held: Stat = { size: replica[1], mtime: replica[2], ino: replica[3], mode: replica[4], ctime: replica[5] };
      if (!sameStat(held, f) || modeChanged(held, f) || detailsChanged(held, f)) this.changed(entry, f.path, f, touched);
    }
    // What the store says the entry held but is gone: moved (same inode and size) or deleted.
    const byIno = new Map(fresh.filter((f) => f.ino).map((f) => [f.ino, f]));
    const moves: [string, ScannedFile][] = [];
    const deletions: string[] = [];
    for (const [filename, size, , ino] of known.values()) {
      const moved = ino ? byIno.get(ino) : undefined;
      if (moved && moved.size === size) {
        byIno.delete(ino!);
        moves.push([filename, moved]);
      } else {
        deletions.push(filename);
      }
    }
    if (!force && this.isMassDeletion(deletions.length, total)) {
      throw new MassDeletionRefused(entry, deletions.length, total);
    }
    const movedTo = new Set(moves.map(([, to]) => to.path));
    for (const [gone, to] of moves) this.moved(entry, gone, to.path, to, touched);
    for (const gone of deletions) this.deleted(entry, gone, touched);
    for (const f of fresh) if (!movedTo.has(f.path)) this.changed(entry, f.path, f, touched);
  }

  private finished(
    entry: string,
    jobId: number,
    outcome: Extract<WorkerReport, { type: 'job.finished' }>['outcome'],
    touched: Set<string>,
  ): void {
    const job = this.store.jobById(jobId);
    if (!job || job.entry !== entry) return;
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
      const done = { upload: 'copied', delete: 'deleted', move: 'moved' }[job.kind];
      const what = job.kind === 'move' ? `${job.fromFilename} → ${file?.filename}` : (file?.filename ?? job.fid);
      this.log.info({ entry, kind: job.kind }, `${done} ${what} in ${entry}`);
      const kind = job.kind === 'upload' ? 'transferred' : job.kind === 'delete' ? 'deleted' : 'moved';
      const path = file?.filename ?? job.fid;
      this.notify({ type: 'file', kind, entry, path, ...(job.kind === 'move' && job.fromFilename ? { from: job.fromFilename } : {}) });
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
   * Recomputes a file's owners and up-to-date entries from what each entry holds, and queues
   * what each entry must do: fetch the latest version, delete its copy, or nothing.
   * `preserve`: the copies replaced keep their content as conflict copies (true: every entry's;
   * a name: that entry's only). `known`: the file's row as the caller just read or wrote it
   * (saves reading it again).
   */
  reconcile(fid: string, touched: Set<string>, preserve: boolean | string = false, known?: FileRecord): void {
    const file = known ?? this.store.file(fid);
    if (!file) return;
    const replicas = this.store.replicasOf(fid);
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
    const owners = computeOwners(file.filename, holders, this.rules).filter((n) => this.entries.has(n));
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
    this.store.transaction(() => {
      // At most this many queued jobs are looked at (some wait for a source), read a page at a
      // time: most pumps want a job or two, not the whole window.
      let budget = limit + exclude.size + 64;
      const now = Date.now();
      let after = 0;
      let bytes = 0;
      while (commands.length < limit && budget > 0 && bytes < maxBytes) {
        // Jobs in `exclude` are running (not queued) but for a moment: a page need not allow for them.
        const want = Math.min(budget, limit - commands.length + 4);
        const page = this.store.queuedJobs(entry, now, want, after);
        budget -= page.length;
        for (const job of page) {
          after = job.id;
          if (commands.length >= limit || bytes >= maxBytes) break;
          if (exclude.has(job.id)) continue;
          const command = this.command(job, isRunning, touched);
          if (!command) continue;
          this.store.markRunning(job.id, job.version);
          commands.push(command);
          if (command.kind === 'upload') bytes += command.sourceStat.size;
        }
        if (page.length < want) break; // no more queued jobs
      }
    });
    return commands;
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

