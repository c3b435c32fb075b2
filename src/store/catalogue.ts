import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { childLine, listingDigest } from '../folder-digest.js';
import type { Rule } from '../../machines/rules.js';
import type { FileStat } from '../../machines/reports.js';
import { VersionsTable } from './versions-table.js';
import { IgnoresTable } from './ignores-table.js';

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
  /** A folder, synced as such (so that empty ones are too); never listed among the files. */
  folder?: boolean;
}

/**
 * The `deleted` column: 0 a file, 1 a tombstone, 2 a folder. Every listing of files asks for
 * `deleted = 0` through the files_listing index, so folders never show among the files.
 */
const FOLDER = 2;

/**
 * What one entry holds at a file's path: which version, and its local stat. `mode` and `ctime`
 * are null (as read from the store) or absent when the storage did not report them.
 */
export interface ReplicaRecord extends Omit<FileStat, 'mode' | 'ctime'> {
  entry: string;
  fid: string;
  filename: string;
  version: number;
  mode?: number | null;
  ctime?: number | null;
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

/**
 * A file of a rescan that differs from what the store says the entry holds: new to the entry
 * (`rfid` null; `fid` null too when the store knows no file of that name), or held with another
 * stat (the `r*` columns are the entry's replica).
 */
export interface ScanDiffRow {
  path: string;
  size: number;
  mtime: number;
  ino: string | null;
  mode: number | null;
  ctime: number | null;
  fid: string | null;
  rfid: string | null;
  rversion: number | null;
  rsize: number | null;
  rmtime: number | null;
  rino: string | null;
  rmode: number | null;
  rctime: number | null;
}

/** A replica a rescan no longer finds, with a new file of the same inode and size if there is one. */
export interface ScanGoneRow {
  fid: string;
  filename: string;
  size: number;
  ino: string | null;
  movedTo: string | null;
}

/**
 * A queued job with what dispatching it needs, as an array (rows as objects cost more than the
 * query): id, kind, preserve, the file's name, version and deletion, the destination's copy
 * (size, mtime, ino, mode) and a source (entry, size, mtime, ino, mode).
 */
export type DispatchRow = [
  id: number,
  kind: JobKind,
  preserve: number,
  filename: string | null,
  fversion: number | null,
  deleted: number | null,
  dSize: number | null,
  dMtime: number | null,
  dIno: string | null,
  dMode: number | null,
  sEntry: string | null,
  sSize: number | null,
  sMtime: number | null,
  sIno: string | null,
  sMode: number | null,
];

/** A job that a worker finished, with its file as the store has it now (an array, as above). */
export type FinishedRow = [
  id: number,
  entry: string,
  fid: string,
  kind: JobKind,
  version: number,
  filename: string | null,
  fversion: number | null,
  deleted: number | null,
  owners: string | null,
  uptodate: string | null,
];

type FileRow = Omit<FileRecord, 'owners' | 'uptodate' | 'deleted'> & { owners: string; uptodate: string; deleted: number };
type JobRow = Omit<JobRecord, 'fromFilename' | 'preserve' | 'notBefore' | 'lastError'> & {
  from_filename: string | null;
  preserve: number;
  not_before: number;
  last_error: string | null;
};

/**
 * The folder of a filename in SQL ('' for one at the top): what is left once the characters
 * after its last slash, then that slash, are trimmed (rtrim takes a set of characters: those of
 * the name without its slashes).
 */
const folderOf = (column: string) => `rtrim(rtrim(${column}, replace(${column}, '/', '')), '/')`;

/** The folder of scan_digests' row that says every folder of the entry has its digest. */
const DIGESTS_COMPLETE = '/';

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
-- What each entry holds of each file. Keyed by file first, and without a rowid: one B-tree,
-- every lookup by file or by (file, entry); a random fid costs one page written, not three.
CREATE TABLE IF NOT EXISTS replicas (
  entry TEXT NOT NULL,
  fid TEXT NOT NULL,
  filename TEXT NOT NULL,
  version INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime REAL NOT NULL,
  ino TEXT,
  mode INTEGER,
  ctime REAL,
  PRIMARY KEY (fid, entry)
) WITHOUT ROWID;
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
-- One job per (entry, file), found by file too: one index keyed by the (random) fid, not two.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_per_file ON jobs (fid, entry);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (entry, state, id);
-- The pump of every job asks for an entry's delete jobs and its next due job, and every status
-- request for its failing jobs: each an index range, not a scan of the entry's whole queue.
-- Partial indexes: a job is in one only while it is such a job, so most writes skip them.
CREATE INDEX IF NOT EXISTS jobs_deletes ON jobs (entry) WHERE kind = 'delete';
CREATE INDEX IF NOT EXISTS jobs_queued_due ON jobs (entry, not_before) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_failing ON jobs (entry, id) WHERE last_error IS NOT NULL;
-- A deletion looks for a move that takes the copy away: among move jobs only.
CREATE INDEX IF NOT EXISTS jobs_moves ON jobs (entry, from_filename) WHERE kind = 'move';
CREATE TABLE IF NOT EXISTS rules (
  kind TEXT PRIMARY KEY,
  json TEXT NOT NULL
);
-- The digest of each folder of an entry's replicas (its children's names and stats, see
-- folder-digest.ts), computed when a worker starts. Its start-up scan leaves out the files of
-- every folder whose digest on disk is the same: a start where nothing changed compares
-- folders, not files. A write to a replica drops the digest of its folder (the triggers
-- below): a digest kept is always that of the replicas as they are. The row of the folder '/'
-- (no folder's name) says that every folder of the entry has its digest: a write drops it too.
-- Its digest is the count of the entry's replicas (empty in a store of an earlier version).
CREATE TABLE IF NOT EXISTS scan_digests (
  entry TEXT NOT NULL,
  folder TEXT NOT NULL,
  digest TEXT NOT NULL,
  PRIMARY KEY (entry, folder)
) WITHOUT ROWID;
-- Each only for an entry that has a digest kept (one index probe): a first sync writes its
-- replicas without looking for their folders' digests.
CREATE TRIGGER IF NOT EXISTS replicas_insert_digests AFTER INSERT ON replicas
WHEN EXISTS (SELECT 1 FROM scan_digests WHERE entry = NEW.entry) BEGIN
  DELETE FROM scan_digests WHERE entry = NEW.entry AND folder IN (${folderOf('NEW.filename')}, '${DIGESTS_COMPLETE}');
END;
CREATE TRIGGER IF NOT EXISTS replicas_update_digests AFTER UPDATE ON replicas
WHEN EXISTS (SELECT 1 FROM scan_digests WHERE entry IN (OLD.entry, NEW.entry)) BEGIN
  DELETE FROM scan_digests WHERE entry = OLD.entry AND folder IN (${folderOf('OLD.filename')}, '${DIGESTS_COMPLETE}');
  DELETE FROM scan_digests WHERE entry = NEW.entry AND folder = ${folderOf('NEW.filename')};
END;
CREATE TRIGGER IF NOT EXISTS replicas_delete_digests AFTER DELETE ON replicas
WHEN EXISTS (SELECT 1 FROM scan_digests WHERE entry = OLD.entry) BEGIN
  DELETE FROM scan_digests WHERE entry = OLD.entry AND folder IN (${folderOf('OLD.filename')}, '${DIGESTS_COMPLETE}');
END;
`;

/** What a rescan lists of one file. */
type ScannedLike = { path: string; size: number; mtime: number; ino: string | null; mode?: number; ctime?: number };

/** How long the writes of workers' reports gather before they are committed together. */
const GROUP_COMMIT_MS = 100;

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
    ...(row.deleted === FOLDER ? { folder: true } : {}),
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
  /** The versions entries keep of what syncs overwrote or deleted. */
  readonly versions: VersionsTable;
  /** The ignore patterns each entry last reported. */
  readonly ignores: IgnoresTable;
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
      this.migrate();
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
      allNames: db.prepare('SELECT fid, filename, deleted FROM files'),
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
      countReplicas: db.prepare('SELECT count(*) AS n FROM replicas WHERE entry = ?'),
      // The row that says an entry's digests are complete, and holds its count of replicas.
      keptCount: db.prepare(`SELECT digest FROM scan_digests WHERE entry = ? AND folder = '${DIGESTS_COMPLETE}'`).pluck(),
      holdsAny: db.prepare('SELECT 1 FROM replicas WHERE entry = ? LIMIT 1').pluck(),
      knowsName: db.prepare('SELECT 1 FROM files WHERE filename = ?').pluck(),
      putReplica: db.prepare(
        `INSERT INTO replicas (entry, fid, filename, version, size, mtime, ino, mode, ctime)
         VALUES (@entry, @fid, @filename, @version, @size, @mtime, @ino, @mode, @ctime)
         ON CONFLICT (entry, fid) DO UPDATE SET filename = excluded.filename, version = excluded.version,
           size = excluded.size, mtime = excluded.mtime, ino = excluded.ino, mode = excluded.mode,
           ctime = excluded.ctime`,
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
      deleteJob: db.prepare('DELETE FROM jobs WHERE id = ?'),
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
      // The dispatch of a page of queued jobs: each with its file, the destination's copy and
      // the first running entry (in name order) that holds the latest version, in one query.
      dispatch: db
        .prepare(
          `SELECT j.id, j.kind, j.preserve, f.filename, f.version, f.deleted,
                  d.size, d.mtime, d.ino, d.mode, s.entry, s.size, s.mtime, s.ino, s.mode
           FROM jobs j
           LEFT JOIN files f ON f.fid = j.fid
           LEFT JOIN replicas d ON d.entry = j.entry AND d.fid = j.fid
           LEFT JOIN replicas s ON s.fid = j.fid AND s.entry = (
             SELECT r.entry FROM replicas r
             WHERE r.fid = j.fid AND r.version = f.version AND r.entry <> j.entry
               AND r.entry IN (SELECT value FROM json_each(@running))
             ORDER BY r.entry LIMIT 1)
           WHERE j.entry = @entry AND j.state = 'queued' AND j.not_before <= @now AND j.id > @after
           ORDER BY j.id LIMIT @limit`,
        )
        .raw(),
      // Only the state and version: the indexes of the other columns are left alone.
      markRunning: db.prepare("UPDATE jobs SET state = 'running', version = ? WHERE id = ?"),
      finishedRows: db
        .prepare(
          `SELECT j.id, j.entry, j.fid, j.kind, j.version, f.filename, f.version, f.deleted, f.owners, f.uptodate
           FROM json_each(?) AS ids JOIN jobs j ON j.id = ids.value LEFT JOIN files f ON f.fid = j.fid`,
        )
        .raw(),
      // One row each, in the caller's transaction: cheaper than one statement over a JSON array.
      putReplicaRow: db.prepare(
        `INSERT INTO replicas (entry, fid, filename, version, size, mtime, ino, mode, ctime) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (fid, entry) DO UPDATE SET filename = excluded.filename, version = excluded.version,
           size = excluded.size, mtime = excluded.mtime, ino = excluded.ino, mode = excluded.mode,
           ctime = excluded.ctime`,
      ),
      setUptodate: db.prepare('UPDATE files SET uptodate = ? WHERE fid = ?'),
      insertNewFile: db.prepare(
        'INSERT INTO files (fid, filename, size, version, owners, uptodate, deleted) VALUES (?, ?, ?, 1, ?, ?, ?)',
      ),
      insertUpload: db.prepare(
        "INSERT INTO jobs (entry, fid, kind, from_filename, version, preserve) VALUES (?, ?, 'upload', NULL, 1, 0)",
      ),
      requeueAll: db.prepare("UPDATE jobs SET state = 'queued' WHERE state = 'running'"),
      requeueEntry: db.prepare("UPDATE jobs SET state = 'queued' WHERE state = 'running' AND entry = ?"),
      rules: db.prepare('SELECT json FROM rules WHERE kind = ?'),
      putRules: db.prepare(
        'INSERT INTO rules (kind, json) VALUES (?, ?) ON CONFLICT (kind) DO UPDATE SET json = excluded.json',
      ),
    };
    // Made now, outside any transaction: a rollback would take the temporary table with it.
    if (!options.readonly) this.scanQueries();
    this.versions = new VersionsTable(db, options.readonly);
    this.ignores = new IgnoresTable(db, options.readonly);
  }

  /** What changed since a store was made: an older store is brought up to date when it is opened. */
  private migrate(): void {
    // The replicas' mode and ctime columns (empty for the rows there).
    const columns = new Set((this.db.prepare('PRAGMA table_info(replicas)').all() as { name: string }[]).map((c) => c.name));
    const mode = columns.has('mode') ? 'mode' : 'NULL';
    const ctime = columns.has('ctime') ? 'ctime' : 'NULL';
    // Replicas keyed by (fid, entry) without a rowid: the table is rebuilt, rows kept.
    const sql = (this.db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'replicas'").pluck().get() as string) ?? '';
    if (!/WITHOUT\s+ROWID/i.test(sql)) {
      this.db.transaction(() => {
        this.db.exec(`ALTER TABLE replicas RENAME TO replicas_old;
          DROP INDEX IF EXISTS replicas_by_fid;
          ${SCHEMA.slice(SCHEMA.indexOf('CREATE TABLE IF NOT EXISTS replicas'), SCHEMA.indexOf('WITHOUT ROWID;') + 'WITHOUT ROWID;'.length)}
          INSERT INTO replicas (entry, fid, filename, version, size, mtime, ino, mode, ctime)
            SELECT entry, fid, filename, version, size, mtime, ino, ${mode}, ${ctime} FROM replicas_old;
          DROP TABLE replicas_old;`);
        // The triggers on replicas went with the old table: made again.
        this.db.exec(SCHEMA);
      })();
    }
    // Two indexes of jobs by fid became one (jobs_per_file): every index keyed by a random fid
    // costs a page written per job and per commit.
    this.db.exec('DROP INDEX IF EXISTS jobs_one_per_file; DROP INDEX IF EXISTS jobs_by_fid');
    // The digests' triggers of an earlier version, which ran for every replica written (the
    // schema has made their successors, which run only for an entry with a digest kept).
    this.db.exec('DROP TRIGGER IF EXISTS replicas_insert_digest; DROP TRIGGER IF EXISTS replicas_update_digest; DROP TRIGGER IF EXISTS replicas_delete_digest');
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /**
   * Runs `fn` in a transaction that is committed with whatever else is written in the next
   * GROUP_COMMIT_MS (a group commit): what workers report comes in many small messages, and a
   * commit writes every page its rows touched, pages of indexes keyed by random fids (about one
   * per row in each). Committed together, a page holds many rows. What is written meanwhile
   * (`transaction` included) joins it. A crash loses at most that much of what was recorded,
   * and all of it can be redone: jobs are requeued, copies found by the next scan.
   */
  grouped<T>(fn: () => T): T {
    if (!this.db.inTransaction) {
      this.db.exec('BEGIN');
      this.commitTimer = setTimeout(() => this.commit(), GROUP_COMMIT_MS);
    }
    return this.transaction(fn);
  }

  private commitTimer: NodeJS.Timeout | null = null;

  /**
   * Told when the group commit's COMMIT fails (a full disk): what it held is rolled back, and
   * nobody waits on the timer that committed it. Unset, the error is thrown.
   */
  onCommitFailure: ((err: unknown) => void) | null = null;

  /** Commits the group commit's transaction now, if one is open. */
  commit(): void {
    if (this.commitTimer === null) return;
    clearTimeout(this.commitTimer);
    this.commitTimer = null;
    if (!this.db.open || !this.db.inTransaction) return;
    try {
      this.db.exec('COMMIT');
    } catch (err) {
      // SQLite may have rolled the transaction back already (SQLITE_FULL, SQLITE_IOERR), or not.
      if (this.db.inTransaction) {
        try {
          this.db.exec('ROLLBACK');
        } catch {
          // nothing more to undo
        }
      }
      this.jobsGeneration++;
      this.listingGeneration++;
      if (!this.onCommitFailure) throw err;
      this.onCommitFailure(err);
    }
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

  /** Every file's fid and name, and whether it is a folder (tombstones included). */
  allNames(): { fid: string; filename: string; folder: boolean }[] {
    return (this.q.allNames.all() as { fid: string; filename: string; deleted: number }[]).map((r) => ({
      fid: r.fid,
      filename: r.filename,
      folder: r.deleted === FOLDER,
    }));
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
      deleted: file.deleted ? 1 : file.folder ? FOLDER : 0,
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
   * How many files `entry` holds. Kept in the row that says its digests are complete, which
   * any write to its replicas drops: counting them is a pass over every entry's replicas (no
   * index by entry), which from a cold disk took some 40 ms of a start at 20,000 files.
   */
  countReplicas(entry: string): number {
    const kept = this.q.keptCount.get(entry) as string | undefined;
    if (kept !== undefined && /^\d+$/.test(kept)) return Number(kept);
    return (this.q.countReplicas.get(entry) as { n: number }).n;
  }

  /** Whether `entry` holds any replica. */
  holdsAny(entry: string): boolean {
    return this.q.holdsAny.get(entry) !== undefined;
  }

  /** Whether the store has a file (or a deleted file's row) named `filename`. */
  knowsName(filename: string): boolean {
    return this.q.knowsName.get(filename) !== undefined;
  }

  putReplica(replica: ReplicaRecord): void {
    this.q.putReplica.run({ ...replica, mode: replica.mode ?? null, ctime: replica.ctime ?? null });
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

  deleteJob(id: number): void {
    this.jobsGeneration++;
    this.q.deleteJob.run(id);
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

  // ---- batches: many jobs or files in a few statements ----

  /** A page of `entry`'s due queued jobs with what dispatching them needs (see `dispatch`). */
  dispatchPage(entry: string, now: number, after: number, limit: number, running: string[]): DispatchRow[] {
    return this.q.dispatch.all({ entry, now, after, limit, running: JSON.stringify(running) }) as DispatchRow[];
  }

  /** Marks jobs running, each for a version: `[[id, version], …]`. */
  markRunningMany(jobs: [number, number][]): void {
    if (jobs.length === 0) return;
    this.jobsGeneration++;
    for (const [id, version] of jobs) this.q.markRunning.run(version, id);
  }

  /** The jobs of these ids that exist, each with its file as the store has it. */
  finishedRows(ids: number[]): FinishedRow[] {
    return this.q.finishedRows.all(JSON.stringify(ids)) as FinishedRow[];
  }

  deleteJobs(ids: number[]): void {
    if (ids.length === 0) return;
    this.jobsGeneration++;
    for (const id of ids) this.q.deleteJob.run(id);
  }

  /** Records what `entry` holds: `[[fid, filename, version, size, mtime, ino, mode, ctime], …]`. */
  putReplicas(entry: string, rows: unknown[][]): void {
    for (const row of rows) this.q.putReplicaRow.run(entry, ...row);
  }

  /** Sets the up-to-date entries of files: `[[fid, uptodate as JSON], …]`. */
  setUptodate(rows: [string, string][]): void {
    for (const [fid, uptodate] of rows) this.q.setUptodate.run(uptodate, fid);
  }

  /**
   * Files the store did not know, found in `entry`: each a file at version 1
   * (`[[fid, filename, size, owners, uptodate], …]`), the entry's replica of it, and an upload
   * to each of `uploads` (`[[entry, fid], …]`).
   */
  insertNewFiles(entry: string, files: unknown[][], replicas: unknown[][], uploads: [string, string][]): void {
    if (files.length === 0) return;
    this.listingGeneration++;
    for (const file of files) this.q.insertNewFile.run(...file);
    this.putReplicas(entry, replicas);
    if (uploads.length > 0) {
      this.jobsGeneration++;
      for (const [name, fid] of uploads) this.q.insertUpload.run(name, fid);
    }
  }

  // ---- rescans: a worker's listing compared with the store in SQL ----

  /**
   * The statements of rescans, over a temporary table of the files listed so far by each
   * entry's running scan (on disk beyond a few MiB of cache: the daemon's memory does not grow
   * with the tree).
   */
  private scanQueries() {
    if (this.sq) return this.sq;
    const db = this.db;
    db.exec(`PRAGMA temp.cache_size = -4096;
      CREATE TEMP TABLE IF NOT EXISTS scan (
        entry TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime REAL NOT NULL,
        ino TEXT, mode INTEGER, ctime REAL, PRIMARY KEY (entry, path)) WITHOUT ROWID;
      CREATE TEMP TABLE IF NOT EXISTS scan_same (
        entry TEXT NOT NULL, folder TEXT NOT NULL, PRIMARY KEY (entry, folder)) WITHOUT ROWID`);
    // A new file of the same inode and size as a gone one, not held by the entry under its name.
    const movedTo = `(SELECT s.path FROM temp.scan s WHERE s.entry = r.entry AND s.ino = r.ino AND s.size = r.size
        AND NOT EXISTS (SELECT 1 FROM files f2 JOIN replicas r2 ON r2.entry = r.entry AND r2.fid = f2.fid WHERE f2.filename = s.path)
        ORDER BY s.path LIMIT 1)`;
    // Held, not listed, and not in a folder the worker left out as unchanged.
    const gone = `FROM replicas r WHERE r.entry = @entry
        AND NOT EXISTS (SELECT 1 FROM temp.scan s WHERE s.entry = r.entry AND s.path = r.filename)
        AND NOT EXISTS (SELECT 1 FROM temp.scan_same d WHERE d.entry = r.entry AND d.folder = ${folderOf('r.filename')})`;
    this.sq = {
      // A path listed twice keeps its last stat.
      add: db.prepare('INSERT OR REPLACE INTO temp.scan (entry, path, size, mtime, ino, mode, ctime) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      clear: db.prepare('DELETE FROM temp.scan WHERE entry = ?'),
      clearSame: db.prepare('DELETE FROM temp.scan_same WHERE entry = ?'),
      addSame: db.prepare('INSERT OR IGNORE INTO temp.scan_same (entry, folder) VALUES (?, ?)'),
      digests: db.prepare(`SELECT folder, digest FROM scan_digests WHERE entry = ? AND folder <> '${DIGESTS_COMPLETE}'`).raw(),
      anyDigest: db.prepare('SELECT 1 FROM scan_digests WHERE entry = ? LIMIT 1').pluck(),
      putDigest: db.prepare('INSERT OR REPLACE INTO scan_digests (entry, folder, digest) VALUES (?, ?, ?)'),
      // The replicas of an entry in folders without a digest, folder by folder.
      undigested: db
        .prepare(
          `SELECT ${folderOf('r.filename')} AS folder, r.filename, r.size, r.mtime, r.ctime, r.ino, r.mode FROM replicas r
           WHERE r.entry = ? AND NOT EXISTS (SELECT 1 FROM scan_digests d WHERE d.entry = r.entry AND d.folder = ${folderOf('r.filename')})
           ORDER BY 1`,
        )
        .raw(),
      one: db.prepare('SELECT size, mtime, ino, mode, ctime FROM temp.scan WHERE entry = ? AND path = ?'),
      size: db.prepare('SELECT count(*) FROM temp.scan WHERE entry = ?').pluck(),
      goneCount: db.prepare(`SELECT count(*) ${gone}`).pluck(),
      movedCount: db.prepare(`SELECT count(*) FROM (SELECT ${movedTo} AS moved_to ${gone}) WHERE moved_to IS NOT NULL`).pluck(),
      gone: db.prepare(`SELECT r.fid, r.filename, r.size, r.ino, ${movedTo} AS movedTo ${gone} ORDER BY r.filename`),
      diff: db.prepare(
        `SELECT s.path, s.size, s.mtime, s.ino, s.mode, s.ctime, f.fid AS fid,
                r.fid AS rfid, r.version AS rversion, r.size AS rsize, r.mtime AS rmtime, r.ino AS rino,
                r.mode AS rmode, r.ctime AS rctime
         FROM temp.scan s
         LEFT JOIN files f ON f.filename = s.path
         LEFT JOIN replicas r ON r.entry = s.entry AND r.fid = f.fid
         WHERE s.entry = @entry AND s.path > @after
           AND (r.fid IS NULL OR r.size <> s.size OR r.mtime <> s.mtime OR r.ino IS NOT s.ino
                OR (s.mode IS NOT NULL AND r.mode IS NOT s.mode) OR (s.ctime IS NOT NULL AND r.ctime IS NOT s.ctime))
         ORDER BY s.path LIMIT @limit`,
      ),
    };
    return this.sq;
  }

  private sq: {
    add: Database.Statement;
    clear: Database.Statement;
    clearSame: Database.Statement;
    addSame: Database.Statement;
    digests: Database.Statement;
    putDigest: Database.Statement;
    undigested: Database.Statement;
    anyDigest: Database.Statement;
    one: Database.Statement;
    size: Database.Statement;
    goneCount: Database.Statement;
    movedCount: Database.Statement;
    gone: Database.Statement;
    diff: Database.Statement;
  } | null = null;

  /** Adds files to `entry`'s running scan. */
  scanAdd(entry: string, files: readonly ScannedLike[]): void {
    const add = this.scanQueries().add;
    for (const f of files) add.run(entry, f.path, f.size, f.mtime, f.ino, f.mode ?? null, f.ctime ?? null);
  }

  /** The stat `entry`'s running scan lists for `path` (what it lacks left out). */
  scanned(entry: string, path: string): FileStat | undefined {
    const row = this.scanQueries().one.get(entry, path) as
      | { size: number; mtime: number; ino: string | null; mode: number | null; ctime: number | null }
      | undefined;
    if (!row) return undefined;
    const stat: FileStat = { size: row.size, mtime: row.mtime, ino: row.ino };
    if (row.mode !== null) stat.mode = row.mode;
    if (row.ctime !== null) stat.ctime = row.ctime;
    return stat;
  }

  /** How many files `entry`'s running scan listed so far. */
  scanSize(entry: string): number {
    return this.scanQueries().size.get(entry) as number;
  }

  /** Forgets `entry`'s running scan. */
  scanClear(entry: string): void {
    this.scanQueries().clear.run(entry);
  }

  /**
   * Of the files the store says `entry` holds, how many its scan no longer lists, and how many
   * of those have a new file of the same inode and size (moves).
   */
  scanGoneCounts(entry: string): { gone: number; moved: number } {
    const q = this.scanQueries();
    const gone = q.goneCount.get({ entry }) as number;
    if (gone === 0) return { gone, moved: 0 };
    this.indexScanByInode();
    return { gone, moved: q.movedCount.get({ entry }) as number };
  }

  /** The replicas of `entry` its scan no longer lists, by name, each with a move target if one is found. */
  scanGone(entry: string): ScanGoneRow[] {
    this.indexScanByInode();
    return this.scanQueries().gone.all({ entry }) as ScanGoneRow[];
  }

  /** A page of the scanned files of `entry` that differ from its replicas, by path after `after`. */
  scanDiff(entry: string, after: string, limit: number): ScanDiffRow[] {
    return this.scanQueries().diff.all({ entry, after, limit }) as ScanDiffRow[];
  }

  /** Moves are looked up by inode: an index made only when some file is gone, dropped with the scan. */
  private indexScanByInode(): void {
    this.db.exec('CREATE INDEX IF NOT EXISTS temp.scan_by_ino ON scan (entry, ino)');
  }

  /** The folder digests of `entry`'s replicas kept in scan_digests (see folderDigests). */
  scanDigests(entry: string): [string, string][] {
    return this.scanQueries().digests.all(entry) as [string, string][];
  }

  /** Whether every folder of `entry`'s replicas has its digest kept (none was written since they were computed). */
  digestsComplete(entry: string): boolean {
    return this.q.keptCount.get(entry) !== undefined;
  }

  /** Folders of `entry`'s running scan that its worker left out as unchanged: none of their replicas is gone. */
  scanSame(entry: string, folders: Iterable<string>): void {
    const add = this.scanQueries().addSame;
    for (const folder of folders) add.run(entry, folder);
  }

  /**
   * The digest of each folder of `entry`'s replicas (see folder-digest.ts), by folder: those
   * kept in scan_digests, and unless every folder has one, those of the others computed now (one
   * pass over the replicas, by folder) and kept.
   */
  folderDigests(entry: string): [string, string][] {
    const q = this.scanQueries();
    if (this.digestsComplete(entry)) return this.scanDigests(entry);
    // With no digest kept, the pass below reads every replica of the entry: it counts them.
    const noneKept = q.anyDigest.get(entry) === undefined;
    let rows = 0;
    const computed: [string, string][] = [];
    let folder: string | null = null;
    let lines: string[] = [];
    for (const row of q.undigested.iterate(entry) as Iterable<[string, string, number, number, number | null, string | null, number | null]>) {
      rows++;
      const [f, filename, size, mtime, ctime, ino, mode] = row;
      if (f !== folder) {
        if (folder !== null) computed.push([folder, listingDigest(lines)]);
        folder = f;
        lines = [];
      }
      lines.push(childLine(f === '' ? filename : filename.slice(f.length + 1), size, mtime, ctime, ino, mode));
    }
    if (folder !== null) computed.push([folder, listingDigest(lines)]);
    this.transaction(() => {
      for (const [f, digest] of computed) q.putDigest.run(entry, f, digest);
      const count = noneKept ? rows : (this.q.countReplicas.get(entry) as { n: number }).n;
      q.putDigest.run(entry, DIGESTS_COMPLETE, String(count));
    });
    return this.scanDigests(entry);
  }

  /** Ends `entry`'s scan: its rows go, and the inode index if no other scan runs. */
  scanEnd(entry: string): void {
    const q = this.scanQueries();
    q.clear.run(entry);
    q.clearSame.run(entry);
    if (this.db.prepare('SELECT 1 FROM temp.scan LIMIT 1').get() === undefined) this.db.exec('DROP INDEX IF EXISTS temp.scan_by_ino');
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
    this.commit();
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
