import type Database from 'better-sqlite3';
import { fidOf } from '../paths.js';
import type { VersionChange } from '../versions/keeper.js';
import type { VersionReason } from '../versions/policy.js';

/** A version an entry keeps, as the catalogue records it from what its worker said. */
export interface VersionRow {
  id: number;
  entry: string;
  fid: string;
  filename: string;
  /** Where the entry's storage holds it: its path under the versions folder. */
  key: string;
  /** When it was kept, epoch milliseconds. */
  time: number;
  size: number;
  reason: VersionReason;
}

/** A file deleted everywhere whose content some entry keeps as versions. */
export interface TrashRow {
  fid: string;
  filename: string;
  /** When it was deleted (its newest version's time, one kept by a deletion if any), epoch milliseconds. */
  deleted: number;
  versions: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS versions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  entry TEXT NOT NULL,
  fid TEXT NOT NULL,
  filename TEXT NOT NULL,
  key TEXT NOT NULL,
  time REAL NOT NULL,
  size INTEGER NOT NULL,
  reason TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS versions_by_key ON versions (entry, key);
CREATE INDEX IF NOT EXISTS versions_by_fid ON versions (fid, time);
`;

/**
 * The `versions` table of the catalogue: what each entry's worker says it keeps. Written only
 * from workers' messages; the API reads it. A version keeps its id while the entry keeps it,
 * across restarts (rows are matched by entry and key).
 */
export class VersionsTable {
  private readonly q;

  constructor(db: Database.Database, readonly = false) {
    if (!readonly) db.exec(SCHEMA);
    this.q = {
      put: db.prepare(
        `INSERT INTO versions (entry, fid, filename, key, time, size, reason) VALUES (@entry, @fid, @filename, @key, @time, @size, @reason)
         ON CONFLICT (entry, key) DO UPDATE SET fid = excluded.fid, filename = excluded.filename, time = excluded.time,
           size = excluded.size, reason = excluded.reason`,
      ),
      drop: db.prepare('DELETE FROM versions WHERE entry = ? AND key = ?'),
      keepOnly: db.prepare('DELETE FROM versions WHERE entry = ? AND key NOT IN (SELECT value FROM json_each(?))'),
      ofFile: db.prepare('SELECT * FROM versions WHERE fid = ? ORDER BY time DESC, id DESC'),
      byId: db.prepare('SELECT * FROM versions WHERE id = ?'),
      // Files no entry holds any more (no row, or a tombstone), with versions somewhere.
      trash: db.prepare(
        `SELECT v.fid, min(v.filename) AS filename,
                coalesce(max(CASE WHEN v.reason = 'deleted' THEN v.time END), max(v.time)) AS deleted, count(*) AS versions
         FROM versions v LEFT JOIN files f ON f.fid = v.fid
         WHERE f.fid IS NULL OR f.deleted = 1
         GROUP BY v.fid ORDER BY filename, v.fid LIMIT ? OFFSET ?`,
      ),
    };
  }

  /** Records what an entry's worker said it kept and dropped (`full`: every version it keeps). */
  record(entry: string, change: VersionChange): void {
    if (change.full) this.q.keepOnly.run(entry, JSON.stringify(change.kept.map((v) => v.key)));
    for (const v of change.kept) {
      this.q.put.run({ entry, fid: fidOf(v.filename), filename: v.filename, key: v.key, time: v.time, size: v.size, reason: v.reason });
    }
    for (const key of change.dropped) this.q.drop.run(entry, key);
  }

  /** The versions of a file, newest first. */
  ofFile(fid: string): VersionRow[] {
    return this.q.ofFile.all(fid) as VersionRow[];
  }

  byId(id: number): VersionRow | undefined {
    return this.q.byId.get(id) as VersionRow | undefined;
  }

  /** A page of the files deleted everywhere that some entry keeps versions of, by filename. */
  trash(offset: number, limit: number): TrashRow[] {
    return this.q.trash.all(limit, offset) as TrashRow[];
  }
}
