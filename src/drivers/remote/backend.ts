import type { Readable } from 'node:stream';
import type { StorageReader } from '../source-reader.js';
import { S_IFDIR } from '../../../machines/reports.js';
import type { RemoteStat } from './poller.js';

/** A folder's stat, as local_storage reports one: size and mtime 0, its type in the mode. */
export const FOLDER_STAT: RemoteStat = { size: 0, mtime: 0, ino: null, mode: S_IFDIR };

export type { RemoteStat };

/** A listing of a remote storage: its files and folders, and Ferry's own names found in it. */
export interface Listing {
  /** Files, and folders (mode S_IFDIR, size and mtime 0, as local_storage reports them). */
  files: Map<string, RemoteStat>;
  /** Ferry's own names (`.ferry-tmp-*`, `.ferry-part-*`, the marker), with their mtime. */
  internal: { rel: string; mtime: number }[];
}

/** One copy into a remote storage, as the driver hands it to its backend. */
export interface UploadPlan {
  jobId: number;
  rel: string;
  size: number;
  /** The source's mtime (ms), given to the copy where the storage lets it be set. */
  mtime: number;
  /** The source's bytes from `offset`. */
  open(offset: number): Promise<Readable>;
  /**
   * The source whole (a small file): its first `into.length` bytes at most, read into `into`;
   * returns how many. Throws a StaleJob when it is not the version to copy.
   */
  read(into: Buffer): Promise<number>;
  /** Throws a StaleJob when the source changed since the copy began: called just before the copy becomes visible. */
  verifySource(): Promise<void>;
  /** Bytes copied so far (resumed bytes included). */
  progress(bytes: number): void;
  /**
   * Called once the copy is complete and checked, just before it replaces the file (the rename,
   * the PutObject, the CompleteMultipartUpload): the driver keeps what the file holds as a
   * version there. When it throws, nothing is replaced.
   */
  beforeCommit?(): Promise<void>;
  log(level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>): void;
  signal: AbortSignal;
  /**
   * Nothing is at `rel` as far as the store and the last listing know: the copy is made without
   * asking the storage first, and its commit must not replace anything there. Where the
   * storage can refuse atomically (SFTP's plain rename, S3's `If-None-Match: *`) a file found
   * there throws a TargetExists, and the driver asks what it is; a storage that ignores the
   * condition (s3rver) is trusted on its last listing.
   */
  ifAbsent?: boolean;
}

/** An `ifAbsent` copy found something at its target: nothing was replaced (and no partial copy is left under a final name). */
export class TargetExists extends Error {
  constructor(rel: string) {
    super(`${rel} exists`);
    this.name = 'TargetExists';
  }
}

/** How many copies a worker runs at once on one storage, and the bytes they may hold (one copy always runs). */
export interface CopyLimits {
  files: number;
  bytes: number;
}

/**
 * What a remote driver does on its storage; the RemoteDriver around it does the rest
 * (connection state and retries, polling, conflicts, the worker's reports).
 */
export interface RemoteBackend extends StorageReader {
  /** What is reached, as reasons name it: `sftp 127.0.0.1:2222`, `s3 bucket`. */
  readonly endpoint: string;
  /** Whether a rename keeps a file's mtime on this storage (a poll then tells renames by size and mtime). */
  readonly renameKeepsMtime: boolean;
  /** Copies run at once on this storage (the others wait their turn in the worker, in order). */
  readonly copyLimits: CopyLimits;
  /**
   * Connects and checks the credentials. Throws a DriverRefusal when the storage must not be
   * used as configured (a host key that does not match), anything else when it cannot be reached.
   */
  connect(): Promise<void>;
  /** Every file, and Ferry's own names; throws a DriverRefusal when the root (bucket) does not exist. */
  listing(): Promise<Listing>;
  /** Copies a file in through a temporary name (or an invisible multipart upload) and returns its stat. */
  upload(plan: UploadPlan): Promise<RemoteStat>;
  /** The folder at `rel` (S3: its `rel/` marker object), or null. */
  folderStat(rel: string): Promise<RemoteStat | null>;
  /** Makes a folder (its parents too; S3: a `name/` marker object) and returns its stat. */
  makeFolder(rel: string): Promise<RemoteStat>;
  /** Removes an empty folder; a StaleJob while it still holds anything. */
  removeFolder(rel: string): Promise<void>;
  remove(rel: string): Promise<void>;
  /** Renames a file on the storage (S3: a server-side copy, then a delete). */
  rename(from: string, to: string): Promise<void>;
  /** Removes one of Ferry's own names left by a crash (an abandoned multipart upload is aborted with it). */
  removeInternal(rel: string): Promise<void>;
  /** Aborts what a crash left behind that no name shows (old multipart uploads); returns how many. */
  sweep?(): Promise<number>;
  /** Told of each folder the backend made on its own (the parents of a copy): not a change from the user. */
  onFolderMade?: (rel: string, stat: RemoteStat) => void;
  // ---- versions: files under `.ferry-versions/` (keys as versions/names.ts makes them) ----

  /** Every file under the versions folder, with its size (none when the folder does not exist). */
  listVersions(): Promise<{ key: string; size: number }[]>;
  /** The size of the version `key`, or null when the storage does not hold it. */
  versionSize(key: string): Promise<number | null>;
  /**
   * Keeps what `rel` holds as the version `key`, leaving `rel` as it is (SFTP: a hard link, or a
   * copy where the server has none; S3: CopyObject). Throws when it could not.
   */
  copyToVersion(rel: string, key: string): Promise<void>;
  /** Moves `rel` to the version `key` (SFTP: a rename; S3: CopyObject, then DeleteObject). Throws when it could not (`rel` then stays). */
  moveToVersion(rel: string, key: string): Promise<void>;
  /**
   * Puts the version `key` in place at `rel` (replacing what it holds at once) and returns the
   * file's stat: its mtime now (S3: the copy's time), and never the same size and mtime as
   * `replacing`, what `rel` held (so that the restore reads as a change).
   */
  restoreVersion(key: string, rel: string, replacing: RemoteStat | null): Promise<RemoteStat>;
  /** Removes a version (and, on SFTP, the folders it leaves empty). */
  removeVersion(key: string): Promise<void>;
  /** The largest version the storage can keep (S3: 5 GiB, the most CopyObject copies); none when absent. */
  readonly versionMax?: number;
  /** Writes the marker that says this storage is this entry's. */
  writeMarker(): Promise<void>;
  /**
   * Why an error means the server is not reached (connection refused or lost, bad credentials),
   * in a few words for the entry's status; null for an error of the operation itself.
   */
  connectionError(err: unknown): string | null;
}
