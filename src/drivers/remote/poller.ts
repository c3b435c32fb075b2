import { isFolderStat, type FileStat, type ScannedFile, type WorkerReport } from '../../../machines/reports.js';

/** A remote file as a listing shows it: size, mtime and, where the storage has one, an ETag. */
export interface RemoteStat extends FileStat {
  etag?: string;
}

/** Files of a start-up scan sent in one report (as local_storage does): the daemon's memory stays flat. */
export const SCAN_CHUNK = 10_000;

/**
 * Change detection on a storage that cannot be watched: each poll's listing is compared with
 * the last one (size, mtime, ETag), and the differences reported as the worker's reports.
 *
 * Ferry's own writes are not reported back as changes: a path being written is `begin`-marked
 * and skipped by every poll until it is `settle`d with the stat it now has; a poll that began
 * before a write settled skips that path too (its listing may predate the write).
 */
export class ListingPoller {
  /** What the last listing (and our own writes since) say each file is. */
  private readonly known = new Map<string, RemoteStat>();
  /** Paths being written by us, with how many writes are in flight on each. */
  private readonly inflight = new Map<string, number>();
  /** Paths we settled, with the write sequence number of the last settle. */
  private readonly ownWrites = new Map<string, number>();
  private seq = 0;

  constructor(
    private readonly entry: string,
    private readonly report: (r: WorkerReport) => void,
    /**
     * Whether a rename keeps the file's mtime on this storage (SFTP, local): a file that
     * vanished and one that appeared with the same size and mtime, alone of their kind in a
     * poll, are one file renamed. Where the storage gives an ETag it decides instead.
     */
    private readonly renameKeepsMtime: boolean,
  ) {}

  get size(): number {
    return this.known.size;
  }

  stat(rel: string): RemoteStat | undefined {
    return this.known.get(rel);
  }

  /** The start-up scan: records the listing and reports it whole (in chunks of SCAN_CHUNK files). */
  scan(files: Map<string, RemoteStat>): void {
    this.known.clear();
    for (const [rel, st] of files) this.known.set(rel, st);
    const all: ScannedFile[] = [...files].map(([rel, st]) => scanned(rel, st));
    for (let i = 0; i + SCAN_CHUNK < all.length; i += SCAN_CHUNK) {
      this.report({ type: 'scan.chunk', entry: this.entry, files: all.slice(i, i + SCAN_CHUNK) });
    }
    const rest = all.length === 0 ? [] : all.slice(Math.floor((all.length - 1) / SCAN_CHUNK) * SCAN_CHUNK);
    this.report({ type: 'entry.scanned', entry: this.entry, files: rest });
  }

  /** A write of `rel` by us begins: polls leave it alone until it settles. */
  begin(rel: string): void {
    this.inflight.set(rel, (this.inflight.get(rel) ?? 0) + 1);
  }

  /**
   * The write of `rel` is over: `stat` is what it holds now (null: nothing), or undefined when
   * the write failed and what it holds is not known (the next poll tells).
   */
  settle(rel: string, stat: RemoteStat | null | undefined): void {
    const n = (this.inflight.get(rel) ?? 1) - 1;
    if (n <= 0) this.inflight.delete(rel);
    else this.inflight.set(rel, n);
    if (stat === undefined) return;
    if (stat === null) this.known.delete(rel);
    else this.known.set(rel, stat);
    this.ownWrites.set(rel, ++this.seq);
  }

  /** Where a poll starts: the paths settled after it are skipped by its diff. */
  mark(): number {
    return this.seq;
  }

  /**
   * Compares a listing taken after `mark` with what is known, reports the differences
   * (moves first, then deletions, then changes and new files) and records the listing.
   * Returns how many reports it made.
   */
  diff(files: Map<string, RemoteStat>, mark: number): number {
    const skip = (rel: string) => this.inflight.has(rel) || (this.ownWrites.get(rel) ?? -1) > mark;
    const appeared: [string, RemoteStat][] = [];
    const changed: [string, RemoteStat][] = [];
    const vanished: [string, RemoteStat][] = [];
    for (const [rel, st] of files) {
      if (skip(rel)) continue;
      const was = this.known.get(rel);
      if (!was) appeared.push([rel, st]);
      else if (differs(was, st)) changed.push([rel, st]);
    }
    for (const [rel, st] of this.known) {
      if (!skip(rel) && !files.has(rel)) vanished.push([rel, st]);
    }
    for (const [rel] of this.ownWrites) if (this.ownWrites.get(rel)! <= mark) this.ownWrites.delete(rel);

    // Renames: a vanished file and a new one of the same identity, each alone with it.
    const moves: [string, string, RemoteStat][] = [];
    if (vanished.length > 0 && appeared.length > 0) {
      // Folders are never paired: one renamed is one gone and one new (as local_storage says it).
      const identity = (st: RemoteStat): string | null =>
        isFolderStat(st) ? null : st.etag ? `e:${st.etag}:${st.size}` : this.renameKeepsMtime ? `m:${st.size}:${st.mtime}` : null;
      const group = (list: [string, RemoteStat][]) => {
        const by = new Map<string, [string, RemoteStat][]>();
        for (const item of list) {
          const id = identity(item[1]);
          if (id !== null) by.set(id, [...(by.get(id) ?? []), item]);
        }
        return by;
      };
      const gone = group(vanished);
      const fresh = group(appeared);
      for (const [id, from] of gone) {
        const to = fresh.get(id);
        if (from.length === 1 && to?.length === 1) moves.push([from[0][0], to[0][0], to[0][1]]);
      }
    }
    const movedFrom = new Set(moves.map((m) => m[0]));
    const movedTo = new Set(moves.map((m) => m[1]));
    let reports = 0;
    for (const [from, to, st] of moves) {
      this.known.delete(from);
      this.known.set(to, st);
      this.report({ type: 'file.moved', entry: this.entry, from, path: to, stat: plain(st) });
      reports++;
    }
    for (const [rel] of vanished) {
      if (movedFrom.has(rel)) continue;
      this.known.delete(rel);
      this.report({ type: 'file.deleted', entry: this.entry, path: rel });
      reports++;
    }
    for (const [rel, st] of [...changed, ...appeared]) {
      if (movedTo.has(rel)) continue;
      this.known.set(rel, st);
      this.report({ type: 'file.changed', entry: this.entry, path: rel, stat: plain(st) });
      reports++;
    }
    // Same size and mtime but another ETag is still a change; the quiet fields are refreshed.
    for (const [rel, st] of files) if (!skip(rel) && this.known.has(rel)) this.known.set(rel, st);
    return reports;
  }
}

function differs(a: RemoteStat, b: RemoteStat): boolean {
  return (
    a.size !== b.size || a.mtime !== b.mtime || a.mode !== b.mode || (a.etag !== undefined && b.etag !== undefined && a.etag !== b.etag)
  );
}

/** The stat as the store keeps it (the ETag, where there is one, is the identity: `ino`; a folder has its mode). */
export function plain(st: RemoteStat): FileStat {
  return { size: st.size, mtime: st.mtime, ino: st.ino, ...(st.mode !== undefined ? { mode: st.mode } : {}) };
}

function scanned(rel: string, st: RemoteStat): ScannedFile {
  return { path: rel, ...plain(st) };
}
