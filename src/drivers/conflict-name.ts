import path from 'node:path';

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * The name a conflicting copy is kept under, as Syncthing names it:
 * `dir/name.sync-conflict-YYYYMMDD-HHMMSS-ENTRY.ext` (UTC). `n` > 0 adds a counter for
 * the rare second conflict within the same second.
 */
export function conflictName(filename: string, entry: string, when: Date, n = 0): string {
  const dir = path.posix.dirname(filename);
  const base = path.posix.basename(filename);
  const ext = path.posix.extname(base);
  const stem = ext ? base.slice(0, -ext.length) : base;
  const stamp =
    `${when.getUTCFullYear()}${pad(when.getUTCMonth() + 1)}${pad(when.getUTCDate())}-` +
    `${pad(when.getUTCHours())}${pad(when.getUTCMinutes())}${pad(when.getUTCSeconds())}`;
  const name = `${stem}.sync-conflict-${stamp}-${entry}${n > 0 ? `-${n}` : ''}${ext}`;
  return dir === '.' ? name : `${dir}/${name}`;
}
