import type { FileStat, WorkerReport } from '../../machines/reports.js';
import type { ConnectionState, WatchState } from './driver.js';
import type { VersionPolicy } from '../versions/policy.js';
import type { VersionChange } from '../versions/keeper.js';

/** How a worker reaches another entry's storage to read a file from it. */
export interface SourceRef {
  entry: string;
  driver: string;
  options: Record<string, unknown>;
}

export type JobCommand =
  | {
      id: number;
      kind: 'upload';
      path: string;
      source: SourceRef;
      /** The source's copy must still have this stat, or the job is stale. */
      sourceStat: FileStat;
      /** What the destination is believed to hold at `path` (null: nothing). */
      expect: FileStat | null;
      preserve: boolean;
    }
  | { id: number; kind: 'delete'; path: string; expect: FileStat }
  | { id: number; kind: 'move'; from: string; path: string; expect: FileStat | null };

/** Messages from the daemon to a worker. */
export type ToWorker =
  | {
      type: 'init';
      entry: string;
      driver: string;
      options: Record<string, unknown>;
      knownFiles: number;
      /** The setup's ignore patterns for this entry (every entry's, then its own). */
      ignore?: string[];
      /** Its versions policy; null: "off". */
      versions?: VersionPolicy | null;
    }
  /** The digest of each folder of the entry's replicas (folder, digest), sent once after `init`: see ScanDigest. */
  | { type: 'digests'; digests: [string, string][] }
  /** Jobs to run, in order: those of one dispatch travel in one message. */
  | { type: 'jobs'; jobs: JobCommand[] }
  /** Rescan the whole storage; answered with `rescanned` once its reports were sent. */
  | { type: 'rescan'; id: number }
  /** Put the version `key` back in place; answered with `restored`. */
  | { type: 'restore'; id: number; key: string }
  | { type: 'stop' };

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** Messages from a worker to the daemon. */
export type FromWorker =
  /**
   * What the driver reported, in order: the reports of one turn of the worker's event loop
   * travel in one message, and the daemon records them in one catalogue transaction.
   */
  | { type: 'reports'; reports: WorkerReport[] }
  | { type: 'ready'; pid: number }
  | { type: 'fatal'; reason: string }
  | { type: 'log'; level: LogLevel; msg: string; fields?: Record<string, unknown> }
  /** Bytes of a running upload written so far. */
  | { type: 'progress'; jobId: number; bytes: number }
  /** The entry's copy of `path` was kept as `conflict` before another version replaced it. */
  | { type: 'conflict'; path: string; conflict: string }
  /** What the driver watches, and what it cannot (rescanned at an interval instead). */
  | { type: 'watch'; state: WatchState }
  /** Whether a remote driver reaches its server, and if not why. */
  | { type: 'connection'; state: ConnectionState }
  /** The rescan asked for is done; its reports came before this message. */
  | { type: 'rescanned'; id: number }
  /** Versions the worker kept or dropped (`full`: every version it holds, sent once it started). */
  | { type: 'versions'; change: VersionChange }
  /** The ignore patterns in force (the setup's, then the storage's own, such as .ferryignore): sent at start and when they change. */
  | { type: 'ignore'; patterns: string[] }
  /** The restore asked for is done (`error` null), or why not (`missing`: no such version). */
  | { type: 'restored'; id: number; error: string | null; missing?: boolean };
