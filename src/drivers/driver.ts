import type { ConnectionState, JobOutcome, WatchState, WorkerReport } from '../../machines/reports.js';

export type { ConnectionState, WatchState };
import type { JobCommand, LogLevel } from './protocol.js';
import type { VersionPolicy } from '../versions/policy.js';
import type { VersionChange } from '../versions/keeper.js';

/** What a driver is given when its worker starts. */
export interface DriverContext {
  entry: string;
  options: Record<string, unknown>;
  /** How many files the store says this entry held when it last ran. */
  knownFiles: number;
  /**
   * The digest of each folder's listing in the entry's replicas (see folder-digest.ts), which
   * the daemon sends a local entry's worker after `init`: the start-up scan leaves out the
   * files of each folder whose digest it finds the same.
   */
  digests?(): Promise<ReadonlyMap<string, string>>;
  report(report: WorkerReport): void;
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  /** Progress of a running upload; called every few hundred milliseconds at most. */
  progress(jobId: number, bytes: number): void;
  conflict(path: string, conflict: string): void;
  /** What is watched and what is not, whenever that changes. */
  watchState?(state: WatchState): void;
  /** The setup's ignore patterns (every entry's, then this entry's); see ignore-rules.ts. */
  ignore?: readonly string[];
  /** The versions policy (null or absent: none kept); see versions/keeper.ts. */
  versions?: VersionPolicy | null;
  /** The ignore patterns in force, at start and whenever they change (the setup's, then the storage's own). */
  ignoreChanged?(patterns: string[]): void;
  /** Versions kept or dropped. */
  versionsChanged?(change: VersionChange): void;
  /** Whether a remote storage is reached, whenever that changes. */
  connection?(state: ConnectionState): void;
}

/** A storage driver, run inside an entry's worker process. */
export interface Driver {
  /**
   * Starts watching, rescans the storage and reports `entry.scanned`. Throws a
   * `DriverRefusal` when the storage must not be used (missing root, unmounted disk).
   */
  start(): Promise<void>;
  run(job: JobCommand): Promise<JobOutcome>;
  /** Compares the whole storage with what the driver knows, and reports the differences. */
  rescan?(): Promise<void>;
  /**
   * Puts a version kept by this entry back in place (its current content, if any, kept as a
   * version first); the watcher reports the file as changed. Throws a VersionMissing for an
   * unknown key.
   */
  restore?(key: string): Promise<void>;
  stop(): Promise<void>;
}

export type DriverFactory = (context: DriverContext) => Driver;

/** The storage cannot be used as it is: the entry refuses to start, with this reason. */
export class DriverRefusal extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'DriverRefusal';
  }
}

/** A job that no longer matches the storage (changed under it); the watcher reports the truth. */
export class StaleJob extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'StaleJob';
  }
}
