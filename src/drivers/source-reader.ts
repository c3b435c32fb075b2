/**
 * The read side of the driver boundary: any entry can be the source of a copy into any other.
 * A destination's worker makes a `StorageReader` from a job's `SourceRef` (the source entry's
 * driver and resolved options) and reads the file's bytes straight from the source's storage:
 * source storage → destination worker → destination storage, never through the daemon.
 */
import type { Readable } from 'node:stream';
import type { FileStat, ScannedFile } from '../../machines/reports.js';
import type { SourceRef } from './protocol.js';
import type { LogLevel } from './protocol.js';
import { drivers } from './registry.js';

export interface StorageReader {
  /** The file's stat now, as the source's own listing reports it; null when it is not there. */
  stat(rel: string): Promise<FileStat | null>;
  /** The file's bytes from `offset` to its end, as a stream (memory stays bounded whatever the size). */
  open(rel: string, offset: number): Promise<Readable>;
  /**
   * A small file whole: its first `into.length` bytes at most, read into `into`, with the stat
   * of what was read (which version); null when it is not there. Where a reader has it, a small
   * copy costs an open, a stat, a read and a close, without a stream.
   */
  read?(rel: string, into: Buffer): Promise<{ bytes: number; stat: FileStat } | null>;
  /** Every file of the storage (Ferry's own names left out). */
  list(): Promise<ScannedFile[]>;
  /** Closes what the reader holds open (a connection). */
  close(): Promise<void>;
}

export type ReaderLog = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** Makes a reader of one entry's storage from its resolved options. */
export type ReaderFactory = (options: Record<string, unknown>, log: ReaderLog) => StorageReader;

/** Readers made so far, one per source entry and options: a remote one keeps its connection. */
const readers = new Map<string, Promise<StorageReader>>();

/** The reader of a job's source, made once per source and kept (an SFTP source keeps its connection). */
export function sourceReader(ref: SourceRef, log: ReaderLog): Promise<StorageReader> {
  const key = `${ref.entry}\0${ref.driver}\0${JSON.stringify(ref.options)}`;
  let reader = readers.get(key);
  if (!reader) {
    const spec = drivers[ref.driver];
    if (!spec?.reader) return Promise.reject(new Error(`cannot read from a ${ref.driver} entry`));
    reader = spec.reader().then((make) => make(ref.options, log));
    reader.catch(() => readers.delete(key));
    readers.set(key, reader);
  }
  return reader;
}

/** Closes every reader made in this process (the worker stops). */
export async function closeSourceReaders(): Promise<void> {
  const all = [...readers.values()];
  readers.clear();
  await Promise.all(all.map((r) => r.then((x) => x.close()).catch(() => {})));
}
