/**
 * What an entry's worker reports about its storage, as events the rules actor takes.
 * Every report names the entry it came from.
 */

export interface FileStat {
  size: number;
  /** Modification time in milliseconds, as the storage reports it. */
  mtime: number;
  /** An identity that survives a rename on the same storage (inode), when the driver has one. */
  ino: string | null;
  /**
   * Permission bits (`st_mode & 0o7777`), when the storage has them: a change of them is a
   * change. A folder or a symbolic link carries its file-type bits too (`S_IFDIR`, `S_IFLNK`):
   * folders are synced as such (empty ones too; their size and mtime are 0), and links whose
   * target stays inside the root are recreated as links. A regular file's type bits are 0.
   */
  mode?: number;
  /**
   * Status-change time in milliseconds, when the storage has one. Recorded, never propagated: a
   * report that differs from what the store holds only by it (or by `ino`) changes nothing else.
   */
  ctime?: number;
}

/** How much of an entry's storage its watcher watches; what it cannot is rescanned at an interval (`reason` says why). */
export interface WatchState {
  folders: number;
  watched: number;
  polled: number;
  reason: string | null;
}

/**
 * Whether a remote entry's worker reaches its server, and if not why (`sftp 127.0.0.1:2222:
 * connection refused; retrying in 8 s`). Local storage has none.
 */
export interface ConnectionState {
  /** What is reached, as the reason names it: `sftp HOST:PORT`, `s3 BUCKET`. */
  endpoint: string;
  connected: boolean;
  reason: string | null;
}

/** The file-type bits of a mode, and the two types besides regular files that are synced. */
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const isFolderStat = (s: { mode?: number | null }) => ((s.mode ?? 0) & S_IFMT) === S_IFDIR;
export const isLinkStat = (s: { mode?: number | null }) => ((s.mode ?? 0) & S_IFMT) === S_IFLNK;

export interface ScannedFile extends FileStat {
  path: string;
}

/**
 * A folder as a start-up scan found it: a digest of its listing (its children's names and
 * stats). `listed`: its children are among the scan's files; otherwise its digest is the one
 * the daemon gave the worker, and its files were left out as unchanged.
 */
export interface ScanDigest {
  folder: string;
  digest: string;
  listed: boolean;
}

export type JobOutcome = (
  /** Done: `stat` is the destination's copy afterwards (absent for a delete). */
  | { ok: true; stat: FileStat | null }
  /**
   * Not done. `stale`: the destination or source no longer matched what the job expected;
   * the watcher reports the actual state. `error`: anything else, retried with back-off.
   */
  | { ok: false; reason: 'stale' | 'error'; message: string }
) & {
  /**
   * The folders the job made on the way to its file (top first), done or not: its watcher does
   * not report them, the daemon records them with the job (as this entry's, or to be removed
   * again when the folder was removed elsewhere meanwhile).
   */
  folders?: MadeFolder[];
};

/** A folder a job made, with its stat as the watcher would have reported it. */
export interface MadeFolder {
  path: string;
  stat: FileStat;
}

export type WorkerReport =
  | { type: 'file.changed'; entry: string; path: string; stat: FileStat }
  | { type: 'file.deleted'; entry: string; path: string }
  | { type: 'file.moved'; entry: string; from: string; path: string; stat: FileStat }
  /**
   * Part of a start-up scan: a scan is zero or more `scan.chunk` reports (up to 10,000 files
   * each) and then the `entry.scanned` that ends it, with the last files. The first chunk after
   * an `entry.scanned` (or after the worker started) begins a new scan.
   */
  | { type: 'scan.chunk'; entry: string; files: ScannedFile[] }
  /**
   * The end of a start-up scan, with its last files (all of them when no chunk came before).
   * `force`: the entry was started with --force, so mass deletions found by the scan apply.
   * `digests`: every folder's (a driver that keeps none sends none, and lists every file).
   */
  | { type: 'entry.scanned'; entry: string; files: ScannedFile[]; force?: boolean; digests?: ScanDigest[] }
  | { type: 'job.finished'; entry: string; jobId: number; outcome: JobOutcome };

/**
 * A version an entry keeps of content a sync overwrote or deleted, as its worker reports it:
 * `key`, its path under the storage's `.ferry-versions/`; `time`, when it was kept (epoch ms).
 */
export interface VersionRecord {
  key: string;
  filename: string;
  time: number;
  size: number;
  reason: 'overwritten' | 'deleted';
}

/** What changed in an entry's versions; `full`: `kept` is every version it holds (sent at start). */
export interface VersionChange {
  kept: VersionRecord[];
  dropped: string[];
  full?: boolean;
}
