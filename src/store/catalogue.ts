import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Rule } from '../../machines/rules.js';
import type { FileStat } from '../../machines/reports.js';

/** A file as the catalogue knows it. A deleted file stays as a tombstone until no entry holds it. */
export interface FileRecord {
  fid: string;
  filename: string;
  size: number;
  /** Grows with every change, deletion included. */
  version: number;
  owners: string[];
  uptodate: string[];
  deleted: boolean;
}

/** What one entry holds at a file's path: which version, and its local stat. */
export interface ReplicaRecord extends FileStat {
  entry: string;
  fid: string;
  filename: string;
  version: number;
}

export type JobKind = 'upload' | 'delete' | 'move';

export interface JobRecord {
  id: number;
  entry: string;
  fid: string;
  kind: JobKind;
  /** For a move: the path the entry's copy is moved from. */
  fromFilename: string | null;
  version: number;
  /** Keep the destination's current copy as a conflict copy even if it matches the store. */
  preserve: boolean;
  state: 'queued' | 'running';
  attempts: number;
  notBefore: number;
  lastError: string | null;
}

export interface QueuedJob {
  id: number;
  kind: JobKind;
  filename: string;
  size: number;
  attempts: number;
  notBefore: number;
  lastError: string | null;
}

type FileRow = Omit<FileRecord, 'owners' | 'uptodate' | 'deleted'> & { owners: string; uptodate: string; deleted: number };
type JobRow = Omit<JobRecord, 'fromFilename' | 'preserve' | 'notBefore' | 'lastError'> & {
  from_filename: string | null;
  preserve: number;
  not_before: number;
  last_error: string | null;
};

const SCHEMA = `
CREATE TABLE IF NOT EXISTS files (
  fid TEXT PRIMARY KEY,
  filename TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  version INTEGER NOT NULL,
  owners TEXT NOT NULL DEFAULT '[]',
  uptodate TEXT NOT NULL DEFAULT '[]',
  deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS files_listing ON files (deleted, filename);
CREATE TABLE IF NOT EXISTS replicas (
  entry TEXT NOT NULL,
  fid TEXT NOT NULL,
  filename TEXT NOT NULL,
  version INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime REAL NOT NULL,
  ino TEXT,
  PRIMARY KEY (entry, fid)
);
CREATE INDEX IF NOT EXISTS replicas_by_fid ON replicas (fid);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  entry TEXT NOT NULL,
  fid TEXT NOT NULL,
  kind TEXT NOT NULL,
  from_filename TEXT,
  version INTEGER NOT NULL,
  preserve INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'queued',
  attempts INTEGER NOT NULL DEFAULT 0,
  not_before INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_per_file ON jobs (entry, fid);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (entry, state, id);
CREATE INDEX IF NOT EXISTS jobs_by_fid ON jobs (fid);
-- The pump of every job asks for an entry's delete jobs and its next due job, and every status
-- request for its failing jobs: each an index range, not a scan of the entry's whole queue.
-- Partial indexes: a job is in one only while it is such a job, so most writes skip them.
CREATE INDEX IF NOT EXISTS jobs_deletes ON jobs (entry) WHERE kind = 'delete';
CREATE INDEX IF NOT EXISTS jobs_queued_due ON jobs (entry, not_before) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_failing ON jobs (entry, id) WHERE last_error IS NOT NULL;
CREATE TABLE IF NOT EXISTS rules (
  kind TEXT PRIMARY KEY,
  json TEXT NOT NULL
);
`;

/** Every this many files of the listing, one is remembered: a page far in starts from it. */
const LISTING_STRIDE = 256;
/** While files come and go, the remembered ones are found again at most this often. */
const LISTING_REBUILD_MS = 2000;

const toFile = (row: FileRow | undefined): FileRecord | undefined =>
  row && {
    ...row,
    owners: JSON.parse(row.owners) as string[],
    uptodate: JSON.parse(row.uptodate) as string[],
    deleted: row.deleted === 1,
  };

const toJob = (row: JobRow | undefined): JobRecord | undefined =>
  row && {
    id: row.id,
    entry: row.entry,
    fid: row.fid,
    kind: row.kind,
    fromFilename: row.from_filename,
    version: row.version,
    preserve: row.preserve === 1,
    state: row.state,
    attempts: row.attempts,
    notBefore: row.not_before,
    lastError: row.last_error,
  };

/** The catalogue: files, what each entry holds, per-entry job queues, and the rules. */
export class Catalogue {
  readonly db: Database.Database;
  private readonly q;
  /** Grows with every write to the jobs table: what was computed from it at an older value is stale. */
  private jobsGeneration = 0;
  /** Grows with every write that may add, rename, delete or undelete a listed file. */
  private listingGeneration = 0;
  /** The rowid of every LISTING_STRIDE-th listed file, as of a generation. */
  private anchors: { generation: number; rowids: number[]; builtAt: number } | null = null;
  /** `failingJobs` per entry, as of a generation: status requests come far oftener than failures. */
  private readonly failingCache = new Map<string, { generation: number; value: { count: number; lastError: string | null } }>();

  constructor(file: string, options: { readonly?: boolean } = {}) {
    if (!options.readonly) fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file, { readonly: options.readonly ?? false });
    if (!options.readonly) {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      // A checkpoint syncs the disk twice: every 16,384 pages (64 MiB of WAL) instead of every
      // 1,000, so that a sync of many small files does not spend its time in fsync.
      this.db.pragma('wal_autocheckpoint = 16384');
      this.db.exec(SCHEMA);
    }
    const db = this.db;
    this.q = {
      file: db.prepare('SELECT * FROM files WHERE fid = ?'),
      listFiles: db.prepare('SELECT * FROM files WHERE deleted = 0 ORDER BY filename LIMIT ? OFFSET ?'),
      // A page from a remembered file on: an index seek, then fewer than LISTING_STRIDE skipped.
      listFrom: db.prepare(
        `SELECT * FROM files WHERE deleted = 0 AND filename >= (SELECT filename FROM files WHERE rowid = ?)
         ORDER BY filename LIMIT ? OFFSET ?`,
      ),
      listingRowids: db.prepare('SELECT rowid FROM files WHERE deleted = 0 ORDER BY filename').pluck(),
      countFiles: db.prepare('SELECT count(*) AS n FROM files WHERE deleted = 0'),
      conflictFiles: db.prepare(
        "SELECT * FROM files WHERE deleted = 0 AND filename LIKE '%.sync-conflict-%' ORDER BY filename",
      ),
      allFids: db.prepare('SELECT fid FROM files'),
      putFile: db.prepare(
        `INSERT INTO files (fid, filename, size, version, owners, uptodate, deleted)
         VALUES (@fid, @filename, @size, @version, @owners, @uptodate, @deleted)
         ON CONFLICT (fid) DO UPDATE SET filename = excluded.filename, size = excluded.size,
           version = excluded.version, owners = excluded.owners, uptodate = excluded.uptodate,
           deleted = excluded.deleted`,
      ),
      // Owners, up-to-date entries, version and size of a file whose name and deletion stay: no
      // index holds them, so only the row is written.
      updateFileState: db.prepare(
        'UPDATE files SET size = @size, version = @version, owners = @owners, uptodate = @uptodate WHERE fid = @fid',
      ),
      deleteFile: db.prepare('DELETE FROM files WHERE fid = ?'),
      replica: db.prepare('SELECT * FROM replicas WHERE entry = ? AND fid = ?'),
      replicasOf: db.prepare('SELECT * FROM replicas WHERE fid = ? ORDER BY entry'),
      replicasOfEntry: db.prepare('SELECT * FROM replicas WHERE entry = ?'),
      replicaStatsOfEntry: db.prepare('SELECT filename, size, mtime, ino FROM replicas WHERE entry = ?').raw(),
      countReplicas: db.prepare('SELECT count(*) AS n FROM replicas WHERE entry = ?'),
      putReplica: db.prepare(
        `INSERT INTO replicas (entry, fid, filename, version, size, mtime, ino)
         VALUES (@entry, @fid, @filename, @version, @size, @mtime, @ino)
         ON CONFLICT (entry, fid) DO UPDATE SET filename = excluded.filename, version = excluded.version,
           size = excluded.size, mtime = excluded.mtime, ino = excluded.ino`,
      ),
      deleteReplica: db.prepare('DELETE FROM replicas WHERE entry = ? AND fid = ?'),
      job: db.prepare('SELECT * FROM jobs WHERE entry = ? AND fid = ?'),
      jobById: db.prepare('SELECT * FROM jobs WHERE id = ?'),
      jobsOf: db.prepare('SELECT * FROM jobs WHERE fid = ?'),
      moveFrom: db.prepare("SELECT * FROM jobs WHERE entry = ? AND kind = 'move' AND from_filename = ?"),
      insertJob: db.prepare(
        `INSERT INTO jobs (entry, fid, kind, from_filename, version, preserve)
         VALUES (@entry, @fid, @kind, @fromFilename, @version, @preserve)`,
      ),
      updateJob: db.prepare(
        `UPDATE jobs SET kind = @kind, from_filename = @fromFilename, version = @version, preserve = @preserve,
           state = @state, attempts = @attempts, not_before = @notBefore, last_error = @lastError WHERE id = @id`,
      ),
      // Only the state and version: the indexes of the other columns are left alone.
      markRunning: db.prepare("UPDATE jobs SET state = 'running', version = ? WHERE id = ?"),
      deleteJob: db.prepare('DELETE FROM jobs WHERE id = ?'),
      queued: db.prepare(
        "SELECT * FROM jobs WHERE entry = ? AND state = 'queued' AND not_before <= ? AND id > ? ORDER BY id LIMIT ?",
      ),
      nextDue: db.prepare("SELECT min(not_before) AS t FROM jobs WHERE entry = ? AND state = 'queued'"),
      countJobs: db.prepare('SELECT count(*) AS n FROM jobs WHERE entry = ?'),
      countRuleDeletes: db.prepare(
        "SELECT count(*) AS n FROM jobs JOIN files ON files.fid = jobs.fid WHERE jobs.entry = ? AND jobs.kind = 'delete' AND files.deleted = 0",
      ),
      failing: db.prepare(
        `SELECT count(*) AS n, (SELECT last_error FROM jobs WHERE entry = @entry AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1) AS e
         FROM jobs WHERE entry = @entry AND last_error IS NOT NULL`,
      ),
      countQueued: db.prepare("SELECT count(*) AS n FROM jobs WHERE entry = ? AND state = 'queued'"),
      queuedList: db.prepare(
        `SELECT jobs.id, jobs.kind, jobs.attempts, jobs.not_before, jobs.last_error,
                coalesce(files.filename, jobs.fid) AS filename, coalesce(files.size, 0) AS size
         FROM jobs LEFT JOIN files ON files.fid = jobs.fid
         WHERE jobs.entry = ? AND jobs.state = 'queued' ORDER BY jobs.id LIMIT ?`,
      ),
      requeueAll: db.prepare("UPDATE jobs SET state = 'queued' WHERE state = 'running'"),
      requeueEntry: db.prepare("UPDATE jobs SET state = 'queued' WHERE state = 'running' AND entry = ?"),
      rules: db.prepare('SELECT json FROM rules WHERE kind = ?'),
      putRules: db.prepare(
        'INSERT INTO rules (kind, json) VALUES (?, ?) ON CONFLICT (kind) DO UPDATE SET json = excluded.json',
      ),
    };
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  file(fid: string): FileRecord | undefined {
    return toFile(this.q.file.get(fid) as FileRow | undefined);
  }

  /**
   * A page of the listing, by filename. OFFSET alone walks every skipped entry of the index
   * (milliseconds at 100,000 files); a page far in starts from the nearest remembered file.
   */
  listFiles(offset: number, limit: number): FileRecord[] {
    if (offset >= LISTING_STRIDE) {
      const anchors = this.listingAnchors();
      if (anchors) {
        const i = Math.floor(offset / LISTING_STRIDE);
        if (i >= anchors.length) return [];
        return (this.q.listFrom.all(anchors[i], limit, offset - i * LISTING_STRIDE) as FileRow[]).map((r) => toFile(r)!);
      }
    }
    return (this.q.listFiles.all(limit, offset) as FileRow[]).map((r) => toFile(r)!);
  }

  /** The remembered files, found again if the listing changed (not too often); null: use OFFSET. */
  private listingAnchors(): number[] | null {
    const current = this.anchors;
    if (current && current.generation === this.listingGeneration) return current.rowids;
    if (current && Date.now() - current.builtAt < LISTING_REBUILD_MS) return null;
    const all = this.q.listingRowids.all() as number[];
    const rowids: number[] = [];
    for (let i = 0; i < all.length; i += LISTING_STRIDE) rowids.push(all[i]);
    this.anchors = { generation: this.listingGeneration, rowids, builtAt: Date.now() };
    return rowids;
  }

  /** Files whose name marks them as conflict copies. */
  conflictFiles(): FileRecord[] {
    return (this.q.conflictFiles.all() as FileRow[]).map((r) => toFile(r)!);
  }

  countFiles(): number {
    return (this.q.countFiles.get() as { n: number }).n;
  }

  allFids(): string[] {
    return (this.q.allFids.all() as { fid: string }[]).map((r) => r.fid);
  }

  putFile(file: FileRecord): void {
    this.listingGeneration++;
    this.q.putFile.run({
      ...file,
      owners: JSON.stringify(file.owners),
      uptodate: JSON.stringify(file.uptodate),
      deleted: file.deleted ? 1 : 0,
    });
  }

  /** Writes a file's size, version, owners and up-to-date entries; its name and deletion stay. */
  updateFileState(file: Pick<FileRecord, 'fid' | 'size' | 'version' | 'owners' | 'uptodate'>): void {
    this.q.updateFileState.run({
      fid: file.fid,
      size: file.size,
      version: file.version,
      owners: JSON.stringify(file.owners),
      uptodate: JSON.stringify(file.uptodate),
    });
  }

  deleteFile(fid: string): void {
    this.listingGeneration++;
    this.q.deleteFile.run(fid);
  }

  replica(entry: string, fid: string): ReplicaRecord | undefined {
    return this.q.replica.get(entry, fid) as ReplicaRecord | undefined;
  }

  replicasOf(fid: string): ReplicaRecord[] {
    return this.q.replicasOf.all(fid) as ReplicaRecord[];
  }

  replicasOfEntry(entry: string): ReplicaRecord[] {
    return this.q.replicasOfEntry.all(entry) as ReplicaRecord[];
  }

  /**
   * What an entry holds, as `[filename, size, mtime, ino]` rows: a rescan compares every file
   * with them, and rows this small keep the daemon's memory low at 100,000 files.
   */
  replicaStatsOfEntry(entry: string): [string, number, number, string | null][] {
    return this.q.replicaStatsOfEntry.all(entry) as [string, number, number, string | null][];
  }

  countReplicas(entry: string): number {
    return (this.q.countReplicas.get(entry) as { n: number }).n;
  }

  putReplica(replica: ReplicaRecord): void {
    this.q.putReplica.run(replica);
  }

  deleteReplica(entry: string, fid: string): void {
    this.q.deleteReplica.run(entry, fid);
  }

  job(entry: string, fid: string): JobRecord | undefined {
    return toJob(this.q.job.get(entry, fid) as JobRow | undefined);
  }

  jobById(id: number): JobRecord | undefined {
    return toJob(this.q.jobById.get(id) as JobRow | undefined);
  }

  jobsOf(fid: string): JobRecord[] {
    return (this.q.jobsOf.all(fid) as JobRow[]).map((r) => toJob(r)!);
  }

  /** The move job that will take `entry`'s copy away from `fromFilename`, if any. */
  moveFrom(entry: string, fromFilename: string): JobRecord | undefined {
    return toJob(this.q.moveFrom.get(entry, fromFilename) as JobRow | undefined);
  }

  insertJob(job: Pick<JobRecord, 'entry' | 'fid' | 'kind' | 'fromFilename' | 'version' | 'preserve'>): void {
    this.jobsGeneration++;
    this.q.insertJob.run({ ...job, preserve: job.preserve ? 1 : 0 });
  }

  updateJob(job: JobRecord): void {
    this.jobsGeneration++;
    this.q.updateJob.run({ ...job, preserve: job.preserve ? 1 : 0 });
  }

  /** A queued job handed to its worker, for `version`. */
  markRunning(id: number, version: number): void {
    this.jobsGeneration++;
    this.q.markRunning.run(version, id);
  }

  deleteJob(id: number): void {
    this.jobsGeneration++;
    this.q.deleteJob.run(id);
  }

  /** Up to `limit` queued jobs of `entry` due by `now`, in order, after the job `after` (a page). */
  queuedJobs(entry: string, now: number, limit: number, after = 0): JobRecord[] {
    return (this.q.queued.all(entry, now, after, limit) as JobRow[]).map((r) => toJob(r)!);
  }

  /** When the earliest deferred job of `entry` is due (epoch ms), or null when none waits. */
  nextDue(entry: string): number | null {
    return (this.q.nextDue.get(entry) as { t: number | null }).t;
  }

  countJobs(entry: string): number {
    return (this.q.countJobs.get(entry) as { n: number }).n;
  }

  /**
   * Delete jobs of `entry` that the rules cause (a ban: the file lives on elsewhere), not those
   * following a deletion made in another entry.
   */
  countRuleDeletes(entry: string): number {
    return (this.q.countRuleDeletes.get(entry) as { n: number }).n;
  }

  /** Jobs of `entry` that failed at least once and wait to be retried, with the latest error. */
  failingJobs(entry: string): { count: number; lastError: string | null } {
    const cached = this.failingCache.get(entry);
    if (cached && cached.generation === this.jobsGeneration) return { ...cached.value };
    const row = this.q.failing.get({ entry }) as { n: number; e: string | null };
    const value = { count: row.n, lastError: row.e };
    this.failingCache.set(entry, { generation: this.jobsGeneration, value });
    return { ...value };
  }

  countQueued(entry: string): number {
    return (this.q.countQueued.get(entry) as { n: number }).n;
  }

  /** The first `limit` queued jobs of `entry`, with the file's name and size. */
  queuedList(entry: string, limit: number): QueuedJob[] {
    return (this.q.queuedList.all(entry, limit) as (Omit<QueuedJob, 'notBefore' | 'lastError'> & { not_before: number; last_error: string | null })[]).map(
      ({ not_before, last_error, ...rest }) => ({ ...rest, notBefore: not_before, lastError: last_error }),
    );
  }

  /** Jobs that were running when a worker or the daemon stopped go back to the queue. */
  requeueRunning(entry?: string): void {
    this.jobsGeneration++;
    if (entry === undefined) this.q.requeueAll.run();
    else this.q.requeueEntry.run(entry);
  }

  rules(kind: 'staged' | 'active'): Rule[] | null {
    const row = this.q.rules.get(kind) as { json: string } | undefined;
    return row ? (JSON.parse(row.json) as Rule[]) : null;
  }

  putRules(kind: 'staged' | 'active', rules: Rule[]): void {
    this.q.putRules.run(kind, JSON.stringify(rules));
  }

  close(): void {
    if (!this.db.open) return;
    if (!this.db.readonly) this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.close();
  }

  // ---- Filtered listings (GET /files?pending=…&failing=…&q=…): read-only queries ------------

  /** The statements of `findFiles`, one per combination of filters, prepared on first use. */
  private readonly filteredListings = new Map<string, Database.Statement>();

  /**
   * A page of the files that match every filter given, ordered by filename. Each filter starts
   * from an index, never from a walk of every file it does not need:
   * - `pending`: files the entry owns and does not hold in their latest version. Candidates are
   *   the entry's jobs (an index range of jobs_one_per_file: the sync engine queues a job for
   *   every owner that lacks the latest version), each checked against owners and uptodate.
   * - `failing`: files with a job that failed and waits to be retried, with `reason`, the last
   *   error of the latest such job. Candidates come from the partial index jobs_failing, which
   *   holds failing jobs only.
   * - `q`: the filename contains the text, ASCII letters in any case (LIKE, with `%`, `_` and
   *   `\` escaped). Alone, it walks files_listing in filename order and stops once the page is
   *   full; with another filter, it narrows that filter's candidates.
   */
  findFiles(
    filter: { pending?: string; failing?: boolean; q?: string },
    offset: number,
    limit: number,
  ): (FileRecord & { reason?: string })[] {
    const pending = filter.pending !== undefined;
    const failing = filter.failing === true;
    const q = filter.q !== undefined && filter.q !== '';
    if (!pending && !failing && !q) return this.listFiles(offset, limit);
    const key = `${+pending}${+failing}${+q}`;
    let statement = this.filteredListings.get(key);
    if (!statement) {
      statement = this.db.prepare(Catalogue.filteredListingSql(pending, failing, q));
      this.filteredListings.set(key, statement);
    }
    const rows = statement.all({
      // Entry names are [A-Za-z0-9_.-]+: quoted, one is found in the JSON list as it is.
      ...(pending ? { pending: filter.pending, quoted: JSON.stringify(filter.pending) } : {}),
      ...(q ? { like: `%${filter.q!.replace(/[\\%_]/g, '\\$&')}%` } : {}),
      limit,
      offset,
    }) as (FileRow & { reason: string | null })[];
    return rows.map(({ reason, ...row }) => ({ ...toFile(row)!, ...(reason === null ? {} : { reason }) }));
  }

  /** The SQL of one combination of `findFiles`' filters (see there). */
  private static filteredListingSql(pending: boolean, failing: boolean, q: boolean): string {
    // The last error of the file's latest failing job: at most one job per entry for a file.
    const latestError = `(SELECT e.last_error FROM jobs AS e WHERE e.fid = f.fid AND e.last_error IS NOT NULL
                          ORDER BY e.id DESC LIMIT 1)`;
    const where = ['f.deleted = 0'];
    if (q) where.push("f.filename LIKE @like ESCAPE '\\'");
    let from: string;
    let reason = 'NULL';
    if (pending) {
      // CROSS JOIN keeps the entry's jobs as the outer loop: the index range drives the query.
      from = 'jobs AS j CROSS JOIN files AS f ON f.fid = j.fid';
      where.unshift('j.entry = @pending');
      where.push('instr(f.owners, @quoted) > 0', 'instr(f.uptodate, @quoted) = 0');
      if (failing) {
        reason = latestError;
        where.push('EXISTS (SELECT 1 FROM jobs AS e WHERE e.fid = f.fid AND e.last_error IS NOT NULL)');
      }
    } else if (failing) {
      // INDEXED BY: left to itself, SQLite walks every job through jobs_by_fid to group them.
      from = `(SELECT fid, max(id) AS id FROM jobs INDEXED BY jobs_failing WHERE last_error IS NOT NULL GROUP BY fid) AS fj
              CROSS JOIN files AS f ON f.fid = fj.fid`;
      reason = latestError;
    } else {
      from = 'files AS f';
    }
    return `SELECT f.*, ${reason} AS reason FROM ${from} WHERE ${where.join(' AND ')} ORDER BY f.filename LIMIT @limit OFFSET @offset`;
  }
}
