import type Database from 'better-sqlite3';

/**
 * The ignore patterns each entry's worker last said were in force (the setup's and its
 * `.ferryignore`'s), so that the sync engine applies them while the entry is stopped, and from
 * the daemon's start on.
 */
export class IgnoresTable {
  private readonly q;

  constructor(db: Database.Database, readonly = false) {
    if (!readonly) db.exec('CREATE TABLE IF NOT EXISTS entry_ignores (entry TEXT PRIMARY KEY, json TEXT NOT NULL)');
    this.q = {
      get: db.prepare('SELECT json FROM entry_ignores WHERE entry = ?').pluck(),
      put: db.prepare('INSERT INTO entry_ignores (entry, json) VALUES (?, ?) ON CONFLICT (entry) DO UPDATE SET json = excluded.json'),
    };
  }

  /** The patterns last reported for `entry`, or null when none were. */
  get(entry: string): string[] | null {
    const json = this.q.get.get(entry) as string | undefined;
    return json === undefined ? null : (JSON.parse(json) as string[]);
  }

  put(entry: string, patterns: readonly string[]): void {
    this.q.put.run(entry, JSON.stringify(patterns));
  }
}
